"""The E3 figures (Fig. 4 and its per-epoch appendix figure) on small hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from equivdyn import content_key
from equivdyn._io import write_json_atomic
from equivdyn.data import cifar10
from equivdyn.data.mnist import DATASET_KEY as MNIST_KEY
from equivdyn.errors import EquivdynError
from equivdyn.experiments.e3.results import (
    early_vs_late,
    load,
    log10_off_diagonal,
    to_last,
)
from equivdyn.figures import plot
from equivdyn.figures._common import format_distance
from equivdyn.store import Trajectory, write_trajectory

from .figure_checks import assert_shown, capture, check_readable


def test_log10_off_diagonal_blanks_the_diagonal_and_zeros() -> None:
    m = np.array([[0.0, 10.0, 0.0], [10.0, 0.0, 100.0], [0.0, 100.0, 0.0]])
    out = log10_off_diagonal(m)
    assert np.isnan(np.diag(out)).all()
    assert out[0, 1] == pytest.approx(1.0) and out[1, 2] == pytest.approx(2.0)
    assert np.isnan(out[0, 2])


def test_to_last_summarises_the_last_column_over_seeds() -> None:
    per_seed = np.zeros((2, 3, 3))
    per_seed[0, :, 2] = [4.0, 2.0, 0.0]
    per_seed[1, :, 2] = [6.0, 2.0, 0.0]
    out = to_last(per_seed)
    assert out["mean"] == [5.0, 2.0, 0.0]
    assert out["min"] == [4.0, 2.0, 0.0] and out["max"] == [6.0, 2.0, 0.0]
    assert out["sd"] == pytest.approx([np.sqrt(2.0), 0.0, 0.0])
    assert to_last(per_seed[:1])["sd"] is None


def _line(positions: list[float]) -> np.ndarray:
    """Distance matrix of segments placed at ``positions`` on a line."""
    x = np.asarray(positions, dtype=float)
    return np.abs(x[:, None] - x[None, :])


def _chain(gaps: list[float]) -> np.ndarray:
    """Distance matrix of segments on a line, consecutive ones ``gaps`` apart."""
    return _line(np.concatenate([[0.0], np.cumsum(gaps)]).tolist())


def test_early_vs_late_uses_the_second_half_as_late_windows() -> None:
    # Six windows: a large jump early, small steps late.
    out = early_vs_late(_chain([5.0, 1.0, 0.1, 0.2, 0.3]))
    assert out["late_windows"] == [3, 4, 5]
    assert out["median_consecutive_late"] == pytest.approx(0.25)  # median of 0.2 and 0.3
    assert out["first_to_last"] == pytest.approx(6.6)
    assert out["ratio"] == pytest.approx(6.6 / 0.25)
    assert out["early_distinct"] is True
    # The last window is back where the first was: the early phase is not distinct.
    out = early_vs_late(_line([0.0, 3.0, 6.0, 3.0, 0.0, 0.5]))
    assert out["median_consecutive_late"] == pytest.approx(1.75)  # median of 3 and 0.5
    assert out["early_distinct"] is False


def test_early_vs_late_needs_three_windows() -> None:
    out = early_vs_late(_chain([1.0]))
    assert out["late_windows"] == [1]
    assert out["median_consecutive_late"] is None and out["early_distinct"] is None
    assert out["first_to_last"] == 1.0


# ---------------------------------------------------------------- whole figures


def _trajectory(path: Path, network: str, seed: int, data_key: str, n_inits: int, n_steps: int, n_epochs: int) -> str:
    """Write a hand-made E3 trajectory file; return its key."""
    rng = np.random.default_rng(seed)
    spec = {
        "stage": "train",
        "experiment": "e3",
        "version": 1,
        "params": {"model": network, "seed": seed, "n_inits": n_inits},
        "inputs": {"data": data_key},
    }
    per_epoch = n_steps // n_epochs
    traj = Trajectory(
        experiment="e3",
        steps=np.arange(1, n_steps + 1),
        observables={"final_layer": rng.normal(size=(n_inits, n_steps, 5))},
        metrics={
            "train_loss": 2.3 * np.exp(-np.arange(n_steps) / n_steps) + 0.01 * rng.random((n_inits, n_steps)),
            "test_accuracy": rng.random((n_inits, n_epochs)),
            "test_loss": rng.random((n_inits, n_epochs)),
        },
        metric_steps={name: per_epoch * np.arange(1, n_epochs + 1) for name in ("test_accuracy", "test_loss")},
        params=spec,
        key=content_key(spec),
    )
    write_trajectory(path, traj)
    return traj.key


def _group(names: list[str], steps: list[list[int]], seeds: list[int], network: str, rng: np.random.Generator) -> dict:
    per_input = {}
    for s in seeds:
        m = _chain(list(rng.uniform(0.1, 1.0, len(names) - 1)))
        per_input[f"{network}_s{s}"] = m.tolist()
    stack = np.array(list(per_input.values()))
    return {
        "names": names,
        "steps": steps,
        "per_input": per_input,
        "mean": stack.mean(axis=0).tolist(),
        "sd": stack.std(axis=0, ddof=1).tolist(),
    }


def _verdict(p_value: float, n_seeds: int) -> dict:
    """A hand-made verdict (the fields of ``Verdict.to_dict`` that the figures read)."""
    return {"p_value": p_value, "alpha": 0.05, "non_conjugate": p_value < 0.05,
            "inconclusive": n_seeds < 4, "n_seeds": [n_seeds, n_seeds]}


def _distances(path: Path, network: str, runs: dict[int, str], n_windows: int, length: int, n_epochs: int,
               per_epoch: int) -> None:
    """A hand-made distances file of ``network``'s runs (seed -> trajectory key)."""
    seeds = sorted(runs)
    rng = np.random.default_rng(7)
    spec = {
        "stage": "distances",
        "experiment": "e3",
        "version": 1,
        "params": {"groups": ["window", "epoch"]},
        "inputs": {
            **{f"{network}_s{s}": f"{s:016x}" for s in seeds},
            **{f"traj:{network}_s{s}": key for s, key in runs.items()},
        },
    }
    windows = _group([f"window_{i:02d}" for i in range(n_windows)],
                     [[1 + i * length, (i + 1) * length] for i in range(n_windows)], seeds, network, rng)
    epochs = _group([f"epoch_{i:02d}" for i in range(n_epochs)],
                    [[1 + i * per_epoch, (i + 1) * per_epoch] for i in range(n_epochs)], seeds, network, rng)
    # LeNet's windows differ (p = 0.002); its epochs and ResNet-20 have no verdicts (files
    # written before the verdicts, or with one seed): the figures say so.
    verdicts = {f"window_00|window_{n_windows - 1:02d}": _verdict(0.002, 5)} if network == "lenet" else {}
    write_json_atomic(path, {"key": content_key(spec), "spec": spec,
                             "groups": {"window": windows, "epoch": epochs}, "verdicts": verdicts})


