"""Tests of the HDF5 store (equivdyn.store) and the I/O helpers (equivdyn._io)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from equivdyn import store
from equivdyn._io import KEY_LENGTH, array_digest, atomic_path, canonical_json, content_key, write_json_atomic
from equivdyn.errors import InvalidFileError
from equivdyn.koopman import KoopmanSpectrum
from equivdyn.store import (
    FORMAT_SPECTRUM,
    FORMAT_TRAJECTORY,
    FORMAT_VERSION,
    Trajectory,
    file_format,
    read_spectra,
    read_trajectory,
    summarize,
    write_spectra,
    write_trajectory,
)

# ----------------------------------------------------------------------------- helpers


def make_trajectory(seed: int = 0, key: str = "0123456789abcdef", n_init: int = 3, n_steps: int = 7) -> Trajectory:
    """A trajectory with two observable blocks, a metric at /steps and one with its own steps."""
    rng = np.random.default_rng(seed)
    steps = np.arange(0, 2 * n_steps, 2, dtype=np.int64)
    return Trajectory(
        experiment="e1",
        steps=steps,
        observables={
            "state": rng.standard_normal((n_init, n_steps, 2)),
            "weights": rng.standard_normal((n_init, n_steps, 5)).astype(np.float32),
        },
        metrics={
            "loss": rng.random((n_init, n_steps)),
            "val_loss": rng.random((n_init, 3)),
        },
        metric_steps={"val_loss": np.array([0, 5, 11], dtype=np.int64)},
        params={"method": "omd", "eta": 0.01, "nested": {"ranges": [[0.1, 0.9], [-2.3, -0.1]], "flag": True},
                "name": "ünïcode", "none": None},
        key=key,
    )


def make_spectrum(seed: int, k: int, n_features: int | None) -> KoopmanSpectrum:
    rng = np.random.default_rng(seed)
    eig = rng.standard_normal(k) + 1j * rng.standard_normal(k)
    modes = None
    if n_features is not None:
        modes = rng.standard_normal((n_features, k)) + 1j * rng.standard_normal((n_features, k))
    return KoopmanSpectrum(
        eigenvalues=eig,
        singular_values=np.sort(rng.random(k + 2))[::-1].copy(),
        residuals=rng.random(k),
        modes=modes,
        n_snapshots=10 * k + seed,
        params={"rank": k, "svd": "direct", "seed": seed},
    )


def write_spectrum_file(path: Path, key: str = "fedcba9876543210") -> dict[str, KoopmanSpectrum]:
    spectra = {"all": make_spectrum(1, 4, 6), "window_0": make_spectrum(2, 3, None)}
    write_spectra(path, spectra, experiment="e1", key=key, params={"stage": "fit", "n": 2}, inputs=["aaaa", "bbbb"])
    return spectra


def assert_bit_identical(actual: np.ndarray, expected: np.ndarray) -> None:
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


def part_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".part"))


# ----------------------------------------------------------------------------- trajectories


def test_trajectory_round_trip(tmp_path: Path) -> None:
    traj = make_trajectory(seed=11)
    path = tmp_path / "sub" / "traj.h5"  # the parent directory does not exist yet
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    write_trajectory(path, traj)
    after = dt.datetime.now(dt.timezone.utc)

    back = read_trajectory(path)
    assert back.experiment == "e1"
    assert back.key == traj.key
    assert back.params == traj.params
    assert_bit_identical(back.steps, traj.steps)
    assert set(back.observables) == {"state", "weights"}
    for name, arr in traj.observables.items():
        assert_bit_identical(back.observables[name], arr)
    assert set(back.metrics) == {"loss", "val_loss"}
    for name, arr in traj.metrics.items():
        assert_bit_identical(back.metrics[name], arr)
    # only the metric with its own steps has metric_steps
    assert set(back.metric_steps) == {"val_loss"}
    assert_bit_identical(back.metric_steps["val_loss"], np.array([0, 5, 11], dtype=np.int64))
    assert back.n_initialisations == 3

    created = dt.datetime.fromisoformat(back.attrs["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert before <= created <= after
    versions = back.attrs["versions"]
    assert isinstance(versions, dict)
    assert versions["numpy"] == np.__version__
    assert versions["h5py"] == h5py.__version__


def test_trajectory_attributes_on_disk(tmp_path: Path) -> None:
    traj = make_trajectory(seed=12)
    path = tmp_path / "traj.h5"
    write_trajectory(path, traj)
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format"] == FORMAT_TRAJECTORY
        assert int(h5.attrs["format_version"]) == FORMAT_VERSION
        assert h5.attrs["experiment"] == "e1"
        assert h5.attrs["key"] == traj.key
        assert json.loads(h5.attrs["params"]) == traj.params
        assert h5["steps"].dtype == np.int64
        assert h5["metrics/val_loss_steps"].dtype == np.int64
        assert "loss_steps" not in h5["metrics"]


def test_trajectory_metric_steps_stored_as_int64(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    traj = Trajectory(
        experiment="e1",
        steps=np.arange(4, dtype=np.int32),
        observables={"x": rng.random((2, 4, 1))},
        metrics={"acc": rng.random((2, 2))},
        metric_steps={"acc": np.array([1, 3], dtype=np.int32)},
    )
    write_trajectory(tmp_path / "t.h5", traj)
    back = read_trajectory(tmp_path / "t.h5")
    assert back.steps.dtype == np.int64
    assert back.steps.tolist() == [0, 1, 2, 3]
    assert back.metric_steps["acc"].dtype == np.int64
    assert back.metric_steps["acc"].tolist() == [1, 3]


def test_datasets_are_chunked_and_gzip_compressed(tmp_path: Path) -> None:
    n_init, n_steps, dim = 3, 50, 4
    traj = Trajectory(
        experiment="e1",
        steps=np.arange(n_steps),
        observables={"state": np.zeros((n_init, n_steps, dim)), "w": np.ones((n_init, n_steps, 1))},
        metrics={"loss": np.zeros((n_init, n_steps))},
    )
    path = tmp_path / "traj.h5"
    write_trajectory(path, traj)
    with h5py.File(path, "r") as h5:
        for name, d in (("state", dim), ("w", 1)):
            ds = h5["observables"][name]
            assert ds.chunks is not None
            assert ds.compression == "gzip"
            # one chunk is a time slab of a single initialisation, all observables
            assert ds.chunks[0] == 1
            assert ds.chunks[2] == d
        ds = h5["metrics/loss"]
        assert ds.chunks is not None
        assert ds.compression == "gzip"


def test_compression_shrinks_redundant_data(tmp_path: Path) -> None:
    data = np.zeros((4, 2000, 100))  # 6.4 MB of zeros
    traj = Trajectory(experiment="e1", steps=np.arange(2000), observables={"z": data})
    path = tmp_path / "zeros.h5"
    write_trajectory(path, traj)
    assert path.stat().st_size < data.nbytes / 20
    assert_bit_identical(read_trajectory(path).observables["z"], data)


def test_nan_observables_survive_the_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    obs = rng.random((2, 6, 3))
    obs[1, 4, 2] = np.nan
    obs[0, 0, 0] = np.inf
    traj = Trajectory(experiment="e1", steps=np.arange(6), observables={"x": obs})
    write_trajectory(tmp_path / "t.h5", traj)
    assert_bit_identical(read_trajectory(tmp_path / "t.h5").observables["x"], obs)


# ----------------------------------------------------------------------------- constructor


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"observables": {"state": np.zeros((4, 3))}}, r"'state'.*\[M, T, D\]", id="2d-observable"),
        pytest.param({"observables": {"a": np.zeros((2, 4, 3)), "b": np.zeros((3, 4, 1))}}, r"'b'.*initialisations",
                     id="mismatching-initialisations"),
        pytest.param({"observables": {"a": np.zeros((2, 5, 3))}}, r"'a'.*5 snapshots.*steps has 4", id="wrong-T"),
        pytest.param({"metrics": {"loss": np.zeros((2, 3))}}, r"metric 'loss'", id="metric-wrong-T"),
        pytest.param({"metrics": {"loss": np.zeros(4)}}, r"metric 'loss'", id="metric-1d"),
        pytest.param({"metrics": {"loss": np.zeros((3, 4))}}, r"metric 'loss'", id="metric-wrong-M"),
        pytest.param({"metrics": {"loss": np.zeros((2, 4))}, "metric_steps": {"loss": np.arange(3)}},
                     r"metric 'loss'", id="metric-own-steps-wrong-length"),
        pytest.param({"metric_steps": {"acc": np.arange(3)}}, r"unknown metrics.*acc", id="steps-for-unknown-metric"),
        pytest.param({"metrics": {"acc_steps": np.zeros((2, 4))}}, r"acc_steps", id="metric-name-ends-in-steps"),
        pytest.param({"steps": np.arange(0)}, r"steps", id="empty-steps"),
        pytest.param({"steps": np.zeros((2, 2), dtype=np.int64)}, r"steps", id="2d-steps"),
        pytest.param({"observables": {}}, r"observable", id="no-observables"),
    ],
)
def test_trajectory_rejects_bad_shapes(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"experiment": "e1", "steps": np.arange(4), "observables": {"a": np.zeros((2, 4, 3))}}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Trajectory(**base)


def test_trajectory_accepts_metric_with_own_steps() -> None:
    traj = Trajectory(
        experiment="e1",
        steps=np.arange(4),
        observables={"a": np.zeros((2, 4, 3))},
        metrics={"loss": np.zeros((2, 9))},
        metric_steps={"loss": np.arange(9)},
    )
    assert traj.metrics["loss"].shape == (2, 9)


@pytest.mark.parametrize("shape", [(0, 4, 3), (2, 4, 0)], ids=["no-initialisations", "no-observables"])
def test_constructible_trajectory_is_writable_or_rejected(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    """A Trajectory the constructor accepts must be writable and read back unchanged."""
    try:
        traj = Trajectory(experiment="e1", steps=np.arange(4), observables={"a": np.zeros(shape)})
    except ValueError:
        return  # rejected up front: fine
    path = tmp_path / "t.h5"
    write_trajectory(path, traj)
    assert read_trajectory(path).observables["a"].shape == shape


# ----------------------------------------------------------------------------- spectra


def test_spectra_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "spec.h5"
    spectra = write_spectrum_file(path, key="fedcba9876543210")
    back = read_spectra(path)
    assert back.experiment == "e1"
    assert back.key == "fedcba9876543210"
    assert back.params == {"stage": "fit", "n": 2}
    assert back.inputs == ["aaaa", "bbbb"]
    assert set(back.spectra) == {"all", "window_0"}
    for name, spec in spectra.items():
        got = back.spectra[name]
        assert_bit_identical(got.eigenvalues, spec.eigenvalues.astype(np.complex128))
        assert_bit_identical(got.singular_values, spec.singular_values.astype(np.float64))
        assert_bit_identical(got.residuals, spec.residuals.astype(np.float64))
        assert got.n_snapshots == spec.n_snapshots
        assert isinstance(got.n_snapshots, int)
        assert got.params == spec.params
    assert_bit_identical(back.spectra["all"].modes, spectra["all"].modes)
    assert back.spectra["window_0"].modes is None

    created = dt.datetime.fromisoformat(back.attrs["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert back.attrs["versions"]["numpy"] == np.__version__
    assert back.attrs["versions"]["h5py"] == h5py.__version__

    with h5py.File(path, "r") as h5:
        assert h5.attrs["format"] == FORMAT_SPECTRUM
        modes = h5["spectra/all/modes"]
        assert modes.chunks is not None
        assert modes.compression == "gzip"
        assert "modes" not in h5["spectra/window_0"]


def test_real_eigenvalues_are_stored_complex(tmp_path: Path) -> None:
    spec = KoopmanSpectrum(
        eigenvalues=np.array([0.9, -0.5]), singular_values=np.array([2.0, 1.0]), residuals=np.array([0.0, 0.1]),
        modes=None, n_snapshots=5,
    )
    write_spectra(tmp_path / "s.h5", {"all": spec}, experiment="e1", key="k", params={}, inputs=[])
    back = read_spectra(tmp_path / "s.h5").spectra["all"]
    assert back.eigenvalues.dtype == np.complex128
    np.testing.assert_array_equal(back.eigenvalues, np.array([0.9 + 0j, -0.5 + 0j]))


def test_write_spectra_refuses_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        write_spectra(tmp_path / "s.h5", {}, experiment="e1", key="k", params={}, inputs=[])
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- validation on read


def reseal(h5: h5py.File) -> None:
    """Checksum the datasets an edit added and re-seal the file, as a writer with a bug
    would: the file verifies, so the structural checks behind the checksums are tested."""

    def visit(_: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and store.DATASET_DIGEST not in obj.attrs:
            obj.attrs[store.DATASET_DIGEST] = array_digest(obj[()])

    h5.visititems(visit)
    store._seal(h5)


def _copy_with(tmp_path: Path, src: Path, name: str, edit) -> Path:
    """A copy of ``src`` edited by ``edit`` and re-sealed (see :func:`reseal`)."""
    dest = tmp_path / name
    dest.write_bytes(src.read_bytes())
    with h5py.File(dest, "a") as h5:
        edit(h5)
        reseal(h5)
    return dest


def _bad_trajectory_file(tmp_path: Path, case: str) -> Path:
    good = tmp_path / "good_traj.h5"
    write_trajectory(good, make_trajectory(seed=21))
    if case == "missing":
        return tmp_path / "does_not_exist.h5"
    if case == "empty":
        p = tmp_path / "empty.h5"
        p.write_bytes(b"")
        return p
    if case == "truncated":
        p = tmp_path / "truncated.h5"
        data = good.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p
    if case == "random-bytes":
        p = tmp_path / "random.h5"
        p.write_bytes(np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        return p
    if case == "plain-hdf5":
        p = tmp_path / "plain.h5"
        with h5py.File(p, "w") as h5:
            h5.create_dataset("steps", data=np.arange(3))
        return p
    if case == "spectrum-file":
        p = tmp_path / "spectrum.h5"
        write_spectrum_file(p)
        return p
    if case == "format-version-99":
        return _copy_with(tmp_path, good, "v99.h5", lambda h5: h5.attrs.__setitem__("format_version", 99))
    if case == "format-version-not-a-number":
        return _copy_with(tmp_path, good, "vnan.h5", lambda h5: h5.attrs.__setitem__("format_version", "abc"))
    if case == "missing-format-version":
        return _copy_with(tmp_path, good, "nov.h5", lambda h5: h5.attrs.__delitem__("format_version"))
    if case == "missing-steps":
        return _copy_with(tmp_path, good, "nosteps.h5", lambda h5: h5.__delitem__("steps"))
    if case == "missing-observables":
        return _copy_with(tmp_path, good, "noobs.h5", lambda h5: h5.__delitem__("observables"))
    if case == "inconsistent-shapes":
        def shorten_steps(h5: h5py.File) -> None:
            del h5["steps"]
            h5.create_dataset("steps", data=np.arange(5, dtype=np.int64))  # observables have T = 7
        return _copy_with(tmp_path, good, "shapes.h5", shorten_steps)
    if case == "invalid-params-json":
        return _copy_with(tmp_path, good, "params.h5", lambda h5: h5.attrs.__setitem__("params", "{not json"))
    if case == "directory":
        p = tmp_path / "adir.h5"
        p.mkdir()
        return p
    raise AssertionError(case)


TRAJECTORY_CASES = {
    "missing": r"does not exist",
    "empty": r"empty",
    "truncated": r"not a readable HDF5 file",
    "random-bytes": r"not a readable HDF5 file",
    "plain-hdf5": r"not an equivdyn file",
    "spectrum-file": r"expected a 'equivdyn\.trajectory' file, found 'equivdyn\.spectrum'",
    "format-version-99": r"format_version 99 is not supported",
    "format-version-not-a-number": r"format_version",
    "missing-format-version": r"format_version",
    "missing-steps": r"/steps",
    "missing-observables": r"/observables",
    "inconsistent-shapes": r"7 snapshots but steps has 5",
    "invalid-params-json": r"'params' is not valid JSON",
    "directory": r"directory",
}


@pytest.mark.parametrize("case", list(TRAJECTORY_CASES))
def test_read_trajectory_rejects_invalid_files(tmp_path: Path, case: str) -> None:
    path = _bad_trajectory_file(tmp_path, case)
    with pytest.raises(InvalidFileError, match=TRAJECTORY_CASES[case]) as info:
        read_trajectory(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    # the same file is refused by the generic summary as well
    if case != "spectrum-file":
        with pytest.raises(InvalidFileError) as info2:
            summarize(path)
        assert str(path) in str(info2.value)


def _bad_spectrum_file(tmp_path: Path, case: str) -> Path:
    good = tmp_path / "good_spec.h5"
    write_spectrum_file(good)
    if case == "missing":
        return tmp_path / "nope.h5"
    if case == "empty":
        p = tmp_path / "empty.h5"
        p.touch()
        return p
    if case == "truncated":
        p = tmp_path / "truncated.h5"
        data = good.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        return p
    if case == "trajectory-file":
        p = tmp_path / "traj.h5"
        write_trajectory(p, make_trajectory(seed=2))
        return p
    if case == "format-version-99":
        return _copy_with(tmp_path, good, "v99.h5", lambda h5: h5.attrs.__setitem__("format_version", 99))
    if case == "missing-spectra":
        return _copy_with(tmp_path, good, "nospec.h5", lambda h5: h5.__delitem__("spectra"))
    if case == "no-spectrum":
        def empty_group(h5: h5py.File) -> None:
            del h5["spectra"]
            h5.create_group("spectra")
        return _copy_with(tmp_path, good, "nothing.h5", empty_group)
    if case == "missing-eigenvalues":
        return _copy_with(tmp_path, good, "noeig.h5", lambda h5: h5.__delitem__("spectra/all/eigenvalues"))
    if case == "residuals-disagree":
        def short_residuals(h5: h5py.File) -> None:
            del h5["spectra/all/residuals"]
            h5["spectra/all"].create_dataset("residuals", data=np.zeros(2))
        return _copy_with(tmp_path, good, "res.h5", short_residuals)
    if case == "invalid-inputs-json":
        return _copy_with(tmp_path, good, "inputs.h5", lambda h5: h5.attrs.__setitem__("inputs", "[1,"))
    raise AssertionError(case)


SPECTRUM_CASES = {
    "missing": r"does not exist",
    "empty": r"empty",
    "truncated": r"not a readable HDF5 file",
    "trajectory-file": r"expected a 'equivdyn\.spectrum' file, found 'equivdyn\.trajectory'",
    "format-version-99": r"format_version 99",
    "missing-spectra": r"/spectra",
    "no-spectrum": r"no spectrum",
    "missing-eigenvalues": r"eigenvalues",
    "residuals-disagree": r"'all'.*disagree",
    "invalid-inputs-json": r"'inputs' is not valid JSON",
}


@pytest.mark.parametrize("case", list(SPECTRUM_CASES))
def test_read_spectra_rejects_invalid_files(tmp_path: Path, case: str) -> None:
    path = _bad_spectrum_file(tmp_path, case)
    with pytest.raises(InvalidFileError, match=SPECTRUM_CASES[case]) as info:
        read_spectra(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def test_invalid_file_error_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    err = InvalidFileError(tmp_path / "x.h5", "broken")
    assert isinstance(err, ValueError)
    assert str(err) == f"{tmp_path / 'x.h5'}: broken"


# ----------------------------------------------------------------------------- summarize / file_format


def test_file_format(tmp_path: Path) -> None:
    write_trajectory(tmp_path / "t.h5", make_trajectory(seed=1))
    write_spectrum_file(tmp_path / "s.h5")
    assert file_format(tmp_path / "t.h5") == FORMAT_TRAJECTORY
    assert file_format(tmp_path / "s.h5") == FORMAT_SPECTRUM
    with h5py.File(tmp_path / "plain.h5", "w"):
        pass
    with pytest.raises(InvalidFileError, match="not an equivdyn file"):
        file_format(tmp_path / "plain.h5")


def test_summarize_trajectory(tmp_path: Path) -> None:
    traj = make_trajectory(seed=8, key="aaaabbbbccccdddd", n_init=3, n_steps=7)
    path = tmp_path / "t.h5"
    write_trajectory(path, traj)
    s = summarize(path)
    json.dumps(s)  # JSON-ready
    assert s["file"] == str(path)
    assert s["format"] == "equivdyn.trajectory"
    assert s["format_version"] == store.FORMAT_VERSION == 2
    assert s["experiment"] == "e1"
    assert s["key"] == "aaaabbbbccccdddd"
    assert s["params"] == traj.params
    assert s["steps"] == {"count": 7, "first": 0, "last": 12}
    assert s["observables"] == {"state": [3, 7, 2], "weights": [3, 7, 5]}
    assert s["metrics"] == {"loss": [3, 7], "val_loss": [3, 3]}
    assert s["finite"] is True
    assert s["versions"]["numpy"] == np.__version__


def test_summarize_flags_non_finite_trajectory(tmp_path: Path) -> None:
    obs = np.random.default_rng(9).random((2, 4, 1))
    obs[1, 2, 0] = np.nan
    write_trajectory(tmp_path / "t.h5", Trajectory(experiment="e1", steps=np.arange(4), observables={"x": obs}))
    assert summarize(tmp_path / "t.h5")["finite"] is False


def test_summarize_spectrum(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    spectra = write_spectrum_file(path, key="0000111122223333")
    s = summarize(path)
    json.dumps(s)
    assert s["format"] == "equivdyn.spectrum"
    assert s["format_version"] == store.FORMAT_VERSION == 2
    assert s["key"] == "0000111122223333"
    assert s["experiment"] == "e1"
    assert s["inputs"] == ["aaaa", "bbbb"]
    assert s["params"] == {"stage": "fit", "n": 2}
    assert set(s["spectra"]) == {"all", "window_0"}
    for name, spec in spectra.items():
        got = s["spectra"][name]
        assert got["n_eigenvalues"] == spec.eigenvalues.size
        assert got["n_snapshots"] == spec.n_snapshots
        assert got["max_modulus"] == pytest.approx(max(abs(complex(z)) for z in spec.eigenvalues))
        assert got["max_residual"] == pytest.approx(max(spec.residuals.tolist()))


def test_empty_spectrum_is_neither_written_nor_read(tmp_path: Path) -> None:
    empty = KoopmanSpectrum(eigenvalues=np.zeros(0, dtype=complex), singular_values=np.zeros(0),
                            residuals=np.zeros(0), modes=None, n_snapshots=3)
    path = tmp_path / "s.h5"
    with pytest.raises(ValueError, match="hold no eigenvalue"):
        write_spectra(path, {"all": empty}, experiment="e1", key="k", params={}, inputs=[])
    assert not path.exists() and part_files(tmp_path) == []
    # A file emptied behind the writer's back is refused on reading.
    full = KoopmanSpectrum(eigenvalues=np.array([0.5 + 0j]), singular_values=np.ones(1),
                           residuals=np.zeros(1), modes=None, n_snapshots=3)
    write_spectra(path, {"all": full}, experiment="e1", key="k", params={}, inputs=[])
    with h5py.File(path, "a") as h5:
        for name in ("eigenvalues", "residuals"):
            del h5["spectra/all"][name]
            h5["spectra/all"].create_dataset(name, data=np.zeros(0))
        reseal(h5)
    with pytest.raises(InvalidFileError, match="eigenvalues") as info:
        summarize(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_path_success_replaces_target(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    old_umask = os.umask(0o027)
    try:
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent
            assert tmp.name.startswith(".out.txt.") and tmp.name.endswith(".part")
            tmp.write_text("new")
            assert target.read_text() == "old"  # not visible before the block ends
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert part_files(tmp_path) == []
    assert target.stat().st_mode & 0o777 == 0o440  # read-only, within the umask


def test_atomic_path_exception_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            assert tmp.exists()
            raise RuntimeError("boom")
    assert target.read_text() == "previous"
    assert part_files(tmp_path) == []


def test_atomic_path_exception_without_previous_target(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out.txt"
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            raise KeyError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_write_trajectory_failure_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    write_trajectory(path, make_trajectory(seed=1, key="1111111111111111"))
    bad = Trajectory(
        experiment="e1",
        steps=np.arange(4),
        # the second block cannot be stored in HDF5: the write fails after the first block
        observables={"a": np.zeros((2, 4, 3)), "b": np.empty((2, 4, 1), dtype=object)},
        key="2222222222222222",
    )
    with pytest.raises((TypeError, ValueError)):
        write_trajectory(path, bad)
    assert read_trajectory(path).key == "1111111111111111"
    assert part_files(tmp_path) == []


def test_write_trajectory_with_nan_params_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    write_trajectory(path, make_trajectory(seed=1, key="1111111111111111"))
    bad = Trajectory(experiment="e1", steps=np.arange(4), observables={"a": np.zeros((2, 4, 3))},
                     params={"eta": float("nan")})
    with pytest.raises(ValueError):
        write_trajectory(path, bad)
    assert read_trajectory(path).key == "1111111111111111"
    assert part_files(tmp_path) == []


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"b": [1, 2.5], "a": {"z": None}})
    text = path.read_text()
    assert text.endswith("\n")
    body = {"a": {"z": None}, "b": [1, 2.5]}
    assert json.loads(text) == {**body, "sha256": hashlib.sha256(canonical_json(body).encode()).hexdigest()}
    assert text.index('"a"') < text.index('"b"')
    with pytest.raises(ValueError):
        write_json_atomic(path, {"x": float("nan")})
    assert json.loads(path.read_text())["b"] == [1, 2.5]
    assert part_files(tmp_path) == []


_KILL_SCRIPT = """
import sys
import numpy as np
from equivdyn.store import Trajectory, write_trajectory

