"""What the paper-scale workflow (``--profile profiles/paper``) costs: CPU time, wall time and
peak memory of every kind of job, measured through the real command line, and the totals.

**The plans.**  The paper-scale plan is built as ``snakemake all --profile profiles/paper``
builds it: ``config.yaml`` updated by ``profiles/paper/paper.yaml`` (Snakemake's recursive
merge of config files), filled in with the defaults of the committed schema
``workflow/schemas/config.schema.json`` (``validate(..., set_default=True)``, as the
Snakefile and ``tests/conftest.py:filled_config`` do) and given to ``equivdyn.plan.build``.
Data sources: MNIST from ``../shared/data/mnist.npz`` (its key does not depend on the
path), CIFAR-10 the real archive (planning reads no file).  The default configuration
(``config.yaml`` alone: laptop scale) is planned the same way.  Jobs are grouped into
*kinds*: (stage, experiment, what sets a job's size: E1 method, E2 width, E3 network, E4
ensemble or long run), one plot kind per figure, the index and the data jobs.

**What runs.**  Every job below runs as the workflow's rule runs it, in a scratch folder laid
out like the checkout (``results/<stage>/<experiment>/<key>.<ext>``): ``equivdyn
train|fit|compare|distances --spec JSON --input NAME=PATH --out PATH``, ``equivdyn plot FIG
--input ROLE=PATH ... --out-prefix``, ``equivdyn data``, ``equivdyn index --plan JSON``, with
the rule's threads in OMP_NUM_THREADS and the other variables Snakemake sets.  Each child
is reaped with ``os.wait4``: its CPU seconds (user + system), wall seconds and peak RSS
(``ru_maxrss``) are its own.  Runs are sequential.  On a machine shared with other work the
wall times are inflated by it; CPU seconds less so (except for two-thread jobs, see
``--merge``): they are the primary figures.

For each kind one representative (the largest job of its kind, the first seed on ties) is
costed in one of three ways (column ``how``):

* ``measured``: the paper-scale job itself ran (E1 throughout; E2 trains and fits; the
  MNIST data job; fig2; the index of the paper plan), or, for E4's fit, the paper's fit
  spec on a trajectory of the paper's shape (below);
* ``2-point``: training jobs too long to run here (E3 LeNet and ResNet-20, E4 ensembles and
  long runs): the paper job's spec with fewer optimiser steps, same model, same number of
  initialisations, run at two lengths n1 < n2; cost = a + b * n is fitted through both and
  evaluated at the paper's n (``b`` per step is what the per-step table shows; ``a`` is the
  fixed cost: start-up, data, writing).  E3 runs fewer images per epoch (LeNet 1,200 of
  MNIST's 60,000; ResNet-20 the 512 images of the SYNTHETIC CIFAR-10 stand-in) with the
  test images evaluated after each epoch cut in the same proportion (LeNet 200, ResNet-20
  102 of 10,000), so evaluation stays the same share of an epoch; E4 long runs log 3
  points instead of 200 (200 evaluations of the test set are about 1 % of 2e4 steps: not
  modelled; 2 points crash the long run: ``log_schedule(n, 2)`` is [0, 1]).  E2 trains
  also run at 100 steps beside their full length, for the per-step cost;
* ``scaled``: fits, comparisons, distances and plots of the experiments whose trains were
  scaled, or with 25 (E2) or 10 (E4) seeds: they run in a *scaled plan*, the paper
  configuration with 2 seeds per experiment; E3 on the short trajectories above (ResNet-20
  on 256 SYNTHETIC images at batch 16 for 2 epochs, so that an epoch holds enough steps for
  the fits; windows of 10 (LeNet) and 12 (ResNet-20) steps instead of 50 and 40); E4 with
  modulus p = 23 instead of 113 (a full batch of 158 instead of 3,830 pairs) and 4
  initialisations instead of 10 (trajectories [4, 100, 65,536] instead of [10, 100,
  65,536]).  The scaled plan is built by ``equivdyn.plan.build``, so its specs and keys
  are consistent.  Its jobs' cost is extrapolated linearly in the work they do, above the
  stage's start-up cost ``t0`` (a run of the same subcommand that stops right after its
  imports): fits in the values they fit (initialisations x observables x
  (snapshots + window snapshots)); comparisons in the trajectory values their verdicts
  read, plus the randomisation controls of their pairs (``n_pairs x`` the per-pair cost,
  timed in this process on the fitted spectra); distances in the trajectory values they
  read; plots in the number of input files.  E2 fits and comparisons read trajectories of
  the paper's shape (only the number of seeds is extrapolated).  E4's fit is measured on
  a trajectory of the paper's shape made by the paper's ensemble spec with p = 23 (the
  fit does not depend on how the trajectory was made, only on its shape); the comparison
  reads [4, 100, 65,536] trajectories, whose PCA (a thin SVD of the [M*T, D] snapshot
  matrix, ~(M*T)^2 D) is not linear in M: its work per value is scaled further by the
  ratio of the fits' work per value at the two shapes (the verdict's work per seed is the
  same PCA of the same matrix), and its RSS by the difference of the fits' RSS.  E3's
  change T and the windows: linear is an approximation there (small jobs).

A scaled row's wall time is its CPU time times the run's wall / CPU ratio; a row whose
run did under 1 CPU s of work above start-up is marked NOISY (its extrapolation is mostly
the noise of that difference).

``RSS est.`` is the peak RSS expected at paper size where the run was smaller: the RSS as
run plus bytes per added value times the added values of the largest trajectory the job
holds at once (figures of E1/E2: all of them; distances: plus the segments every seed
keeps): trains 12 B (the recorded float32 observable and E3's float64 copy), figures 8 B,
fits, comparisons and distances 40 B (the five float64 copies the plan's own
``verdict_mem_mb`` assumes); E3 trains add their images (9 B per pixel of a training
image: raw, gathered or cropped, float32; 5 B per test pixel), E4's comparison the
difference of the fits' RSS (above).  ``mem_mb`` is what the plan asks for.

**Totals.**  CPU hours of the whole paper plan = sum over kinds of count x CPU s (each job
costed as its kind's largest); wall hours on one 2-core machine = CPU / 2 (perfect packing
assumed, no job waits for another) and the critical path (longest chain of data ->
train -> fit -> compare/distances -> plot, each job's wall time as estimated); a Slurm
allocation of N nodes of 2 cores: max(CPU / (2N), critical path).

Usage::

    python benchmarks/paper_scale.py                 # about 15 minutes on 2 cores
    python benchmarks/paper_scale.py --keep /tmp/ps  # keep the scratch folder
    python benchmarks/paper_scale.py --keep /tmp/ps --reuse              # finish an interrupted run
    python benchmarks/paper_scale.py --keep /tmp/ps2 --reuse --merge /tmp/ps  # least CPU of 2 runs

On a machine shared with other work, a job's CPU time too varies between runs (two-thread
jobs most: threads that wait for a core spin); ``--merge`` takes, for every command line,
the run with the least CPU time, the best estimate of what the job costs on a machine of
its own.

Writes ``benchmarks/results/paper_scale.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from equivdyn._io import content_key, write_json_atomic, write_text_atomic
from equivdyn.plan import build

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.json"
MNIST_SOURCE = ROOT.parent / "shared" / "data" / "mnist.npz"
#: Linux's limit on one argument (MAX_ARG_STRLEN): the index rule passes the plan as one.
ARG_LIMIT = 131072
#: Variables Snakemake's shell sets to the job's threads.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
SLURM_NODES = (1, 4, 16, 64)
CORES_PER_NODE = 2
#: Bytes of memory per added value (see the docstring).
TRAIN_BYTES_PER_VALUE = 12
#: E3's trainer holds its images: bytes per pixel of a training image (raw uint8, the
#: epoch's gathered or cropped copy, float32 normalised) and of a test image (raw, float32).
E3_TRAIN_PIXEL_BYTES = 9
E3_TEST_PIXEL_BYTES = 5
E3_PIXELS = {"lenet": 28 * 28, "resnet20": 3 * 32 * 32}
#: Below this many CPU seconds above start-up, a scaled row's extrapolation is noise.
NOISE_S = 1.0
ANALYSIS_BYTES_PER_VALUE = 40
FIGURE_BYTES_PER_VALUE = 8
#: Figures that read the trajectories' observables (the others read metadata and metrics).
FIGURES_READING_OBSERVABLES = ("e1", "e2")
#: Training images of each dataset (E3's epochs).
N_TRAIN = {"mnist": 60000, "cifar10": 50000, "cifar10 SYNTHETIC": 512}
N_TEST = {"mnist": 10000, "cifar10": 10000, "cifar10 SYNTHETIC": 256}
#: Sizes of the observables E3 records (weights and biases of the output layer).
E3_OBSERVABLE = {"lenet": 850, "resnet20": 650}

#: The scaled plan: overrides of the paper configuration (see the docstring).
SCALED_PLAN: dict[str, Any] = {
    "data": {"cifar10": "synthetic"},
    "e2": {"seeds": [0, 1]},
    "e3": {
        "seeds": [0, 1],
        "lenet": {
            "train": {"train_subset": 1200, "test_subset": 200},
            "windows": {"length": 10, "count": 5},
        },
        "resnet20": {
            "train": {
                "train_subset": 256,
                "test_subset": 51,
                "batch_size": 16,
                "n_epochs": 2,
            },
            "windows": {"length": 12, "count": 2},
        },
    },
    "e4": {
        "seeds": [0, 1],
        "train": {"p": 23, "n_inits": 4},
        "long": {"n_steps": 50, "n_points": 10},
    },
}
#: Two-point training runs: (kind detail) -> (overrides of the paper spec's params at n1, at n2),
#: and whether the data input becomes the SYNTHETIC CIFAR-10 stand-in.
TWO_POINT: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any], bool]] = {
    ("e3", "lenet"): (
        {"train_subset": 1200, "test_subset": 200, "n_epochs": 1},
        {"train_subset": 1200, "test_subset": 200},
        False,
    ),
    ("e3", "resnet20"): (
        {"test_subset": 102, "n_epochs": 1},
        {"test_subset": 102, "n_epochs": 3},
        True,
    ),
    ("e4", "ensemble"): ({"n_steps": 1}, {"n_steps": 5}, False),
    ("e4", "long"): (
        {"n_steps": 20, "n_points": 3},
        {"n_steps": 120, "n_points": 3},
        False,
    ),
}
#: E2: a short run beside the full one, for the per-step cost.
E2_SHORT_STEPS = 100
#: E4's fit of the paper's shape [10, 100, 65,536]: the paper's fit spec on the trajectory
#: of the paper's ensemble spec with these overrides (cheaper steps, same network).
E4_STAND_IN = {"p": 23}


# ---------------------------------------------------------------------------- planning


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated recursively by ``update`` (as Snakemake merges config files)."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def raw_config(scale: str) -> dict[str, Any]:
    """``config.yaml`` (``default``), updated by profiles/paper/paper.yaml (``paper``) and
    by :data:`SCALED_PLAN` (``scaled``), with the data sources of this machine."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    if scale in ("paper", "scaled"):
        merge(
            config,
            yaml.safe_load((ROOT / "profiles" / "paper" / "paper.yaml").read_text()),
        )
    merge(config, {"data": {"mnist": str(MNIST_SOURCE), "cifar10": None}})
    if scale == "scaled":
        merge(config, SCALED_PLAN)
    return config


