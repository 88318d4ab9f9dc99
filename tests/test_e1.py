"""Tests of the E1 dynamics (OMD, OGD in u-space, bisection) against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from equivdyn.errors import ParameterError
from equivdyn.experiments.e1 import trainer as e1


def test_grid_matches_meshgrid_order_and_paper_example() -> None:
    x0 = e1.grid([0.1, 0.9], 5, 2)
    assert x0.shape == (25, 2)
    # First coordinate varies fastest; (0.5, 0.7) is run 17 as in the paper's script.
    assert np.allclose(x0[1], [0.3, 0.1])
    assert np.allclose(x0[17], [0.5, 0.7])


@pytest.mark.parametrize("loss", e1.LOSSES)
def test_omd_step_solves_the_mirror_equation(loss: str) -> None:
    f = e1.get_loss(loss)
    x0 = e1.grid([0.2, 0.8], 4, 2)
    eta = 0.01
    traj = e1.omd(f, x0, eta, 3, 0.01, 1.0)
    x, x_next = traj[:, 0], traj[:, 1]
    # Unprojected points satisfy ∇R(x') = ∇R(x) − η∇f(x) with ∇R(x) = −1/x.
    inside = (x_next > 0.01) & (x_next < 1.0)
    lhs = -1.0 / x_next
    rhs = -1.0 / x - eta * f.grad(x)
    assert inside.any()
    assert np.allclose(lhs[inside], rhs[inside], rtol=1e-12)


def test_omd_projects_onto_the_box() -> None:
    f = e1.get_loss("tan")
    x0 = np.array([[0.011, 0.5]])
    traj = e1.omd(f, x0, 0.5, 50, 0.01, 1.0)
    assert traj.min() >= 0.01 and traj.max() <= 1.0
    assert traj[-1, -1, 0] == 0.01  # the minimiser of tan on [0.01, 1] is the lower bound


@pytest.mark.parametrize("loss", e1.LOSSES)
def test_ogd_is_gradient_descent_on_the_reparameterised_loss(loss: str) -> None:
    f = e1.get_loss(loss)
    u0 = e1.grid([-2.0, -0.5], 3, 2)
    traj = e1.ogd(f, u0, 0.01, 2, np.log(0.01), 0.0)
    # Finite-difference gradient of f(exp(u)) checks the chain rule.
    h = 1e-6
    grad = np.empty_like(u0)
    for d in range(2):
        step = np.zeros(2)
        step[d] = h
        grad[:, d] = (f.value(np.exp(u0 + step)) - f.value(np.exp(u0 - step))) / (2 * h)
    assert np.allclose(traj[:, 1], u0 - 0.01 * grad, atol=1e-9)


def test_bisection_halves_the_bracket_and_converges_to_a_root() -> None:
    f = e1.get_loss("tan")
    a0 = e1.grid([-4 / 3, -1 / 3], 3, 2)
    b0 = e1.grid([1 / 7, 8 / 7], 3, 2)
    traj = e1.bisection(f, a0, b0, 60)
    assert np.allclose(traj[:, 0], 0.5 * (a0 + b0))
    assert np.abs(f.value(traj[:, -1])).max() < 1e-12


def test_bisection_rejects_brackets_without_sign_change() -> None:
    f = e1.get_loss("tan")
    with pytest.raises(ParameterError, match="a0_range and b0_range"):
        e1.bisection(f, np.array([[0.1, 0.1]]), np.array([[0.5, 0.5]]), 5)


def test_simulate_records_every_step_and_the_loss() -> None:
    traj = e1.simulate({"method": "ogd", "n_steps": 30, "grid_size": 2})
    assert traj.observables["state"].shape == (4, 30, 2)
    assert np.array_equal(traj.steps, np.arange(30))
    expected = e1.get_loss("tan").value(np.exp(traj.observables["state"]))
    assert np.allclose(traj.metrics["loss"], expected)
    # The loss decreases along every OGD run.
    assert (np.diff(traj.metrics["loss"], axis=1) <= 1e-15).all()


def test_simulate_is_deterministic() -> None:
    a = e1.simulate({"method": "omd", "loss": "quartic"})
    b = e1.simulate({"method": "omd", "loss": "quartic"})
    assert a.observables["state"].tobytes() == b.observables["state"].tobytes()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"method": "sgd"}, "method"),
        ({"method": "omd", "loss": "cosine"}, "loss"),
        ({"method": "omd", "eta": -1.0}, "eta"),
        ({"method": "omd", "n_steps": 1}, "n_steps"),
        ({"method": "omd", "grid_size": "5"}, "grid_size"),
        ({"method": "omd", "x0_range": [0.9, 0.1]}, "x0_range"),
        ({"method": "omd", "x0_range": [0.0001, 0.5]}, "x0_range"),
        ({"method": "omd", "colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(ParameterError, match=field):
        e1.simulate(params)
