"""E4 parameters: the paper's settings (every default written here), their checks and the frozen config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import ParameterError, check_int
from .._torch import TORCH_DTYPES
from ...params import check_job
from .settings import DTYPES, ENSEMBLE_ONLY, OBSERVABLES, SETUPS, E4Job, E4Long, E4Train  # noqa: F401 (re-exported choices)

#: The paper's settings (:class:`.settings.E4Train`) and the setup and seed of one job;
#: ``params`` given to :func:`simulate` may override any of them.  ``weight_decay`` and
#: ``alpha`` of ``None`` take the setup's value (:data:`SETUP_DEFAULTS`); :func:`check_params`
#: writes the value in, so equal runs get equal parameters.
DEFAULTS: dict[str, Any] = {**E4Job.defaults(), **E4Train.defaults()}

#: What ``weight_decay=None`` and ``alpha=None`` mean in each setup.
SETUP_DEFAULTS: dict[str, dict[str, float]] = {
    "grokking": {"weight_decay": 1.0, "alpha": 1.0},
    "constrained": {"weight_decay": 0.0, "alpha": 0.8},
}

#: Parameters of the long runs (:func:`simulate_long`): the model and optimiser parameters
#: of :data:`DEFAULTS` (the ensemble's ``n_inits``, ``perturbation`` and observable choices
#: do not apply) and :class:`.settings.E4Long`'s seed, number of steps and of logged points.
LONG_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in DEFAULTS.items() if k not in ENSEMBLE_ONLY},
    **E4Long.defaults(),
}

#: Context length: the sequence (a, b, =).
N_CTX = 3
#: Parameter names, in the order :func:`init_params` draws them.
PARAM_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out", "W_U")
METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "param_norm")

#: Intra-op CPU threads of the trainers.  Measured on a 2-core CPU (MKL, float64, paper
#: sizes, 10 initialisations, machine otherwise idle): the fast trainer takes 0.8 s a step
#: with 2 threads and 1.5 s with 1; inside the default workflow its 100-step ensembles take
#: 69-80 s.  The work is large GEMMs, which scale well, so 2 it is; the workflow gives an E4
#: training job 2 cores.
TRAIN_THREADS = 2

_NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64}


# ----------------------------------------------------------------------------- parameters


def _split_sizes(p: int, train_fraction: float) -> tuple[int, int]:
    n_pairs = p * p
    n_train = int(train_fraction * n_pairs)  # floor, as torch's random_split sizes in the public code
    return n_train, n_pairs - n_train


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``params`` over :data:`DEFAULTS` and validate every field.

    Returns
    -------
    dict
        Every parameter, defaults filled in, numbers as plain ``int``/``float``, ``betas``
        as a list, and ``weight_decay``/``alpha`` of ``None`` replaced by the setup's value.

    Raises
    ------
    ParameterError
        Naming the field that is unknown or has a bad value (types and ranges as in
        :mod:`.settings`); ``train_fraction`` must leave a training and a test pair.
    """
    out = check_job(params, E4Job, E4Train, "E4")
    n_train, n_test = _split_sizes(out["p"], out["train_fraction"])
    if n_train < 1 or n_test < 1:
        raise ParameterError(
            f"train_fraction: {out['train_fraction']} of the {out['p']}² pairs gives {n_train} training and "
            f"{n_test} test pairs; both sets need at least one"
        )
    for name, value in SETUP_DEFAULTS[out["setup"]].items():
        if out[name] is None:
            out[name] = value
    return out


def check_long_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``params`` over :data:`LONG_DEFAULTS` and validate every field (as :func:`check_params`).

    ``n_steps`` is the length of the long run, ``n_points`` the number of logged states
    (at least 2: step 0 and the last step).
    """
    unknown = set(params) - set(LONG_DEFAULTS)
    if unknown:
        raise ParameterError(f"unknown E4 long-run parameter(s): {', '.join(sorted(map(str, unknown)))}")
    p = {**LONG_DEFAULTS, **params}
    n_points = check_int(p.pop("n_points"), "n_points", 2)
    checked = check_params({**p, "n_inits": 1})
    out = {k: checked[k] for k in LONG_DEFAULTS if k != "n_points"}
    out["n_points"] = n_points
    return out


@dataclass(frozen=True)
class E4Config:
    """Checked E4 parameters (see :data:`DEFAULTS`); build it with :meth:`from_params`."""

    setup: str
    seed: int
    n_inits: int
    perturbation: float
    p: int
    train_fraction: float
    data_seed: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    alpha: float
    n_steps: int
    dtype: str
    observable: str
    observable_dtype: str

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> E4Config:
        """Check ``params`` (merged over :data:`DEFAULTS`) and build the config."""
        return cls.from_checked(check_params(params))

    @classmethod
    def from_checked(cls, p: Mapping[str, Any]) -> E4Config:
        """The config of parameters :func:`check_params` returned (not checked again)."""
        return cls(**{**p, "betas": (p["betas"][0], p["betas"][1])})

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]

    @property
    def n_vocab(self) -> int:
        """Tokens 0 … p−1 and '=' (token p); also the number of logits."""
        return self.p + 1

    @property
    def project_norm(self) -> bool:
        """Whether every step ends by rescaling the parameters to their initial total norm."""
        return self.setup == "constrained"

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every parameter of one initialisation, in :data:`PARAM_NAMES` order."""
        d, h, e, m, v = self.d_model, self.n_heads, self.d_head, self.d_mlp, self.n_vocab
        return {
            "W_E": (v, d),
            "W_pos": (N_CTX, d),
            "W_Q": (h, e, d),
            "W_K": (h, e, d),
            "W_V": (h, e, d),
            "W_O": (d, h * e),
            "W_in": (m, d),
            "b_in": (m,),
            "W_out": (d, m),
            "b_out": (d,),
            "W_U": (d, v),
        }


