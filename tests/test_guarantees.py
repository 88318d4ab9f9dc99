"""The workflow's guarantees, proved end to end on tests/tiny.yaml.

* What reruns when: every row of the table in README.md ("What reruns when") is a case
  here; each asserts the exact jobs `snakemake -n` plans, and the cases that change files
  run and are planned again.
* A second checkout with the same between-workflow cache trains and fits nothing.
* Killing Snakemake (its whole process group) at random points, or a training job, never
  leaves a result that a later run accepts; the next run completes with valid results.
* A second Snakemake on the same directory refuses with Snakemake's lock message.
* Invalid configs stop before any job, with a message naming the field.

Cases plan on the shared tiny build (``tiny_built`` in conftest.py); a case that changes
files works on a clone of it.  Helpers take the experiment's names as arguments, so the
checks of another experiment can reuse them.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from equivdyn.store import read_spectra, read_trajectory

from .conftest import (
    ROOT,
    TINY,
    BuiltWorkflow,
    clone_built,
    copy_workflow,
    inspect_results,
    jobs_from_output,
    planned_jobs,
    results_state,
    run_snakemake,
    snakemake_exe,
    tiny_config,
    venv_exe,
    write_tiny_config,
)
from .test_integrity import flip_byte

pytestmark = pytest.mark.slow

# The plotting jobs of each experiment.
FIGURES = {"e1": {"plot": 1}, "e2": {"plot": 2}, "e3": {"plot": 2}, "e4": {"plot": 1}}
# Those of the experiments whose changes are tested here.
ALL_FIGURES = {"plot": sum(FIGURES[e]["plot"] for e in ("e1", "e2", "e4"))}


# ---------------------------------------------------------------- planning helpers


def jobs(*parts: Mapping[str, int]) -> collections.Counter[str]:
    """The sum of job counts (rule -> count)."""
    total: collections.Counter[str] = collections.Counter()
    for part in parts:
        total.update(part)
    return total


_config_numbers = itertools.count()


def config_file(config_dir: Path, overrides: Mapping[str, object]) -> str:
    """Write tests/tiny.yaml with ``overrides`` into ``config_dir``; return its absolute path.

    Written outside the workflow directory, so that planning on a shared build changes
    nothing in it.
    """
    path = config_dir / f"config-{next(_config_numbers)}.yaml"
    write_tiny_config(config_dir, path.name, overrides)
    return str(path)


def plan_with(workdir: Path, config_dir: Path, overrides: Mapping[str, object]) -> collections.Counter[str]:
    """Jobs `snakemake all -n` plans in ``workdir`` for tests/tiny.yaml with ``overrides``."""
    return planned_jobs(workdir, "all", "--configfile", config_file(config_dir, overrides))


def run_with(workdir: Path, config_dir: Path, overrides: Mapping[str, object]) -> collections.Counter[str]:
    """Run `snakemake all` for tests/tiny.yaml with ``overrides``; return the jobs it ran."""
    out = run_snakemake(workdir, "all", "--configfile", config_file(config_dir, overrides)).stdout
    return jobs_from_output(out)


@dataclasses.dataclass(frozen=True)
class IndexRow:
    key: str
    stage: str
    experiment: str
    path: str
    spec: dict[str, Any]


def index_rows(workdir: Path) -> list[IndexRow]:
    """The rows of results/index.tsv."""
    lines = (workdir / "results/index.tsv").read_text().splitlines()[1:]
    rows = []
    for line in lines:
        key, stage, experiment, path, spec = line.split("\t")
        rows.append(IndexRow(key, stage, experiment, path, json.loads(spec)))
    return rows


def find_result(workdir: Path, stage: str, experiment: str, **params: object) -> IndexRow:
    """The one planned result of ``stage`` and ``experiment`` whose parameters include ``params``."""
    found = [
        row
        for row in index_rows(workdir)
        if row.stage == stage
        and row.experiment == experiment
        and all(row.spec["params"].get(k) == v for k, v in params.items())
    ]
    assert len(found) == 1, (stage, experiment, params, found)
    return found[0]


def fit_of(workdir: Path, trajectory: IndexRow) -> IndexRow:
    """The planned fit of a trajectory."""
    (row,) = [r for r in index_rows(workdir) if r.stage == "fit" and r.spec["inputs"].get("trajectory") == trajectory.key]
    return row


# ---------------------------------------------------------------- what reruns when
# Every case is a row of README.md's table "What reruns when" (same text, same counts).


@dataclasses.dataclass(frozen=True)
class Case:
    """A change to tests/tiny.yaml and the jobs `snakemake all` then plans."""

    change: str
    overrides: Mapping[str, object]
    jobs: Mapping[str, int]


def per_experiment(experiment: str, **counts: int) -> dict[str, int]:
    """Job counts of one experiment's stages, its figures and the index."""
    return {**{k: v for k, v in counts.items() if v}, **FIGURES[experiment], "index": 1}


