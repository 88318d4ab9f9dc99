"""Tests of the ``equivdyn`` command line (equivdyn.cli) on real files."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from equivdyn._io import content_key
from equivdyn.cli import main
from equivdyn.experiments.e1 import trainer as e1
from equivdyn.experiments import get as get_experiment
from equivdyn.stages import STAGE_VERSIONS
from equivdyn.store import Trajectory, read_spectra, read_trajectory, write_trajectory

EXE = str(Path(sys.executable).with_name("equivdyn"))

TRAIN_SPEC: dict[str, Any] = {
    "stage": "train",
    "experiment": "e1",
    "version": get_experiment("e1").train_version,
    "params": {
        "method": "omd",
        "loss": "tan",
        "eta": 0.01,
        "n_steps": 30,
        "dim": 2,
        "grid_size": 3,
        "x0_range": [0.1, 0.9],
        "u0_range": [-2.3, -0.1],
        "a0_range": [-1.3333333333333333, -0.3333333333333333],
        "b0_range": [0.14285714285714285, 1.1428571428571428],
    },
    "inputs": {},
}


def fit_spec(trajectory_key: str) -> dict[str, Any]:
    return {
        "stage": "fit",
        "experiment": "e1",
        "version": STAGE_VERSIONS["fit"],
        "params": {"observable": "state", "n_delays": 2, "rank": None, "n_components": None},
        "inputs": {"trajectory": trajectory_key},
    }


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, str]:
    """A trajectory file written by ``equivdyn train`` and its content key."""
    out = tmp_path / "results" / "train.h5"
    assert main(["train", "--spec", json.dumps(TRAIN_SPEC), "--out", str(out)]) == 0
    return out, content_key(TRAIN_SPEC)


@pytest.fixture
def fitted(tmp_path: Path, trained: tuple[Path, str]) -> tuple[Path, str]:
    """A spectrum file written by ``equivdyn fit`` and its content key."""
    traj, key = trained
    spec = fit_spec(key)
    out = tmp_path / "results" / "fit.h5"
    assert main(["fit", "--spec", json.dumps(spec), "--input", str(traj), "--out", str(out)]) == 0
    return out, content_key(spec)


@pytest.fixture
def invalid_files(tmp_path: Path, trained: tuple[Path, str]) -> dict[str, Path]:
    traj, _ = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    files = {
        "truncated": bad / "truncated.h5",
        "empty": bad / "empty.h5",
        "random": bad / "random.h5",
        "plain": bad / "plain.h5",
    }
    data = traj.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["random"].write_bytes(np.random.default_rng(17).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with h5py.File(files["plain"], "w") as h5:
        h5.create_dataset("x", data=np.arange(4))
    return files


# ----------------------------------------------------------------------------- train / key


def test_train_writes_keyed_trajectory(tmp_path: Path, trained: tuple[Path, str], capsys) -> None:
    out, key = trained
    capsys.readouterr()
    assert main(["key", "--spec", json.dumps(TRAIN_SPEC)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == key
    assert len(printed) == 16

    with h5py.File(out, "r") as h5:
        assert h5.attrs["key"] == key
        assert h5.attrs["format"] == "equivdyn.trajectory"
        assert h5["observables/state"].shape == (9, 30, 2)
        assert json.loads(h5.attrs["params"])["stage"] == "train"

    traj = read_trajectory(out)
    assert traj.key == key
    # the spec the key is of, and the trainer's parameters with every default filled in
    resolved = traj.params.pop("resolved")
    assert traj.params == TRAIN_SPEC
    assert resolved == json.loads(json.dumps(e1.check_params(TRAIN_SPEC["params"])))
    assert set(resolved) == {*e1.DEFAULTS, "method"}
    assert traj.observables["state"].shape == (9, 30, 2)
    assert traj.steps.tolist() == list(range(30))
    # OMD stays in the domain [1/n_steps, 1] and starts on the 3x3 grid of x0_range
    state = traj.observables["state"]
    assert np.all((state >= 1 / 30) & (state <= 1.0))
    np.testing.assert_allclose(np.sort(np.unique(state[:, 0, 0])), [0.1, 0.5, 0.9])
    assert [p.name for p in out.parent.iterdir()] == ["train.h5"]


def test_key_through_console_script_matches_file_key(trained: tuple[Path, str]) -> None:
    out, _ = trained
    proc = run_cli("key", "--spec", json.dumps(TRAIN_SPEC))
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as h5:
        assert proc.stdout.strip() == h5.attrs["key"]


def test_key_ignores_field_order(capsys) -> None:
    reordered = {k: TRAIN_SPEC[k] for k in reversed(list(TRAIN_SPEC))}
    assert main(["key", "--spec", json.dumps(TRAIN_SPEC)]) == 0
    a = capsys.readouterr().out
    assert main(["key", "--spec", json.dumps(reordered, indent=3)]) == 0
    assert capsys.readouterr().out == a
    changed = copy.deepcopy(TRAIN_SPEC)
    changed["params"]["eta"] = 0.02
    assert main(["key", "--spec", json.dumps(changed)]) == 0
    assert capsys.readouterr().out != a


# ----------------------------------------------------------------------------- fit


def test_fit_writes_spectrum(tmp_path: Path, trained: tuple[Path, str], fitted: tuple[Path, str]) -> None:
    _, train_key = trained
    out, fit_key = fitted
    data = read_spectra(out)
    assert data.key == fit_key
    assert data.inputs == [train_key]
    assert data.params == fit_spec(train_key)
    assert data.experiment == "e1"
    assert set(data.spectra) == {"all"}
    spec = data.spectra["all"]
    assert spec.eigenvalues.size >= 1
    # 9 initialisations x (30 - 2 delays - 1) snapshot pairs
    assert spec.n_snapshots == 9 * 27
    assert spec.params["n_delays"] == 2
    assert spec.params["n_initialisations"] == 9
    # a damped optimiser: no eigenvalue grows
    assert np.abs(spec.eigenvalues).max() <= 1.0 + 1e-6


def test_fit_refuses_mismatched_input_key(tmp_path: Path, trained: tuple[Path, str], capsys) -> None:
    traj, train_key = trained
    wrong = "f" * 16
    assert wrong != train_key
    out = tmp_path / "fit_wrong.h5"
    capsys.readouterr()
    status = main(["fit", "--spec", json.dumps(fit_spec(wrong)), "--input", str(traj), "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1
    assert str(traj) in err
    assert train_key in err
    assert wrong in err
    assert not out.exists()
    assert not list(tmp_path.glob(".fit_wrong.h5*"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_fit_refuses_non_finite_trajectory(tmp_path: Path, capsys, bad: float) -> None:
    rng = np.random.default_rng(23)
    state = rng.random((4, 20, 2))
    state[2, 7, 1] = bad
    state[3, 12, 0] = bad  # a later one: the message names the first
    key = "abcdefabcdef0123"
    traj_path = tmp_path / "diverged.h5"
    steps = np.arange(0, 40, 2)  # recorded every other step: the message names the step, not the index
    write_trajectory(traj_path, Trajectory(experiment="e1", steps=steps, observables={"state": state}, key=key))
    out = tmp_path / "fit.h5"
    out.write_bytes(b"previous spectrum")
    status = main(["fit", "--spec", json.dumps(fit_spec(key)), "--input", str(traj_path), "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1
    assert "not finite" in err
    assert "diverged" in err
    assert "initialisation 2, step 14" in err
    assert str(traj_path) in err
    assert out.read_bytes() == b"previous spectrum"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diverged.h5", "fit.h5"]


def test_fit_refuses_invalid_input_file(tmp_path: Path, invalid_files: dict[str, Path], capsys) -> None:
    out = tmp_path / "fit.h5"
    path = invalid_files["truncated"]
    status = main(["fit", "--spec", json.dumps(fit_spec("0" * 16)), "--input", str(path), "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert not out.exists()


# ----------------------------------------------------------------------------- bad specs


def _without(spec: dict[str, Any], *path: str) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    node = spec
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return spec


def _with(spec: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return spec


BAD_TRAIN_SPECS = [
    pytest.param('{"stage": "train", "experiment": ', "JSON", id="invalid-json"),
    pytest.param("[1, 2]", "JSON object", id="not-an-object"),
    pytest.param(json.dumps(_without(TRAIN_SPEC, "params")), "params", id="missing-params"),
    pytest.param(json.dumps(_without(TRAIN_SPEC, "experiment")), "experiment", id="missing-experiment"),
    pytest.param(json.dumps(_without(TRAIN_SPEC, "version")), "version", id="missing-version"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, "e9", "experiment")), "e9", id="unknown-experiment"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, "cosh", "params", "loss")), "loss", id="unknown-loss"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, "adam", "params", "method")), "method", id="unknown-method"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, -1.0, "params", "eta")), "eta", id="negative-eta"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, 7, "params", "colour")), "colour", id="unknown-parameter"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, get_experiment("e1").train_version + 98, "version")), "version",
                 id="wrong-version"),
    pytest.param(json.dumps(_with(TRAIN_SPEC, "fit", "stage")), "stage", id="spec-for-another-stage"),
    # Python's json reads these although JSON has no such numbers; no key can be made of them.
    pytest.param(json.dumps(TRAIN_SPEC).replace('"eta": 0.01', '"eta": Infinity'), "Infinity", id="infinite-eta"),
    pytest.param(json.dumps(TRAIN_SPEC).replace('"eta": 0.01', '"eta": NaN'), "NaN", id="nan-eta"),
    pytest.param(json.dumps(TRAIN_SPEC).replace('"eta": 0.01', '"eta": 1e400'), "1e400", id="overflowing-eta"),
]


@pytest.mark.parametrize(("spec_text", "word"), BAD_TRAIN_SPECS)
def test_train_rejects_bad_spec(tmp_path: Path, capsys, spec_text: str, word: str) -> None:
    out = tmp_path / "out" / "train.h5"
    status = main(["train", "--spec", spec_text, "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    lines = error_lines(captured.err)
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("equivdyn train: error:")
    assert word in lines[0]
    assert captured.out == ""
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


BAD_FIT_SPECS = [
    pytest.param(lambda key: _without(fit_spec(key), "params"), "params", id="missing-params"),
    pytest.param(lambda key: _with(fit_spec(key), 99, "version"), "version", id="wrong-version"),
    pytest.param(lambda key: _without(fit_spec(key), "inputs"), "inputs", id="missing-inputs"),
    pytest.param(lambda key: _without(fit_spec(key), "inputs", "trajectory"), "trajectory",
                 id="missing-input-key"),
    pytest.param(lambda key: _without(fit_spec(key), "params", "observable"), "observable",
                 id="missing-observable"),
    pytest.param(lambda key: _with(fit_spec(key), "weights", "params", "observable"), "weights",
                 id="unknown-observable"),
    pytest.param(lambda key: _with(fit_spec(key), -1, "params", "n_delays"), "n_delays", id="negative-n_delays"),
    pytest.param(lambda key: _with(fit_spec(key), 3, "params", "window"), "window", id="unknown-parameter"),
]


@pytest.mark.parametrize(("make_spec", "word"), BAD_FIT_SPECS)
def test_fit_rejects_bad_spec(tmp_path: Path, trained: tuple[Path, str], capsys, make_spec, word: str) -> None:
    traj, key = trained
    out = tmp_path / "fitout" / "fit.h5"
    capsys.readouterr()
    status = main(["fit", "--spec", json.dumps(make_spec(key)), "--input", str(traj), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    lines = error_lines(captured.err)
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("equivdyn fit: error:")
    assert word in lines[0]
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_spec_through_console_script_has_no_traceback(tmp_path: Path) -> None:
    out = tmp_path / "train.h5"
    spec = json.dumps(_with(TRAIN_SPEC, "cosh", "params", "loss"))
    proc = run_cli("train", "--spec", spec, "--out", str(out))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1
    assert "loss" in lines[0] and "cosh" in lines[0]
    assert not out.exists()


# ----------------------------------------------------------------------------- inspect


def test_inspect_trajectory(trained: tuple[Path, str], capsys) -> None:
    out, key = trained
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text
    assert "equivdyn.trajectory" in text
    assert key in text
    assert "[9, 30, 2]" in text
    assert "[9, 30]" in text  # the loss metric
    assert '"method": "omd"' in text
    assert "30 (from 0 to 29)" in text


def test_inspect_spectrum(trained: tuple[Path, str], fitted: tuple[Path, str], capsys) -> None:
    _, train_key = trained
    out, fit_key = fitted
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "equivdyn.spectrum" in text
    assert fit_key in text
    assert train_key in text
    assert f"from {9 * 27} snapshot pairs" in text
    assert '"observable": "state"' in text


def test_inspect_json(trained: tuple[Path, str], fitted: tuple[Path, str], capsys) -> None:
    traj, train_key = trained
    spec, fit_key = fitted
    capsys.readouterr()
    assert main(["inspect", "--json", str(traj)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "equivdyn.trajectory"
    assert summary["key"] == train_key
    assert summary["observables"] == {"state": [9, 30, 2]}
    assert {k: v for k, v in summary["params"].items() if k != "resolved"} == TRAIN_SPEC
    assert summary["params"]["resolved"] == TRAIN_SPEC["params"]  # the spec gives every E1 parameter
    assert summary["finite"] is True

    assert main(["inspect", "--json", str(spec)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "equivdyn.spectrum"
    assert summary["key"] == fit_key
    assert summary["inputs"] == [train_key]
    assert summary["spectra"]["all"]["n_snapshots"] == 9 * 27


@pytest.mark.parametrize("which", ["truncated", "empty", "random", "plain"])
def test_inspect_invalid_file(invalid_files: dict[str, Path], capsys, which: str) -> None:
    path = invalid_files[which]
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = error_lines(captured.err)
    assert len(lines) == 1
    assert str(path) in lines[0]


def test_inspect_missing_file_and_directory(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.h5"
    assert main(["inspect", str(missing), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert f"{tmp_path}: is a directory" in err


def test_inspect_file_with_non_numeric_format_version(trained: tuple[Path, str], tmp_path: Path, capsys) -> None:
    traj, _ = trained
    path = tmp_path / "badversion.h5"
    path.write_bytes(traj.read_bytes())
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = "one"
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err
    assert "format_version" in err


def test_inspect_valid_and_invalid(trained: tuple[Path, str], invalid_files: dict[str, Path], capsys) -> None:
    traj, key = trained
    bad = invalid_files["truncated"]
    capsys.readouterr()
    assert main(["inspect", str(bad), str(traj)]) == 1
    captured = capsys.readouterr()
    assert key in captured.out
    assert "[9, 30, 2]" in captured.out
    assert str(bad) in captured.err
    assert str(traj) not in captured.err


def test_inspect_through_console_script(trained: tuple[Path, str], invalid_files: dict[str, Path]) -> None:
    traj, key = trained
    bad = [str(p) for p in invalid_files.values()]
    proc = run_cli("inspect", *bad)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Traceback" not in proc.stdout
    for p in bad:
        assert p in proc.stderr
    assert len(error_lines(proc.stderr)) == len(bad)

    proc = run_cli("inspect", "--json", str(traj), bad[0])
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["key"] == key
    assert bad[0] in proc.stderr


# ----------------------------------------------------------------------------- index


def test_index_writes_keyed_table(tmp_path: Path, capsys) -> None:
    fspec = fit_spec(content_key(TRAIN_SPEC))
    plan = {"results/x.h5": TRAIN_SPEC, "results/a/fit.h5": fspec}
    out = tmp_path / "index" / "index.tsv"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    assert main(["index", "--plan", str(plan_file), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "stage", "experiment", "path", "params"]
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 2
    by_path = {row[3]: row for row in rows}
    assert set(by_path) == set(plan)
    for path, spec in plan.items():
        key, stage, experiment, _, params = by_path[path]
        assert key == content_key(spec)
        assert stage == spec["stage"]
        assert experiment == "e1"
        assert json.loads(params) == spec
    assert by_path["results/x.h5"][0] != by_path["results/a/fit.h5"][0]
    assert [p.name for p in out.parent.iterdir()] == ["index.tsv"]


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ('{"results/x.h5": {"params": {"eta": -Infinity}}}', "not a finite number"),
        ('["a list"]', "must hold a JSON object"),
        (None, "cannot read it"),
    ],
)
def test_index_rejects_invalid_plan(tmp_path: Path, capsys, plan: str | None, problem: str) -> None:
    out = tmp_path / "index.tsv"
    plan_file = tmp_path / "plan.json"
    if plan is not None:
        plan_file.write_text(plan)
    assert main(["index", "--plan", str(plan_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1
    assert f"--plan {plan_file}" in err and problem in err, err
    assert not out.exists()


# ----------------------------------------------------------------------------- README


def test_readme_lists_every_subcommand() -> None:
    """Each subcommand of `equivdyn --help` has a row in README.md's command-line table."""
    import argparse

    from equivdyn.cli import build_parser

    from .conftest import ROOT

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `equivdyn ")]
    listed = {word for row in rows for word in re.findall(r"`equivdyn (\w+)", row)}
    assert listed == set(sub.choices), (sorted(listed), sorted(sub.choices))
