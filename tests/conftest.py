"""Shared fixtures: paths from __file__, a scratch copy of the workflow."""

from __future__ import annotations

import collections
import copy
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "workflow", "profiles", "envs", "tests/tiny.yaml")


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not its results) into ``dest`` and return it.

    ``shared/`` (real MNIST) is linked beside the copy, as it lies beside the checkout,
    so the configs' relative data paths hold there too.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shared = dest.parent / "shared"
    if not shared.exists():
        shared.symlink_to(ROOT.parent / "shared")
    for name in WORKFLOW_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    return dest


def venv_exe(name: str) -> str:
    """Path of a console script installed beside the running Python."""
    return str(Path(sys.executable).with_name(name))


def snakemake_exe() -> str:
    return venv_exe("snakemake")


@pytest.fixture(scope="session", autouse=True)
def system_temp_in_basetemp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point TMPDIR (Snakemake's, Chromium's and every tool's temporary files) into pytest's
    temporary folder, which a passing run removes: a test run leaves nothing in /tmp."""
    folder = tmp_path_factory.mktemp("system-temp", numbered=False)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # recomputed from TMPDIR on next use
    yield folder
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake in ``workdir``; returns the completed process (stdout+stderr in .stdout)."""
    proc = subprocess.run(
        [snakemake_exe(), "--cores", "2", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    return proc


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


# ---------------------------------------------------------------- end-to-end helpers
# Shared by the end-to-end test modules (test_workflow*.py, test_guarantees.py,
# test_report.py): a tiny workflow built once per session, job counts from `-n`,
# configs as tests/tiny.yaml plus dotted overrides, clones and checks of results.

TINY = "tests/tiny.yaml"


def filled_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the committed schema's defaults filled in, as the workflow sees it."""
    from snakemake.utils import validate

    filled = copy.deepcopy(dict(config))
    validate(filled, str(ROOT / "workflow/schemas/config.schema.json"), set_default=True)
    return filled


def plan_of(config: Mapping[str, Any]) -> Any:
    """The workflow's plan (:class:`equivdyn.plan.Plan`) of ``config``, schema defaults filled in."""
    from equivdyn.plan import build

    return build(filled_config(config))


def target_rules() -> set[str]:
    """Rules that only gather files and run no command: `all` and one per figure target."""
    return {"all", *plan_of(yaml.safe_load((ROOT / "config.yaml").read_text())).targets()}


def planned_jobs(workdir: Path, *args: str, env: dict[str, str] | None = None) -> collections.Counter[str]:
    """Jobs (rule -> count) that `snakemake -n` plans, target rules left out."""
    return jobs_from_output(run_snakemake(workdir, *args, "-n", "--quiet", "rules", env=env).stdout)


def jobs_from_output(out: str) -> collections.Counter[str]:
    """Jobs (rule -> count) of the first "Job stats" table in Snakemake's output."""
    jobs: collections.Counter[str] = collections.Counter()
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return jobs
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    targets = target_rules()
    for line in table.splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if match and match.group(1) not in targets:
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def set_dotted(config: dict[str, Any], dotted: str, value: object) -> None:
    """Set ``config["a"]["b"]["c"] = value`` for ``dotted = "a.b.c"``, creating sections."""
    *sections, last = dotted.split(".")
    for name in sections:
        config = config.setdefault(name, {})
    config[last] = value


def tiny_config(overrides: Mapping[str, object] | None = None) -> dict[str, Any]:
    """tests/tiny.yaml with ``overrides`` (dotted key -> value) applied."""
    config = yaml.safe_load((ROOT / TINY).read_text())
    for dotted, value in (overrides or {}).items():
        set_dotted(config, dotted, value)
    return config


def write_tiny_config(workdir: Path, name: str, overrides: Mapping[str, object] | None = None) -> str:
    """Write tests/tiny.yaml with ``overrides`` applied to ``workdir/name``; return ``name``."""
    (workdir / name).write_text(yaml.safe_dump(tiny_config(overrides)))
    return name


def results_state(workdir: Path) -> dict[str, tuple[int, int, int]] | None:
    """(inode, size, mtime in ns) of every file under results/; None if there is no results/."""
    results = workdir / "results"
    if not results.exists():
        return None
    state = {}
    for path in sorted(results.rglob("*")):
        if not path.is_dir():
            st = path.lstat()
            state[str(path.relative_to(workdir))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return state


def clone_built(src: Path, dest: Path, *, link: bool = True) -> Path:
    """Copy a workflow directory with its results, logs and Snakemake's records.

    With ``link``, files under results/ are hard links (``cp -al``): cheap, and safe for
    runs that delete or (atomically) rewrite results, not for ``touch``.  Everything else
    is copied, because Snakemake rewrites its records in place.  Symbolic links (results
    fetched from the between-workflow cache) become the files they point to.
    """
    for entry in src.iterdir():
        target = dest / entry.name
        if entry.is_dir():
            copy = os.link if link and entry.name == "results" else shutil.copy2
            shutil.copytree(entry, target, copy_function=copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(entry, target)
    shared = dest.parent / "shared"
    if not shared.exists():
        shared.symlink_to(ROOT.parent / "shared")
    return dest


def inspect_results(workdir: Path) -> list[Path]:
    """Check every HDF5 file under results/ with `equivdyn inspect`; return them."""
    files = sorted((workdir / "results").rglob("*.h5"))
    if files:
        proc = subprocess.run(
            [venv_exe("equivdyn"), "inspect", *map(str, files)],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout[-4000:]
    return files


#: Fields of every verdict (``equivdyn.verdict.Verdict.to_dict``) in a figure's JSON.
VERDICT_FIELDS = {
    "p_value", "p_label", "alpha", "non_conjugate", "inconclusive", "distance", "distance_ci",
    "within_distance", "statistic", "n_seeds", "min_p_value", "exact", "eigenvalues_a", "eigenvalues_b",
    "residuals_a", "residuals_b", "settings", "null_hypothesis", "summary",
}


def assert_verdicts(verdicts: Mapping[str, Any], title: str, n_seeds: Mapping[str, int]) -> None:
    """Each verdict of ``n_seeds`` (name -> seeds per setup) is in ``verdicts`` in full, with a
    p-value in [0, 1], and ``title`` states it in words (never "equivalent")."""
    assert set(verdicts) == set(n_seeds), (sorted(verdicts), sorted(n_seeds))
    for name, seeds in n_seeds.items():
        v = verdicts[name]
        assert v is not None and VERDICT_FIELDS <= set(v), (name, v)
        assert 0 <= v["p_value"] <= 1 and 0 <= v["p_label"] <= 1 and v["alpha"] == 0.05, (name, v["p_value"])
        assert v["n_seeds"] == [seeds, seeds], (name, v["n_seeds"])
        assert len(v["eigenvalues_a"]) == len(v["eigenvalues_b"]) == seeds
        assert v["non_conjugate"] == (v["p_value"] < v["alpha"])
        word = (
            "not conjugate" if v["non_conjugate"] else "inconclusive" if v["inconclusive"] else "no evidence of a difference"
        )
        assert f"{word} (" in title and f"p={v['p_value']:.2g})" in title, (name, word, title)
    assert "equivalent" not in title.lower(), title


@dataclasses.dataclass(frozen=True)
class BuiltWorkflow:
    """A scratch workflow with every result of tests/tiny.yaml (see ``tiny_built``)."""

    dir: Path
    cache: Path
    output: str

    def env(self) -> dict[str, str]:
        """Environment that points Snakemake at this build's between-workflow cache."""
        return {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(self.cache)}


#: The one-node Slurm that tests/slurm/local_cluster.sh runs on this machine.
CLUSTER = ROOT / "tests/slurm/local_cluster.sh"
CLUSTER_DAEMONS = ("slurmctld", "slurmd", "munged")
#: Snakemake's arguments for a build through it: profiles/slurm, plus what the one-node
#: test cluster needs: it keeps no accounting (no account to charge; job states come from
#: squeue, which shows finished jobs for an hour there, not from sacct), status checks
#: from the first second, a local file system.
SLURM = (
    "--profile", "profiles/slurm",
    "--slurm-no-account",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--latency-wait", "5",
)  # fmt: skip


def local_cluster(command: str, env: dict[str, str], log: Path) -> str:
    """Run ``local_cluster.sh command``; its output goes through a file (the daemons it
    starts must not hold a pipe of ours open), returned."""
    with log.open("w") as out:
        proc = subprocess.run(
            ["bash", str(CLUSTER), command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
    text = log.read_text()
    assert proc.returncode == 0, f"local_cluster.sh {command} failed:\n{text[-4000:]}"
    return text


def cluster_daemons(state: Path) -> list[str]:
    """Processes of the test cluster still running (found by its state folder in their command line)."""
    ps = subprocess.run(["ps", "-eo", "pid=,args="], stdout=subprocess.PIPE, text=True, check=True).stdout
    return [line for line in ps.splitlines() if str(state) in line and any(d in line for d in CLUSTER_DAEMONS)]


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a running one-node Slurm (SLURM_CONF set), stopped at the end
    of the session, when no daemon of it may be left."""
    state = tmp_path_factory.mktemp("slurm")
    # The node declares 8 CPUs and 32 GB whatever the machine has: the jobs of the tiny
    # build ask for far more memory than they use and spend seconds starting up, and the
    # executor polls job states at growing intervals; with 2 slots the build waited more
    # than it computed.
    env = {**os.environ, "EQUIVDYN_SLURM_DIR": str(state)}
    env.update(EQUIVDYN_SLURM_CPUS="8", EQUIVDYN_SLURM_MEMORY_MB="32000")
    out = local_cluster("start", env, state.parent / "slurm-start.log")
    match = re.search(r"^export SLURM_CONF=(\S+)$", out, re.MULTILINE)
    assert match, out
    env["SLURM_CONF"] = match.group(1)
    try:
        yield env
    finally:
        local_cluster("stop", env, state.parent / "slurm-stop.log")
        assert cluster_daemons(state) == [], "local_cluster.sh stop left daemons running"


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWorkflow]:
    """The workflow with every result of tests/tiny.yaml, built once per session.

    Built by one `snakemake all --cache` into a fresh between-workflow cache, so training
    and fitting results are links into that cache.  Tests only plan on it (`-n`) or clone
    it (``clone_built``); at the end of the session its results must be unchanged.
    """
    base = tmp_path_factory.mktemp("tiny_built")
    cache = base / "cache"
    cache.mkdir()
    built = BuiltWorkflow(copy_workflow(base / "wf"), cache, "")
    out = run_snakemake(built.dir, "all", "--cache", "--configfile", TINY, env=built.env()).stdout
    built = dataclasses.replace(built, output=out)
    before = results_state(built.dir)
    yield built
    assert results_state(built.dir) == before, "a test changed the shared tiny build"


#: Real MNIST as it lies beside the checkout (the data stage's source).
SHARED_MNIST = ROOT.parent / "shared/data/mnist.npz"


@pytest.fixture(scope="session")
def prepared_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST as the data stage writes it (checked against MNIST's hashes, sealed)."""
    from equivdyn.data import mnist

    return mnist.prepare(SHARED_MNIST, tmp_path_factory.mktemp("mnist") / "mnist.npz")
