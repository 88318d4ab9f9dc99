# The plan: every job the config asks for (equivdyn.plan), added by each registered
# experiment (equivdyn.experiments).  A spec's content key (SHA-256 of its canonical JSON)
# names its output, so results form a Merkle DAG: changing a parameter changes the keys of
# exactly the results that depend on it, and reverting it points the workflow back at
# results that already exist.  The rules below only loop over what the plan holds.

import json
import os
import shlex
import sys
import tempfile
import time
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path

from equivdyn.data import cifar10, mnist
from equivdyn.plan import DOWNLOAD_RUNTIME, INDEX, MIN_RUNTIME, build, dataset_job


wildcard_constraints:
    key="[0-9a-f]{16}",
    experiment="[A-Za-z_][A-Za-z0-9_]*",
    figure="[A-Za-z0-9_]+",


# Content key -> job (result path, spec, resources) for every result the plan asks for.
PLAN = build(config)
JOBS = PLAN.jobs


def plan_json():
    """The whole plan as the index reads it: result path -> spec."""
    return json.dumps({job.path: job.spec for job in JOBS.values()}, sort_keys=True)


def plan_digest():
    """Params function of the index: the plan's SHA-256, so that a changed plan reruns it."""
    return sha256(plan_json().encode()).hexdigest()


@contextmanager
def plan_file(tmpdir):
    """The plan in a temporary JSON file, removed afterwards."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", prefix="equivdyn-plan-", dir=tmpdir
    ) as f:
        f.write(plan_json())
        f.flush()
        yield f.name


def path_of(key):
    return JOBS[key].path


def planned_spec(wildcards):
    """The spec of the job whose output has content key {key}."""
    if wildcards.key not in JOBS:
        raise ValueError(
            f"no result with key {wildcards.key} is in the current plan "
            "(the config does not ask for it)"
        )
    return JOBS[wildcards.key].spec


def spec_json(wildcards):
    """Params function: the planned spec as JSON, passed to the `equivdyn` CLI."""
    return json.dumps(planned_spec(wildcards), sort_keys=True)


def input_path(name):
    """Input function: path of the planned job's input `name`."""

    def get(wildcards):
        return path_of(planned_spec(wildcards)["inputs"][name])

    return get


def named_inputs(wildcards):
    """Input function: every input of the planned job, by name (for `unpack`)."""
    return {n: path_of(k) for n, k in planned_spec(wildcards)["inputs"].items()}


def cli_named_inputs(wildcards, input):
    """Params function: `--input NAME=PATH ...` for every named input of the job."""
    return " ".join(
        f"--input {shlex.quote(f'{name}={path}')}" for name, path in input.items()
    )


def planned_mem_mb(wildcards):
    """Resource function: the planned job's memory (MB)."""
    return JOBS[wildcards.key].mem_mb


def planned_threads(wildcards):
    """Threads function: the planned job's intra-op threads."""
    return JOBS[wildcards.key].threads


def planned_runtime(wildcards):
    """Resource function: the planned job's time limit (minutes)."""
    return JOBS[wildcards.key].runtime


def planned_gpus(wildcards):
    """Resource function: the GPUs the planned job needs (a training job on CUDA: 1)."""
    return JOBS[wildcards.key].gpus


# ---------------------------------------------------------------- data
# Output paths of the data rules (the plan holds the jobs of the datasets it uses).
MNIST = dataset_job(config, "mnist")[1].path
CIFAR10 = dataset_job(config, "cifar10")[1].path


def source_option(path):
    """`--source=PATH` of a data job ('=' so that a path starting with '-' is no option)."""
    return "" if path is None else f"--source={shlex.quote(path)}"


def cifar10_source(wildcards):
    """Input function: the local CIFAR-10 copy named in config (none for synthetic)."""
    source = config["data"]["cifar10"]
    return [] if source in (None, "synthetic") else source


def cifar10_source_option(wildcards):
    """Params function: `--source=...` of the CIFAR-10 data job, if config names one."""
    return source_option(config["data"]["cifar10"])


# ---------------------------------------------------------------- figures
FIGURES = {fig.stem: fig for fig in PLAN.figures.values()}
TARGETS = PLAN.targets()


def figure_inputs(wildcards):
    """Input function: every input file of the figure {figure}, by role and position."""
    fig = FIGURES[wildcards.figure]
    return {
        f"{role}{i}": path_of(key)
        for role, keys in fig.inputs.items()
        for i, key in enumerate(keys)
    }


def figure_cli_inputs(wildcards):
    """Params function: `--input ROLE=PATH ...` for every input file of the figure."""
    fig = FIGURES[wildcards.figure]
    return " ".join(
        f"--input {shlex.quote(f'{role}={path_of(key)}')}"
        for role, keys in fig.inputs.items()
        for key in keys
    )


def planned_results(wildcards):
    """Input function of `all`: every result of the plan, intermediate ones included.

    Snakemake leaves a deleted intermediate file missing while what was made from it is
    up to date; as targets, a deleted result and what depends on it are recomputed.
    """
    return sorted(job.path for job in JOBS.values())


def protect_cache_entries():
    """Make the between-workflow cache entries that results/ links to read-only.

    Snakemake stores cache entries writable by everyone (0666); one write would then
    change every checkout's result.  Run when a workflow run ends (Snakefile's
    onsuccess/onerror), so entries are read-only (0444) like every other result.
    """
    root = os.environ.get("SNAKEMAKE_OUTPUT_CACHE")
    if not root or not Path("results").is_dir():
        return
    cache = Path(root).resolve()
    for dirpath, _, filenames in os.walk("results"):
        for name in filenames:
            link = Path(dirpath) / name
            if link.is_symlink():
                target = link.resolve()
                if target.parent == cache and target.is_file():
                    target.chmod(0o444)


# ---------------------------------------------------------------- missing datasets


DATASET_LOGS = {"mnist": "logs/data/mnist.log", "cifar10": "logs/data/cifar10.log"}
# each dataset's name as its module's messages give it
DATASET_NAMES = {
    "mnist": mnist.DownloadError.dataset,
    "cifar10": cifar10.DownloadError.dataset,
}
STARTED = time.time()


def explain_missing_datasets():
    """After a failed run: one message per dataset whose data job failed in this run (what
    is missing, the remedy from the job's log, the figures it stops); removes the empty
    folders Snakemake made for the job's output and benchmark."""
    for name, log in DATASET_LOGS.items():
        key, job = dataset_job(config, name)
        if (
            os.path.exists(job.path)
            or not os.path.exists(log)
            or os.path.getmtime(log) < STARTED
        ):
            continue
        with open(log, encoding="utf-8", errors="replace") as f:
            errors = [
                line.strip() for line in f if line.startswith("equivdyn data: error:")
            ]
        figures = sorted({fig.target for fig in PLAN.figures_needing(key)})
        print(
            f"\n*** {DATASET_NAMES[name]} is missing; needed by {', '.join(figures) or 'no figure'} "
            f"(log: {log})\n"
            + "\n".join(errors or [f"the data job failed; see {log}"]),
            file=sys.stderr,
        )
        for made in (os.path.dirname(job.path), "benchmarks/data"):
            remove_empty_folders(made)


def remove_empty_folders(folder):
    """Remove ``folder`` and its parents up to the working folder while they are empty."""
    while folder and folder != "." and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        folder = os.path.dirname(folder)
