"""The calibrated verdicts of the compare and distances stages: trajectory inputs, pseudo-seeds.

The trajectories are SYNTHETIC: noisy linear systems (seeded), small enough that each
verdict takes a fraction of a second.  Each test checks that the stage hands
:func:`equivdyn.verdict.compare_runs` exactly the runs its spec describes, by comparing
with a direct call on the same arrays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from equivdyn import Trajectory, read_spectra, read_trajectory, write_trajectory
from equivdyn._io import read_json_result
from equivdyn.cli import main
from equivdyn.errors import EquivdynError, ParameterError
from equivdyn.stages import STAGE_VERSIONS, compare, distances, fit
from equivdyn.verdict import compare_runs

T = 30
DECAY = {"slow": 0.97, "fast": 0.80}


def linear_runs(setup: str, seed: int, n_inits: int, n_obs: int = 3) -> np.ndarray:
    """[n_inits, T, n_obs] runs of x_{t+1} = A x_t + noise, A a rotation scaled by the setup's decay."""
    rng = np.random.default_rng([seed, n_inits, n_obs, len(setup)])
    a = DECAY[setup] * np.linalg.qr(rng.normal(size=(n_obs, n_obs)))[0]
    x = np.empty((n_inits, T, n_obs))
    x[:, 0] = rng.normal(size=(n_inits, n_obs))
    for t in range(T - 1):
        x[:, t + 1] = x[:, t] @ a.T + 1e-3 * rng.normal(size=(n_inits, n_obs))
    return x


def write_runs(path: Path, data: np.ndarray, key: str) -> Path:
    steps = np.arange(1, data.shape[1] + 1)
    metrics = {"train_loss": np.ones(data.shape[:2]), "test_accuracy": np.full((data.shape[0], 2), 0.5)}
    write_trajectory(
        path,
        Trajectory(
            experiment="e1",
            steps=steps,
            observables={"state": data},
            metrics=metrics,
            metric_steps={"test_accuracy": np.array([T // 2, T])},
            key=key,
        ),
    )
    return path


def compare_spec(inputs: dict[str, str], verdicts: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    return {
        "stage": "compare",
        "experiment": "e1",
        "version": STAGE_VERSIONS["compare"],
        "params": {"pairs": [], "n_shuffles": 10, "seed": seed, "verdicts": verdicts},
        "inputs": inputs,
    }


def verdict(name: str, a: list[str], b: list[str], split: int | None) -> dict[str, Any]:
    return {"name": name, "a": a, "b": b, "observable": "state", "split": split}


@pytest.fixture
def one_file_per_setup(tmp_path: Path) -> dict[str, Path]:
    """One trajectory file per setup with 12 initialisations (as E1 has one file per method)."""
    return {
        f"traj:{setup}": write_runs(tmp_path / f"{setup}.h5", linear_runs(setup, 0, 12), f"{setup:0>16}")
        for setup in DECAY
    }


def keys_of(files: dict[str, Path]) -> dict[str, str]:
    return {name: read_trajectory(path, observables=False).key for name, path in files.items()}


def test_split_cuts_each_file_into_consecutive_pseudo_seeds(tmp_path: Path, one_file_per_setup: dict[str, Path]) -> None:
    spec = compare_spec(keys_of(one_file_per_setup), [verdict("slow|fast", ["traj:slow"], ["traj:fast"], split=4)], 3)
    out = tmp_path / "compare.json"
    result = compare(spec, one_file_per_setup, out)
    assert read_json_result(out) == result
    (name,) = result["verdicts"]
    got = result["verdicts"][name]
    # Four groups of three consecutive initialisations per side, as compare_runs gets them directly.
    groups = {s: list(read_trajectory(one_file_per_setup[f"traj:{s}"]).observables["state"].reshape(4, 3, T, 3))
              for s in DECAY}
    assert got == compare_runs(groups["slow"], groups["fast"], alpha=0.05, seed=3).to_dict()
    assert got["n_seeds"] == [4, 4] and 0 <= got["p_value"] <= 1 and got["alpha"] == 0.05
    # Different decays: the verdict finds the difference (4 vs 4 pseudo-seeds reach p < 0.05).
    assert got["non_conjugate"] and not got["inconclusive"]
    assert result["pairs"] == {} and result["permutation_tests"] == {}


def test_seeds_as_files_are_read_by_compare_runs(tmp_path: Path) -> None:
    files = {
        f"traj:{setup}_s{s}": write_runs(tmp_path / f"{setup}{s}.h5", linear_runs(setup, s, 3), f"{setup[0]}{s:0>15}")
        for setup in ("slow",)
        for s in range(4)
    }
    spec = compare_spec(keys_of(files), [verdict("same", [f"traj:slow_s{s}" for s in (0, 1)],
                                                 [f"traj:slow_s{s}" for s in (2, 3)], split=None)])
    got = compare(spec, files, tmp_path / "c.json")["verdicts"]["same"]
    paths = [str(files[f"traj:slow_s{s}"]) for s in range(4)]
    assert got == compare_runs(paths[:2], paths[2:], observable="state").to_dict()
    assert got["n_seeds"] == [2, 2] and got["inconclusive"]  # 2 vs 2 seeds cannot reach p < 0.05


def test_setups_with_different_numbers_of_observables_are_reduced_alike(tmp_path: Path) -> None:
    files = {}
    for setup, n_obs in (("slow", 12), ("fast", 20)):
        for s in range(2):
            files[f"traj:{setup}_s{s}"] = write_runs(
                tmp_path / f"{setup}{s}.h5", linear_runs(setup, s, 3, n_obs), f"{setup[0]}{s:0>15}"
            )
    spec = compare_spec(keys_of(files), [verdict("slow|fast", ["traj:slow_s0", "traj:slow_s1"],
                                                 ["traj:fast_s0", "traj:fast_s1"], split=None)])
    got = compare(spec, files, tmp_path / "c.json")["verdicts"]["slow|fast"]
    assert got["settings"]["n_observables"] == [12, 20]
    assert got["settings"]["n_components"] == 10
    assert got["n_seeds"] == [2, 2] and 0 <= got["p_value"] <= 1


def test_a_trajectory_input_with_the_wrong_key_is_named(tmp_path: Path, one_file_per_setup: dict[str, Path]) -> None:
    spec = compare_spec(keys_of(one_file_per_setup), [verdict("v", ["traj:slow"], ["traj:fast"], split=2)])
    swapped = {"traj:slow": one_file_per_setup["traj:fast"], "traj:fast": one_file_per_setup["traj:slow"]}
    out = tmp_path / "c.json"
    with pytest.raises(EquivdynError) as info:
        compare(spec, swapped, out)
    message = str(info.value)
    assert str(one_file_per_setup["traj:fast"]) in message or str(one_file_per_setup["traj:slow"]) in message
    assert "key" in message and spec["inputs"]["traj:slow"] in message
    assert not out.exists()
    # Through the CLI: one line, exit status 2, no output.
    args = ["compare", "--spec", json.dumps(spec), "--out", str(out)]
    for name, path in swapped.items():
        args += ["--input", f"{name}={path}"]
    assert main(args) == 2 and not out.exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"a": ["slow"]}, r"verdicts.v.a: 'slow' is not a trajectory input \(those are named traj:<name>"),
        ({"b": ["traj:medium"]}, r"verdicts.v.b: 'traj:medium' is not a trajectory input"),
        ({"a": []}, r"verdicts.v.a: must be a non-empty list"),
        ({"split": 5}, r"verdicts.v.split: .*slow.h5 holds 12 initialisations, which cannot be cut into 5 equal groups"),
        ({"split": 1}, r"verdicts.v.split must be >= 2"),
        ({"a": ["traj:slow", "traj:fast"]}, r"verdicts.v.a: with split, each side is a single trajectory"),
        ({"observable": "weights"}, r"observable: .* has no observable 'weights'"),
        ({"colour": "red"}, r"verdicts: each verdict must be an object with the fields name, a, b, observable, split"),
    ],
)
def test_bad_verdicts_are_named(
    tmp_path: Path, one_file_per_setup: dict[str, Path], change: dict[str, Any], match: str
) -> None:
    spec = compare_spec(keys_of(one_file_per_setup), [{**verdict("v", ["traj:slow"], ["traj:fast"], 4), **change}])
    out = tmp_path / "c.json"
    with pytest.raises(EquivdynError, match=match):
        compare(spec, one_file_per_setup, out)
    assert not out.exists()


