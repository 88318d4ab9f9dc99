"""Experiment E4: one-layer transformers on modular addition that do and do not grok (paper Fig. 5).

Task: (a + b) mod p for the p² ordered pairs, presented as the token sequence (a, b, =) with
'=' the token p (vocabulary p + 1).  A seeded random ``train_fraction`` of the pairs
(``int(train_fraction·p²)`` of them) is the training set, the rest the test set
(:func:`make_data`).

Model (Nanda's grokking transformer, as in the paper's public code): token embedding
W_E [p+1, d_model] plus learned positional embedding W_pos [3, d_model]; one attention
block of ``n_heads`` heads of ``d_head`` (W_Q, W_K, W_V [n_heads, d_head, d_model],
W_O [d_model, n_heads·d_head], causal mask, scores scaled by 1/√d_head); residual; MLP
W_in [d_mlp, d_model], b_in, ReLU, W_out [d_model, d_mlp], b_out; residual; unembedding
W_U [d_model, p+1]; no LayerNorm.  As in the public code the unembedding maps to the whole
vocabulary (p + 1 logits, the '=' logit is never a target).  Loss: cross-entropy of the
logits at the last position ('=') against the answer, mean over the set; full-batch AdamW
(lr 1e-3, betas (0.9, 0.98), eps 1e-8, no warm-up), every parameter decayed.

Setups:

* ``grokking``: weight decay 1.0, initialisation scale α = 1;
* ``constrained`` (no grokking, after Omnigrok): initialisation scaled by α = 0.8, no weight
  decay, and after every optimiser step all parameters are rescaled together so that the
  total parameter norm (the 2-norm of all parameters concatenated) keeps its initial value.

Initialisation (Nanda's scheme, which the public code copies): every weight matrix
N(0, 1/d_model) except W_U ~ N(0, 1/(p+1)); biases 0; :func:`init_params` gives the draw
order.  Initialisations 1 … M−1 multiply every parameter of initialisation 0 by
``1 + perturbation·U(−1, 1)``.

Records (:func:`train_ensemble`): the MLP output weights W_out (d_model·d_mlp values,
row-major from [d_model, d_mlp]) after every optimiser step 1 … n_steps, stored as
``observable_dtype`` (float32 by default: 10 × 100 × 65,536 × 4 B = 262 MB per seed before
compression, half of float64), and per step the training and test loss and accuracy and
the total parameter norm of the same state ([M, n_steps] each, float64).
:func:`train_long` trains initialisation 0 for long (10,000 steps by default) and records the
metrics on a log-spaced schedule, for the long-run accuracy curves of the figure.

Two trainers give the same trajectories:

* :func:`train_ensemble`, the one the workflow runs: all M initialisations at once (stacked
  parameters, batched matmuls), computing only what the loss needs.  With one layer and
  the loss at the last position only, only that position's query matters, and it is the
  same for every example; the keys and values of positions 0 and 1 depend on one token
  each, so attention scores and values are tabulated per token once per step
  (:func:`_token_tables`) instead of computed per example; the MLP and unembedding run
  for the last position only.  The per-example part runs in chunks of examples with a
  hand-written backward pass (the weight gradients accumulate chunk by chunk); autograd
  carries the tables' gradients back to the embeddings and W_Q, W_K, W_V.  AdamW and the
  norm projection act on the stacked tensors with torch.optim.AdamW's arithmetic.  The
  training pass of step t+1 also gives the training metrics of the state after step t.
* :func:`train_reference`, the straightforward recipe of the paper's public script: an
  ``nn.Module`` on whole sequences, one initialisation at a time, ``torch.optim.AdamW``,
  metrics from separate forward passes: the oracle of the tests and of
  ``benchmarks/e4_fast_vs_straightforward.py``.

Where the time goes (2-core CPU, MKL, float64, paper sizes, 10 initialisations, 2 threads):
the straightforward recipe takes 7.7 s per step (0.77 s per initialisation), the fast
trainer 0.64 s: 0.37 s for the training pass with its backward, 0.26 s for the test pass,
about three quarters of it in matrix products (6.7 TFLOP per 100-step run, which sets a
floor of ~40 s at the ~170 GFLOP/s that MKL reaches here).  Autograd over the same
reduced graph took 1.3 s per step: its [M, N, d_mlp] intermediates (157 MB each) were
mapped fresh from the system at every use, and that page faulting cost as much as the
arithmetic; chunks of ~10 MB (:data:`_CHUNK_ELEMENTS`) are recycled by the allocator and
stay in cache.

In float64 the two trainers' recorded weights differ by 6e-13 at most after 100 steps of
the paper's sizes (rounding: sums are taken in a different order), their losses by 5e-15,
and their accuracies not at all.  Both run with a fixed intra-op thread count
(:data:`TRAIN_THREADS` unless told otherwise) and on CUDA with deterministic algorithms, so
the same parameters give bit-identical trajectories run to run on the same machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...errors import ParameterError
from ...store import Trajectory
from .config import (
    DEFAULTS,
    DTYPES,
    LONG_DEFAULTS,
    METRICS,
    N_CTX,
    OBSERVABLES,
    PARAM_NAMES,
    SETUP_DEFAULTS,
    SETUPS,
    TRAIN_THREADS,
    E4Config,
    check_long_params,
    check_params,
)
from .fast import log_schedule, train_ensemble, train_long
from .reference import Transformer, full_accuracy, full_loss, train_reference
from .task import init_params, make_data

__all__ = [
    "DEFAULTS",
    "DTYPES",
    "LONG_DEFAULTS",
    "METRICS",
    "N_CTX",
    "OBSERVABLES",
    "PARAM_NAMES",
    "SETUPS",
    "SETUP_DEFAULTS",
    "TRAIN_THREADS",
    "E4Config",
    "Transformer",
    "check_long_params",
    "check_params",
    "full_accuracy",
    "full_loss",
    "init_params",
    "log_schedule",
    "make_data",
    "simulate",
    "simulate_long",
    "train_ensemble",
    "train_long",
    "train_reference",
]


def _check_no_inputs(inputs: Mapping[str, Any] | None) -> None:
    if inputs:
        raise ParameterError(f"inputs: E4 generates its data and reads no input; got {sorted(inputs)}")


def simulate(params: dict[str, Any], inputs: Mapping[str, Any] | None = None, *, device: str = "cpu") -> Trajectory:
    """Train one E4 (setup, seed) ensemble with :func:`train_ensemble`.

    Parameters
    ----------
    params : dict
        Any of :data:`DEFAULTS`.
    inputs : mapping
        Must be empty: the data are generated.
    device : str
        ``cpu`` or ``cuda``.

    Returns
    -------
    Trajectory
        See :func:`train_ensemble`.
    """
    checked = check_params(params)
    _check_no_inputs(inputs)
    return train_ensemble(checked, device=torch.device(device))


def simulate_long(params: dict[str, Any], inputs: Mapping[str, Any] | None = None, *, device: str = "cpu") -> Trajectory:
    """One long run (:func:`train_long`) of initialisation 0 as a trajectory.

    Parameters
    ----------
    params : dict
        Any of :data:`LONG_DEFAULTS` (``n_steps``: the run's length; ``n_points``: logged states).
    inputs : mapping
        Must be empty.
    device : str
        ``cpu`` or ``cuda``.

    Returns
    -------
    Trajectory
        ``steps`` the logged steps [T] (0 = the initial state); observable ``param_norm``
        [1, T, 1] (the total parameter norm); metrics ``train_loss``, ``train_accuracy``,
        ``test_loss``, ``test_accuracy`` [1, T] at the same steps.
    """
    checked = check_long_params(params)
    _check_no_inputs(inputs)
    model_params = {k: v for k, v in checked.items() if k not in ("n_steps", "n_points")}
    result = train_long(model_params, checked["n_steps"], checked["n_points"], device=torch.device(device))
    return Trajectory(
        experiment="e4",
        steps=result["steps"],
        observables={"param_norm": result["param_norm"].reshape(1, -1, 1)},
        metrics={name: result[name].reshape(1, -1) for name in METRICS if name != "param_norm"},
        params=checked,
    )
