"""The `custom` section's plan: your own runs, keyed by content, and clear errors for bad setups.

The files are small SYNTHETIC trajectories (random walks); the workflow itself runs the
section in tests/test_own_runs.py.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from equivdyn.errors import ParameterError
from equivdyn.store import Trajectory, write_trajectory

from .conftest import plan_of


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Four synthetic runs per setup a and b, as files runs/<setup>/s<i>.h5."""
    rng = np.random.default_rng(0)
    for setup in ("a", "b"):
        for i in range(4):
            data = np.cumsum(rng.standard_normal((2, 20, 3)), axis=1)
            write_trajectory(tmp_path / setup / f"s{i}.h5", Trajectory("test", np.arange(20), {"w": data}))
    return tmp_path


def custom_plan(runs: Path, section: dict[str, Any]) -> Any:
    """The plan of a config with only this custom section, built in the folder ``runs``."""
    cwd = os.getcwd()
    os.chdir(runs)
    try:
        return plan_of({"custom": section})
    finally:
        os.chdir(cwd)


def custom_jobs(plan: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for job in plan.jobs.values():
        if job.spec["experiment"] == "custom":
            out.setdefault(job.spec["stage"], []).append(job)
    return out


FILES = {"a": {"files": ["a/*.h5"]}, "b": {"files": ["b/s[0-3].h5"]}}


def test_file_setups_plan_one_job_per_file_keyed_by_content(runs: Path) -> None:
    plan = custom_plan(runs, {"setups": FILES})
    jobs = custom_jobs(plan)
    assert len(jobs["source"]) == len(jobs["train"]) == 8 and len(jobs["compare"]) == 1
    assert sorted(job.path for job in jobs["source"]) == sorted(f"{s}/s{i}.h5" for s in "ab" for i in range(4))
    (compare,) = jobs["compare"]
    assert compare.spec["params"]["questions"] == [{"verdict": "a|b", "a": "a", "b": "b"}]
    assert plan.targets()["custom"] == [f"results/figures/custom_verdicts.{ext}" for ext in ("pdf", "png", "json")]
    # the same content elsewhere has the same keys; other content has others
    shutil.copytree(runs / "a", runs / "moved")
    moved = custom_plan(runs, {"setups": {"a": {"files": ["moved/*.h5"]}, "b": FILES["b"]}})
    assert {j.spec["params"]["sha256"] for j in custom_jobs(moved)["train"]} == {
        j.spec["params"]["sha256"] for j in jobs["train"]
    }
    assert custom_jobs(moved)["compare"][0].spec == compare.spec
    other = custom_plan(runs, {"setups": {"a": {"files": ["a/s[0-2].h5", "b/s3.h5"]}, "b": FILES["b"]}})
    assert custom_jobs(other)["compare"][0].spec != compare.spec


def test_command_setups_key_the_command_seed_and_dependencies(runs: Path) -> None:
    (runs / "train.py").write_text("print('a trainer')\n")
    setups = {"a": FILES["a"], "c": {"command": "python train.py --seed {seed} --out {out}", "depends": ["train.py"]}}
    jobs = custom_jobs(custom_plan(runs, {"setups": setups}))
    commands = [j for j in jobs["train"] if j.spec["params"]["source"] == "command"]
    assert sorted(j.spec["params"]["seed"] for j in commands) == [0, 1, 2, 3]
    (runs / "train.py").write_text("print('another trainer')\n")
    changed = custom_jobs(custom_plan(runs, {"setups": setups}))
    assert {j.path for j in changed["train"]} - {j.path for j in jobs["train"]} == {
        j.path for j in changed["train"] if j.spec["params"]["source"] == "command"
    }


def test_no_setups_plan_nothing(runs: Path) -> None:
    assert custom_jobs(custom_plan(runs, {})) == {}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"setups": {"a": FILES["a"]}}, "custom.setups: name at least two setups"),
        ({"setups": {"a": {**FILES["a"], "command": "x {out}"}, "b": FILES["b"]}}, "custom.setups.a: give either files or command"),
        ({"setups": {"a": {}, "b": FILES["b"]}}, "custom.setups.a: give either files or command"),
        ({"setups": {"a": {"command": "python t.py"}, "b": FILES["b"]}}, r"custom.setups.a.command: must contain \{out\}"),
        ({"setups": {"a": {"files": ["none/*.h5"]}, "b": FILES["b"]}}, "custom.setups.a.files: no file matches 'none/\\*.h5'"),
        ({"setups": {"a": {"files": ["a/s0.h5"]}, "b": FILES["b"]}}, "custom.setups.a.files: 1 file; the verdict needs at least 2 seeds"),
        ({"setups": {"a": {"files": ["a/*.h5", "a/s0.h5"]}, "b": FILES["b"]}}, "custom.setups.a.files: a file is named twice"),
        ({"setups": {"a": {"command": "t {out}", "depends": ["t.py"]}, "b": FILES["b"]}}, "custom.setups.a.depends: 't.py' is not a file"),
        ({"setups": FILES, "pairs": [["a", "c"]]}, "custom.pairs\\[0\\]: unknown setup 'c'"),
        ({"setups": FILES, "pairs": [["a", "a"]]}, "custom.pairs\\[0\\]: compares 'a' with itself"),
        ({"setups": FILES, "pairs": [["a", "b"], ["b", "a"]]}, "custom.pairs\\[1\\]: 'b' and 'a' are compared twice"),
    ],
)
def test_bad_setups_are_named(runs: Path, section: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        custom_plan(runs, section)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"1a": FILES["a"]}, "does not match"),
        ({"a": {"command": "t {out}", "seeds": [1]}}, r"\[1\] is too short"),
        ({"a": {"files": ["a/*.h5"], "seed": 3}}, "Additional properties are not allowed \\('seed' was unexpected\\)"),
    ],
)
def test_the_schema_refuses_what_it_can_name(runs: Path, setup: dict[str, Any], message: str) -> None:
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError) as exc:
        custom_plan(runs, {"setups": {**setup, "b": FILES["b"]}})
    assert re.search(message, str(exc.value)), exc.value
