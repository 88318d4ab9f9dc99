"""Tests of segment spectra (the fit stage's windows and epochs) and the distances stage.

The trajectories are SYNTHETIC linear systems whose map switches halfway, so every
segment's Koopman eigenvalues are known: those of the first map before the switch and
of the second after it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from equivdyn import Trajectory, read_spectra, wasserstein, write_trajectory
from equivdyn._io import read_json_result
from equivdyn.cli import main
from equivdyn.errors import EquivdynError, ParameterError
from equivdyn.stages import STAGE_VERSIONS, distances, fit, segment_names

T, SWITCH = 40, 20  # snapshots x_0 … x_39; x_{t+1} = A1 x_t while t + 1 < SWITCH, else A2 x_t
A1 = 0.95 * np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
A2 = np.diag([0.5, 0.8])
EIG1, EIG2 = np.linalg.eigvals(A1), np.linalg.eigvals(A2)
KOOPMAN = {"n_delays": 0, "rank": 2, "n_components": None}


def switching_trajectory(seed: int, with_epochs: bool = True, key: str = "") -> Trajectory:
    """Three initialisations of the switching system, steps 1 … T; two 'epochs' split at the switch."""
    rng = np.random.default_rng(seed)
    x = np.empty((3, T, 2))
    x[:, 0] = rng.normal(size=(3, 2))
    for t in range(T - 1):
        x[:, t + 1] = x[:, t] @ (A1 if t + 1 < SWITCH else A2).T
    metrics: dict[str, Any] = {"train_loss": np.ones((3, T))}
    metric_steps = {}
    if with_epochs:
        metrics["test_accuracy"] = np.full((3, 2), 0.5)
        metric_steps["test_accuracy"] = np.array([SWITCH, T])
    return Trajectory(
        experiment="e3",
        steps=np.arange(1, T + 1),
        observables={"final_layer": x},
        metrics=metrics,
        metric_steps=metric_steps,
        key=key or f"traj{seed:012d}",
    )


def fit_spec(key: str, **segments: Any) -> dict[str, Any]:
    return {
        "stage": "fit",
        "experiment": "e3",
        "version": STAGE_VERSIONS["fit"],
        "params": {"observable": "final_layer", **KOOPMAN, **segments},
        "inputs": {"trajectory": key},
    }


def fitted(tmp_path: Path, seed: int, with_epochs: bool = True, **segments: Any) -> Path:
    traj = switching_trajectory(seed, with_epochs=with_epochs)
    traj_path = tmp_path / f"traj{seed}.h5"
    write_trajectory(traj_path, traj)
    out = tmp_path / f"spectra{seed}-{len(list(tmp_path.iterdir()))}.h5"
    fit(fit_spec(traj.key, **segments), traj_path, out)
    return out


def assert_same_set(a: np.ndarray, b: np.ndarray) -> None:
    assert wasserstein(a, b) < 1e-8


# ----------------------------------------------------------------------------- fit


def test_windows_recover_each_half(tmp_path: Path) -> None:
    spectra = read_spectra(fitted(tmp_path, 0, windows={"length": 10, "count": 4})).spectra
    assert sorted(spectra) == ["window_00", "window_01", "window_02", "window_03"]
    for i, name in enumerate(sorted(spectra)):
        assert spectra[name].params["segment_steps"] == [10 * i + 1, 10 * i + 10]
        assert spectra[name].params["n_steps"] == 10
        assert_same_set(spectra[name].eigenvalues, EIG1 if i < 2 else EIG2)


def test_windows_need_not_cover_the_trajectory(tmp_path: Path) -> None:
    spectra = read_spectra(fitted(tmp_path, 0, windows={"length": 6, "count": 3})).spectra
    assert [spectra[n].params["segment_steps"] for n in sorted(spectra)] == [[1, 6], [7, 12], [13, 18]]


def test_epochs_and_windows_together(tmp_path: Path) -> None:
    data = read_spectra(fitted(tmp_path, 1, windows={"length": 20, "count": 2}, epochs=True))
    assert sorted(data.spectra) == ["epoch_00", "epoch_01", "window_00", "window_01"]
    for group in ("epoch", "window"):
        assert data.spectra[f"{group}_00"].params["segment_steps"] == [1, 20]
        assert data.spectra[f"{group}_01"].params["segment_steps"] == [21, 40]
        assert_same_set(data.spectra[f"{group}_00"].eigenvalues, EIG1)
        assert_same_set(data.spectra[f"{group}_01"].eigenvalues, EIG2)


def test_without_segments_one_spectrum_all(tmp_path: Path) -> None:
    for segments in ({}, {"epochs": False}):
        spectra = read_spectra(fitted(tmp_path, 2, **segments)).spectra
        assert list(spectra) == ["all"] and "segment_steps" not in spectra["all"].params
        assert spectra["all"].params["n_steps"] == T


def test_segment_names_sort_in_time() -> None:
    assert segment_names("window", 3) == ["window_00", "window_01", "window_02"]
    assert segment_names("window", 100)[-1] == "window_99"
    names = segment_names("epoch", 101)
    assert names[0] == "epoch_000" and names[-1] == "epoch_100" and sorted(names) == names


@pytest.mark.parametrize(
    ("segments", "match"),
    [
        ({"windows": {"length": 10, "count": 5}}, r"windows: 5 windows of 10 steps need 50 steps, but .* records 40"),
        ({"windows": {"length": 10}}, "windows"),
        ({"windows": [10, 4]}, "windows"),
        ({"windows": {"length": 0, "count": 4}}, "windows.length"),
        ({"windows": {"length": 10, "count": "4"}}, "windows.count"),
        ({"epochs": "yes"}, "epochs"),
        ({"windows": {"length": 2, "count": 4}, "n_delays": 3}, r"window_00 \(steps 1-2\)"),
    ],
)
def test_bad_segments_are_named(tmp_path: Path, segments: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        fitted(tmp_path, 0, **segments)
    assert not any(p.name.startswith("spectra") for p in tmp_path.iterdir())


def test_epochs_need_epoch_boundaries(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="epochs: .* no epoch boundaries"):
        fitted(tmp_path, 0, with_epochs=False, epochs=True)


# ----------------------------------------------------------------------------- distances


def distances_spec(files: dict[str, Path], groups: list[str]) -> dict[str, Any]:
    return {
        "stage": "distances",
        "experiment": "e3",
        "version": STAGE_VERSIONS["distances"],
        "params": {"groups": groups},
        "inputs": {name: read_spectra(path).key for name, path in files.items()},
    }


@pytest.fixture
def two_seeds(tmp_path: Path) -> dict[str, Path]:
    return {
        f"seed{s}": fitted(tmp_path, s, windows={"length": 10, "count": 4}, epochs=True) for s in (0, 1)
    }


def test_distance_matrices_have_the_known_structure(tmp_path: Path, two_seeds: dict[str, Path]) -> None:
    out = tmp_path / "distances.json"
    spec = distances_spec(two_seeds, ["window", "epoch"])
    result = distances(spec, two_seeds, out)
    assert read_json_result(out) == result
    assert result["spec"] == spec and set(result["groups"]) == {"window", "epoch"}
    across = wasserstein(EIG1, EIG2)
    window = result["groups"]["window"]
    assert window["names"] == ["window_00", "window_01", "window_02", "window_03"]
    assert window["steps"] == [[1, 10], [11, 20], [21, 30], [31, 40]]
    assert set(window["per_input"]) == {"seed0", "seed1"}
    same_half = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=bool)
    for matrix in [*window["per_input"].values(), window["mean"]]:
        d = np.array(matrix)
        assert d.shape == (4, 4) and np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
        assert np.all(d[same_half] < 1e-8)
        np.testing.assert_allclose(d[~same_half], across, rtol=1e-8)
    assert np.all(np.array(window["sd"]) < 1e-8)
    epoch = result["groups"]["epoch"]
    assert epoch["names"] == ["epoch_00", "epoch_01"] and epoch["steps"] == [[1, 20], [21, 40]]
    np.testing.assert_allclose(np.array(epoch["mean"]), [[0, across], [across, 0]], atol=1e-8)


def test_one_input_and_one_group(tmp_path: Path, two_seeds: dict[str, Path]) -> None:
    one = {"seed1": two_seeds["seed1"]}
    result = distances(distances_spec(one, ["epoch"]), one, tmp_path / "d.json")
    assert list(result["groups"]) == ["epoch"]
    assert result["groups"]["epoch"]["sd"] is None
    assert result["groups"]["epoch"]["mean"] == result["groups"]["epoch"]["per_input"]["seed1"]


def test_inputs_must_agree_on_segments(tmp_path: Path, two_seeds: dict[str, Path]) -> None:
    other = fitted(tmp_path, 2, windows={"length": 8, "count": 4})
    files = {"seed0": two_seeds["seed0"], "seed2": other}
    out = tmp_path / "d.json"
    with pytest.raises(EquivdynError) as info:
        distances(distances_spec(files, ["window"]), files, out)
    assert str(other) in str(info.value) and str(two_seeds["seed0"]) in str(info.value)
    # A file without the group.
    with pytest.raises(EquivdynError, match=f"{other.name}: holds no epoch spectra"):
        distances(distances_spec(files, ["epoch"]), files, out)
    assert not out.exists()


def test_distances_refuses_bad_specs(tmp_path: Path, two_seeds: dict[str, Path]) -> None:
    out = tmp_path / "d.json"
    for groups in ([], ["windows"], ["window", "window"], "window"):
        spec = distances_spec(two_seeds, ["window"])
        spec["params"]["groups"] = groups
        with pytest.raises(ParameterError, match="groups"):
            distances(spec, two_seeds, out)
    spec = distances_spec(two_seeds, ["window"])
    spec["inputs"]["seed0"] = "0" * 16
    with pytest.raises(EquivdynError, match="0000000000000000"):
        distances(spec, two_seeds, out)
    with pytest.raises(ParameterError, match="inputs"):
        distances(distances_spec(two_seeds, ["window"]), {"seed0": two_seeds["seed0"]}, out)
    with pytest.raises(ParameterError, match="stage"):
        distances({**distances_spec(two_seeds, ["window"]), "stage": "compare"}, two_seeds, out)
    assert not out.exists()


def test_cli_distances(tmp_path: Path, two_seeds: dict[str, Path]) -> None:
    out = tmp_path / "cli.json"
    spec = distances_spec(two_seeds, ["window"])
    args = ["distances", "--spec", json.dumps(spec), "--out", str(out)]
    for name, path in two_seeds.items():
        args += ["--input", f"{name}={path}"]
    assert main(args) == 0
    assert read_json_result(out) == distances(spec, two_seeds, tmp_path / "direct.json")
    bad = tmp_path / "bad.json"
    only_one = ["--input", f"seed0={two_seeds['seed0']}"]
    assert main(["distances", "--spec", json.dumps(spec), *only_one, "--out", str(bad)]) == 2
    assert not bad.exists()
