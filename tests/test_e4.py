"""Tests of E4 (one-layer transformers on modular addition): the fast trainer against the plain recipe.

Everything runs at tiny sizes (p = 13, d_model 16, two heads of 8, d_mlp 32) so that the
whole file takes seconds; the paper's sizes are checked by
``benchmarks/e4_fast_vs_straightforward.py``.  Single-threaded, so that timings do not
depend on what else the machine runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from equivdyn.errors import ParameterError
from equivdyn.experiments.e4 import fast as e4_fast
from equivdyn.experiments.e4 import trainer as e4
from equivdyn.store import read_trajectory, write_trajectory

TINY: dict[str, Any] = {
    "p": 13,
    "d_model": 16,
    "n_heads": 2,
    "d_head": 8,
    "d_mlp": 32,
    "n_inits": 3,
    "n_steps": 20,
    "dtype": "float64",
    "observable_dtype": "float64",
}
#: A tiny problem that the model learns within 100 steps at a larger learning rate.
LEARNABLE: dict[str, Any] = {**TINY, "d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64, "lr": 1e-2,
                             "train_fraction": 0.5, "n_inits": 1}
TOLERANCE = 1e-9


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


# ----------------------------------------------------------------------------- fast vs reference


@pytest.mark.parametrize("setup", e4.SETUPS)
def test_fast_trainer_matches_the_straightforward_recipe(setup: str) -> None:
    params = {**TINY, "setup": setup}
    fast = e4.train_ensemble(params, threads=1)
    reference = e4.train_reference(params, threads=1)
    assert max_difference(fast.observables["mlp_out"], reference.observables["mlp_out"]) <= TOLERANCE
    # The weights move, so the agreement is not that of two untrained copies.
    moved = fast.observables["mlp_out"][:, -1] - fast.observables["mlp_out"][:, 0]
    assert np.abs(moved).max() > 1e4 * TOLERANCE
    for name in ("train_loss", "test_loss", "param_norm"):
        assert max_difference(fast.metrics[name], reference.metrics[name]) <= TOLERANCE, name
    for name in ("train_accuracy", "test_accuracy"):
        np.testing.assert_array_equal(fast.metrics[name], reference.metrics[name], err_msg=name)
    assert fast.params == reference.params == e4.check_params(params)


def test_constrained_setup_keeps_the_initial_norm_and_the_grokking_setup_decays() -> None:
    cfg = e4.E4Config.from_params({**TINY, "setup": "constrained"})
    initial = e4.init_params(cfg, cfg.seed)
    initial_norm = torch.stack([t.pow(2).flatten(1).sum(1) for t in initial.values()]).sum(0).sqrt().numpy()
    for trainer in (e4.train_ensemble, e4.train_reference):
        traj = trainer({**TINY, "setup": "constrained"}, threads=1)
        assert max_difference(traj.metrics["param_norm"], initial_norm[:, None]) <= 1e-10
    # Weight decay 1.0 at lr 1e-3 shrinks every parameter by 0.1 % a step: the norm falls.
    grokking = e4.train_ensemble({**TINY, "setup": "grokking"}, threads=1).metrics["param_norm"]
    assert np.all(np.diff(grokking, axis=1) < 0)


def test_float32_training_agrees_loosely_with_float64() -> None:
    params = {**TINY, "n_inits": 1, "n_steps": 5}
    single = e4.train_ensemble({**params, "dtype": "float32"}, threads=1)
    double = e4.train_ensemble(params, threads=1)
    assert max_difference(single.observables["mlp_out"], double.observables["mlp_out"]) <= 1e-5
    assert max_difference(single.metrics["train_loss"], double.metrics["train_loss"]) <= 1e-5


def test_repeat_runs_are_bit_identical() -> None:
    for setup in e4.SETUPS:
        params = {**TINY, "setup": setup, "seed": 5}
        first, second = e4.train_ensemble(params, threads=1), e4.train_ensemble(params, threads=1)
        assert first.observables["mlp_out"].tobytes() == second.observables["mlp_out"].tobytes()
        for name in first.metrics:
            assert first.metrics[name].tobytes() == second.metrics[name].tobytes(), name


def test_chunking_does_not_change_the_mathematics(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = e4.train_ensemble(TINY, threads=1)
    monkeypatch.setattr(e4_fast, "_CHUNK_ELEMENTS", 1)  # 64 examples per chunk: several chunks per set
    chunked = e4.train_ensemble(TINY, threads=1)
    assert max_difference(whole.observables["mlp_out"], chunked.observables["mlp_out"]) <= 1e-12
    for name in whole.metrics:
        assert max_difference(whole.metrics[name], chunked.metrics[name]) <= 1e-12, name


def test_training_restores_torch_state_and_leaves_the_global_rng_alone() -> None:
    threads, grad_enabled = torch.get_num_threads(), torch.is_grad_enabled()
    rng_state = torch.random.get_rng_state()
    e4.train_ensemble({**TINY, "n_steps": 2})
    e4.train_reference({**TINY, "n_steps": 2, "n_inits": 1})
    e4.train_long({**TINY, "n_inits": 1}, 3, 3)
    assert torch.get_num_threads() == threads
    assert torch.is_grad_enabled() == grad_enabled
    assert torch.equal(torch.random.get_rng_state(), rng_state)


# ----------------------------------------------------------------------------- trajectory and metrics


def test_trajectory_format_and_metric_ranges() -> None:
    params = {**TINY, "observable_dtype": "float32", "n_steps": 6}
    traj = e4.train_ensemble(params, threads=1)
    assert traj.experiment == "e4"
    assert traj.steps.dtype == np.int64 and traj.steps.tolist() == [1, 2, 3, 4, 5, 6]
    weights = traj.observables["mlp_out"]
    assert set(traj.observables) == {"mlp_out"}
    assert weights.shape == (3, 6, 16 * 32) and weights.dtype == np.float32
    assert set(traj.metrics) == set(e4.METRICS) and not traj.metric_steps
    n_train, n_test = int(0.3 * 13**2), 13**2 - int(0.3 * 13**2)
    for name, n in (("train_accuracy", n_train), ("test_accuracy", n_test)):
        acc = traj.metrics[name]
        assert acc.shape == (3, 6) and np.all((acc >= 0) & (acc <= 1))
        assert np.allclose(acc * n, np.rint(acc * n))  # a whole number of examples
    for name in ("train_loss", "test_loss", "param_norm"):
        assert np.all(np.isfinite(traj.metrics[name])) and np.all(traj.metrics[name] > 0), name
    # Chance level: an untrained model's loss is near log(p + 1) (p + 1 logits).
    assert abs(traj.metrics["test_loss"][:, 0].mean() - math.log(14)) < 0.5
    # The first record is the state after one step, not the initial weights.
    cfg = e4.E4Config.from_params(params)
    w_out = e4.init_params(cfg, 0)["W_out"].reshape(3, -1).numpy()
    assert not np.allclose(weights[:, 0], w_out, rtol=0, atol=1e-6)
    assert np.allclose(weights[:, 0], w_out, rtol=0, atol=2e-3)  # Adam moves a weight by ≤ lr


def test_trajectory_survives_a_round_trip_through_hdf5(tmp_path: Path) -> None:
    traj = e4.simulate({**TINY, "n_steps": 3, "observable_dtype": "float32"}, {})
    write_trajectory(tmp_path / "e4.h5", traj)
    back = read_trajectory(tmp_path / "e4.h5")
    assert back.observables["mlp_out"].dtype == np.float32
    np.testing.assert_array_equal(back.observables["mlp_out"], traj.observables["mlp_out"])
    assert back.params == traj.params


def test_grokking_setup_learns_the_training_set_on_a_tiny_problem() -> None:
    traj = e4.train_ensemble({**LEARNABLE, "n_steps": 100}, threads=1)
    accuracy = traj.metrics["train_accuracy"][0]
    assert accuracy[:5].max() < 0.3
    assert accuracy[-10:].min() == 1.0
    assert traj.metrics["train_loss"][0, -1] < 0.1 * traj.metrics["train_loss"][0, 0]


# ----------------------------------------------------------------------------- long runs


def test_log_schedule() -> None:
    steps = e4.log_schedule(20_000, 200)
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 20_000
    assert np.all(np.diff(steps) > 0) and steps.dtype == np.int64
    assert 190 <= steps.size <= 210
    ratios = steps[-50:][1:] / steps[-50:][:-1]
    assert ratios.max() / ratios.min() < 1.05  # geometric at the top end
    assert e4.log_schedule(5, 200).tolist() == [0, 1, 2, 3, 4, 5]


def test_long_run_logs_the_same_states_as_the_ensemble_trainer() -> None:
    params = {k: v for k, v in LEARNABLE.items() if k != "n_steps"}
    long = e4.train_long(params, 40, 12, threads=1)
    steps = long["steps"]
    assert steps[0] == 0 and steps[-1] == 40 and steps.size >= 10
    ensemble = e4.train_ensemble({**params, "n_steps": 40}, threads=1)
    logged = steps[1:] - 1  # index of step s in the ensemble's records
    for name in e4.METRICS:
        np.testing.assert_array_equal(long[name][1:], ensemble.metrics[name][0, logged], err_msg=name)
    # Step 0 is the initial state: chance-level accuracy, the initial norm.
    cfg = e4.E4Config.from_params({**params, "n_inits": 1})
    norm0 = math.sqrt(sum(float(t.pow(2).sum()) for t in e4.init_params(cfg, 0).values()))
    assert long["param_norm"][0] == pytest.approx(norm0, rel=1e-12)


def test_simulate_long_gives_a_valid_trajectory() -> None:
    params = {k: v for k, v in TINY.items() if k not in ("n_inits", "n_steps", "observable_dtype")}
    traj = e4.simulate_long({**params, "setup": "constrained", "n_steps": 30, "n_points": 8}, None)
    assert traj.experiment == "e4"
    assert traj.steps[0] == 0 and traj.steps[-1] == 30
    assert traj.observables["param_norm"].shape == (1, traj.steps.size, 1)
    norm = traj.observables["param_norm"][0, :, 0]
    assert np.allclose(norm, norm[0], rtol=1e-12)  # constrained: the norm never moves
    assert set(traj.metrics) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert traj.params == e4.check_long_params({**params, "setup": "constrained", "n_steps": 30, "n_points": 8})
    with pytest.raises(ParameterError, match="n_inits"):
        e4.simulate_long({"n_inits": 3}, None)


# ----------------------------------------------------------------------------- data and initialisation


def test_data_split_covers_every_pair_once_and_is_deterministic() -> None:
    p = 13
    x_train, y_train, x_test, y_test = e4.make_data(p, 0.3, 0)
    assert x_train.shape == (int(0.3 * p * p), 3) and x_test.shape == (p * p - int(0.3 * p * p), 3)
    assert x_train.dtype == np.int64 and y_train.dtype == np.int64
    pairs_train = {(int(a), int(b)) for a, b, _ in x_train}
    pairs_test = {(int(a), int(b)) for a, b, _ in x_test}
    assert not pairs_train & pairs_test
    assert pairs_train | pairs_test == {(a, b) for a in range(p) for b in range(p)}
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert np.all(x[:, 2] == p)  # the '=' token
        np.testing.assert_array_equal(y, (x[:, 0] + x[:, 1]) % p)
        keys = x[:, 0] * p + x[:, 1]
        assert np.all(np.diff(keys) > 0)  # ascending pair order
    again = e4.make_data(p, 0.3, 0)
    for first, second in zip((x_train, y_train, x_test, y_test), again):
        np.testing.assert_array_equal(first, second)
    other = e4.make_data(p, 0.3, 1)[0]
    assert not np.array_equal(other, x_train)
    # The paper's sizes: 30 % of 113² pairs.
    assert e4.make_data(113, 0.3, 0)[0].shape == (3830, 3)


def test_init_params_shapes_scales_and_perturbations() -> None:
    cfg = e4.E4Config.from_params({**TINY, "n_inits": 4})
    params = e4.init_params(cfg, 3)
    assert list(params) == list(e4.PARAM_NAMES)
    for name, shape in cfg.shapes().items():
        assert params[name].shape == (4, *shape) and params[name].dtype == torch.float64
    assert cfg.shapes()["W_E"] == (14, 16) and cfg.shapes()["W_U"] == (16, 14)
    assert torch.all(params["b_in"] == 0) and torch.all(params["b_out"] == 0)
    for name in e4.PARAM_NAMES:
        if name.startswith("b_"):
            continue
        base = params[name][0]
        for m in range(1, 4):
            relative = (params[name][m] - base).abs() / base.abs()
            assert relative.max() <= 0.001 * (1 + 1e-9)
            assert relative.max() > 0.5 * 0.001
    assert not torch.equal(params["W_in"][1], params["W_in"][2])  # fresh draws per initialisation


def test_init_params_scales_at_the_paper_sizes() -> None:
    cfg = e4.E4Config.from_params({"n_inits": 1})
    params = e4.init_params(cfg, 0)
    for name in ("W_E", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"):
        assert float(params[name].std()) == pytest.approx(1 / math.sqrt(128), rel=0.05), name
    assert float(params["W_U"].std()) == pytest.approx(1 / math.sqrt(114), rel=0.05)


def test_init_params_depend_on_seed_alpha_and_dtype_only_as_documented() -> None:
    grok = e4.E4Config.from_params({**TINY, "setup": "grokking"})
    constrained = e4.E4Config.from_params({**TINY, "setup": "constrained"})
    a, b = e4.init_params(grok, 0), e4.init_params(constrained, 0)
    for name in e4.PARAM_NAMES:
        torch.testing.assert_close(b[name], 0.8 * a[name], rtol=1e-15, atol=0)
        assert torch.equal(a[name], e4.init_params(grok, 0)[name])
    assert not torch.equal(a["W_E"][0], e4.init_params(grok, 1)["W_E"][0])
    # float32 is the float64 draw rounded; more initialisations extend, not change, the others.
    single = e4.init_params(e4.E4Config.from_params({**TINY, "dtype": "float32"}), 0)
    more = e4.init_params(e4.E4Config.from_params({**TINY, "n_inits": 5}), 0)
    for name in e4.PARAM_NAMES:
        assert torch.equal(single[name], a[name].to(torch.float32))
        assert torch.equal(more[name][:3], a[name])


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"setup": "grok"}, "setup"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"n_inits": 0}, "n_inits"),
        ({"n_inits": True}, "n_inits"),
        ({"perturbation": 1.0}, "perturbation"),
        ({"p": 1}, "p"),
        ({"p": 113.0}, "p"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"train_fraction": 1.0}, "train_fraction"),
        ({"train_fraction": 1e-5}, "train_fraction"),  # no training pair at p = 113
        ({"data_seed": "0"}, "data_seed"),
        ({"d_model": 0}, "d_model"),
        ({"n_heads": 0}, "n_heads"),
        ({"d_head": 1.5}, "d_head"),
        ({"d_mlp": None}, "d_mlp"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"betas": [0.9]}, "betas"),
        ({"betas": [0.9, 1.0]}, "betas"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"alpha": 0.0}, "alpha"),
        ({"n_steps": 0}, "n_steps"),
        ({"dtype": "float16"}, "dtype"),
        ({"observable": "weights"}, "observable"),
        ({"observable_dtype": "int8"}, "observable_dtype"),
        ({"lerning_rate": 1e-3}, "lerning_rate"),
    ],
)
def test_check_params_names_the_bad_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError, match=field):
        e4.check_params(params)


def test_check_params_fills_the_setup_defaults() -> None:
    grok = e4.check_params({})
    assert grok == {**e4.DEFAULTS, "weight_decay": 1.0, "alpha": 1.0}
    constrained = e4.check_params({"setup": "constrained"})
    assert constrained["weight_decay"] == 0.0 and constrained["alpha"] == 0.8
    assert e4.check_params({"setup": "constrained", "alpha": 1, "weight_decay": 0.5})["alpha"] == 1.0
    # Explicit values equal to the setup's give the same parameters (and content key).
    assert e4.check_params({"weight_decay": 1.0, "alpha": 1.0}) == grok
    assert e4.check_params({"betas": (0.9, 0.98)})["betas"] == [0.9, 0.98]
    long = e4.check_long_params({})
    assert long["n_steps"] == 10_000 and long["n_points"] == 200 and "n_inits" not in long
    with pytest.raises(ParameterError, match="n_points"):
        e4.check_long_params({"n_points": 1})


def test_simulate_refuses_inputs() -> None:
    with pytest.raises(ParameterError, match="inputs"):
        e4.simulate(TINY, {"mnist": "x.npz"})
