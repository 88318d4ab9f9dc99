"""The workflow's plan: every job a configuration asks for, as a content-keyed spec.

A spec ``{"stage", "experiment", "version", "params", "inputs"}`` holds every parameter
that determines a result and the content keys of the results it reads; its content key
(SHA-256 of its canonical JSON) names the output file.  Results so form a Merkle DAG:
changing a parameter changes the keys of exactly the results that depend on it, and
reverting it points the workflow back at results that already exist.

Each experiment (:mod:`equivdyn.experiments`) adds its jobs and figures to a
:class:`Plan`; the workflow (``rules/``) only loops over what the plan holds.  This
module imports neither torch nor Snakemake.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from ._io import content_key
from .errors import ParameterError
from .params import DEVICES
from .stages import STAGE_VERSIONS, TRAJECTORY_INPUT_PREFIX

if TYPE_CHECKING:
    from .experiments import Experiment

#: Folder of every result, of the figures, and the index of the plan.
RESULTS = "results"
FIGURES = f"{RESULTS}/figures"
INDEX = f"{RESULTS}/index.tsv"
#: Files each figure writes: the picture twice and the numbers it draws.
FIGURE_EXTENSIONS = ("pdf", "png", "json")


#: What a job asks a scheduler for beyond its estimated run time: the time limit is
#: RUNTIME_MARGIN times the estimate, and never under MIN_RUNTIME minutes (a job that
#: reaches its limit is killed and loses its work; asking too much only delays its start).
RUNTIME_MARGIN = 4
MIN_RUNTIME = 10
#: Time limit (minutes) of a data job, which may download a dataset.
DOWNLOAD_RUNTIME = 60
#: Seconds a fit or a verdict takes per recorded number it reads (PCA, delay embedding
#: and DMD, or a verdict's PCA and resampling): E4's fits and comparison took 0.55-0.67 s
#: per million values above their start-up (benchmarks/results/paper_scale.md).
READ_SECONDS_PER_VALUE = 1e-6


def runtime_minutes(seconds: float) -> int:
    """The time limit (minutes) of a job estimated to take ``seconds``."""
    return max(MIN_RUNTIME, math.ceil(RUNTIME_MARGIN * seconds / 60))


@dataclass(frozen=True)
class Job:
    """One planned job: its output path, its spec and what a scheduler needs to run it
    (memory in MB, threads, time limit in minutes, GPUs)."""

    path: str
    spec: dict[str, Any]
    mem_mb: int = 1000
    threads: int = 1
    runtime: int = MIN_RUNTIME
    gpus: int = 0


@dataclass(frozen=True)
class Figure:
    """One planned figure.

    ``inputs`` maps each role the experiment's drawing function reads (e.g.
    ``"trajectories"``) to the content keys of its files; the drawing function learns
    what each file is (width, seed, …) from the parameters stored in it, never from a name.
    """

    experiment: str
    target: str  # the workflow's target (``snakemake fig3``)
    stem: str  # results/figures/<stem>.{pdf,png,json}
    inputs: dict[str, list[str]]
    caption: str  # reStructuredText, values filled in
    json_caption: str
    category: str
    mem_mb: int = 1000

    def files(self) -> list[str]:
        return [f"{FIGURES}/{self.stem}.{ext}" for ext in FIGURE_EXTENSIONS]


@dataclass
class Plan:
    """Every job and figure of one configuration (``config`` as the schema filled it in)."""

    config: Mapping[str, Any]
    jobs: dict[str, Job] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)

    def add(
        self,
        stage: str,
        experiment: str,
        params: Mapping[str, Any],
        inputs: Mapping[str, str] | None = None,
        *,
        version: int | None = None,
        ext: str = "h5",
        mem_mb: int = 1000,
        threads: int = 1,
        seconds: float = 0.0,
        gpus: int = 0,
    ) -> str:
        """Record a job and return its content key (``version``: the stage's, by default;
        ``seconds``: its estimated run time, from which its time limit follows)."""
        spec = {
            "stage": stage,
            "experiment": experiment,
            "version": STAGE_VERSIONS[stage] if version is None else version,
            "params": dict(params),
            "inputs": dict(inputs or {}),
        }
        key = content_key(spec)
        path = f"{RESULTS}/{stage}/{experiment}/{key}.{ext}"
        self.jobs[key] = Job(path, spec, mem_mb, threads, runtime_minutes(seconds), gpus)
        return key

    def train(
        self,
        experiment: Experiment,
        params: Mapping[str, Any],
        inputs: Mapping[str, str] | None = None,
        *,
        seconds: float = 0.0,
        device: str = "cpu",
    ) -> str:
        """Record a training job of ``experiment`` (its trainer's version and threads).

        ``seconds`` is the job's estimated run time with its threads.  ``device`` is the
        experiment's ``device`` setting: a CUDA job asks for a GPU, and its spec names the
        device, so its results (which differ from the CPU's in the last bits) have their
        own keys; CPU jobs' specs do not name it.
        """
        device = resolve_device(device, f"{experiment.name}.device")
        if device != "cpu":
            params = {**params, "device": device}
        return self.add(
            "train",
            experiment.name,
            params,
            inputs,
            version=experiment.train_version,
            mem_mb=4000,
            threads=experiment.train_threads,
            seconds=seconds,
            gpus=int(device == "cuda"),
        )

    def fit(self, experiment: str, params: Mapping[str, Any], trajectory: str, *, values: int = 0) -> str:
        """Record the Koopman fit of the trajectory with key ``trajectory``, which holds
        ``values`` numbers (initialisations x snapshots x observables)."""
        return self.add(
            "fit", experiment, params, {"trajectory": trajectory}, mem_mb=4000, seconds=read_seconds(values)
        )

    def source(self, experiment: str, path: str | os.PathLike[str], digest: str) -> str:
        """Record a file the configuration names (e.g. a recorded run), which no job makes;
        its key is that of the SHA-256 ``digest`` of its bytes, so it names the content."""
        spec = {"stage": "source", "experiment": experiment, "version": 1, "params": {"sha256": digest}, "inputs": {}}
        key = content_key(spec)
        self.jobs[key] = Job(os.fspath(path), spec)
        return key

    def path(self, key: str) -> str:
        return self.jobs[key].path

    def dataset(self, name: str) -> str:
        """Record the data job of dataset ``name`` (see :func:`dataset_job`), return its key."""
        key, job = dataset_job(self.config, name)
        self.jobs[key] = job
        return key

    def figure(
        self,
        experiment: Experiment,
        target: str,
        stem: str,
        inputs: Mapping[str, Sequence[str]],
        *,
        caption: str,
        json_caption: str,
        category: str,
        values: Mapping[str, object] | None = None,
        mem_mb: int = 1000,
    ) -> None:
        """Record a figure; ``caption`` and ``json_caption`` name reStructuredText files of
        the experiment's package, whose ``$name`` fields are filled from ``values``."""
        self.figures[stem] = Figure(
            experiment.name,
            target,
            stem,
            {role: list(keys) for role, keys in inputs.items()},
            experiment.text(caption, values),
            experiment.text(json_caption, values),
            category,
            mem_mb,
        )

    def figures_needing(self, key: str) -> list[Figure]:
        """The figures drawn, directly or through other results, from result ``key``."""
        memo: dict[str, bool] = {}

        def needs(k: str) -> bool:
            if k not in memo:
                job = self.jobs.get(k)
                inputs = job.spec.get("inputs", {}).values() if job is not None else ()
                memo[k] = k == key or any(needs(i) for i in inputs)
            return memo[k]

        return [fig for fig in self.figures.values() if any(needs(k) for keys in fig.inputs.values() for k in keys)]

    def targets(self) -> dict[str, list[str]]:
        """Each figure target and the files it makes (a target may have several figures)."""
        out: dict[str, list[str]] = {}
        for fig in self.figures.values():
            out.setdefault(fig.target, []).extend(fig.files())
        return out


def dataset_job(config: Mapping[str, Any], name: str) -> tuple[str, Job]:
    """The key and the job of the data stage of dataset ``name`` (``mnist`` or ``cifar10``).

    The key is the hash of the dataset's content checksums, whatever the source (a local
    copy or a download), so every downstream key depends on the data, not on its path;
    only the synthetic CIFAR-10 stand-in (``data.cifar10: synthetic``) has its own.
    """
    from .data import cifar10, mnist

    if name == "mnist":
        key, spec = mnist.DATASET_KEY, mnist.DATASET_SPEC
    elif name == "cifar10":
        source = config["data"]["cifar10"]
        key, spec = cifar10.dataset_key(source), cifar10.dataset_spec(source)
    else:
        raise ParameterError(f"dataset: unknown dataset {name!r}; known: mnist, cifar10")
    return key, Job(f"{RESULTS}/data/{name}/{key}.npz", spec)


def read_text(package: str, name: str, values: Mapping[str, object] | None = None) -> str:
    """Text file ``name`` of ``package`` with its ``$field`` placeholders filled from ``values``."""
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return string.Template(text).substitute(values or {})


def traj_input(name: str) -> str:
    """Name of the trajectory input ``name`` of a compare or distances job."""
    return f"{TRAJECTORY_INPUT_PREFIX}{name}"


def verdict(name: str, a: Sequence[str], b: Sequence[str], observable: str | None, **extra: object) -> dict[str, Any]:
    """A verdict of a compare or distances job: setups ``a`` and ``b`` are lists of
    trajectory names (one per seed), compared on ``observable`` (``None``: the files' only one)."""
    return {
        "name": name,
        "a": [traj_input(n) for n in a],
        "b": [traj_input(n) for n in b],
        "observable": observable,
        **extra,
    }


def read_seconds(values: int) -> float:
    """Estimated seconds of a job that reads and analyses ``values`` recorded numbers
    (a Koopman fit of them, or verdicts between runs holding them in all)."""
    return values * READ_SECONDS_PER_VALUE


def resolve_device(device: str, field: str) -> str:
    """``cpu`` or ``cuda``: a device setting with ``auto`` resolved on this machine (the
    one that plans): ``cuda`` if torch sees a CUDA device here, else ``cpu``."""
    if device == "auto":
        import torch  # only when asked: planning never needs torch otherwise

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in DEVICES:
        raise ParameterError(f"{field}={device!r}: must be one of {', '.join(DEVICES)}")
    return device


def verdict_mem_mb(held: int, largest: int) -> int:
    """Memory (MB) of a job that computes verdicts (:func:`equivdyn.verdict.compare_runs`).

    ``held`` is the number of float64 values the job holds throughout (e.g. segments cut
    from every seed), ``largest`` that of the largest single seed it reads: each seed is
    read and reduced by PCA one at a time, which takes up to five copies of it (the data
    as stored and as float64, the centred data, the SVD's factor and its workspace).
    """
    return int(1000 + (held + 5 * largest) * 8 / 2**20)


def build(config: Mapping[str, Any], experiments: Sequence[Experiment] | None = None) -> Plan:
    """The plan of ``config``: every registered experiment whose section it has adds its jobs."""
    from .experiments import registered

    plan = Plan(config)
    for path_field in ("mnist", "cifar10"):
        check_data_path(config, path_field)
    for experiment in registered() if experiments is None else experiments:
        if experiment.name in config:
            experiment.plan(plan, config[experiment.name])
    return plan


def check_data_path(config: Mapping[str, Any], field: str) -> None:
    """Refuse a data path Snakemake would misread: braces are wildcards in its file names."""
    path = config["data"][field]
    if path is not None and ("{" in path or "}" in path):
        raise ParameterError(
            f"data.{field}={path!r}: a path with '{{' or '}}' cannot be an input (Snakemake "
            "reads braces as wildcards); rename the file or folder, or link it under another name"
        )