def plan_of(scale: str) -> tuple[Any, str]:
    """The plan of ``scale`` and which schema filled its defaults."""
    from snakemake.utils import validate

    config = raw_config(scale)
    filled = copy.deepcopy(config)
    validate(filled, str(SCHEMA), set_default=True)
    try:
        return build(filled), "committed"
    except KeyError:
        # The committed schema lags the code (being edited): fill from the generated one.
        from equivdyn.experiments import workflow_schema

        filled = copy.deepcopy(config)
        validate(filled, workflow_schema(), set_default=True)
        return build(filled), "generated (the committed schema lagged the code)"


# ---------------------------------------------------------------------------- kinds and sizes


def dataset_name(key: str, jobs: Mapping[str, Any]) -> str:
    """``mnist``, ``cifar10`` or ``cifar10 SYNTHETIC`` for the data job ``key``."""
    spec = jobs[key].spec
    synthetic = "synthetic" in json.dumps(spec["params"])
    return spec["experiment"] + (" SYNTHETIC" if synthetic else "")


def trajectory_key(spec: Mapping[str, Any], jobs: Mapping[str, Any]) -> str | None:
    """The first trajectory (training job) among the inputs of ``spec``."""
    for key in spec["inputs"].values():
        if key in jobs and jobs[key].spec["stage"] == "train":
            return key
    return None


def train_detail(spec: Mapping[str, Any]) -> str:
    p, experiment = spec["params"], spec["experiment"]
    if experiment == "e1":
        return str(p.get("method", ""))
    if experiment == "e2":
        return f"width {p['width']}"
    if experiment == "e3":
        return str(p["model"])
    if experiment == "e4":
        return str(p.get("kind", "ensemble"))
    return ""


def kind_of(key: str, jobs: Mapping[str, Any]) -> str:
    """The kind of job ``key``: stage, experiment and what sets its size."""
    spec = jobs[key].spec
    stage, experiment = spec["stage"], spec["experiment"]
    if stage == "data":
        return f"data {experiment}"
    if stage == "train":
        return f"train {experiment} {train_detail(spec)}".rstrip()
    if stage in ("fit", "distances"):
        traj = trajectory_key(spec, jobs)
        detail = (
            train_detail(jobs[traj].spec) if traj and experiment in ("e2", "e3") else ""
        )
        return f"{stage} {experiment} {detail}".rstrip()
    return f"{stage} {experiment}"


def figure_kind(figure: Any) -> str:
    return f"plot {figure.stem}"