rng = np.random.default_rng(1234)
obs = rng.random((4, 3000, 2000))  # random float64 compresses slowly
traj = Trajectory(experiment="e1", steps=np.arange(3000), observables={"w": obs}, key="new0000000000000")
print("writing", flush=True)
write_trajectory(sys.argv[1], traj)
print("done", flush=True)
"""


@pytest.mark.parametrize("previous", [True, False], ids=["previous-file", "no-previous-file"])
def test_sigkill_during_write_leaves_no_partial_target(tmp_path: Path, previous: bool) -> None:
    target = tmp_path / "big.h5"
    if previous:
        write_trajectory(target, make_trajectory(seed=3, key="old0000000000000"))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    part = None
    killed_while_writing = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(tmp_path.glob(".big.h5.*.part"))
            try:
                size = parts[0].stat().st_size if parts else 0
            except FileNotFoundError:  # renamed away: the write finished (asserted below)
                size = 0
            # wait until the temporary file exists and holds compressed data, then kill
            if size > 1_000_000:
                part = parts[0]
                os.kill(proc.pid, signal.SIGKILL)
                killed_while_writing = part.exists()
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and part is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert part is not None, "the writer never produced a growing .part file before the timeout"
    assert killed_while_writing
    assert proc.returncode == -signal.SIGKILL, "the writer finished before the kill landed"
    # the kill landed before the rename: the temporary file is still there
    assert part.exists()

    if previous:
        assert read_trajectory(target).key == "old0000000000000"
    else:
        assert not target.exists()
    # no file in the directory is accepted as the new (incomplete) trajectory
    for p in tmp_path.iterdir():
        try:
            got = read_trajectory(p)
        except InvalidFileError as exc:
            assert str(p) in str(exc)
        else:
            assert p == target and got.key == "old0000000000000"

    # writing again to the same path gives a valid file
    write_trajectory(target, make_trajectory(seed=4, key="fresh00000000000"))
    assert read_trajectory(target).key == "fresh00000000000"


# ----------------------------------------------------------------------------- canonical JSON and keys


def test_canonical_json_ignores_key_order() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "s"}}
    b = {"a": {"x": "s", "y": [1, 2]}, "b": 1}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == '{"a":{"x":"s","y":[1,2]},"b":1}'
    assert content_key(a) == content_key(b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_canonical_json_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"params": {"eta": [0.1, bad]}})
    with pytest.raises(ValueError):
        content_key({"eta": bad})


def test_canonical_json_is_ascii_and_round_trips_floats() -> None:
    obj = {"name": "Größe ✓", "x": 0.1 + 0.2, "tiny": 5e-324}
    text = canonical_json(obj)
    assert text.isascii()
    assert json.loads(text) == obj


def test_content_key_matches_sha256_of_canonical_json() -> None:
    spec = {"stage": "train", "experiment": "e1", "version": 1, "params": {"eta": 0.01, "loss": "tan"}, "inputs": {}}
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(text.encode("ascii")).hexdigest()[:16]
    assert content_key(spec) == expected
    assert KEY_LENGTH == 16


def test_content_key_is_deterministic_hex() -> None:
    spec = {"a": [1, 2, {"b": None}], "c": "d"}
    key = content_key(spec)
    assert key == content_key(json.loads(json.dumps(spec)))
    assert len(key) == 16
    assert all(ch in "0123456789abcdef" for ch in key)
    # the same in a fresh interpreter (no hash randomisation or process state involved)
    out = subprocess.run(
        [sys.executable, "-c", "import sys, json; from equivdyn import content_key; "
                               "print(content_key(json.loads(sys.argv[1])))", json.dumps(spec)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert out.stdout.strip() == key


def _leaf_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaf_paths(v, prefix + (k,))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _leaf_paths(v, prefix + (i,))]
    return [prefix]


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return float(np.nextafter(value, np.inf))
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0
    raise AssertionError(value)


def test_content_key_changes_with_any_nested_value() -> None:
    spec = {
        "stage": "train", "experiment": "e1", "version": 1,
        "params": {"eta": 0.01, "flag": False, "ranges": [[0.1, 0.9], [-2.3, -0.1]], "rank": None, "n": 30},
        "inputs": {"trajectory": "0123456789abcdef"},
    }
    base = content_key(spec)
    leaves = _leaf_paths(spec)
    assert len(leaves) == 12
    keys = {base}
    for path in leaves:
        modified = json.loads(json.dumps(spec))
        node = modified
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = _changed(node[path[-1]])
        key = content_key(modified)
        assert key != base, f"changing {path} did not change the key"
        keys.add(key)
    assert len(keys) == len(leaves) + 1
    # renaming a nested key, adding a field, or reordering a list changes it too
    renamed = json.loads(json.dumps(spec))
    renamed["params"]["ETA"] = renamed["params"].pop("eta")
    added = json.loads(json.dumps(spec))
    added["params"]["extra"] = 1
    reordered = json.loads(json.dumps(spec))
    reordered["params"]["ranges"].reverse()
    assert len({base, content_key(renamed), content_key(added), content_key(reordered)}) == 4


def test_read_trajectory_without_observables_keeps_shapes_and_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(41)
    traj = Trajectory(
        experiment="e9",
        steps=np.arange(1, 6),
        observables={"w": rng.standard_normal((3, 5, 7))},
        metrics={"loss": rng.standard_normal((3, 5))},
        params={"a": 1},
        key="k",
    )
    path = tmp_path / "t.h5"
    write_trajectory(path, traj)
    light = read_trajectory(path, observables=False)
    assert light.observables["w"].shape == (3, 5, 7)
    assert np.array_equal(light.metrics["loss"], traj.metrics["loss"])
    assert light.key == "k" and light.params == {"a": 1}