def together(*parts: Mapping[str, int]) -> dict[str, int]:
    """Job counts of changes made together: their sum, with one index."""
    return {**jobs(*parts), "index": 1}


TRAINING_CHANGES = {"e1.train.loss": "quadratic", "e2.train.lr": 0.05, "e4.train.perturbation": 0.002}
KOOPMAN_CHANGES = {"e1.koopman.n_delays": 3, "e2.koopman.rank": 3, "e4.koopman.n_delays": 5}

PLAN_CASES = [
    Case("nothing", {}, {}),
    Case("`e1.train.loss: quadratic`", {"e1.train.loss": "quadratic"}, per_experiment("e1", train=3, fit=3, compare=1)),
    Case("`e1.koopman.n_delays: 3`", {"e1.koopman.n_delays": 3}, per_experiment("e1", fit=3, compare=1)),
    Case("`e1.koopman.rank: 5`", {"e1.koopman.rank": 5}, per_experiment("e1", fit=3, compare=1)),
    Case("`e1.compare.n_shuffles: 60`", {"e1.compare.n_shuffles": 60}, per_experiment("e1", compare=1)),
    Case("`e2.train.lr: 0.05`", {"e2.train.lr": 0.05}, per_experiment("e2", train=4, fit=4, compare=1)),
    Case("`e2.koopman.rank: 3`", {"e2.koopman.rank": 3}, per_experiment("e2", fit=4, compare=1)),
    Case("`e2.koopman.delay_budget: 30`", {"e2.koopman.delay_budget": 30}, per_experiment("e2", fit=4, compare=1)),
    Case("`e2.seeds: [0, 1, 2]` (a seed added)", {"e2.seeds": [0, 1, 2]}, per_experiment("e2", train=2, fit=2, compare=1)),
    Case("`e2.widths: [5, 10, 20]` (a width added)", {"e2.widths": [5, 10, 20]}, per_experiment("e2", train=2, fit=2, compare=1)),
    Case("`e4.train.lr: 0.002` (also the long runs)", {"e4.train.lr": 0.002}, per_experiment("e4", train=6, fit=4, compare=1)),
    Case("`e4.train.perturbation: 0.002`", {"e4.train.perturbation": 0.002}, per_experiment("e4", train=4, fit=4, compare=1)),
    Case("`e4.long.n_steps: 150` (the long runs only)", {"e4.long.n_steps": 150}, per_experiment("e4", train=2)),
    Case("`e4.koopman.n_delays: 5`", {"e4.koopman.n_delays": 5}, per_experiment("e4", fit=4, compare=1)),
    Case("`e4.koopman.rank: 3`", {"e4.koopman.rank": 3}, per_experiment("e4", fit=4, compare=1)),
    Case("`e4.seeds: [0, 1, 2]` (a seed added)", {"e4.seeds": [0, 1, 2]}, per_experiment("e4", train=2, fit=2, compare=1)),
    Case(
        "the training changes marked * together",
        TRAINING_CHANGES,
        together(*(per_experiment(e, train=n, fit=n, compare=1) for e, n in (("e1", 3), ("e2", 4), ("e4", 4)))),
    ),
    Case(
        "the Koopman changes marked † together",
        KOOPMAN_CHANGES,
        together(*(per_experiment(e, fit=n, compare=1) for e, n in (("e1", 3), ("e2", 4), ("e4", 4)))),
    ),
]
REVERT = dict(ALL_FIGURES, index=1)
RUN_CASES = [
    Case("revert the training changes (after running them)", {}, REVERT),
    Case("revert the Koopman changes (after running them)", {}, REVERT),
    Case("`touch` every file under `results/`, upstream files newest", {}, {}),
]