def train_steps(spec: Mapping[str, Any], jobs: Mapping[str, Any] | None = None) -> int:
    """Optimiser steps (E1: snapshots) of the training job ``spec``."""
    p, experiment = spec["params"], spec["experiment"]
    if experiment == "e2":
        return int(p["n_steps"] or N_TRAIN["mnist"] // p["batch_size"])
    if experiment == "e3":
        return int(
            (p["train_subset"] or N_TRAIN[e3_dataset(spec, jobs)])
            // p["batch_size"]
            * p["n_epochs"]
        )
    return int(p["n_steps"])


def e3_dataset(spec: Mapping[str, Any], jobs: Mapping[str, Any] | None) -> str:
    if spec["params"]["model"] == "lenet":
        return "mnist"
    from equivdyn.data import cifar10

    return (
        "cifar10 SYNTHETIC"
        if spec["inputs"].get("data") == cifar10.SYNTHETIC_KEY
        else "cifar10"
    )


def e3_image_bytes(spec: Mapping[str, Any], jobs: Mapping[str, Any]) -> int:
    """Bytes of images an E3 training job holds (0 for other experiments; see E3_*_BYTES)."""
    if spec["experiment"] != "e3":
        return 0
    p, dataset = spec["params"], e3_dataset(spec, jobs)
    train = p["train_subset"] or N_TRAIN[dataset]
    test = p["test_subset"] or N_TEST[dataset]
    pixels = E3_PIXELS[p["model"]]
    return pixels * (E3_TRAIN_PIXEL_BYTES * train + E3_TEST_PIXEL_BYTES * test)


def trajectory_shape(
    spec: Mapping[str, Any], jobs: Mapping[str, Any] | None = None
) -> tuple[int, int, int]:
    """[M, T, D] of the recorded observable of training job ``spec`` (as the trainers write it)."""
    p, experiment = spec["params"], spec["experiment"]
    if experiment == "e1":
        return p["grid_size"] ** p["dim"], p["n_steps"], p["dim"]
    if experiment == "e2":
        return p["n_inits"], train_steps(spec), 10 * p["width"]
    if experiment == "e3":
        return p["n_inits"], train_steps(spec, jobs), E3_OBSERVABLE[p["model"]]
    if experiment == "e4":
        if p.get("kind") == "long":
            return 1, min(p["n_points"], p["n_steps"] + 1), 1
        return p["n_inits"], p["n_steps"], p["d_model"] * p["d_mlp"]
    raise ValueError(f"no shape known for experiment {experiment}")


def values_of(key: str, jobs: Mapping[str, Any]) -> int:
    m, t, d = trajectory_shape(jobs[key].spec, jobs)
    return m * t * d


def traj_input_keys(spec: Mapping[str, Any], jobs: Mapping[str, Any]) -> list[str]:
    return [
        k
        for k in spec["inputs"].values()
        if k in jobs and jobs[k].spec["stage"] == "train"
    ]


def fit_values(key: str, jobs: Mapping[str, Any]) -> int:
    """Values a fit job fits: M x D x (snapshots + snapshots of its windows)."""
    spec = jobs[key].spec
    m, t, d = trajectory_shape(jobs[spec["inputs"]["trajectory"]].spec, jobs)
    windows = spec["params"].get("windows") or {"length": 0, "count": 0}
    epochs = t if spec["params"].get("epochs") else 0
    fitted = windows["length"] * windows["count"] + epochs
    return m * d * (fitted or t)


def compare_values(key: str, jobs: Mapping[str, Any]) -> int:
    """Trajectory values the verdicts of a compare job read (a file once per verdict
    side it is on), or a distances job reads (each trajectory input once)."""
    spec = jobs[key].spec
    if spec["stage"] == "distances":
        return sum(values_of(k, jobs) for k in traj_input_keys(spec, jobs))
    total = 0
    for verdict in spec["params"].get("verdicts", []):
        for side in ("a", "b"):
            total += sum(
                values_of(spec["inputs"][name], jobs) for name in verdict[side]
            )
    return total


def held_values(key: str, jobs: Mapping[str, Any]) -> int:
    """Values a distances job keeps from every seed: first and last window and epoch."""
    spec = jobs[key].spec
    total = 0
    for k in traj_input_keys(spec, jobs):
        m, t, d = trajectory_shape(jobs[k].spec, jobs)
        params = jobs[k].spec["params"]
        epochs = max(1, params.get("n_epochs", 1))
        fit = next(
            j.spec
            for j in jobs.values()
            if j.spec["stage"] == "fit" and j.spec["inputs"].get("trajectory") == k
        )
        window = (fit["params"].get("windows") or {"length": 0})["length"]
        total += 2 * (window + t // epochs) * m * d
    return total


def job_size(key: str, jobs: Mapping[str, Any]) -> int:
    """What makes one job of a kind larger than another (to pick the largest)."""
    spec = jobs[key].spec
    stage = spec["stage"]
    if stage == "train":
        return values_of(key, jobs) + train_steps(spec, jobs)
    if stage == "fit":
        return fit_values(key, jobs)
    if stage in ("compare", "distances"):
        return compare_values(key, jobs) + len(spec["params"].get("pairs", []))
    return 0


def kinds(plan: Any) -> dict[str, list[str]]:
    """Kind -> keys of its jobs (plot kinds: figure stems; the index: ``index``)."""
    out: dict[str, list[str]] = {}
    for key in plan.jobs:
        out.setdefault(kind_of(key, plan.jobs), []).append(key)
    for stem, figure in plan.figures.items():
        out.setdefault(figure_kind(figure), []).append(stem)
    out["index"] = ["index"]
    return out


def representative(plan: Any, keys: list[str]) -> str:
    """The largest job of a kind (the first planned on ties)."""
    if keys[0] in plan.figures or keys[0] == "index":
        return keys[0]
    return max(keys, key=lambda k: (job_size(k, plan.jobs), -keys.index(k)))


def figure_files(figure: Any) -> int:
    return sum(len(v) for v in figure.inputs.values())


def figure_values(figure: Any, jobs: Mapping[str, Any]) -> int:
    """Trajectory values a figure holds (E1/E2: all of them; else the largest file's metrics only)."""
    if figure.experiment not in FIGURES_READING_OBSERVABLES:
        return 0
    return sum(values_of(k, jobs) for k in figure.inputs.get("trajectories", []))


# ---------------------------------------------------------------------------- running


@dataclass
class Measurement:
    """One child process: what ran, its CPU (user + system) and wall seconds, its peak RSS."""

    label: str
    cpu_s: float
    user_s: float
    sys_s: float
    wall_s: float
    rss_mb: float
    rc: int
    threads: int
    shape: list[int] | None = None
    source: str = ""  # the scratch folder of the run that measured it ("": this one)

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Task:
    path: str
    spec: dict[str, Any]
    threads: int = 1


class Runner:
    """Runs jobs through the ``equivdyn`` command line in a scratch folder, each measured."""

    def __init__(
        self,
        workdir: Path,
        reuse: bool = False,
        merge: list[Path] | None = None,
        verbose: bool = True,
    ) -> None:
        self.dir = workdir
        self.exe = str(Path(sys.executable).with_name("equivdyn"))
        if not Path(self.exe).exists():
            self.exe = shutil.which("equivdyn") or "equivdyn"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Task] = {}
        self.done: dict[str, Measurement] = {}
        self.verbose = verbose
        self.count = 0
        self.reused = 0
        self.children: list[Measurement] = []
        # Measurements of earlier runs in this folder (by command line), reused with --reuse.
        self.cache_file = workdir / "measurements.json"
        self.cache: dict[str, dict[str, Any]] = {}
        if reuse and self.cache_file.exists():
            self.cache = json.loads(self.cache_file.read_text())
            self.cache.pop("sha256", None)  # written sealed by an earlier version
        # Measurements of other runs of this benchmark: per command line, the least CPU counts.
        for other in merge or []:
            found = json.loads((other / "measurements.json").read_text())
            found.pop("sha256", None)
            for digest, m in found.items():
                if digest not in self.cache or m["cpu_s"] < self.cache[digest]["cpu_s"]:
                    self.cache[digest] = {**m, "source": str(other)}

    def add_plan(self, plan: Any) -> None:
        for key, job in plan.jobs.items():
            self.jobs.setdefault(key, Task(job.path, job.spec, job.threads))

    def add_spec(self, spec: dict[str, Any], threads: int) -> str:
        key = content_key(spec)
        self.jobs.setdefault(
            key,
            Task(
                f"results/{spec['stage']}/{spec['experiment']}/{key}.h5", spec, threads
            ),
        )
        return key

    def run(
        self,
        label: str,
        argv: list[str],
        threads: int = 1,
        expect_failure: bool = False,
        output: str | None = None,
    ) -> Measurement:
        self.count += 1
        digest = content_key({"argv": argv[1:], "threads": threads})
        if digest in self.cache and (output is None or (self.dir / output).exists()):
            known = {f.name for f in dataclasses.fields(Measurement)}
            m = Measurement(
                **{k: v for k, v in self.cache[digest].items() if k in known}
            )
            m.label = label
            m.source = m.source or str(self.dir)
            if self.verbose:
                print(
                    f"  {label:<58} CPU {m.cpu_s:8.1f} s  wall {m.wall_s:7.1f} s  RSS {m.rss_mb:7.0f} MB (reused)",
                    flush=True,
                )
            self.reused += 1
            self.children.append(m)
            return m
        env = {**os.environ, **{v: str(threads) for v in THREAD_VARIABLES}}
        log = (
            self.logs
            / f"{self.count:03d}_{label.replace(' ', '_').replace('/', '_')}.log"
        )
        started = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(
                argv, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT, env=env
            )
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc  # reaped here, not by Popen
        if (rc != 0) != expect_failure:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"{label}: exit status {rc} (log {log}):\n{tail}")
        cpu = usage.ru_utime + usage.ru_stime
        m = Measurement(
            label,
            cpu,
            usage.ru_utime,
            usage.ru_stime,
            wall,
            usage.ru_maxrss / 1024,
            rc,
            threads,
        )
        self.children.append(m)
        self.cache[digest] = m.row()
        write_text_atomic(self.cache_file, json.dumps(self.cache, indent=1))
        if self.verbose:
            print(
                f"  {label:<58} CPU {cpu:8.1f} s  wall {wall:7.1f} s  RSS {m.rss_mb:7.0f} MB",
                flush=True,
            )
        return m

    def job(self, key: str, label: str | None = None) -> Measurement:
        """Run job ``key`` (its inputs first), as the workflow's rule does; once per key."""
        if key in self.done:
            return self.done[key]
        task = self.jobs[key]
        spec = task.spec
        for inp in spec["inputs"].values():
            self.job(inp)
        stage = spec["stage"]
        (self.dir / task.path).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(spec, sort_keys=True)
        named = [
            f"--input={name}={self.jobs[k].path}" for name, k in spec["inputs"].items()
        ]
        if stage == "data":
            source = (
                "synthetic"
                if "synthetic" in json.dumps(spec["params"])
                else str(MNIST_SOURCE)
            )
            argv = [
                self.exe,
                "data",
                spec["experiment"],
                f"--source={source}",
                "--out",
                task.path,
            ]
        elif stage == "fit":
            argv = [
                self.exe,
                "fit",
                "--spec",
                text,
                "--input",
                self.jobs[spec["inputs"]["trajectory"]].path,
                "--out",
                task.path,
            ]
        elif stage in ("train", "compare", "distances"):
            argv = [self.exe, stage, "--spec", text, *named, "--out", task.path]
        else:
            raise ValueError(f"cannot run stage {stage}")
        m = self.run(
            label or f"{kind_of(key, self.jobs)} {key}",
            argv,
            task.threads,
            output=task.path,
        )
        if stage == "train":
            m.shape = observable_shape(self.dir / task.path)
        self.done[key] = m
        return m

    def figure(self, plan: Any, stem: str) -> Measurement:
        figure = plan.figures[stem]
        for keys in figure.inputs.values():
            for key in keys:
                self.job(key)
        inputs = [
            f"--input={role}={self.jobs[k].path}"
            for role, keys in figure.inputs.items()
            for k in keys
        ]
        (self.dir / "results" / "figures").mkdir(parents=True, exist_ok=True)
        argv = [
            self.exe,
            "plot",
            stem,
            *inputs,
            "--out-prefix",
            f"results/figures/{stem}",
        ]
        return self.run(f"plot {stem}", argv)

    def index(self, plan: Any) -> tuple[Measurement, int]:
        text = json.dumps(
            {job.path: job.spec for job in plan.jobs.values()}, sort_keys=True
        )
        argv = [self.exe, "index", "--plan", text, "--out", "results/index.tsv"]
        return self.run("index (paper plan)", argv), len(text)


