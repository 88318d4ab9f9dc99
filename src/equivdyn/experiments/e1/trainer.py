"""Experiment E1: online mirror descent, online gradient descent and bisection (paper Fig. 2).

Ghai, Lu & Hazan (2022) show that online mirror descent (OMD) with the log-barrier
regulariser R(x) = -Σ log x_i is equivalent to online gradient descent (OGD) run on the
reparameterised loss f̃(u) = f(exp u).  The bisection method (BM) converges too, but with
different dynamics, and serves as the non-conjugate control.

All three are plain NumPy: a 5×5 grid of initial conditions advances together, one
vectorised update per step.  Every run records ``n_steps`` snapshots, the first being the
initial condition (step 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ParameterError
from ...store import Trajectory
from .settings import LOSSES, METHODS, E1Job  # noqa: F401 (re-exported choices)

#: The paper's settings (:class:`.settings.E1Train`) and the method of one job; ``params``
#: given to :func:`simulate` may override any of them.
DEFAULTS: dict[str, Any] = E1Job.defaults()


@dataclass(frozen=True)
class Loss:
    """A separable loss f(x) = Σ φ(x_i) with its per-coordinate derivative."""

    name: str
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]

    def value(self, x: np.ndarray) -> np.ndarray:
        """f(x) for x of shape [..., d]; returns shape [...]."""
        return self.phi(x).sum(axis=-1)

    def grad(self, x: np.ndarray) -> np.ndarray:
        """∇f(x), same shape as x."""
        return self.dphi(x)

    def odd_value(self, x: np.ndarray) -> np.ndarray:
        """Σ sign(x_i) φ(|x_i|): the function the bisection method finds a root of.

        Bisection needs a sign change across its bracket.  tan is odd, so for the
        paper's loss this is f itself; the even losses (quadratic, quartic) have no
        sign change, so bisection runs on their odd extension, which has the same
        magnitude.
        """
        return (np.sign(x) * self.phi(np.abs(x))).sum(axis=-1)


def _sec2(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.cos(x) ** 2


LOSS_FUNCTIONS: dict[str, Loss] = {
    "tan": Loss("tan", np.tan, _sec2),
    "quadratic": Loss("quadratic", np.square, lambda x: 2.0 * x),
    "quartic": Loss("quartic", lambda x: x**4, lambda x: 4.0 * x**3),
}


def get_loss(name: str) -> Loss:
    """The loss called ``name`` (one of :data:`LOSSES`)."""
    try:
        return LOSS_FUNCTIONS[name]
    except KeyError:
        raise ParameterError(f"loss: unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


def grid(value_range: list[float], grid_size: int, dim: int) -> np.ndarray:
    """Initial conditions on a regular grid, shape [grid_size**dim, dim].

    The first coordinate varies fastest, as in ``meshgrid`` with ``xy`` indexing.
    """
    axis = np.linspace(value_range[0], value_range[1], grid_size)
    mesh = np.meshgrid(*([axis] * dim), indexing="xy")
    return np.stack([m.reshape(-1) for m in mesh], axis=-1)


def omd(loss: Loss, x0: np.ndarray, eta: float, n_steps: int, lower: float, upper: float) -> np.ndarray:
    """Online mirror descent with the log barrier on the box [lower, upper]^d.

    Mirror step: ∇R(y) = ∇R(x) - η∇f(x) with ∇R(x) = -1/x, so y = 1 / (1/x + η∇f(x)).
    The Bregman projection of a separable R onto a box is coordinate-wise, and for each
    coordinate the divergence is convex with its minimum at y, so it is a clip.

    Returns the states, shape [M, n_steps, d].
    """
    out = np.empty((x0.shape[0], n_steps, x0.shape[1]))
    x = x0.astype(np.float64)
    out[:, 0] = x
    for t in range(1, n_steps):
        dual = 1.0 / x + eta * loss.grad(x)
        # A non-positive dual point means the mirror step left the barrier's domain
        # towards +infinity; its projection is the upper bound.
        y = np.where(dual > 0, 1.0 / np.where(dual > 0, dual, 1.0), upper)
        x = np.clip(y, lower, upper)
        out[:, t] = x
    return out


def ogd(loss: Loss, u0: np.ndarray, eta: float, n_steps: int, lower: float, upper: float) -> np.ndarray:
    """Online gradient descent in u-space on f̃(u) = f(exp u), Euclidean projection onto a box.

    ∇f̃(u) = ∇f(exp u) · exp u.  Returns the u-states, shape [M, n_steps, d].
    """
    out = np.empty((u0.shape[0], n_steps, u0.shape[1]))
    u = u0.astype(np.float64)
    out[:, 0] = u
    for t in range(1, n_steps):
        x = np.exp(u)
        u = np.clip(u - eta * loss.grad(x) * x, lower, upper)
        out[:, t] = u
    return out


def bisection(loss: Loss, a0: np.ndarray, b0: np.ndarray, n_steps: int) -> np.ndarray:
    """Bisection between brackets a and b, vectorised over initial conditions.

    z = (a + b)/2; if g(z) < 0 then a ← z, if g(z) > 0 then b ← z, where g is
    :meth:`Loss.odd_value`; on an exact root the state stays put.  Returns [M, n_steps, d].
    """
    g_a, g_b = loss.odd_value(a0), loss.odd_value(b0)
    bad = np.flatnonzero(~((g_a < 0) & (g_b > 0)))
    if bad.size:
        i = int(bad[0])
        raise ParameterError(
            f"bisection needs g(a0) < 0 < g(b0) for every initial bracket; initial condition {i} "
            f"has g(a0)={g_a[i]:.3g}, g(b0)={g_b[i]:.3g} (check a0_range and b0_range)"
        )
    a, b = a0.astype(np.float64), b0.astype(np.float64)
    out = np.empty((a0.shape[0], n_steps, a0.shape[1]))
    z = 0.5 * (a + b)
    out[:, 0] = z
    for t in range(1, n_steps):
        g = loss.odd_value(z)[:, None]
        a = np.where(g < 0, z, a)
        b = np.where(g > 0, z, b)
        z = np.where(g == 0, z, 0.5 * (a + b))
        out[:, t] = z
    return out


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Merge ``params`` over :data:`DEFAULTS` and validate (:meth:`~equivdyn.params.Section.check`,
    and each range's low <= high); errors name the field."""
    p = E1Job.check(params, "E1")
    for name in ("x0_range", "u0_range", "a0_range", "b0_range"):
        if p[name][0] > p[name][1]:
            raise ParameterError(f"{name}: must be [low, high] with low <= high, got {p[name]!r}")
    return p


