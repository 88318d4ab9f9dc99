"""E4's task and initialisation: the modular-addition data, Nanda's initialisation, the packaging of records."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import ParameterError, check_int
from ...store import Trajectory
from .config import _NUMPY_DTYPES, E4Config, _split_sizes
from .settings import E4Train


def make_data(p: int, train_fraction: float, data_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All p² modular-addition examples, split at random into a training and a test set.

    Pair k = a·p + b is the sequence (a, b, p) with answer (a + b) mod p.  A
    ``torch.randperm(p²)`` drawn from a generator seeded with ``data_seed`` picks the
    training pairs (its first ``int(train_fraction·p²)`` entries); each set is returned in
    ascending pair order, so the split does not depend on anything but the three arguments.

    Returns
    -------
    train_inputs : int64 [N_train, 3]
    train_labels : int64 [N_train]
    test_inputs : int64 [p² − N_train, 3]
    test_labels : int64 [p² − N_train]
    """
    checked = E4Train.check({"p": p, "train_fraction": train_fraction, "data_seed": data_seed}, "E4")
    p, train_fraction, data_seed = checked["p"], checked["train_fraction"], checked["data_seed"]
    n_train, n_test = _split_sizes(p, train_fraction)
    if n_train < 1 or n_test < 1:
        raise ParameterError(f"train_fraction: {train_fraction} of {p}² pairs leaves a set empty")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(data_seed)
    perm = torch.randperm(p * p, generator=gen).numpy()
    pairs = np.arange(p * p, dtype=np.int64)
    a, b = pairs // p, pairs % p
    inputs = np.stack([a, b, np.full_like(a, p)], axis=1)
    labels = (a + b) % p
    train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    return inputs[train], labels[train], inputs[test], labels[test]


def init_params(cfg: E4Config, seed: int) -> dict[str, Tensor]:
    """Initial parameters of every initialisation of one seed, stacked: name → [M, *shape].

    Everything is drawn on the CPU in float64 from one ``torch.Generator`` seeded with
    ``seed`` (the global RNG is never touched), then rounded to the config's dtype.  Draw
    order:

    1. initialisation 0, parameter by parameter in :data:`PARAM_NAMES` order: N(0, 1) of the
       parameter's shape (none for the biases, which are 0), times 1/√d_model (W_U:
       1/√(p+1)) and times ``alpha``;
    2. for m = 1 … M−1, parameter by parameter in the same order (biases included): U(−1, 1)
       of the parameter's shape; W·(1 + perturbation·U) gives initialisation m.

    Returns
    -------
    dict of str to Tensor [M, *shape]
        In :data:`PARAM_NAMES` order, on the CPU, in ``cfg.dtype``.
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed(check_int(seed, "seed", 0))
    shapes = cfg.shapes()
    base: dict[str, Tensor] = {}
    for name, shape in shapes.items():
        if name.startswith("b_"):
            base[name] = torch.zeros(shape, dtype=torch.float64)
            continue
        std = 1.0 / math.sqrt(cfg.n_vocab if name == "W_U" else cfg.d_model)
        base[name] = torch.randn(shape, generator=gen, dtype=torch.float64) * std * cfg.alpha
    stacked = {name: torch.empty((cfg.n_inits, *shape), dtype=torch.float64) for name, shape in shapes.items()}
    for name in shapes:
        stacked[name][0] = base[name]
    for m in range(1, cfg.n_inits):
        for name, shape in shapes.items():
            u = torch.empty(shape, dtype=torch.float64).uniform_(-1.0, 1.0, generator=gen)
            stacked[name][m] = base[name] * (1.0 + cfg.perturbation * u)
    return {name: t.to(cfg.torch_dtype) for name, t in stacked.items()}


# ----------------------------------------------------------------------------- shared pieces


def _total_norm(tensors: Mapping[str, Tensor]) -> Tensor:
    """2-norm of all parameters of each member together: [M] from name → [M, ...]."""
    return torch.stack([t.pow(2).flatten(1).sum(1) for t in tensors.values()]).sum(0).sqrt()


def _trajectory(params: dict[str, Any], records: Tensor, metrics: dict[str, Tensor], observable_dtype: str) -> Trajectory:
    n_steps = records.shape[1]
    return Trajectory(
        experiment="e4",
        steps=np.arange(1, n_steps + 1, dtype=np.int64),
        observables={"mlp_out": records.cpu().numpy().astype(_NUMPY_DTYPES[observable_dtype], copy=False)},
        metrics={name: value.cpu().numpy().astype(np.float64) for name, value in metrics.items()},
        params=params,
    )