def observable_shape(path: Path) -> list[int] | None:
    import h5py

    with h5py.File(path, "r") as h5:
        names = list(h5["observables"])
        return list(h5["observables"][names[0]].shape) if names else None


def startup_runs(runner: Runner) -> dict[str, Measurement]:
    """Each analysis subcommand run so that it stops right after its imports (or does
    nothing): the stage's fixed cost ``t0``."""
    from equivdyn.stages import STAGE_VERSIONS

    void = "0" * 16
    fit = {
        "stage": "fit",
        "experiment": "e2",
        "version": STAGE_VERSIONS["fit"],
        "params": {},
        "inputs": {"trajectory": void},
    }
    compare = {
        "stage": "compare",
        "experiment": "e2",
        "version": STAGE_VERSIONS["compare"],
        "params": {"pairs": [], "n_shuffles": 1, "seed": 0},
        "inputs": {},
    }
    distances = {
        "stage": "distances",
        "experiment": "e3",
        "version": STAGE_VERSIONS["distances"],
        "params": {"groups": ["window"]},
        "inputs": {},
    }
    exe = runner.exe
    return {
        "fit": runner.run(
            "startup fit",
            [
                exe,
                "fit",
                "--spec",
                json.dumps(fit),
                "--input",
                "none.h5",
                "--out",
                "none_fit.h5",
            ],
            expect_failure=True,
        ),
        "compare": runner.run(
            "startup compare",
            [
                exe,
                "compare",
                "--spec",
                json.dumps(compare),
                "--out",
                "none_compare.json",
            ],
        ),
        "distances": runner.run(
            "startup distances",
            [
                exe,
                "distances",
                "--spec",
                json.dumps(distances),
                "--out",
                "none_distances.json",
            ],
            expect_failure=True,
        ),
        "plot": runner.run(
            "startup plot",
            [exe, "plot", "fig3_fcn_width", "--out-prefix", "none_figure"],
            expect_failure=True,
        ),
    }


def pair_cost(runner: Runner, key: str, n_shuffles: int) -> float:
    """CPU seconds of one pair's randomisation control (``n_shuffles``), on two fitted spectra of a compare job."""
    from equivdyn.conjugacy import randomization_test
    from equivdyn.store import read_spectra

    spec = runner.jobs[key].spec
    names = [
        n for n, k in spec["inputs"].items() if runner.jobs[k].spec["stage"] == "fit"
    ][:2]
    a, b = (
        read_spectra(runner.dir / runner.jobs[spec["inputs"][n]].path)
        .spectra["all"]
        .eigenvalues
        for n in names
    )
    repeats = 5
    start = time.process_time()
    for i in range(repeats):
        randomization_test(a, b, n_shuffles=n_shuffles, seed=i)
    return (time.process_time() - start) / repeats


