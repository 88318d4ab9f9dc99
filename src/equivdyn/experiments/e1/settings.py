"""E1's section of the configuration: every default, written once (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

from ...params import Control, Koopman, Section, param, sub

METHODS = ("omd", "ogd", "bm")
LOSSES = ("tan", "quadratic", "quartic")
_RANGE = {"items": {"type": "number"}, "minItems": 2, "maxItems": 2}


@dataclass(frozen=True)
class E1Train(Section):
    """The paper's settings of the three methods."""

    loss: str = param("tan", "Separable loss f(x) = sum_i phi(x_i).", enum=list(LOSSES))
    eta: float = param(0.01, "Step size of OMD and OGD.", exclusiveMinimum=0)
    n_steps: int = param(100, "Snapshots recorded per run, the initial condition included (the paper's T).", minimum=2)
    dim: int = param(2, "Dimension d of the optimisation variable.", minimum=1, maximum=4)
    grid_size: int = param(5, "Initial conditions per axis; grid_size**dim runs per method.", minimum=1, maximum=20)
    x0_range: list[float] = param(
        [0.1, 0.9], "OMD initial conditions, per axis [low, high]; must lie in [1/n_steps, 1].", **_RANGE
    )
    u0_range: list[float] = param(
        [-2.3, -0.1],
        "OGD initial conditions in u = log x, per axis [low, high]; must lie in [log(1/n_steps), 0].",
        **_RANGE,
    )
    a0_range: list[float] = param([-4.0 / 3.0, -1.0 / 3.0], "Lower brackets of the bisection method, per axis.", **_RANGE)
    b0_range: list[float] = param([1.0 / 7.0, 8.0 / 7.0], "Upper brackets of the bisection method, per axis.", **_RANGE)


E1Koopman = Koopman.with_defaults("E1Koopman", "E1's Koopman fit.", n_delays=4)


@dataclass(frozen=True)
class E1Settings(Section):
    DESCRIPTION = "Experiment E1, online mirror descent vs online gradient descent, bisection as control (paper Fig. 2)."

    train: E1Train = sub(E1Train)
    koopman: E1Koopman = sub(E1Koopman)
    compare: Control = sub(Control)


@dataclass(frozen=True)
class E1Job(E1Train):
    """One training job: a method and the section's settings."""

    method: str = param("omd", "Method: online mirror descent, online gradient descent or bisection.", enum=list(METHODS))
