"""Every subcommand that reads a file, fed bad files: one clear line, exit status, no output.

For each (subcommand, input slot) × (kind of bad file) the command must

* exit with status 2 (``inspect``: 1),
* print exactly one line on stderr that names the file and the problem, no traceback,
* leave no ``--out`` file behind (nor a temporary one), and
* leave a pre-existing ``--out`` file byte-identical.

The full matrix runs in-process through :func:`equivdyn.cli.main`; the installed console
script is run for two kinds of bad file per slot.

The valid files that the bad ones are cut from or stand beside are made once per module.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from equivdyn._io import content_key, read_json_result, seal_json
from equivdyn.cli import main
from equivdyn.data.mnist import DATASET_KEY
from equivdyn.experiments import get as get_experiment
from equivdyn.stages import STAGE_VERSIONS, compare, fit, train

from .conftest import SHARED_MNIST

EXE = str(Path(sys.executable).with_name("equivdyn"))
MNIST = SHARED_MNIST
METHODS = ("omd", "ogd", "bm")



def _spec(stage: str, experiment: str, params: dict[str, Any], inputs: dict[str, str] | None = None) -> dict[str, Any]:
    version = get_experiment(experiment).train_version if stage == "train" else STAGE_VERSIONS[stage]
    return {"stage": stage, "experiment": experiment, "version": version, "params": params, "inputs": inputs or {}}


E1_PARAMS = {"loss": "tan", "n_steps": 20, "grid_size": 3}
E2_SPEC = _spec("train", "e2", {"width": 5, "seed": 0, "n_inits": 3, "n_steps": 60}, {"mnist": DATASET_KEY})
E3_SPEC = _spec(
    "train", "e3",
    {"model": "lenet", "seed": 0, "n_inits": 2, "n_epochs": 1, "train_subset": 120, "test_subset": 100},
    {"data": DATASET_KEY},
)


@dataclass(frozen=True)
class Valid:
    """Valid files of every kind the subcommands read, with the specs that made them."""

    traj: dict[str, Path]
    spec: dict[str, Path]
    fit_specs: dict[str, dict[str, Any]]
    compare_spec: dict[str, Any]
    comparison: Path
    mnist: Path


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory, prepared_mnist: Path) -> Valid:
    root = tmp_path_factory.mktemp("valid")
    traj, spec, fit_specs = {}, {}, {}
    for m in METHODS:
        train_spec = _spec("train", "e1", {"method": m, **E1_PARAMS})
        traj[m] = root / f"traj_{m}.h5"
        train(train_spec, {}, traj[m])
        fit_specs[m] = _spec(
            "fit", "e1", {"observable": "state", "n_delays": 2, "rank": None, "n_components": None},
            {"trajectory": content_key(train_spec)},
        )
        spec[m] = root / f"spec_{m}.h5"
        fit(fit_specs[m], traj[m], spec[m])
    verdict = {"name": "omd|ogd", "a": ["traj:omd"], "b": ["traj:ogd"], "observable": "state", "split": 3}
    compare_spec = _spec(
        "compare", "e1",
        {"pairs": [["omd", "ogd"], ["ogd", "bm"], ["omd", "bm"]], "n_shuffles": 20, "seed": 0, "verdicts": [verdict]},
        {**{m: content_key(fit_specs[m]) for m in METHODS},
         **{f"traj:{m}": content_key(_spec("train", "e1", {"method": m, **E1_PARAMS})) for m in ("omd", "ogd")}},
    )
    comparison = root / "compare.json"
    compare(compare_spec, {**spec, "traj:omd": traj["omd"], "traj:ogd": traj["ogd"]}, comparison)
    return Valid(traj, spec, fit_specs, compare_spec, comparison, prepared_mnist)


# ----------------------------------------------------------------------------- bad files


def _truncated(source: Path, dest: Path) -> None:
    data = source.read_bytes()
    dest.write_bytes(data[: len(data) // 2])


def _npz(dest: Path) -> None:
    with open(dest, "wb") as handle:  # through a handle: np.savez would append ".npz"
        np.savez(handle, weights=np.arange(12.0).reshape(3, 4), labels=np.arange(3))


def _plain_hdf5(dest: Path) -> None:
    with h5py.File(dest, "w") as h5:
        h5.create_dataset("observables/state", data=np.zeros((2, 5, 2)))
        h5.attrs["note"] = "an HDF5 file that no equivdyn stage wrote"


def make_bad(kind: str, directory: Path, suffix: str, good: Path, other: Path | None) -> Path:
    """Write the bad file of ``kind`` into ``directory``; ``good`` is a valid file of the
    expected kind (cut in half for ``truncated``), ``other`` a file of another format."""
    dest = directory / f"{kind}{suffix}"
    if kind == "truncated":
        _truncated(good, dest)
    elif kind == "empty":
        dest.write_bytes(b"")
    elif kind == "text":
        dest.write_text("step,loss\n0,2.30\n1,2.29\n", encoding="utf-8")
    elif kind == "npz":
        _npz(dest)
    elif kind == "other-format":
        assert other is not None
        dest.write_bytes(other.read_bytes())
    elif kind == "no-header":
        _plain_hdf5(dest)
    elif kind == "wrong-json":  # sealed, as a writer with a bug would
        dest.write_text(json.dumps(seal_json({"spectra": {"omd": [[0.9, 0.0]]}, "keys": {}})), encoding="utf-8")
    elif kind == "other-experiment":
        result = read_json_result(good)
        result["spec"]["experiment"] = "e4"
        result["key"] = content_key(result["spec"])
        dest.write_text(json.dumps(seal_json(result)), encoding="utf-8")
    elif kind == "edited-json":  # one number changed by hand, the checksum kept
        result = json.loads(good.read_text(encoding="utf-8"))
        result["pairs"]["omd|ogd"]["distance"] += 0.5
        dest.write_text(json.dumps(result), encoding="utf-8")
    elif kind == "unsealed-json":  # a valid result without its checksum (an older equivdyn)
        dest.write_text(json.dumps(read_json_result(good)), encoding="utf-8")
    elif kind == "nested-json":
        dest.write_text("[" * 100000 + "]" * 100000, encoding="utf-8")
    elif kind == "missing":
        pass
    else:  # pragma: no cover - a typo in the table below
        raise AssertionError(kind)
    return dest


#: What the one error line must say about each kind of bad file, by the format the slot reads.
PROBLEMS: dict[str, dict[str, str]] = {
    "hdf5": {
        "truncated": r"truncated",
        "empty": r"file is empty",
        "text": r"not a readable HDF5 file",
        "npz": r"not a readable HDF5 file",
        "other-format": r"expected a 'equivdyn\.(trajectory|spectrum)' file, found 'equivdyn\.(spectrum|trajectory)'",
        "no-header": r"not an equivdyn file",
        "missing": r"does not exist",
    },
    "npz": {
        "truncated": r"truncated or corrupt",
        "empty": r"file is empty",
        "text": r"not an \.npz file: it starts with b'step,l', not with a zip archive's signature",
        "npz": r"missing array\(s\) x_train, y_train, x_test, y_test",
        "other-format": r"not an \.npz file: it starts with b'\\x89HDF",
        "no-header": r"not an \.npz file: it starts with b'\\x89HDF",
        "missing": r"does not exist",
    },
    "json": {
        "truncated": r"not valid JSON",
        "empty": r"file is empty",
        "text": r"not valid JSON",
        "npz": r"not valid JSON",
        "other-format": r"not valid JSON",
        "no-header": r"not valid JSON",
        "wrong-json": r"not a comparison",
        "other-experiment": r"comparison of experiment 'e4'; this figure needs one of 'e1'",
        "edited-json": r"checksum mismatch \(the content was changed after it was written\)",
        "unsealed-json": r"no 'sha256' checksum field",
        "nested-json": r"JSON nested deeper than 64 levels",
        "missing": r"does not exist",
    },
}


# ----------------------------------------------------------------------------- subcommands


@dataclass(frozen=True)
class Slot:
    """One file input of one subcommand.

    ``argv(valid, bad, out)`` builds the command line with ``bad`` in this slot;
    ``outputs(out)`` lists the files the command would write.
    """

    command: str
    fmt: str
    suffix: str
    good: Callable[[Valid], Path]
    other: Callable[[Valid], Path] | None
    argv: Callable[[Valid, Path, Path], list[str]]
    outputs: Callable[[Path], list[Path]]
    status: int = 2


def _fit_argv(v: Valid, bad: Path, out: Path) -> list[str]:
    return ["fit", "--spec", json.dumps(v.fit_specs["omd"]), "--input", str(bad), "--out", str(out)]


def _compare_argv(slot: str) -> Callable[[Valid, Path, Path], list[str]]:
    def argv(v: Valid, bad: Path, out: Path) -> list[str]:
        paths = {**v.spec, "traj:omd": v.traj["omd"], "traj:ogd": v.traj["ogd"], slot: bad}
        inputs = [arg for name, path in paths.items() for arg in ("--input", f"{name}={path}")]
        return ["compare", "--spec", json.dumps(v.compare_spec), *inputs, "--out", str(out)]

    return argv


def _plot_argv(role: str) -> Callable[[Valid, Path, Path], list[str]]:
    """Fig. 2's command with the bad file in place of OMD's file of ``role``."""

    def argv(v: Valid, bad: Path, out: Path) -> list[str]:
        files = {
            "trajectories": [v.traj[m] for m in METHODS],
            "spectra": [v.spec[m] for m in METHODS],
            "compare": [v.comparison],
        }
        files[role][0] = bad
        inputs = [arg for name, paths in files.items() for path in paths for arg in ("--input", f"{name}={path}")]
        return ["plot", "fig2_omd_ogd_bm", *inputs, "--out-prefix", str(out)]

    return argv


def _train_argv(spec: dict[str, Any], name: str) -> Callable[[Valid, Path, Path], list[str]]:
    def argv(v: Valid, bad: Path, out: Path) -> list[str]:
        return ["train", "--spec", json.dumps(spec), "--input", f"{name}={bad}", "--out", str(out)]

    return argv


def _distances_argv(v: Valid, bad: Path, out: Path) -> list[str]:
    spec = _spec("distances", "e3", {"groups": ["window"]}, {"s0": "0123456789abcdef"})
    return ["distances", "--spec", json.dumps(spec), "--input", f"s0={bad}", "--out", str(out)]


def _figure_files(prefix: Path) -> list[Path]:
    return [prefix.with_name(f"{prefix.name}.{ext}") for ext in ("pdf", "png", "json")]


SLOTS: dict[str, Slot] = {
    "fit": Slot("fit", "hdf5", ".h5", lambda v: v.traj["omd"], lambda v: v.spec["omd"], _fit_argv,
                lambda out: [out]),
    "compare": Slot("compare", "hdf5", ".h5", lambda v: v.spec["omd"], lambda v: v.traj["omd"], _compare_argv("omd"),
                    lambda out: [out]),
    "compare-traj": Slot("compare", "hdf5", ".h5", lambda v: v.traj["omd"], lambda v: v.spec["omd"],
                         _compare_argv("traj:omd"), lambda out: [out]),
    "plot-traj": Slot("plot", "hdf5", ".h5", lambda v: v.traj["omd"], lambda v: v.spec["omd"],
                      _plot_argv("trajectories"), _figure_files),
    "plot-spec": Slot("plot", "hdf5", ".h5", lambda v: v.spec["omd"], lambda v: v.traj["omd"],
                      _plot_argv("spectra"), _figure_files),
    "plot-compare": Slot("plot", "json", ".json", lambda v: v.comparison, lambda v: v.spec["omd"],
                         _plot_argv("compare"), _figure_files),
    # inspect reads both equivdyn formats, so "the other format" is no bad input for it.
    "inspect": Slot("inspect", "hdf5", ".h5", lambda v: v.traj["omd"], None,
                    lambda v, bad, out: ["inspect", str(bad)], lambda out: [], status=1),
    "distances": Slot("distances", "hdf5", ".h5", lambda v: v.spec["omd"], lambda v: v.traj["omd"],
                      _distances_argv, lambda out: [out]),
    "data-mnist": Slot("data", "npz", ".npz", lambda v: MNIST, lambda v: v.traj["omd"],
                       lambda v, bad, out: ["data", "mnist", "--source", str(bad), "--out", str(out)],
                       lambda out: [out]),
    "train-e2": Slot("train", "npz", ".npz", lambda v: v.mnist, lambda v: v.traj["omd"],
                     _train_argv(E2_SPEC, "mnist"), lambda out: [out]),
    "train-e3": Slot("train", "npz", ".npz", lambda v: v.mnist, lambda v: v.traj["omd"],
                     _train_argv(E3_SPEC, "data"), lambda out: [out]),
}

CASES = [
    pytest.param(slot, kind, id=f"{slot}-{kind}")
    for slot, s in SLOTS.items()
    for kind in PROBLEMS[s.fmt]
    if not (kind == "other-format" and s.other is None)
]


def _out_path(tmp_path: Path, slot: Slot) -> Path:
    names = {"plot": "figure", "compare": "compare.json", "distances": "distances.json", "data": "mnist.npz"}
    return tmp_path / "out" / names.get(slot.command, "result.h5")


def _dir_listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("slot_name", [name for name in SLOTS if name != "distances"])
def test_the_valid_file_in_each_slot_is_accepted(valid: Valid, tmp_path: Path, slot_name: str) -> None:
    """The control: with the file the bad ones are made from, each command succeeds.

    (``distances`` needs spectra of windows, which the E1 fits do not have.)"""
    slot = SLOTS[slot_name]
    out = _out_path(tmp_path, slot)
    assert main(slot.argv(valid, slot.good(valid), out)) == 0
    for path in slot.outputs(out):
        assert path.stat().st_size > 0


def _bad_file(valid: Valid, tmp_path: Path, slot: Slot, kind: str) -> Path:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    other = slot.other(valid) if slot.other is not None else None
    return make_bad(kind, bad_dir, slot.suffix, slot.good(valid), other)


#: A progress record of the ``logging`` set up by ``equivdyn.cli.main`` (not part of the error).
PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO) ")


def _check_message(slot: Slot, kind: str, bad: Path, stderr: str) -> None:
    """One line besides progress records: the command's error prefix, the file and the problem."""
    lines = [line for line in stderr.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert len(lines) == 1, stderr
    prefix = "INVALID " if slot.command == "inspect" else f"equivdyn {slot.command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert str(bad) in lines[0]
    assert re.search(PROBLEMS[slot.fmt][kind], lines[0]), lines[0]


@pytest.mark.parametrize(("slot_name", "kind"), CASES)
def test_bad_input_file(valid: Valid, tmp_path: Path, capsys: pytest.CaptureFixture[str], slot_name: str,
                        kind: str) -> None:
    """In-process: ``main`` must return the status itself (any other exception would reach the
    user as a traceback), print one line, and write nothing."""
    slot = SLOTS[slot_name]
    bad = _bad_file(valid, tmp_path, slot, kind)
    out = _out_path(tmp_path, slot)
    argv = slot.argv(valid, bad, out)

    capsys.readouterr()
    assert main(argv) == slot.status
    captured = capsys.readouterr()
    assert captured.out == ""
    _check_message(slot, kind, bad, captured.err)
    assert _dir_listing(out.parent) == [], "no output and no temporary file may be left"

    # with previous outputs in place, they stay byte-identical
    previous = {}
    for i, path in enumerate(slot.outputs(out)):
        path.parent.mkdir(parents=True, exist_ok=True)
        previous[path] = f"previous result {i}\n".encode()
        path.write_bytes(previous[path])
    listing = _dir_listing(out.parent)
    assert main(argv) == slot.status
    _check_message(slot, kind, bad, capsys.readouterr().err)
    for path, content in previous.items():
        assert path.read_bytes() == content
    assert _dir_listing(out.parent) == listing


@pytest.mark.parametrize("kind", ["truncated", "no-header"])
@pytest.mark.parametrize("slot_name", sorted(SLOTS))
def test_console_script_reports_a_bad_file_without_traceback(valid: Valid, tmp_path: Path, slot_name: str,
                                                             kind: str) -> None:
    """The same through the installed ``equivdyn`` script, for two kinds per slot (each call
    starts a Python process: the full matrix runs in-process above)."""
    slot = SLOTS[slot_name]
    bad = _bad_file(valid, tmp_path, slot, kind)
    out = _out_path(tmp_path, slot)
    proc = subprocess.run([EXE, *slot.argv(valid, bad, out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == slot.status, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stdout == ""
    _check_message(slot, kind, bad, proc.stderr)
    assert _dir_listing(out.parent) == []


# ----------------------------------------------------------------------------- non-finite numbers

DIVERGING = {
    # SGD at lr 1e6 overflows the output weights within a few steps.
    "e2": ({**E2_SPEC, "params": {**E2_SPEC["params"], "lr": 1e6}}, {"mnist": "prepared MNIST"}),
    # Decoupled weight decay multiplies every weight by 1 - lr * weight_decay = -99 per step.
    "e4": (_spec("train", "e4", {"setup": "grokking", "lr": 100.0, "p": 13, "d_model": 16, "n_heads": 2,
                                 "d_head": 8, "d_mlp": 32, "n_inits": 3, "n_steps": 30}), {}),
}


@pytest.mark.parametrize("experiment", sorted(DIVERGING))
def test_diverging_training_is_reported_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           experiment: str, prepared_mnist: Path) -> None:
    # E1 cannot diverge: every method is projected onto (or bisects within) a bounded box.
    spec, inputs = DIVERGING[experiment]
    inputs = {name: prepared_mnist for name in inputs}
    out = tmp_path / "out" / "train.h5"
    argv = ["train", "--spec", json.dumps(spec), *(a for n, p in inputs.items() for a in ("--input", f"{n}={p}")),
            "--out", str(out)]
    proc = subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("equivdyn train: error:")]
    assert len(errors) == 1, proc.stderr
    assert re.search(rf"training {experiment} \({content_key(spec)}\): observable '\w+' is not finite "
                     r"\(first at initialisation \d+, step \d+\): the training diverged", errors[0]), errors[0]
    assert _dir_listing(out.parent) == []

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"previous trajectory")
    assert main(argv) == 2
    assert "diverged" in capsys.readouterr().err
    assert out.read_bytes() == b"previous trajectory"
    assert _dir_listing(out.parent) == ["train.h5"]


@pytest.mark.parametrize("exponent", [-1000, -600, 500, 900])
def test_fit_of_huge_or_tiny_but_finite_values_is_exact(valid: Valid, tmp_path: Path, exponent: int) -> None:
    """Scaling a trajectory by a power of two (exact) changes no eigenvalue and no residual.

    Such data once overflowed the Gram matrix or the residual norms (1e160) or underflowed them
    (1e-300), and NaN residuals were written without complaint.
    """
    from equivdyn.store import read_spectra, read_trajectory, write_trajectory

    source = read_trajectory(valid.traj["omd"])
    scaled = tmp_path / "scaled.h5"
    observables = {"state": np.ldexp(source.observables["state"], exponent)}
    assert np.isfinite(observables["state"]).all() and np.all(observables["state"] != 0)
    write_trajectory(scaled, dataclasses.replace(source, observables=observables, attrs={}))
    fit(valid.fit_specs["omd"], scaled, tmp_path / "spec.h5")
    got = read_spectra(tmp_path / "spec.h5").spectra["all"]
    want = read_spectra(valid.spec["omd"]).spectra["all"]
    assert got.eigenvalues.tobytes() == want.eigenvalues.tobytes()
    assert got.residuals.tobytes() == want.residuals.tobytes()
    assert np.isfinite(got.singular_values).all()
    np.testing.assert_array_equal(got.singular_values, np.ldexp(want.singular_values, exponent))