# ---------------------------------------------------------------------------- the benchmark


def linear(
    n1: float, y1: float, n2: float, y2: float, n: float
) -> tuple[float, float, float]:
    """(a, b, a + b n) of the line through (n1, y1) and (n2, y2); proportional through (n2, y2)
    if the slope is not positive (noise)."""
    b = (y2 - y1) / (n2 - n1)
    if b <= 0:
        return 0.0, y2 / n2, y2 / n2 * n
    a = y2 - b * n2
    return a, b, a + b * n


def scaled(
    t: float, t0: float, ratio: float, extra: float = 0.0, extra_run: float = 0.0
) -> float:
    """Cost at paper size: start-up ``t0`` + (``t`` - ``t0`` - ``extra_run``) x ``ratio`` + ``extra``."""
    return t0 + max(0.0, t - t0 - extra_run) * ratio + extra


def measured(m: Any) -> dict[str, Any]:
    """The row fields of a kind whose paper-scale job itself ran (measurement ``m``)."""
    return {
        "how": "measured",
        "run": m.row(),
        "cpu_s": m.cpu_s,
        "wall_s": m.wall_s,
        "rss_mb": m.rss_mb,
        "rss_est_mb": m.rss_mb,
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="scratch folder to use and keep (default: a temporary one)",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="scratch folder of another run (--keep): per command line, the run with the least CPU counts",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: reuse the measurements of an earlier run there",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "paper_scale.json"
    )
    args = parser.parse_args()
    if not MNIST_SOURCE.is_file():
        raise SystemExit(f"MNIST not found at {MNIST_SOURCE} (the data stage's source)")
    begin = time.perf_counter()
    load_begin = os.getloadavg()

    paper, schema_paper = plan_of("paper")
    default, _ = plan_of("default")
    scaled_plan, _ = plan_of("scaled")
    paper_kinds, default_kinds = kinds(paper), kinds(default)
    print(
        f"paper plan: {len(paper.jobs)} jobs and {len(paper.figures)} figures; default: {len(default.jobs)} and "
        f"{len(default.figures)}; scaled plan: {len(scaled_plan.jobs)} jobs (schema: {schema_paper})",
        flush=True,
    )

    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="paper_scale_")
        workdir = Path(tmp.name)
    else:
        workdir = args.keep.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    if args.merge and not (args.reuse and args.keep is not None):
        raise SystemExit("--merge combines runs: give it with --keep DIR --reuse")
    runner = Runner(
        workdir, reuse=args.reuse and args.keep is not None, merge=args.merge
    )
    runner.add_plan(scaled_plan)
    rows: dict[str, dict[str, Any]] = {}
    per_step: list[dict[str, Any]] = []
    analysis: list[dict[str, Any]] = []
    try:
        print("\nstart-up of the analysis subcommands:", flush=True)
        t0 = startup_runs(runner)

        print(
            "\nthe scaled plan, every job (inputs of the scaled and measured rows):",
            flush=True,
        )
        measured_plots = {
            stem: runner.figure(scaled_plan, stem) for stem in scaled_plan.figures
        }

        print("\ntraining at two lengths:", flush=True)
        two_point: dict[
            str, tuple[Measurement, Measurement, int, int, dict[str, Any]]
        ] = {}
        for kind, keys in paper_kinds.items():
            if not kind.startswith("train "):
                continue
            rep = representative(paper, keys)
            spec = paper.jobs[rep].spec
            experiment, detail = spec["experiment"], train_detail(spec)
            threads = paper.jobs[rep].threads
            if experiment == "e2":
                short = copy.deepcopy(spec)
                short["params"]["n_steps"] = E2_SHORT_STEPS
                small_key = runner.add_spec(short, threads)
                big_key = rep
                runner.jobs.setdefault(rep, Task(paper.jobs[rep].path, spec, threads))
            elif (experiment, detail) in TWO_POINT:
                small_over, big_over, synthetic = TWO_POINT[experiment, detail]
                keys2 = []
                for over in (small_over, big_over):
                    s = copy.deepcopy(spec)
                    s["params"].update(over)
                    if synthetic:
                        from equivdyn.data import cifar10

                        s["inputs"]["data"] = cifar10.SYNTHETIC_KEY
                    keys2.append(runner.add_spec(s, threads))
                small_key, big_key = keys2
            else:
                continue
            small = runner.job(
                small_key,
                f"{kind} at {train_steps(runner.jobs[small_key].spec, runner.jobs)} steps",
            )
            big = runner.job(
                big_key,
                f"{kind} at {train_steps(runner.jobs[big_key].spec, runner.jobs)} steps",
            )
            two_point[kind] = (
                small,
                big,
                train_steps(runner.jobs[small_key].spec, runner.jobs),
                train_steps(runner.jobs[big_key].spec, runner.jobs),
                {"small": small_key, "big": big_key},
            )

        print("\nE4's fit on a trajectory of the paper's shape:", flush=True)
        stand_in: dict[str, str] = {}  # paper fit kind -> key of the fit that ran
        for kind, keys in paper_kinds.items():
            if kind != "fit e4":
                continue
            fit_spec = copy.deepcopy(paper.jobs[representative(paper, keys)].spec)
            source = paper.jobs[fit_spec["inputs"]["trajectory"]]
            train_spec = copy.deepcopy(source.spec)
            train_spec["params"].update(E4_STAND_IN)
            fit_spec["inputs"]["trajectory"] = runner.add_spec(
                train_spec, source.threads
            )
            runner.job(
                fit_spec["inputs"]["trajectory"],
                "train e4 ensemble p=23 (paper's shape)",
            )
            stand_in[kind] = runner.add_spec(fit_spec, 1)
            runner.job(stand_in[kind], "fit e4 (paper's shape)")

        print("\nthe paper plan's index:", flush=True)
        index_m, index_chars = runner.index(paper)

        print("\nper-pair randomisation controls (in this process):", flush=True)
        pair_s: dict[str, float] = {}
        for key, task in runner.jobs.items():
            if (
                task.spec["stage"] == "compare"
                and key in runner.done
                and task.spec["params"].get("pairs")
            ):
                pair_s[task.spec["experiment"]] = pair_cost(
                    runner, key, task.spec["params"]["n_shuffles"]
                )
                print(
                    f"  {task.spec['experiment']}: {pair_s[task.spec['experiment']] * 1e3:.1f} ms per pair "
                    f"({task.spec['params']['n_shuffles']} shuffles)",
                    flush=True,
                )

        # ---------------------------------------------------------------- rows
        scaled_kinds = kinds(scaled_plan)
        # Experiments whose fit ran at the paper's shape and at the scaled plan's: the ratio
        # of the fits' work per value (CPU, wall) and the difference of their RSS.
        shape_factor: dict[str, tuple[float, float, float]] = {}
        for kind, key in stand_in.items():
            chain_key = representative(scaled_plan, scaled_kinds[kind])
            real, chain = runner.done[key], runner.job(chain_key)
            v_real, v_chain = (
                fit_values(key, runner.jobs),
                fit_values(chain_key, scaled_plan.jobs),
            )
            fit0 = t0["fit"]
            shape_factor[runner.jobs[key].spec["experiment"]] = (
                ((real.cpu_s - fit0.cpu_s) / v_real)
                / ((chain.cpu_s - fit0.cpu_s) / v_chain),
                ((real.wall_s - fit0.wall_s) / v_real)
                / ((chain.wall_s - fit0.wall_s) / v_chain),
                real.rss_mb - chain.rss_mb,
            )
        projected: dict[
            str, tuple[str, int, float, float]
        ] = {}  # scaled-plan key -> (paper kind, values, CPU s, pairs s)
        for kind, keys in paper_kinds.items():
            rep = representative(paper, keys)
            row: dict[str, Any] = {
                "kind": kind,
                "count_paper": len(keys),
                "count_default": len(default_kinds.get(kind, [])),
                "representative": rep,
            }
            if kind == "index":
                row.update(stage="index", mem_mb=200, threads=1)
            elif rep in paper.figures:
                row.update(stage="plot", mem_mb=paper.figures[rep].mem_mb, threads=1)
            else:
                job = paper.jobs[rep]
                row.update(
                    stage=job.spec["stage"],
                    mem_mb=job.mem_mb,
                    threads=job.threads,
                    runtime_limit_min=getattr(job, "runtime", None),
                )
            rows[kind] = row
            stage = row["stage"]

            if kind == "index":
                m = index_m
                row.update(
                    measured(m),
                    note=f"plan argument {index_chars} characters (one argument may hold {ARG_LIMIT})",
                )
                continue
            if stage == "plot":
                figure = paper.figures[rep]
                m = measured_plots.get(rep)
                if m is None:
                    row.update(how="not run")
                    continue
                small_fig = scaled_plan.figures[rep]
                same = figure.inputs == small_fig.inputs
                ratio = figure_files(figure) / figure_files(small_fig)
                base = t0["plot"]
                cpu = m.cpu_s if same else scaled(m.cpu_s, base.cpu_s, ratio)
                wall = cpu * m.wall_s / m.cpu_s
                added = figure_values(figure, paper.jobs) - figure_values(
                    small_fig, scaled_plan.jobs
                )
                row.update(
                    how="measured" if same else "scaled",
                    run=m.row(),
                    cpu_s=cpu,
                    wall_s=wall,
                    rss_mb=m.rss_mb,
                    rss_est_mb=m.rss_mb
                    + FIGURE_BYTES_PER_VALUE * max(0, added) / 2**20,
                    scale=None
                    if same
                    else f"input files {figure_files(small_fig)} -> {figure_files(figure)} (x{ratio:.3g})",
                )
                continue
            if (
                kind in stand_in
            ):  # the paper's fit spec, on a trajectory of the paper's shape
                m = runner.done[stand_in[kind]]
                row.update(
                    measured(m),
                    note="input: the paper's ensemble spec with "
                    + ", ".join(f"{k}={v}" for k, v in E4_STAND_IN.items())
                    + " (the paper's shape)",
                )
                continue
            if rep in runner.done:  # the paper's own job ran
                m = runner.done[rep]
                row.update(measured(m))
                continue
            if kind in two_point:
                small, big, n1, n2, run_keys = two_point[kind]
                spec = paper.jobs[rep].spec
                n = train_steps(spec, paper.jobs)
                _, _, cpu = linear(n1, small.cpu_s, n2, big.cpu_s, n)
                _, _, wall = linear(n1, small.wall_s, n2, big.wall_s, n)
                added = values_of(rep, paper.jobs) - (
                    big.shape[0] * big.shape[1] * big.shape[2] if big.shape else 0
                )
                synthetic = (
                    "SYNTHETIC"
                    in e3_dataset(runner.jobs[run_keys["big"]].spec, runner.jobs)
                    if spec["experiment"] == "e3"
                    else False
                )
                row.update(
                    how="2-point" + (" SYNTHETIC" if synthetic else ""),
                    run={"small": small.row(), "big": big.row()},
                    cpu_s=cpu,
                    wall_s=wall,
                    rss_mb=big.rss_mb,
                    rss_est_mb=big.rss_mb
                    + (
                        TRAIN_BYTES_PER_VALUE * max(0, added)
                        + e3_image_bytes(spec, paper.jobs)
                        - e3_image_bytes(runner.jobs[run_keys["big"]].spec, runner.jobs)
                    )
                    / 2**20,
                    scale=f"steps {n1}, {n2} -> {n} (x{n / n2:.3g})",
                )
                continue
            if stage == "data":
                synthetic = [k for k in scaled_kinds.get(kind, []) if k in runner.done]
                if synthetic:
                    m = runner.done[synthetic[0]]
                    row.update(
                        how="SYNTHETIC stand-in",
                        run=m.row(),
                        cpu_s=m.cpu_s,
                        wall_s=m.wall_s,
                        rss_mb=m.rss_mb,
                        rss_est_mb=None,
                        note="the real archive (170 MB) is not here: its verification is not measured",
                    )
                continue
            # fits, comparisons, distances of the scaled plan
            counterpart = scaled_kinds.get(kind)
            if not counterpart:
                row.update(how="not run")
                continue
            small_rep = representative(scaled_plan, counterpart)
            m = runner.job(small_rep)
            base = t0[stage]
            jobs_p, jobs_s = paper.jobs, scaled_plan.jobs
            if stage == "fit":
                v_p, v_s = fit_values(rep, jobs_p), fit_values(small_rep, jobs_s)
                ratio, extra, extra_run = v_p / v_s, 0.0, 0.0
                largest_p = values_of(jobs_p[rep].spec["inputs"]["trajectory"], jobs_p)
                largest_s = values_of(
                    jobs_s[small_rep].spec["inputs"]["trajectory"], jobs_s
                )
                held = 0
                unit = f"values fitted {v_s:,} -> {v_p:,}"
            else:
                v_p, v_s = (
                    compare_values(rep, jobs_p),
                    compare_values(small_rep, jobs_s),
                )
                ratio = v_p / v_s if v_s else 1.0
                per_pair = pair_s.get(jobs_p[rep].spec["experiment"], 0.0)
                pairs_p = len(jobs_p[rep].spec["params"].get("pairs", []))
                pairs_s = len(jobs_s[small_rep].spec["params"].get("pairs", []))
                extra, extra_run = per_pair * pairs_p, per_pair * pairs_s
                largest_p = max(
                    values_of(k, jobs_p)
                    for k in traj_input_keys(jobs_p[rep].spec, jobs_p)
                )
                largest_s = max(
                    values_of(k, jobs_s)
                    for k in traj_input_keys(jobs_s[small_rep].spec, jobs_s)
                )
                held = (
                    held_values(rep, jobs_p) - held_values(small_rep, jobs_s)
                    if stage == "distances"
                    else 0
                )
                unit = f"values read {v_s:,} -> {v_p:,}" + (
                    f", pairs {pairs_s} -> {pairs_p}" if pairs_p else ""
                )
            rss_est = (
                m.rss_mb
                + (
                    ANALYSIS_BYTES_PER_VALUE * max(0, largest_p - largest_s)
                    + 8 * max(0, held)
                )
                / 2**20
            )
            same_shape = largest_p == largest_s
            g_cpu = 1.0
            factor = shape_factor.get(jobs_p[rep].spec["experiment"])
            if stage != "fit" and factor is not None and not same_shape:
                g_cpu, _, d_rss = factor
                rss_est = m.rss_mb + d_rss
                unit += (
                    f"; work per value x{g_cpu:.3g} (the fits' ratio at the two shapes)"
                )
            cpu = scaled(m.cpu_s, base.cpu_s, ratio * g_cpu, extra, extra_run)
            wall = cpu * m.wall_s / m.cpu_s
            noisy = m.cpu_s - base.cpu_s - extra_run < NOISE_S
            row.update(
                how="scaled",
                run=m.row(),
                cpu_s=cpu,
                wall_s=wall,
                rss_mb=m.rss_mb,
                rss_est_mb=rss_est,
                scale=f"{unit} (x{ratio:.3g}); t0 {base.cpu_s:.1f} s"
                + (
                    f"; pair controls {extra_run:.2f} -> {extra:.2f} s" if extra else ""
                ),
                note=(
                    f"NOISY: the run's work above start-up is under {NOISE_S:g} CPU s"
                    if noisy
                    else "inputs of the paper's shape"
                    if same_shape
                    else None
                ),
            )
            projected[small_rep] = (kind, v_p, cpu, extra_run)

        # every analysis job that ran: its cost against the values it works on
        for key, m in runner.done.items():
            spec = runner.jobs[key].spec
            if spec["stage"] not in ("fit", "compare", "distances"):
                continue
            v = (
                fit_values(key, runner.jobs)
                if spec["stage"] == "fit"
                else compare_values(key, runner.jobs)
            )
            kind = kind_of(key, runner.jobs)
            paper_kind, v_p, cpu_p, pairs_run = projected.get(
                key, (None, None, None, 0.0)
            )
            if paper_kind is None and rows.get(kind, {}).get("representative") == key:
                v_p, cpu_p = v, m.cpu_s  # the paper's own job
            base = t0[spec["stage"]].cpu_s
            analysis.append(
                {
                    "kind": kind,
                    "key": key,
                    "run_values": v,
                    "run_cpu_s": m.cpu_s,
                    "startup_cpu_s": base,
                    "pair_controls_cpu_s": pairs_run,
                    "cpu_s_per_million_values": 1e6
                    * max(0.0, m.cpu_s - base - pairs_run)
                    / v
                    if v
                    else None,
                    "run_rss_mb": m.rss_mb,
                    "paper_values": v_p,
                    "paper_cpu_s": cpu_p,
                }
            )

        for kind, (small, big, n1, n2, run_keys) in two_point.items():
            spec = runner.jobs[run_keys["big"]].spec
            m_inits = (
                spec["params"].get("n_inits", 1)
                if spec["params"].get("kind") != "long"
                else 1
            )
            _, b_cpu, _ = linear(n1, small.cpu_s, n2, big.cpu_s, n2)
            a_cpu = big.cpu_s - b_cpu * n2
            _, b_wall, _ = linear(n1, small.wall_s, n2, big.wall_s, n2)
            entry = {
                "trainer": kind,
                "inits": m_inits,
                "threads": big.threads,
                "steps": [n1, n2],
                "cpu_s_per_step_per_init": b_cpu / m_inits,
                "wall_s_per_step_per_init": b_wall / m_inits,
                "fixed_cpu_s": a_cpu,
                "batch": spec["params"].get("batch_size"),
                "data": e3_dataset(spec, runner.jobs)
                if spec["experiment"] == "e3"
                else ("mnist" if spec["experiment"] == "e2" else None),
            }
            if spec["experiment"] == "e2":
                entry["cpu_s_per_init_step_image_unit"] = b_cpu / (
                    m_inits * spec["params"]["batch_size"] * spec["params"]["width"]
                )
            if spec["experiment"] == "e4":
                entry["p"] = spec["params"]["p"]
            per_step.append(entry)
    finally:
        if tmp is not None:
            tmp.cleanup()

    # ---------------------------------------------------------------- totals
    costed = [r for r in rows.values() if r.get("cpu_s") is not None]
    total_cpu = sum(r["count_paper"] * r["cpu_s"] for r in costed)
    for r in costed:
        r["cpu_h_all"] = r["count_paper"] * r["cpu_s"] / 3600
    critical, path = critical_path(paper, rows)
    slurm = {n: max(total_cpu / (CORES_PER_NODE * n), critical) for n in SLURM_NODES}
    totals = {
        "cpu_hours": total_cpu / 3600,
        "wall_hours_one_2core_machine_perfect_packing": total_cpu / 2 / 3600,
        "critical_path_hours": critical / 3600,
        "critical_path": path,
        "wall_hours_one_2core_machine": max(total_cpu / 2, critical) / 3600,
        "slurm_wall_hours": {str(n): s / 3600 for n, s in slurm.items()},
        "not_costed": [r["kind"] for r in rows.values() if r.get("cpu_s") is None],
    }
    wall = time.perf_counter() - begin

    import numpy
    import torch

    machine = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_start": load_begin,
        "load_average_end": os.getloadavg(),
        "git": git_state(),
    }
    table = format_table(rows, paper_kinds)
    steps_table = format_steps(per_step)
    analysis_table = format_analysis(analysis)
    totals_text = format_totals(totals, len(paper.jobs), len(paper.figures))
    print(
        "\n"
        + table
        + "\n\n"
        + totals_text
        + "\n\nTraining cost per optimiser step and initialisation (2-point fit):\n\n"
        + steps_table
        + "\n\nAnalysis cost against the values it works on:\n\n"
        + analysis_table
    )
    print(
        f"\nWall time of this benchmark {wall:.0f} s; {len(runner.children)} child runs, "
        f"CPU {sum(c.cpu_s for c in runner.children):.0f} s, wall {sum(c.wall_s for c in runner.children):.0f} s"
        + (
            f" ({runner.reused} reused from an earlier invocation)"
            if runner.reused
            else ""
        )
        + "."
    )
    result = {
        "settings": {
            "config": "config.yaml + profiles/paper/paper.yaml",
            "schema": schema_paper,
            "data": {
                "mnist": str(MNIST_SOURCE),
                "cifar10": "real archive planned; SYNTHETIC stand-in run",
            },
            "scaled_plan": SCALED_PLAN,
            "two_point": {
                f"{e} {d}": {"n1": s, "n2": b, "synthetic": syn}
                for (e, d), (s, b, syn) in TWO_POINT.items()
            },
            "e2_short_steps": E2_SHORT_STEPS,
            "bytes_per_value": {
                "train": TRAIN_BYTES_PER_VALUE,
                "analysis": ANALYSIS_BYTES_PER_VALUE,
                "figure": FIGURE_BYTES_PER_VALUE,
            },
            "startup_cpu_s": {k: v.cpu_s for k, v in t0.items()},
            "pair_control_cpu_s": pair_s,
        },
        "machine": machine,
        "plans": {
            "paper": {"jobs": len(paper.jobs), "figures": len(paper.figures)},
            "default": {"jobs": len(default.jobs), "figures": len(default.figures)},
            "scaled": {
                "jobs": len(scaled_plan.jobs),
                "figures": len(scaled_plan.figures),
            },
        },
        "rows": list(rows.values()),
        "per_step": per_step,
        "analysis": analysis,
        "totals": totals,
        "table": table,
        "wall_seconds": wall,
        "children": {
            "runs": len(runner.children),
            "reused_from_an_earlier_invocation": runner.reused,
            "measured_in": {
                source: sum(c.source == source for c in runner.children)
                for source in sorted({c.source for c in runner.children})
            },
            "cpu_s": sum(c.cpu_s for c in runner.children),
            "wall_s": sum(c.wall_s for c in runner.children),
        },
    }
    if args.out is not None:
        write_json_atomic(args.out, result)
        md = args.out.with_suffix(".md")
        write_text_atomic(
            md, markdown(result, table, totals_text, steps_table, analysis_table)
        )
        print(f"wrote {args.out} and {md}")
    return result