@pytest.fixture
def e3_inputs(tmp_path: Path) -> dict[str, list[Path]]:
    inputs: dict[str, list[Path]] = {"trajectories": [], "distances": []}
    for network, data_key, n_inits in (("lenet", MNIST_KEY, 3), ("resnet20", cifar10.SYNTHETIC_KEY, 2)):
        runs = {}
        for s in (0, 1):
            path = tmp_path / f"traj_{network}_s{s}.h5"
            runs[s] = _trajectory(path, network, s, data_key, n_inits, n_steps=24, n_epochs=2)
            inputs["trajectories"].append(path)
        path = tmp_path / f"distances_{network}.json"
        _distances(path, network, runs, n_windows=5, length=4, n_epochs=2, per_epoch=12)
        inputs["distances"].append(path)
    return inputs


def _without(inputs: dict[str, list[Path]], word: str) -> dict[str, list[Path]]:
    """``inputs`` without the files whose name holds ``word``."""
    return {role: [p for p in paths if word not in p.name] for role, paths in inputs.items()}


def test_fig4_numbers_and_synthetic_label(e3_inputs: dict[str, list[Path]], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = tmp_path / "out" / "fig4"
    prefix.parent.mkdir()
    with capture(monkeypatch, "fig4_cnn_early") as saved:
        plot("fig4_cnn_early", e3_inputs, prefix)
    numbers = json.loads(prefix.with_suffix(".json").read_text())
    # Readable at the report's size; each network's distances and verdict inside the axes.
    (fig,) = saved
    check_readable(fig)
    for network in ("lenet", "resnet20"):
        summary = numbers[network]["early_vs_late"]
        assert_shown(fig, format_distance(summary["first_to_last"]), format_distance(summary["median_consecutive_late"]))
    assert_shown(fig, "not conjugate (p=0.002)", "none (needs at least 2 seeds per setup)")
    assert numbers["networks"] == ["lenet", "resnet20"]
    assert numbers["synthetic_data"] == {"lenet": False, "resnet20": True}
    for network in ("lenet", "resnet20"):
        panel = numbers[network]
        assert panel["window_steps"] == [[1, 4], [5, 8], [9, 12], [13, 16], [17, 20]]
        assert np.array(panel["distances"]).shape == (5, 5)
        assert np.array(panel["per_seed"]).shape == (2, 5, 5)
        assert len(panel["to_last"]["mean"]) == 5 and panel["to_last"]["mean"][-1] == 0
        assert panel["early_vs_late"]["late_windows"] == [2, 3, 4]
        assert panel["train_loss"]["steps"] == list(range(1, 21))  # up to the last window's end
    assert numbers["lenet"]["verdicts"]["window_00|window_04"]["p_value"] == 0.002
    assert "LeNet on MNIST: windows at steps 1-4 vs 17-20: verdict: not conjugate (p=0.002)" in numbers["title"]
    assert numbers["resnet20"]["verdicts"] == {"window_00|window_04": None}
    assert "verdict: none (needs at least 2 seeds per setup)" in numbers["title"]
    assert set(numbers["keys"]) == {p.stem for paths in e3_inputs.values() for p in paths}
    assert (tmp_path / "out" / "fig4.png").stat().st_size > 0
    # The figure's text says which panels come from the synthetic stand-in.
    networks, _ = load(e3_inputs)
    assert "SYNTHETIC DATA" in networks["resnet20"].label()
    assert "SYNTHETIC" not in networks["lenet"].label()


def test_figS_cnn_epochs_with_one_network(e3_inputs: dict[str, list[Path]], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    only_lenet = _without(e3_inputs, "resnet20")
    prefix = tmp_path / "figS"
    with capture(monkeypatch, "figS_cnn_epochs") as saved:
        plot("figS_cnn_epochs", only_lenet, prefix)
    numbers = json.loads(prefix.with_suffix(".json").read_text())
    (fig,) = saved
    check_readable(fig)
    assert_shown(fig, numbers["lenet"]["verdict_text"]["epoch_00|epoch_01"])  # in the panel, not only the title
    assert numbers["networks"] == ["lenet"] and "resnet20" not in numbers
    assert numbers["synthetic_data"] == {"lenet": False}
    assert numbers["lenet"]["epoch_steps"] == [[1, 12], [13, 24]]
    assert np.array(numbers["lenet"]["per_seed"]).shape == (2, 2, 2)
    assert len(numbers["lenet"]["test_accuracy"]) == 2
    assert numbers["lenet"]["verdicts"] == {"epoch_00|epoch_01": None}
    assert "epochs at steps 1-12 vs 13-24: verdict: none" in numbers["title"]


def test_inputs_that_do_not_fit_are_named(e3_inputs: dict[str, list[Path]], tmp_path: Path) -> None:
    vgg = tmp_path / "traj_vgg_s0.h5"
    _trajectory(vgg, "vgg", 0, MNIST_KEY, 2, n_steps=24, n_epochs=2)
    with pytest.raises(EquivdynError, match="vgg"):
        plot("fig4_cnn_early", {**e3_inputs, "trajectories": [*e3_inputs["trajectories"], vgg]}, tmp_path / "x")
    with pytest.raises(EquivdynError, match="distances of lenet"):
        plot("fig4_cnn_early", _without(e3_inputs, "traj_lenet_s1"), tmp_path / "x")
    with pytest.raises(EquivdynError, match="two files have"):
        plot("fig4_cnn_early", {**e3_inputs, "trajectories": e3_inputs["trajectories"] * 2}, tmp_path / "x")
    not_distances = tmp_path / "not.json"
    write_json_atomic(not_distances, {"key": "0" * 16})
    with pytest.raises(EquivdynError, match="not a distances file"):
        plot("fig4_cnn_early", {**e3_inputs, "distances": [not_distances]}, tmp_path / "x")