def simulate(params: dict[str, Any], inputs: Mapping[str, Path] | None = None) -> Trajectory:
    """Run one E1 method on its grid of initial conditions.

    Parameters
    ----------
    params : dict
        ``method`` (one of :data:`METHODS`) plus any of :data:`DEFAULTS`.
    inputs : mapping, optional
        Input files; E1 needs none.

    Returns
    -------
    Trajectory
        Observable ``state`` [M, n_steps, dim] (x for OMD, u for OGD, the midpoint z for
        BM) and metric ``loss`` [M, n_steps]: f(x), f(exp u), and for BM the bisected
        function g(z).  ``params`` holds every parameter, defaults filled in.
    """
    if inputs:
        raise ParameterError(f"inputs: E1 reads no input files, got {sorted(inputs)}")
    p = check_params(params)
    loss = get_loss(p["loss"])
    n, eta, dim, size = p["n_steps"], float(p["eta"]), p["dim"], p["grid_size"]
    # The domain K = [1/T, 1]^d of the paper, and its image K' = [log(1/T), 0]^d in u-space.
    lower, upper = 1.0 / n, 1.0
    if p["method"] == "omd":
        x0 = grid(p["x0_range"], size, dim)
        if np.any((x0 < lower) | (x0 > upper)):
            raise ParameterError(f"x0_range: initial conditions must lie in the domain [{lower}, {upper}]")
        states = omd(loss, x0, eta, n, lower, upper)
        values = loss.value(states)
    elif p["method"] == "ogd":
        u0 = grid(p["u0_range"], size, dim)
        if np.any((u0 < np.log(lower)) | (u0 > np.log(upper))):
            raise ParameterError(f"u0_range: initial conditions must lie in [log(1/n_steps), 0] = [{np.log(lower):.4g}, 0]")
        states = ogd(loss, u0, eta, n, np.log(lower), np.log(upper))
        values = loss.value(np.exp(states))
    else:
        states = bisection(loss, grid(p["a0_range"], size, dim), grid(p["b0_range"], size, dim), n)
        values = loss.odd_value(states)
    return Trajectory(
        experiment="e1",
        steps=np.arange(n, dtype=np.int64),
        observables={"state": states},
        metrics={"loss": values},
        params=p,
    )