def critical_path(
    plan: Any, rows: Mapping[str, Mapping[str, Any]]
) -> tuple[float, list[str]]:
    """Longest chain of wall times through the paper plan (data -> train -> fit -> compare -> plot)."""
    jobs = plan.jobs
    memo: dict[str, tuple[float, list[str]]] = {}

    def wall_of(kind: str) -> float:
        return rows.get(kind, {}).get("wall_s") or 0.0

    def finish(key: str) -> tuple[float, list[str]]:
        if key not in memo:
            before = max(
                (finish(k) for k in jobs[key].spec["inputs"].values() if k in jobs),
                default=(0.0, []),
            )
            kind = kind_of(key, jobs)
            memo[key] = (before[0] + wall_of(kind), [*before[1], kind])
        return memo[key]

    best = (0.0, [])
    for figure in plan.figures.values():
        before = max(
            (finish(k) for keys in figure.inputs.values() for k in keys),
            default=(0.0, []),
        )
        kind = figure_kind(figure)
        candidate = (before[0] + wall_of(kind), [*before[1], kind])
        best = max(best, candidate, key=lambda c: c[0])
    return best


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "modified_files": len(git("status", "--porcelain").splitlines()),
    }


# ---------------------------------------------------------------------------- output


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def format_table(
    rows: Mapping[str, Mapping[str, Any]], order: Mapping[str, Any]
) -> str:
    lines = [
        "| kind | paper | default | CPU s/job | wall s/job | RSS MB (run) | RSS est. MB | mem_mb | CPU h (all) | how | scaling |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    stage_order = {
        "data": 0,
        "train": 1,
        "fit": 2,
        "compare": 3,
        "distances": 4,
        "plot": 5,
        "index": 6,
    }
    for kind in sorted(
        order, key=lambda k: (stage_order.get(k.split()[0], 9), natural(k))
    ):
        r = rows[kind]
        lines.append(
            f"| {kind} | {r['count_paper']} | {r['count_default']} | {fmt(r.get('cpu_s'))} | {fmt(r.get('wall_s'))} "
            f"| {fmt(r.get('rss_mb'), 0)} | {fmt(r.get('rss_est_mb'), 0)} | {r.get('mem_mb', '-')} "
            f"| {fmt(r.get('cpu_h_all'), 2)} | {r.get('how', '-')} | {'; '.join(filter(None, (r.get('scale'), r.get('note'))))} |"
        )
    return "\n".join(lines)