@dataclasses.dataclass(frozen=True)
class Deletion:
    """A result file to delete, found in the index by stage, experiment and parameters."""

    change: str
    experiment: str
    params: Mapping[str, object]
    stage: str  # "train", or "fit": the fit of that trajectory
    jobs: Mapping[str, int]


def deletion(change: str, experiment: str, params: Mapping[str, object], stage: str, **counts: int) -> Deletion:
    figures = FIGURES[experiment]
    return Deletion(change, experiment, params, stage, {**counts, **figures})


DELETIONS = [
    deletion("delete E1's OMD fit", "e1", {"method": "omd"}, "fit", fit=1, compare=1),
    deletion("delete E1's OMD trajectory", "e1", {"method": "omd"}, "train", train=1, fit=1, compare=1),
    deletion("delete E2's fit of h = 5, seed 0", "e2", {"width": 5, "seed": 0}, "fit", fit=1, compare=1),
    deletion("delete E2's trajectory of h = 5, seed 0", "e2", {"width": 5, "seed": 0}, "train", train=1, fit=1, compare=1),
    deletion("delete E4's fit of grokking, seed 0", "e4", {"setup": "grokking", "seed": 0, "kind": "ensemble"}, "fit", fit=1, compare=1),
    deletion("delete E4's trajectory of grokking, seed 0", "e4", {"setup": "grokking", "seed": 0, "kind": "ensemble"}, "train", train=1, fit=1, compare=1),
    deletion("delete E4's long grokking run", "e4", {"setup": "grokking", "kind": "long"}, "train", train=1),
]


def deletion_target(workdir: Path, case: Deletion) -> IndexRow:
    trajectory = find_result(workdir, "train", case.experiment, **case.params)
    return fit_of(workdir, trajectory) if case.stage == "fit" else trajectory


@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda c: c.change)
def test_a_change_plans_exactly_the_jobs_it_affects(tiny_built: BuiltWorkflow, tmp_path: Path, case: Case) -> None:
    assert plan_with(tiny_built.dir, tmp_path, case.overrides) == jobs(case.jobs)