def test_every_named_trajectory_input_must_be_given(tmp_path: Path, one_file_per_setup: dict[str, Path]) -> None:
    spec = compare_spec(keys_of(one_file_per_setup), [])
    with pytest.raises(ParameterError, match="inputs: the spec names inputs"):
        compare(spec, {"traj:slow": one_file_per_setup["traj:slow"]}, tmp_path / "c.json")


# ----------------------------------------------------------------------------- distances


def test_distances_verdict_compares_segments_across_seeds(tmp_path: Path) -> None:
    """First vs last window of each seed, cut by the windows' steps from the trajectories."""
    trajectories, spectra = {}, {}
    for s in range(2):
        traj = write_runs(tmp_path / f"t{s}.h5", linear_runs("slow", s, 3), f"t{s:0>15}")
        fit_spec = {
            "stage": "fit",
            "experiment": "e3",
            "version": STAGE_VERSIONS["fit"],
            "params": {"observable": "state", "n_delays": 0, "rank": 2, "n_components": None,
                       "windows": {"length": 10, "count": 3}},
            "inputs": {"trajectory": f"t{s:0>15}"},
        }
        spectra[f"net_s{s}"] = tmp_path / f"f{s}.h5"
        fit(fit_spec, traj, spectra[f"net_s{s}"])
        trajectories[f"traj:net_s{s}"] = traj
    names = ["traj:net_s0", "traj:net_s1"]
    spec = {
        "stage": "distances",
        "experiment": "e3",
        "version": STAGE_VERSIONS["distances"],
        "params": {
            "groups": ["window"],
            "seed": 0,
            "verdicts": [{"name": "window_00|window_02", "a": names, "b": names, "observable": "state",
                          "segment_a": "window_00", "segment_b": "window_02"}],
        },
        "inputs": {**{n: read_spectra(p).key for n, p in spectra.items()}, **keys_of(trajectories)},
    }
    inputs = {**spectra, **trajectories}
    result = distances(spec, inputs, tmp_path / "d.json")
    assert set(result["groups"]["window"]["per_input"]) == {"net_s0", "net_s1"}
    data = [read_trajectory(trajectories[n]).observables["state"] for n in names]
    expected = compare_runs([d[:, :10] for d in data], [d[:, 20:30] for d in data], alpha=0.05, seed=0)
    assert result["verdicts"] == {"window_00|window_02": expected.to_dict()}

    spec["params"]["verdicts"][0]["segment_b"] = "window_07"
    with pytest.raises(ParameterError, match=r"segment_b: 'window_07' is not a segment of the spectra"):
        distances(spec, inputs, tmp_path / "d.json")
    del spec["params"]["seed"]
    spec["params"]["verdicts"][0]["segment_b"] = "window_02"
    with pytest.raises(ParameterError, match="seed"):
        distances(spec, inputs, tmp_path / "d.json")
