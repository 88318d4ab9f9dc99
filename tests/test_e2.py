"""Tests of E2 (FCN ensembles on MNIST): the batched trainer against the plain loop.

Most tests run on SYNTHETIC stand-ins for MNIST (random uint8 images, seeded), so they
are fast; one test trains on the real MNIST file in ../shared/data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from equivdyn.errors import InvalidFileError, ParameterError
from equivdyn.experiments.e2 import trainer as e2


TINY: dict[str, Any] = {"width": 5, "n_inits": 3, "n_steps": 10, "batch_size": 60}


def synthetic_random(n_train: int = 600, n_test: int = 200, seed: int = 0) -> tuple[np.ndarray, ...]:
    """SYNTHETIC data: uniformly random pixels and random labels (nothing to learn)."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n_train, dtype=np.uint8),
        rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n_test, dtype=np.uint8),
    )


def synthetic_bands(n_train: int = 1200, n_test: int = 500, seed: int = 1) -> tuple[np.ndarray, ...]:
    """SYNTHETIC learnable data: dim noise plus a bright horizontal band at rows 2k+4, 2k+5 for label k."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        x = rng.integers(0, 64, size=(n, 28, 28), dtype=np.uint8)
        for k in range(10):
            x[y == k, 2 * k + 4 : 2 * k + 6, :] = 255
        return x, y

    return (*make(n_train), *make(n_test))


def max_weight_difference(a: e2.Trajectory, b: e2.Trajectory) -> float:
    return float(np.abs(a.observables["output_weights"] - b.observables["output_weights"]).max())


# ----------------------------------------------------------------------------- batched vs loop


@pytest.mark.parametrize("optimizer", e2.OPTIMIZERS)
@pytest.mark.parametrize(("dtype", "tolerance"), [("float64", 1e-10), ("float32", 1e-5)])
def test_batched_ensemble_matches_the_plain_loop(optimizer: str, dtype: str, tolerance: float) -> None:
    data = synthetic_random()
    params = {**TINY, "optimizer": optimizer, "dtype": dtype, "lr": 0.1 if optimizer == "sgd" else 0.01}
    batched = e2.train_ensemble(*data, params)
    reference = e2.train_reference(*data, params)
    assert max_weight_difference(batched, reference) <= tolerance
    # The weights move, so the agreement is not that of two untrained copies.
    moved = batched.observables["output_weights"][:, -1] - batched.observables["output_weights"][:, 0]
    assert np.abs(moved).max() > 100 * tolerance
    for name in ("train_loss", "test_loss", "test_accuracy"):
        assert np.allclose(batched.metrics[name], reference.metrics[name], rtol=0, atol=tolerance), name


def test_gelu_ensemble_matches_the_plain_loop() -> None:
    data = synthetic_random(seed=3)
    params = {**TINY, "activation": "gelu", "dtype": "float64"}
    assert max_weight_difference(e2.train_ensemble(*data, params), e2.train_reference(*data, params)) <= 1e-10


def test_repeat_runs_are_bit_identical() -> None:
    data = synthetic_random(seed=2)
    for optimizer in e2.OPTIMIZERS:
        params = {**TINY, "optimizer": optimizer, "lr": 0.01, "seed": 7}
        first, second = e2.train_ensemble(*data, params), e2.train_ensemble(*data, params)
        assert first.observables["output_weights"].tobytes() == second.observables["output_weights"].tobytes()
        for name in first.metrics:
            assert first.metrics[name].tobytes() == second.metrics[name].tobytes(), name


def test_training_restores_torch_state_and_leaves_the_global_rng_alone() -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng_state = torch.random.get_rng_state()
    e2.train_ensemble(*synthetic_random(), {**TINY, "n_steps": 2}, threads=1)
    e2.train_reference(*synthetic_random(), {**TINY, "n_steps": 2}, threads=1)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), rng_state)


# ----------------------------------------------------------------------------- initialisation


def test_init_zero_is_pytorch_default_and_the_rest_are_small_perturbations() -> None:
    width, n_inits, eps = 7, 4, 0.001
    w1, w2 = e2.init_weights(width, 3, n_inits, eps, "float64")
    assert w1.shape == (n_inits, width, 784) and w2.shape == (n_inits, 10, width)
    assert w1.dtype == torch.float64
    # kaiming-uniform with a = √5: U(−1/√fan_in, 1/√fan_in), and it fills the range.
    for w, fan_in in ((w1[0], 784), (w2[0], width)):
        bound = 1.0 / math.sqrt(fan_in)
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.9 * bound
    for m in range(1, n_inits):
        for w in (w1, w2):
            relative = (w[m] - w[0]).abs() / w[0].abs()
            assert relative.max() <= eps * (1 + 1e-9)
            assert relative.max() > 0.5 * eps  # every weight is perturbed, by up to eps
    # Each perturbation is a fresh draw.
    assert not torch.equal(w1[1], w1[2])


def test_init_weights_depend_on_the_seed_only() -> None:
    a1, a2 = e2.init_weights(5, 0, 3, 0.001, "float32")
    b1, b2 = e2.init_weights(5, 0, 3, 0.001, "float32")
    c1, _ = e2.init_weights(5, 1, 3, 0.001, "float32")
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1[0], c1[0])
    # float32 is the float64 draw rounded; more initialisations extend, not change, the others.
    d1, _ = e2.init_weights(5, 0, 5, 0.001, "float64")
    assert torch.equal(a1, d1[:3].to(torch.float32))


# ----------------------------------------------------------------------------- trajectory


def test_trajectory_shapes_steps_and_metrics() -> None:
    traj = e2.train_ensemble(*synthetic_random(), {**TINY, "n_inits": 2, "n_steps": 4})
    assert traj.experiment == "e2"
    assert traj.steps.dtype == np.int64 and traj.steps.tolist() == [1, 2, 3, 4]
    weights = traj.observables["output_weights"]
    assert weights.shape == (2, 4, 50) and weights.dtype == np.float64
    assert traj.metrics["train_loss"].shape == (2, 4)
    for name in ("test_loss", "test_accuracy"):
        assert traj.metrics[name].shape == (2, 1)
        assert traj.metric_steps[name].tolist() == [4]
    assert np.all((traj.metrics["test_accuracy"] >= 0) & (traj.metrics["test_accuracy"] <= 1))
    assert np.all(traj.metrics["test_loss"] > 0)
    assert traj.params == e2.check_params({**TINY, "n_inits": 2, "n_steps": 4})
    # The weights recorded after step 1 are not the initial ones: a step has happened.
    _, w2 = e2.init_weights(5, 0, 2, 0.001, "float32")
    assert not np.allclose(weights[:, 0], w2.reshape(2, -1).double().numpy())


def test_n_steps_none_is_one_epoch_of_the_given_training_set() -> None:
    traj = e2.train_ensemble(*synthetic_random(n_train=300), {**TINY, "n_steps": None})
    assert traj.steps.tolist() == [1, 2, 3, 4, 5]


def test_training_loss_falls_on_a_learnable_synthetic_task() -> None:
    traj = e2.train_ensemble(*synthetic_bands(), {"width": 10, "n_inits": 2, "batch_size": 30})
    loss = traj.metrics["train_loss"]
    assert loss[:, :5].mean() > loss[:, -5:].mean() + 1.0
    assert traj.metrics["test_accuracy"].min() > 0.9


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"activation": "tanh"}, "activation"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"dtype": "float16"}, "dtype"),
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"width": "40"}, "width"),
        ({"width": 0}, "width"),
        ({"n_inits": True}, "n_inits"),
        ({"perturbation": -0.001}, "perturbation"),
        ({"normalize": [0.1307]}, "normalize"),
        ({"normalize": [0.1307, 0.0]}, "normalize"),
        ({"witdh": 40}, "witdh"),
        ({"n_steps": 1001}, "n_steps"),
        ({"n_steps": 0}, "n_steps"),
    ],
)
def test_check_params_names_the_bad_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError, match=field):
        e2.check_params(params)


def test_check_params_fills_defaults_and_refuses_too_many_steps() -> None:
    assert e2.check_params({}) == e2.DEFAULTS
    assert e2.check_params({"n_steps": 1000})["n_steps"] == 1000
    with pytest.raises(ParameterError, match="batches"):
        e2.check_params({"n_steps": 601, "batch_size": 100})
    config = e2.FCNConfig.from_params({"width": 5})
    assert config.width == 5 and config.normalize == (0.1307, 0.3081)
    # More steps than the given training set holds batches.
    with pytest.raises(ParameterError, match="n_steps"):
        e2.train_ensemble(*synthetic_random(n_train=300), {**TINY, "n_steps": 6})


def test_simulate_names_a_bad_input_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidFileError, match="missing.npz"):
        e2.simulate({}, {"mnist": tmp_path / "missing.npz"})
    x_train, y_train, x_test, _ = synthetic_random(n_train=60, n_test=10)
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, x_train=x_train, y_train=y_train, x_test=x_test)
    with pytest.raises(InvalidFileError, match="incomplete.npz.*y_test"):
        e2.simulate({}, {"mnist": incomplete})
    wrong_dtype = tmp_path / "wrong_dtype.npz"
    np.savez(wrong_dtype, x_train=x_train.astype(np.float32), y_train=y_train, x_test=x_test, y_test=y_train[:10],
             sha256=np.array("0" * 64))  # the content is checked before the checksum
    with pytest.raises(InvalidFileError, match="wrong_dtype.npz.*x_train"):
        e2.simulate({}, {"mnist": wrong_dtype})
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(InvalidFileError, match="garbage.npz"):
        e2.simulate({}, {"mnist": garbage})
    with pytest.raises(ParameterError, match="inputs"):
        e2.simulate({}, {})


# ----------------------------------------------------------------------------- real MNIST


def test_real_mnist_short_run_learns(prepared_mnist: Path) -> None:
    traj = e2.simulate({"width": 10, "n_inits": 2, "n_steps": 100}, {"mnist": prepared_mnist})
    loss = traj.metrics["train_loss"]
    assert loss.shape == (2, 100)
    assert loss[:, :10].mean() > loss[:, -10:].mean() + 0.5
    assert traj.metrics["test_accuracy"].min() > 0.7