def test_a_reverted_change_reruns_no_computation(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    """Plan, run, revert, for the training changes and then for the Koopman changes."""
    workdir = clone_built(tiny_built.dir, tmp_path / "wf")
    for name, changes in (("training", TRAINING_CHANGES), ("Koopman", KOOPMAN_CHANGES)):
        (case,) = [c for c in PLAN_CASES if c.overrides == changes]
        assert plan_with(workdir, tmp_path, changes) == jobs(case.jobs), name
        assert run_with(workdir, tmp_path, changes) == jobs(case.jobs), name
        # Back to tests/tiny.yaml: its results are still there under their keys; only the
        # figures (fixed paths, redrawn by the change) and the index follow.
        assert plan_with(workdir, tmp_path, {}) == jobs(REVERT), name
    assert run_with(workdir, tmp_path, {}) == jobs(REVERT)
    assert plan_with(workdir, tmp_path, {}) == jobs()
    inspect_results(workdir)
    # The reverted build is the original one, beside the results of the changes.
    assert_results_match(tiny_built.dir, workdir, allow="more")


def test_touching_every_result_reruns_nothing(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    workdir = clone_built(tiny_built.dir, tmp_path / "wf", link=False)
    # Upstream files newest: each stage is touched one second after the stage it feeds.
    order = ["figures", "index.tsv", "distances", "compare", "fit", "train", "data"]
    files = sorted(p for p in (workdir / "results").rglob("*") if p.is_file())
    assert files
    now = time.time()
    for path in files:
        stage = path.relative_to(workdir / "results").parts[0]
        stamp = now + 10 + order.index(stage) if stage in order else now + 20
        os.utime(path, (stamp, stamp))
    assert planned_jobs(workdir, "all", "--configfile", TINY) == jobs()
    out = run_snakemake(workdir, "all", "--configfile", TINY).stdout
    assert "Nothing to be done" in out


@pytest.mark.parametrize("case", DELETIONS, ids=lambda c: c.change)
def test_a_deleted_result_reruns_only_what_depends_on_it(tiny_built: BuiltWorkflow, tmp_path: Path, case: Deletion) -> None:
    workdir = clone_built(tiny_built.dir, tmp_path / "wf")
    (workdir / deletion_target(workdir, case).path).unlink()
    assert planned_jobs(workdir, "all", "--configfile", TINY) == jobs(case.jobs)


def test_deleted_results_are_recomputed_identically(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    """Deletions of several experiments at once: planned, run, identical to the originals."""
    workdir = clone_built(tiny_built.dir, tmp_path / "wf")
    # One deletion per experiment, so the planned jobs add up.
    chosen = [DELETIONS[0], DELETIONS[3], DELETIONS[6]]
    expected = jobs(*(c.jobs for c in chosen))
    for case in chosen:
        (workdir / deletion_target(workdir, case).path).unlink()
    assert planned_jobs(workdir, "all", "--configfile", TINY) == expected
    ran = jobs_from_output(run_snakemake(workdir, "all", "--configfile", TINY).stdout)
    assert ran == expected
    assert planned_jobs(workdir, "all", "--configfile", TINY) == jobs()
    inspect_results(workdir)
    assert_results_match(tiny_built.dir, workdir)


# ---------------------------------------------------------------- the README table

README_COLUMNS = ("train", "fit", "compare", "figures", "index")


def table_counts(planned: Mapping[str, int]) -> dict[str, int]:
    """A job count as README's columns: train, fit, compare, figures (plot), index."""
    columns = {
        "train": planned.get("train", 0),
        "fit": planned.get("fit", 0),
        "compare": planned.get("compare", 0) + planned.get("distances", 0),
        "figures": planned.get("plot", 0),
        "index": planned.get("index", 0),
    }
    assert sum(columns.values()) == sum(planned.values()), f"rules outside README's columns: {planned}"
    return columns


def readme_rerun_table() -> dict[str, dict[str, int]]:
    """README's "What reruns when" table: change -> counts by column."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What reruns when", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 1 + len(README_COLUMNS) and all(c.isdigit() for c in cells[1:]):
            rows[cells[0].replace("\\*", "*").rstrip(" *†")] = dict(zip(README_COLUMNS, map(int, cells[1:])))
    return rows


def test_readme_table_lists_the_tested_counts() -> None:
    table = readme_rerun_table()
    for case in [*PLAN_CASES, *RUN_CASES, *DELETIONS]:
        assert case.change in table, f"README's table has no row {case.change!r}"
        assert table[case.change] == table_counts(case.jobs), case.change


# ---------------------------------------------------------------- results compared


def result_files(workdir: Path) -> set[str]:
    """Paths (relative to ``workdir``) of the results under results/, temporary files left out."""
    return {
        str(p.relative_to(workdir))
        for p in (workdir / "results").rglob("*")
        if p.is_file() and not p.name.endswith(".part") and p.suffix != ".html"
    }


def assert_results_match(reference: Path, workdir: Path, *, allow: str = "") -> None:
    """``workdir`` holds the same results as ``reference``, with the same content.

    ``allow="more"`` lets ``workdir`` hold results that ``reference`` lacks, and
    ``allow="fewer"`` lets it lack some.  JSON and TSV results (comparisons, distances,
    the figures' numbers, the index) are compared byte for byte, trajectories by their
    observables and spectra by their eigenvalues (HDF5 files and images also record when
    they were made).
    """
    mine, theirs = result_files(workdir), result_files(reference)
    if allow != "fewer":
        assert theirs <= mine, f"missing: {sorted(theirs - mine)}"
    if allow != "more":
        assert mine <= theirs, f"not results of the reference build: {sorted(mine - theirs)}"
    for rel in sorted(mine & theirs):
        a, b = workdir / rel, reference / rel
        if a.suffix in (".json", ".tsv"):
            assert a.read_bytes() == b.read_bytes(), rel
        elif rel.startswith("results/train/"):
            ta, tb = read_trajectory(a), read_trajectory(b)
            assert ta.observables.keys() == tb.observables.keys(), rel
            for name in ta.observables:
                assert ta.observables[name].tobytes() == tb.observables[name].tobytes(), (rel, name)
        elif rel.startswith("results/fit/"):
            sa, sb = read_spectra(a).spectra, read_spectra(b).spectra
            assert sa.keys() == sb.keys(), rel
            for name in sa:
                assert sa[name].eigenvalues.tobytes() == sb[name].eigenvalues.tobytes(), (rel, name)


# ---------------------------------------------------------------- between-workflow cache


def test_second_checkout_builds_every_figure_from_the_cache(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    second = copy_workflow(tmp_path / "second")
    out = run_snakemake(second, "all", "--cache", "--configfile", TINY, env=tiny_built.env()).stdout
    # Every training and fitting result came from the cache: Snakemake links it in and
    # never starts the job, whose log stays empty (a job that runs logs its wall time).
    for stage in ("train", "fit"):
        results = sorted((second / "results" / stage).rglob("*.h5"))
        assert results and len(results) == len(list((tiny_built.dir / "results" / stage).rglob("*.h5")))
        for path in results:
            rel = path.relative_to(second)
            assert f"output file {rel} from cache" in out
            assert path.is_symlink() and Path(os.readlink(path)).parent == tiny_built.cache
            log = second / "logs" / rel.parent.relative_to("results").with_suffix("") / f"{path.stem}.log"
            assert log.read_text() == "", log
    assert_results_match(tiny_built.dir, second)
    for figure in ("fig2_omd_ogd_bm", "fig3_fcn_width", "figS_fcn_seeds", "fig5_grokking"):
        for ext in ("pdf", "png", "json"):
            assert (second / f"results/figures/{figure}.{ext}").stat().st_size > 0
    inspect_results(second)


def test_cache_entries_are_read_only(tiny_built: BuiltWorkflow) -> None:
    entries = [p for p in tiny_built.cache.iterdir() if p.is_file()]
    assert entries
    for entry in entries:
        assert entry.stat().st_mode & 0o777 == 0o444, entry


def test_a_damaged_cache_entry_is_never_served(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    """The probe: a damaged cache entry was linked into a second checkout and its wrong
    numbers shown without an error, again after the result was deleted and rebuilt."""
    cache = tmp_path / "cache"
    shutil.copytree(tiny_built.cache, cache, symlinks=True)
    env = {**tiny_built.env(), "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    omd = json.loads((tiny_built.dir / "results/figures/fig2_omd_ogd_bm.json").read_text())["keys"]["traj_omd"]
    entry = Path(os.readlink(tiny_built.dir / f"results/train/e1/{omd}.h5"))
    damaged = cache / entry.name
    flip_byte(damaged, "observables/state", 100)
    second = copy_workflow(tmp_path / "second")
    proc = run_snakemake(second, "fig2", "--cache", "--configfile", TINY, env=env, check=False)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (second / "logs").rglob("*.log"))
    link = f"results/train/e1/{omd}.h5"
    assert re.search(rf"{re.escape(link)}: .*(checksum mismatch|is unreadable)", logs), logs
    assert f"`equivdyn verify --remove {link}`; it links to the cache entry {damaged}, which it removes too" in logs
    assert not (second / "results/figures/fig2_omd_ogd_bm.json").exists()
    verify = subprocess.run([venv_exe("equivdyn"), "verify", "--remove"], cwd=second, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert f"DAMAGED {link} (a link to the cache entry {damaged})" in verify.stderr
    assert not damaged.exists()
    run_snakemake(second, "fig2", "--cache", "--configfile", TINY, env=env)
    assert (cache / entry.name).is_file()  # recomputed and stored again, intact
    assert (second / link).is_symlink()
    assert read_trajectory(second / link).observables["state"].tobytes() == read_trajectory(
        tiny_built.dir / link).observables["state"].tobytes()
    fig2 = "results/figures/fig2_omd_ogd_bm.json"
    assert (second / fig2).read_bytes() == (tiny_built.dir / fig2).read_bytes()


# ---------------------------------------------------------------- crashes


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def start_snakemake(workdir: Path, log: Path, *args: str, cores: int = 2) -> subprocess.Popen[bytes]:
    """Start Snakemake in a process group of its own (its jobs join it), output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [snakemake_exe(), "--cores", str(cores), *args],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def pids_in(workdir: Path, needle: bytes = b"") -> list[int]:
    """Processes running in ``workdir`` whose command line holds ``needle``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cwd == str(workdir) and needle in cmdline:
            pids.append(int(proc.name))
    return pids


def locked(workdir: Path) -> bool:
    """Whether a Snakemake run holds (or a killed one left) a lock on ``workdir``."""
    locks = workdir / ".snakemake/locks"
    return locks.exists() and any(locks.iterdir())


def assert_no_partial_result(workdir: Path) -> None:
    """Every file that a rule's output pattern can match is a complete, valid result.

    A killed job may leave its temporary file (``.<name>.<random>.part``); no output
    pattern matches it (keys are 16 hex digits), so no run takes it for a result.
    """
    inspect_results(workdir)
    for path in (workdir / "results").rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.name.endswith(".part"):
            assert path.name.startswith(".") and not re.search(r"/[0-9a-f]{16}\.\w+$", str(path)), path


CRASH_TARGETS = ("fig2", "fig3", "fig5")
CRASH_TRIALS = 3


def test_killing_snakemake_at_random_points_never_corrupts_results(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    """kill -9 of Snakemake's process group at seeded random points, three times, then finish.

    A trial waits for a random number of finished jobs, then a random fraction of a
    second, so that it lands inside a run however fast the machine is.
    """
    workdir = copy_workflow(tmp_path / "wf")
    args = (*CRASH_TARGETS, "--configfile", TINY)
    rng = random.Random(20241)
    survived = []
    for trial in range(CRASH_TRIALS):
        log = tmp_path / f"trial{trial}.log"
        snake = start_snakemake(workdir, log, *args)
        wait_for(lambda: "Job stats:" in log.read_text(errors="replace") or snake.poll() is not None, 120)
        remaining = sum(jobs_from_output(log.read_text(errors="replace")).values())
        finished = rng.randint(0, max(0, remaining // 2 - 1))
        wait_for(lambda: log.read_text(errors="replace").count("Finished jobid") >= finished, 300)
        time.sleep(rng.uniform(0.0, 1.5))
        assert snake.poll() is None, f"trial {trial}: the run ended before the kill:\n{log.read_text()[-3000:]}"
        running = len(pids_in(workdir, b"equivdyn\0"))
        os.killpg(snake.pid, signal.SIGKILL)
        snake.wait(timeout=60)
        assert wait_for(lambda: not pids_in(workdir), 30), "jobs outlived their process group"
        assert_no_partial_result(workdir)
        parts = len(list((workdir / "results").rglob("*.part")))
        done = log.read_text(errors="replace").count("Finished jobid")
        # Snakemake cannot tell a dead run's lock from a live one: the next run refuses,
        # names --unlock, and changes nothing; `snakemake --unlock` clears the lock.
        assert locked(workdir)
        before = results_state(workdir)
        refused = run_snakemake(workdir, *args, check=False)
        assert refused.returncode != 0
        assert "Directory cannot be locked" in refused.stdout and "--unlock" in refused.stdout, refused.stdout[-3000:]
        assert results_state(workdir) == before
        run_snakemake(workdir, "--unlock", *args)
        survived.append(f"trial {trial}: killed after {done} of {remaining} jobs, {running} running, {parts} .part files")
    run_snakemake(workdir, *args)
    assert planned_jobs(workdir, *args) == jobs()
    assert_no_partial_result(workdir)
    assert_results_match(tiny_built.dir, workdir, allow="fewer")
    print(f"kill -9 of Snakemake's process group, {len(survived)}/{CRASH_TRIALS} trials survived:", *survived, sep="\n  ")


def test_a_run_killed_just_after_a_result_was_written_goes_on(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    """Killed between a job's rename and Snakemake's bookkeeping, the result is complete but
    marked incomplete.  profiles/default sets rerun-incomplete, so the next run recomputes
    it; without the profile, Snakemake stops with IncompleteFilesException."""
    workdir = copy_workflow(tmp_path / "wf")
    args = ("fig2", "--configfile", TINY)
    out_dir = workdir / "results/train/e1"
    snake = start_snakemake(workdir, tmp_path / "killed.log", *args)
    # Stop Snakemake (not its jobs) while a training job runs, let the job write its
    # result, then kill them all: Snakemake never recorded the job as finished.
    assert wait_for(lambda: pids_in(workdir, b"equivdyn\0train"), 120, step=0.01)
    os.kill(snake.pid, signal.SIGSTOP)
    assert wait_for(lambda: any(out_dir.glob("[0-9a-f]*.h5")), 120)
    os.killpg(snake.pid, signal.SIGKILL)
    snake.wait(timeout=60)
    assert_no_partial_result(workdir)
    run_snakemake(workdir, "--unlock", *args)
    without = run_snakemake(workdir, *args, "-n", "--workflow-profile", "none", check=False)
    assert without.returncode != 0 and "IncompleteFilesException" in without.stdout, without.stdout[-3000:]
    out = run_snakemake(workdir, *args).stdout
    assert "IncompleteFilesException" not in out
    assert planned_jobs(workdir, *args) == jobs()
    assert_no_partial_result(workdir)
    assert_results_match(tiny_built.dir, workdir, allow="fewer")


def test_killed_training_job_reruns_to_a_complete_valid_result(workflow_dir: Path, tmp_path: Path) -> None:
    # A large E1 grid makes the trajectory write take seconds, so the kill lands mid-write.
    overrides = {"e1.train.dim": 3, "e1.train.grid_size": 10, "e1.train.n_steps": 2000}
    args = ("fig2", "--until", "train", "--configfile", write_tiny_config(workflow_dir, "big.yaml", overrides))
    out_dir = workflow_dir / "results/train/e1"
    log = tmp_path / "killed.log"
    snake = start_snakemake(workflow_dir, log, *args, cores=1)

    writing: set[str] = set()  # results being written when the job was killed

    def kill_a_writing_job() -> bool:
        pids = pids_in(workflow_dir, b"equivdyn\0train")
        parts = list(out_dir.glob(".*.part")) if out_dir.exists() else []
        if not (parts and pids):
            return False
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # a temporary file is named .<result>.<random>.part
        writing.update(part.name[1:].rsplit(".", 2)[0] for part in parts)
        return True

    killed = wait_for(kill_a_writing_job, timeout=300, step=0.02)
    snake.wait(timeout=120)
    assert killed, "the training job finished before it could be killed"
    assert snake.returncode != 0, log.read_text()[-3000:]
    # The killed job left nothing; a job that had finished before (one core runs them in
    # turn) keeps its complete result.
    assert writing and not [p for p in out_dir.glob("*.h5") if p.name in writing], "a killed job left a result behind"
    assert len(list(out_dir.glob("*.h5"))) < 3
    inspect_results(workflow_dir)
    assert_no_partial_result(workflow_dir)

    run_snakemake(workflow_dir, *args)
    assert len(list(out_dir.glob("*.h5"))) == 3
    for path in inspect_results(workflow_dir):
        traj = read_trajectory(path)
        assert traj.key == path.stem
        assert traj.observables["state"].shape == (10**3, 2000, 3)


# ---------------------------------------------------------------- concurrent runs


def test_a_second_snakemake_on_the_same_directory_refuses(tiny_built: BuiltWorkflow, tmp_path: Path) -> None:
    workdir = clone_built(tiny_built.dir, tmp_path / "wf")
    args = ("all", "--configfile", write_tiny_config(workdir, "changed.yaml", {"e1.train.loss": "quartic"}))
    log = tmp_path / "first.log"
    # One core keeps the first run going while the second one plans.
    first = start_snakemake(workdir, log, *args, cores=1)
    assert wait_for(lambda: locked(workdir), 120), "the first run took no lock"
    second = run_snakemake(workdir, *args, check=False)
    assert first.poll() is None, "the first run ended before the second one tried"
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout, second.stdout[-3000:]
    assert "Traceback" not in second.stdout and "Finished jobid" not in second.stdout
    first.wait(timeout=600)
    out = log.read_text()
    assert first.returncode == 0, out[-3000:]
    assert jobs_from_output(out) == jobs(per_experiment("e1", train=3, fit=3, compare=1))
    assert planned_jobs(workdir, *args) == jobs()
    assert_no_partial_result(workdir)


# ---------------------------------------------------------------- bad configs
# (override, text the message must hold).  Schema errors name the field by its path in
# the config; the plan's cross-field checks by its dotted name.

BAD_CONFIGS = [
    ({"e1.train.n_steps": -5}, "['e1']['train']['n_steps']"),
    ({"e1.train.loss": "cosine"}, "['e1']['train']['loss']"),
    ({"e1.train.eta": "fast"}, "['e1']['train']['eta']"),
    ({"e1.train.dim": 2.5}, "['e1']['train']['dim']"),
    ({"e1.train.grid_size": 0}, "['e1']['train']['grid_size']"),
    ({"e1.train.colour": "red"}, "'colour' was unexpected"),
    ({"e1.koopman.n_delays": 39}, "e1.koopman.n_delays=39"),
    ({"e1.koopman.rank": 11}, "e1.koopman.rank=11"),
    ({"e1.koopman.n_components": 3}, "e1.koopman.n_components=3"),
    ({"e2.widths": [5, "wide"]}, "['e2']['widths']"),
    ({"e2.seeds": []}, "['e2']['seeds']"),
    ({"e2.reference_width": 64}, "e2.reference_width=64"),
    ({"e2.train.activation": "tanh"}, "['e2']['train']['activation']"),
    ({"e2.train.optimizer": "adagrad"}, "['e2']['train']['optimizer']"),
    ({"e2.train.lr": -0.1}, "['e2']['train']['lr']"),
    ({"e2.koopman.delay_budget": 400}, "e2.koopman.delay_budget"),
    ({"e2.koopman.rank": 1000}, "e2.koopman.rank=1000"),
    ({"e4.seeds": [0]}, "['e4']['seeds']"),
    ({"e4.train.dtype": "float16"}, "['e4']['train']['dtype']"),
    ({"e4.train.train_fraction": 1.5}, "['e4']['train']['train_fraction']"),
    ({"e4.train.d_model": "big"}, "['e4']['train']['d_model']"),
    ({"e4.long.n_points": 1}, "['e4']['long']['n_points']"),
    ({"e4.koopman.n_delays": 30}, "e4.koopman.n_delays=30"),
    ({"e4.koopman.n_components": 100}, "e4.koopman.n_components=100"),
    ({"e4.koopman.rank": 50}, "e4.koopman.rank=50"),
    ({"e9": {"seeds": [0, 1]}}, "'e9' was unexpected"),
    ({"data.mnist": ""}, "['data']['mnist']"),
]


@pytest.fixture(scope="module")
def bad_config_dir(tiny_built: BuiltWorkflow, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone_built(tiny_built.dir, tmp_path_factory.mktemp("bad") / "wf")


@pytest.mark.parametrize(("override", "field"), BAD_CONFIGS, ids=[next(iter(o)) for o, _ in BAD_CONFIGS])
def test_a_bad_config_stops_before_any_job_and_names_the_field(
    bad_config_dir: Path, tmp_path: Path, override: dict[str, object], field: str
) -> None:
    """Run (not only plan) with the bad config on a built workflow: nothing is touched."""
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(tiny_config(override)))
    before = results_state(bad_config_dir)
    proc = run_snakemake(bad_config_dir, "all", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    assert field in proc.stdout, proc.stdout[-3000:]
    assert "Job stats" not in proc.stdout and "Finished jobid" not in proc.stdout
    assert results_state(bad_config_dir) == before


def test_index_names_every_result_by_the_key_in_its_file_name(tiny_built: BuiltWorkflow) -> None:
    rows = index_rows(tiny_built.dir)
    assert {row.stage for row in rows} >= {"data", "train", "fit", "compare", "distances"}
    for row in rows:
        assert Path(row.path).stem == row.key, row
        assert (tiny_built.dir / row.path).is_file(), row
    # Training results reference their dataset by the key the dataset's row holds.
    data_keys = {row.key for row in rows if row.stage == "data"}
    used = {k for row in rows if row.stage == "train" for k in row.spec["inputs"].values()}
    assert used and used <= data_keys