def natural(text: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in text.split()]


def format_steps(per_step: list[Mapping[str, Any]]) -> str:
    lines = [
        "| trainer | inits | threads | batch | steps run | CPU s / step / init | wall s / step / init | fixed CPU s |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for e in per_step:
        extra = (
            f" (data {e['data']})"
            if e.get("data") and "SYNTHETIC" in str(e.get("data"))
            else ""
        )
        lines.append(
            f"| {e['trainer']}{extra} | {e['inits']} | {e['threads']} | {e.get('batch') or '-'} | {e['steps'][0]}, {e['steps'][1]} "
            f"| {e['cpu_s_per_step_per_init']:.4g} | {e['wall_s_per_step_per_init']:.4g} | {e['fixed_cpu_s']:.1f} |"
        )
    return "\n".join(lines)


def format_analysis(analysis: list[Mapping[str, Any]]) -> str:
    lines = [
        "| job (scaled plan) | values | CPU s | RSS MB | CPU s per 1e6 values above start-up | paper values | paper CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in analysis:
        lines.append(
            f"| {e['kind']} {e['key'][:6]} | {e['run_values']:,} | {e['run_cpu_s']:.1f} | {e['run_rss_mb']:.0f} "
            f"| {fmt(e['cpu_s_per_million_values'], 3)} "
            f"| {'-' if e['paper_values'] is None else format(e['paper_values'], ',')} | {fmt(e['paper_cpu_s'])} |"
        )
    return "\n".join(lines)


def format_totals(totals: Mapping[str, Any], n_jobs: int, n_figures: int) -> str:
    lines = [
        f"Paper-scale plan ({n_jobs} jobs, {n_figures} figures, the index): {totals['cpu_hours']:.2f} CPU hours.",
        (
            f"One 2-core machine: {totals['wall_hours_one_2core_machine_perfect_packing']:.2f} h if perfectly packed "
            f"(CPU / 2); critical path {totals['critical_path_hours']:.2f} h: {' -> '.join(totals['critical_path'])}; "
            f"so at least {totals['wall_hours_one_2core_machine']:.2f} h."
        ),
        "Slurm, N nodes of 2 cores, max(CPU / 2N, critical path): "
        + ", ".join(f"N={n}: {h:.2f} h" for n, h in totals["slurm_wall_hours"].items())
        + ".",
    ]
    if totals["not_costed"]:
        lines.append("Not costed: " + ", ".join(totals["not_costed"]) + ".")
    return "\n".join(lines)


def markdown(
    result: Mapping[str, Any], table: str, totals: str, steps: str, analysis: str
) -> str:
    m = result["machine"]
    return (
        "# Paper-scale cost (`python benchmarks/paper_scale.py`)\n\n"
        f"{m['date']}; {m['cores']} cores ({m['processor']}), shared with other work; torch {m['torch']}, numpy {m['numpy']}; "
        f"git {m['git']['commit'][:12]} with {m['git']['modified_files']} modified files. "
        "Every job below ran through the `equivdyn` command line as its workflow rule runs it, one child "
        "process at a time, measured by `os.wait4` (CPU = user + system). `measured`: the paper-scale job "
        "itself ran. `2-point`: a training job run with fewer optimiser steps (same model, same "
        "initialisations) at two lengths, cost = a + b * steps evaluated at the paper's steps. `scaled`: a "
        "fit, comparison, distances or plot job of a scaled plan (2 seeds; E3 short runs; E4 p = 23 and 4 "
        "initialisations), extrapolated linearly in the values it works on above the subcommand's start-up "
        "cost (plots: in their input files). `RSS est.`: RSS at paper size, the run's RSS plus an assumed "
        "number of bytes per added value. Details: the script's docstring. "
        "CIFAR-10 rows ran on the SYNTHETIC stand-in (timing per step does not depend on pixel values).\n\n"
        + table
        + "\n\n"
        + totals
        + "\n\n## Training cost per optimiser step and initialisation\n\n"
        + steps
        + "\n\n## Analysis cost against the values it works on\n\n"
        + analysis
        + "\n"
    )


if __name__ == "__main__":
    main()
