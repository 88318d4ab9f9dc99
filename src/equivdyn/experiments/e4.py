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
:func:`train_long` trains initialisation 0 for long (20,000 steps by default) and records the
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

import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import ParameterError, check_choice, check_int, is_number
from ..store import Trajectory
from ._torch import ADAM_EPS, StackedAdamW, reproducible

log = logging.getLogger(__name__)

SETUPS = ("grokking", "constrained")
DTYPES = ("float32", "float64")
#: Recorded observable blocks: ``mlp_out`` is the MLP output weights W_out, flattened.
OBSERVABLES = ("mlp_out",)

#: The paper's settings; ``params`` given to :func:`simulate` may override any of them.
#: ``weight_decay`` and ``alpha`` of ``None`` take the setup's value (:data:`SETUP_DEFAULTS`);
#: :func:`check_params` writes the value in, so equal runs get equal parameters.
DEFAULTS: dict[str, Any] = {
    "setup": "grokking",
    "seed": 0,
    "n_inits": 10,
    "perturbation": 0.001,
    "p": 113,
    "train_fraction": 0.3,
    "data_seed": 0,
    "d_model": 128,
    "n_heads": 4,
    "d_head": 32,
    "d_mlp": 512,
    "lr": 1e-3,
    "betas": [0.9, 0.98],
    "weight_decay": None,
    "alpha": None,
    "n_steps": 100,
    "dtype": "float64",
    "observable": "mlp_out",
    "observable_dtype": "float32",
}

#: What ``weight_decay=None`` and ``alpha=None`` mean in each setup.
SETUP_DEFAULTS: dict[str, dict[str, float]] = {
    "grokking": {"weight_decay": 1.0, "alpha": 1.0},
    "constrained": {"weight_decay": 0.0, "alpha": 0.8},
}

#: Parameters of the long runs (:func:`simulate_long`): the model and optimiser parameters
#: of :data:`DEFAULTS` (the ensemble's ``n_inits``, ``perturbation``, ``n_steps`` and
#: observable choices do not apply), the number of steps and of logged points.
LONG_DEFAULTS: dict[str, Any] = {  # 10,000 steps show the grokking jump; the paper (profiles/paper) runs 2e4
    **{k: v for k, v in DEFAULTS.items() if k not in ("n_inits", "perturbation", "n_steps", "observable", "observable_dtype")},
    "n_steps": 10_000,
    "n_points": 200,
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

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64}
# The fast trainer runs the examples in chunks of _CHUNK_ELEMENTS // M (at least 64), which
# keeps its largest activations, [M, chunk, d_mlp], at 10 MB (d_mlp 512, float64): small
# enough to stay in cache and to be recycled by the memory allocator instead of being
# mapped fresh (page faults) every time.  Measured below (TRAIN_THREADS).
_CHUNK_ELEMENTS = 2560
_MAX_CHUNK_ROWS = 1280


# ----------------------------------------------------------------------------- parameters


def _check_real(value: object, name: str, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    """``value`` as float if it is a finite number in [low, high) (or (low, high) when ``low_open``)."""
    ok = is_number(value) and math.isfinite(float(value))  # type: ignore[arg-type]
    if ok:
        x = float(value)  # type: ignore[arg-type]
        ok = (x > low if low_open else x >= low) and x < high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high})"
        raise ParameterError(f"{name}: must be a finite number in {interval}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


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
        Naming the field that is unknown or has a bad value.
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ParameterError(f"unknown E4 parameter(s): {', '.join(sorted(map(str, unknown)))}")
    p = {**DEFAULTS, **params}
    out: dict[str, Any] = {}
    out["setup"] = check_choice(p["setup"], "setup", SETUPS)
    out["seed"] = check_int(p["seed"], "seed", 0)
    if out["seed"] >= 2**63:
        raise ParameterError(f"seed must be < 2**63, got {out['seed']}")
    out["n_inits"] = check_int(p["n_inits"], "n_inits", 1)
    out["perturbation"] = _check_real(p["perturbation"], "perturbation", low=0.0, high=1.0)
    out["p"] = check_int(p["p"], "p", 2)
    out["train_fraction"] = _check_real(p["train_fraction"], "train_fraction", low=0.0, high=1.0, low_open=True)
    n_train, n_test = _split_sizes(out["p"], out["train_fraction"])
    if n_train < 1 or n_test < 1:
        raise ParameterError(
            f"train_fraction: {out['train_fraction']} of the {out['p']}² pairs gives {n_train} training and "
            f"{n_test} test pairs; both sets need at least one"
        )
    out["data_seed"] = check_int(p["data_seed"], "data_seed", 0)
    if out["data_seed"] >= 2**63:
        raise ParameterError(f"data_seed must be < 2**63, got {out['data_seed']}")
    for name in ("d_model", "n_heads", "d_head", "d_mlp"):
        out[name] = check_int(p[name], name, 1)
    out["lr"] = _check_real(p["lr"], "lr", low=0.0, low_open=True)
    betas = p["betas"]
    if not (
        isinstance(betas, (list, tuple))
        and len(betas) == 2
        and all(is_number(b) and 0.0 <= float(b) < 1.0 for b in betas)
    ):
        raise ParameterError(f"betas: must be [beta1, beta2] with numbers in [0, 1), got {betas!r}")
    out["betas"] = [float(betas[0]), float(betas[1])]
    setup_defaults = SETUP_DEFAULTS[out["setup"]]
    wd = setup_defaults["weight_decay"] if p["weight_decay"] is None else p["weight_decay"]
    out["weight_decay"] = _check_real(wd, "weight_decay", low=0.0)
    alpha = setup_defaults["alpha"] if p["alpha"] is None else p["alpha"]
    out["alpha"] = _check_real(alpha, "alpha", low=0.0, low_open=True)
    out["n_steps"] = check_int(p["n_steps"], "n_steps", 1)
    out["dtype"] = check_choice(p["dtype"], "dtype", DTYPES)
    out["observable"] = check_choice(p["observable"], "observable", OBSERVABLES)
    out["observable_dtype"] = check_choice(p["observable_dtype"], "observable_dtype", DTYPES)
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
        p = check_params(params)
        return cls(**{**p, "betas": (p["betas"][0], p["betas"][1])})

    @property
    def torch_dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self.dtype]

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


# ----------------------------------------------------------------------------- data and initialisation


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
    p = check_int(p, "p", 2)
    train_fraction = _check_real(train_fraction, "train_fraction", low=0.0, high=1.0, low_open=True)
    n_train, n_test = _split_sizes(p, train_fraction)
    if n_train < 1 or n_test < 1:
        raise ParameterError(f"train_fraction: {train_fraction} of {p}² pairs leaves a set empty")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(check_int(data_seed, "data_seed", 0))
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


# ----------------------------------------------------------------------------- fast ensemble trainer

# Table names of :func:`_token_tables`, in a fixed order for the backward pass through them.
_TABLES = ("resid2", "score0", "score1", "score2", "value0", "value1", "value2")
# Parameters whose gradients the chunked pass computes directly; the others (embeddings,
# W_Q, W_K, W_V) get theirs by backpropagating the tables' gradients with autograd.
_DIRECT = ("W_O", "W_in", "b_in", "W_out", "b_out", "W_U")


def _token_tables(w: Mapping[str, Tensor], p: int) -> dict[str, Tensor]:
    """What the last position needs from positions 0, 1 and 2, tabulated per token.

    The residual stream at position j holding token t is W_E[t] + W_pos[j]; positions 0
    and 1 hold a number (t < p), position 2 always '='.  The last position's query is
    therefore one vector per head, its attention score for a key at position j is a
    function of that position's token only, and so is the value.

    Returns
    -------
    dict
        ``resid2`` [M, d]: residual stream at position 2;
        ``score0``, ``score1`` [M, p, H]: scaled scores of a key token at position 0 / 1;
        ``score2`` [M, H]: scaled score of position 2 on itself;
        ``value0``, ``value1`` [M, p, H·d_head]: values of a token at position 0 / 1;
        ``value2`` [M, H·d_head]: value of position 2.
    """
    w_e, w_pos = w["W_E"], w["W_pos"]
    resid0 = w_e[:, :p] + w_pos[:, 0:1]  # [M, p, d]
    resid1 = w_e[:, :p] + w_pos[:, 1:2]
    resid2 = w_e[:, p] + w_pos[:, 2]  # [M, d]
    scale = 1.0 / math.sqrt(w["W_Q"].shape[2])
    query = torch.einsum("mhed,md->mhe", w["W_Q"], resid2)  # [M, H, e]
    # score(key) = (W_K r)·q = r·(W_Kᵀ q): one d-vector per head instead of a key per token.
    key_dir = torch.einsum("mhed,mhe->mdh", w["W_K"], query) * scale  # [M, d, H]
    n_members = w_e.shape[0]
    return {
        "resid2": resid2,
        "score0": torch.bmm(resid0, key_dir),
        "score1": torch.bmm(resid1, key_dir),
        "score2": torch.einsum("md,mdh->mh", resid2, key_dir),
        "value0": torch.einsum("mtd,mhed->mthe", resid0, w["W_V"]).reshape(n_members, p, -1),
        "value1": torch.einsum("mtd,mhed->mthe", resid1, w["W_V"]).reshape(n_members, p, -1),
        "value2": torch.einsum("md,mhed->mhe", resid2, w["W_V"]).reshape(n_members, -1),
    }


@dataclass
class _Chunk:
    """Activations of a chunk of examples (a, b, =) at the last position, [M, C, ...] each."""

    a: Tensor  # int64 [C]
    b: Tensor  # int64 [C]
    pattern: Tensor  # [M, 3, C, H]  attention of the last position on positions 0, 1, 2
    value0: Tensor  # [M, C, H, e]  values of the chunk's tokens at position 0
    value1: Tensor  # [M, C, H, e]
    z: Tensor  # [M, C, H·e]  attention output before W_O
    resid: Tensor  # [M, C, d]  residual stream after attention
    hidden: Tensor  # [M, C, d_mlp]  MLP activations after the ReLU
    resid_out: Tensor  # [M, C, d]  residual stream after the MLP
    logits: Tensor  # [M, C, p+1]


def _chunk_forward(w: Mapping[str, Tensor], tables: Mapping[str, Tensor], a: Tensor, b: Tensor) -> _Chunk:
    """Forward pass of the examples (a[i], b[i], =) at the last position only, for every member."""
    n_members, n_heads = tables["score2"].shape
    n = a.shape[0]
    d_head = tables["value2"].shape[1] // n_heads
    score0 = tables["score0"].index_select(1, a)  # [M, C, H]
    scores = torch.stack([score0, tables["score1"].index_select(1, b), tables["score2"][:, None].expand_as(score0)], dim=1)
    # Softmax over the three key positions; along dim 1 it is vectorised over the (C, H)
    # positions behind it, three times faster than along a last dimension of 3.
    pattern = torch.softmax(scores, dim=1)  # [M, 3, C, H]
    weights = pattern.unsqueeze(-1)  # [M, 3, C, H, 1]
    value0 = tables["value0"].index_select(1, a).view(n_members, n, n_heads, d_head)
    value1 = tables["value1"].index_select(1, b).view(n_members, n, n_heads, d_head)
    z = value0 * weights[:, 0]
    z.addcmul_(value1, weights[:, 1]).addcmul_(tables["value2"].view(n_members, 1, n_heads, d_head), weights[:, 2])
    z = z.view(n_members, n, -1)
    resid = torch.bmm(z, w["W_O"].transpose(1, 2)).add_(tables["resid2"][:, None])
    hidden = torch.bmm(resid, w["W_in"].transpose(1, 2)).add_(w["b_in"][:, None]).relu_()
    resid_out = torch.baddbmm(resid, hidden, w["W_out"].transpose(1, 2)).add_(w["b_out"][:, None])
    logits = torch.bmm(resid_out, w["W_U"])
    return _Chunk(a, b, pattern, value0, value1, z, resid, hidden, resid_out, logits)


def _chunk_backward(
    w: Mapping[str, Tensor], tables: Mapping[str, Tensor], c: _Chunk, d_logits: Tensor, grads: dict[str, Tensor]
) -> None:
    """Add the chunk's contribution to the gradients of the direct parameters and of the tables.

    ``d_logits`` [M, C, p+1] is the gradient of the loss with respect to the chunk's logits;
    ``grads`` maps the names of :data:`_DIRECT` and :data:`_TABLES` to zero-initialised
    accumulators of their shapes.
    """
    n_members, n, n_heads, d_head = c.value0.shape
    grads["W_U"].baddbmm_(c.resid_out.transpose(1, 2), d_logits)
    d_resid = torch.bmm(d_logits, w["W_U"].transpose(1, 2))  # [M, C, d]
    grads["b_out"].add_(d_resid.sum(1))
    grads["W_out"].baddbmm_(d_resid.transpose(1, 2), c.hidden)
    # Gradient of the ReLU's output, then of its input: zero where the unit is off.
    # (threshold_backward is ReLU's own backward kernel: one fused pass.)
    d_pre = torch.ops.aten.threshold_backward(torch.bmm(d_resid, w["W_out"]), c.hidden, 0)
    grads["b_in"].add_(d_pre.sum(1))
    grads["W_in"].baddbmm_(d_pre.transpose(1, 2), c.resid)
    d_resid.baddbmm_(d_pre, w["W_in"])  # the residual stream after attention: both paths
    grads["resid2"].add_(d_resid.sum(1))
    grads["W_O"].baddbmm_(d_resid.transpose(1, 2), c.z)
    d_z = torch.bmm(d_resid, w["W_O"]).view(n_members, n, n_heads, d_head)
    # z = Σ_j pattern_j · value_j per head: gradients of the values and of the pattern.
    value2 = tables["value2"].view(n_members, 1, n_heads, d_head)
    d_pattern = torch.stack([(d_z * c.value0).sum(-1), (d_z * c.value1).sum(-1), (d_z * value2).sum(-1)], dim=1)
    weights = c.pattern.unsqueeze(-1)
    grads["value0"].index_add_(1, c.a, (d_z * weights[:, 0]).view(n_members, n, -1))
    grads["value1"].index_add_(1, c.b, (d_z * weights[:, 1]).view(n_members, n, -1))
    grads["value2"].add_((d_z * weights[:, 2]).sum(1).view(n_members, -1))
    # Softmax backward: d_score = pattern · (d_pattern − Σ_j pattern_j d_pattern_j).
    d_score = c.pattern * (d_pattern - (c.pattern * d_pattern).sum(1, keepdim=True))  # [M, 3, C, H]
    grads["score0"].index_add_(1, c.a, d_score[:, 0])
    grads["score1"].index_add_(1, c.b, d_score[:, 1])
    grads["score2"].add_(d_score[:, 2].sum(1))


def _chunk_rows(n_members: int) -> int:
    """Examples per chunk: bounds the [M, C, d_mlp] activations to a cache-friendly size."""
    return max(64, min(_MAX_CHUNK_ROWS, _CHUNK_ELEMENTS // n_members))


@torch.no_grad()
def _project_norm(w: Mapping[str, Tensor], target: Tensor) -> None:
    """Rescale every member's parameters together to the total norms ``target`` [M]."""
    factor = target / _total_norm(w)
    for t in w.values():
        t.mul_(factor.view(-1, *([1] * (t.dim() - 1))))


class _EnsembleRun:
    """A fast run's data, stacked parameters and optimiser, with one method per stage of a step."""

    def __init__(self, cfg: E4Config, params: dict[str, Tensor], device: torch.device) -> None:
        self.cfg = cfg
        x_train, y_train, x_test, y_test = make_data(cfg.p, cfg.train_fraction, cfg.data_seed)
        rows = _chunk_rows(cfg.n_inits)

        def chunks(x: np.ndarray, y: np.ndarray) -> list[tuple[Tensor, Tensor, Tensor]]:
            t = torch.from_numpy(np.concatenate([x[:, :2], y[:, None]], axis=1)).to(device)
            return [(c[:, 0].contiguous(), c[:, 1].contiguous(), c[:, 2].contiguous()) for c in t.split(rows)]

        self.train_chunks, self.test_chunks = chunks(x_train, y_train), chunks(x_test, y_test)
        self.n_train, self.n_test = len(y_train), len(y_test)
        self.w = {name: t.to(device) for name, t in params.items()}
        self.optimizer = StackedAdamW([self.w[name] for name in PARAM_NAMES], cfg.lr, cfg.betas, cfg.weight_decay)
        self.initial_norm = _total_norm(self.w)

    def _metrics(self, c: _Chunk, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-normaliser [M, C], summed NLL [M] and number of correct answers [M] of a chunk."""
        top, predicted = c.logits.max(-1)
        # log Σ exp(logits), shifted by the maximum that the accuracy needs anyway.
        log_norm = (c.logits - top.unsqueeze(-1)).exp_().sum(-1).log_().add_(top)
        target = c.logits.gather(-1, labels.expand(c.logits.shape[0], -1).unsqueeze(-1)).squeeze(-1)
        nll = (log_norm - target).sum(1, dtype=torch.float64)
        correct = (predicted == labels).sum(-1).to(torch.float64)
        return log_norm, nll, correct

    def train_pass(self, backward: bool) -> tuple[Tensor, Tensor, list[Tensor] | None]:
        """Training loss [M] and accuracy [M] of the current state, and (if asked) the gradients.

        Gradients in :data:`PARAM_NAMES` order, of the mean loss of each member.
        """
        w = self.w
        if backward:
            leaves = {name: w[name].detach().requires_grad_(True) for name in PARAM_NAMES if name not in _DIRECT}
            with torch.enable_grad():
                tables_graph = _token_tables({**w, **leaves}, self.cfg.p)
            tables = {name: t.detach() for name, t in tables_graph.items()}
            grads = {name: torch.zeros_like(w[name]) for name in _DIRECT}
            grads.update({name: torch.zeros_like(tables[name]) for name in _TABLES})
        else:
            tables = _token_tables(w, self.cfg.p)
        nll_sum = torch.zeros(self.cfg.n_inits, dtype=torch.float64, device=self.initial_norm.device)
        correct = torch.zeros_like(nll_sum)
        for a, b, labels in self.train_chunks:
            c = _chunk_forward(w, tables, a, b)
            log_norm, nll, right = self._metrics(c, labels)
            nll_sum += nll
            correct += right
            if backward:
                # d(mean NLL)/d logits = (softmax − one-hot) / N.
                d_logits = (c.logits - log_norm.unsqueeze(-1)).exp_()
                d_logits.scatter_add_(
                    -1, labels.expand(d_logits.shape[0], -1).unsqueeze(-1), torch.full_like(d_logits[..., :1], -1.0)
                ).mul_(1.0 / self.n_train)
                _chunk_backward(w, tables, c, d_logits, grads)
        all_grads = None
        if backward:
            table_grads = torch.autograd.grad(
                [tables_graph[name] for name in _TABLES], list(leaves.values()), [grads[name] for name in _TABLES]
            )
            grads.update(zip(leaves, table_grads))
            all_grads = [grads[name] for name in PARAM_NAMES]
        return nll_sum / self.n_train, correct / self.n_train, all_grads

    def test_pass(self) -> tuple[Tensor, Tensor]:
        """Test loss [M] and accuracy [M] of the current state."""
        tables = _token_tables(self.w, self.cfg.p)
        nll_sum = torch.zeros(self.cfg.n_inits, dtype=torch.float64, device=self.initial_norm.device)
        correct = torch.zeros_like(nll_sum)
        for a, b, labels in self.test_chunks:
            _, nll, right = self._metrics(_chunk_forward(self.w, tables, a, b), labels)
            nll_sum += nll
            correct += right
        return nll_sum / self.n_test, correct / self.n_test

    def step(self, grads: list[Tensor]) -> None:
        """One AdamW step (and the norm projection of the constrained setup)."""
        self.optimizer.step(grads)
        if self.cfg.project_norm:
            _project_norm(self.w, self.initial_norm)

    def norm(self) -> Tensor:
        return _total_norm(self.w)


def train_ensemble(
    params: Mapping[str, Any], threads: int | None = None, device: str | torch.device = "cpu"
) -> Trajectory:
    """Train every initialisation of one (setup, seed) together, computing only what the loss needs.

    Parameters
    ----------
    params : dict
        E4 parameters (see :data:`DEFAULTS`).
    threads : int, optional
        Intra-op CPU threads during training (restored afterwards); default
        :data:`TRAIN_THREADS`.
    device : str or torch.device
        Where to train; the result is the same format on every device.

    Returns
    -------
    Trajectory
        ``steps`` 1 … n_steps; observable ``mlp_out`` [M, n_steps, d_model·d_mlp] in
        ``observable_dtype``; metrics ``train_loss``, ``train_accuracy``, ``test_loss``,
        ``test_accuracy`` and ``param_norm`` [M, n_steps], each of the state after that step.
    """
    checked = check_params(params)
    cfg = E4Config.from_params(checked)
    threads = TRAIN_THREADS if threads is None else threads
    device = torch.device(device)
    log.info(
        "E4 ensemble: %s, seed %d, %d initialisations, %d steps, %s on %s with %d thread(s)",
        cfg.setup, cfg.seed, cfg.n_inits, cfg.n_steps, cfg.dtype, device, threads,
    )
    started = time.perf_counter()
    with reproducible(threads, device), torch.no_grad():
        run = _EnsembleRun(cfg, init_params(cfg, cfg.seed), device)
        m, n_steps = cfg.n_inits, cfg.n_steps
        records = torch.empty(m, n_steps, cfg.d_model * cfg.d_mlp, dtype=_TORCH_DTYPES[cfg.observable_dtype], device=device)
        metrics = {name: torch.empty(m, n_steps, dtype=torch.float64, device=device) for name in METRICS}
        bar = tqdm(total=n_steps, desc=f"e4 {cfg.setup} seed {cfg.seed}", unit="step", file=sys.stderr, mininterval=5.0)
        # The training pass of step t+1 evaluates the state after step t, so the training
        # metrics of that state come for free; one pass without gradients after the last
        # step gives the last state's.
        _, _, grads = run.train_pass(backward=True)
        for t in range(n_steps):
            run.step(grads)
            records[:, t] = run.w["W_out"].reshape(m, -1)
            metrics["param_norm"][:, t] = run.norm()
            metrics["test_loss"][:, t], metrics["test_accuracy"][:, t] = run.test_pass()
            loss, accuracy, grads = run.train_pass(backward=t + 1 < n_steps)
            metrics["train_loss"][:, t], metrics["train_accuracy"][:, t] = loss, accuracy
            bar.update()
        bar.close()
    traj = _trajectory(checked, records, metrics, cfg.observable_dtype)
    log.info(
        "E4 ensemble done in %.2f s: last step, mean over initialisations: train accuracy %.3f, test accuracy %.3f",
        time.perf_counter() - started, traj.metrics["train_accuracy"][:, -1].mean(),
        traj.metrics["test_accuracy"][:, -1].mean(),
    )
    return traj


def log_schedule(n_steps: int, n_points: int) -> np.ndarray:
    """About ``n_points`` distinct steps from 0 to ``n_steps``, log-spaced, with 0, 1 and ``n_steps``.

    Returns
    -------
    int64 [T]
        Ascending; T = min(n_points, n_steps + 1) unless rounding merges a few.
    """
    n_steps, n_points = check_int(n_steps, "n_steps", 1), check_int(n_points, "n_points", 2)
    if n_points >= n_steps + 1:
        return np.arange(n_steps + 1, dtype=np.int64)
    # Rounding merges the dense low end; ask for more log-spaced points until enough survive.
    n_log = n_points - 1
    while True:
        steps = np.unique(np.concatenate([[0], np.rint(np.geomspace(1, n_steps, n_log)).astype(np.int64)]))
        if steps.size >= n_points or n_log > 4 * n_points:
            return steps
        n_log += 1


def train_long(
    params: Mapping[str, Any],
    n_steps_long: int = 20_000,
    n_points: int = 200,
    *,
    threads: int | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Train initialisation 0 of a (setup, seed) for long, logging on a log-spaced schedule.

    Parameters
    ----------
    params : dict
        E4 parameters (see :data:`DEFAULTS`); ``n_inits``, ``perturbation``, ``n_steps``
        and the observable choices do not apply.
    n_steps_long : int
        Optimiser steps.
    n_points : int
        About this many logged states (:func:`log_schedule`), step 0 and the last included.

    Returns
    -------
    dict of str to ndarray
        ``steps`` int64 [T]; ``train_loss``, ``train_accuracy``, ``test_loss``,
        ``test_accuracy``, ``param_norm`` float64 [T], each of the state after that many steps.
    """
    cfg = E4Config.from_params({**params, "n_inits": 1})
    n_steps_long = check_int(n_steps_long, "n_steps_long", 1)
    schedule = log_schedule(n_steps_long, n_points)
    threads = TRAIN_THREADS if threads is None else threads
    device = torch.device(device)
    log.info("E4 long run: %s, seed %d, %d steps on %s with %d thread(s)", cfg.setup, cfg.seed, n_steps_long, device, threads)
    started = time.perf_counter()
    out = {name: np.empty(schedule.size, dtype=np.float64) for name in METRICS}
    with reproducible(threads, device), torch.no_grad():
        run = _EnsembleRun(cfg, init_params(cfg, cfg.seed), device)
        bar = tqdm(total=n_steps_long, desc=f"e4 long {cfg.setup} seed {cfg.seed}", unit="step", file=sys.stderr, mininterval=10.0)
        k = 0
        for t in range(n_steps_long + 1):  # t: steps taken so far
            loss, accuracy, grads = run.train_pass(backward=t < n_steps_long)
            if t == schedule[k]:
                test_loss, test_accuracy = run.test_pass()
                for name, value in (
                    ("train_loss", loss), ("train_accuracy", accuracy), ("test_loss", test_loss),
                    ("test_accuracy", test_accuracy), ("param_norm", run.norm()),
                ):
                    out[name][k] = float(value[0])
                k += 1
            if grads is not None:
                run.step(grads)
                bar.update()
        bar.close()
    log.info(
        "E4 long run done in %.1f s: test accuracy %.3f at step %d",
        time.perf_counter() - started, out["test_accuracy"][-1], n_steps_long,
    )
    return {"steps": schedule, **out}


# ----------------------------------------------------------------------------- reference


class Transformer(nn.Module):
    """The one-layer transformer without LayerNorm on whole sequences, holding given parameters.

    ``forward`` maps tokens int64 [N, 3] to logits [N, 3, p+1] at every position.
    """

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        for name in PARAM_NAMES:
            self.register_parameter(name, nn.Parameter(params[name].detach().clone()))
        self.register_buffer("causal", torch.tril(torch.ones(N_CTX, N_CTX, dtype=torch.bool)))

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.W_E[tokens] + self.W_pos  # [N, 3, d]
        q = torch.einsum("hed,nsd->nhse", self.W_Q, x)
        k = torch.einsum("hed,nsd->nhse", self.W_K, x)
        v = torch.einsum("hed,nsd->nhse", self.W_V, x)
        scores = (q @ k.transpose(-1, -2)).masked_fill(~self.causal, float("-inf")) / math.sqrt(q.shape[-1])
        z = F.softmax(scores, dim=-1) @ v  # [N, H, 3, e]
        x = x + z.transpose(1, 2).flatten(2) @ self.W_O.T  # heads concatenated head-major
        hidden = F.relu(x @ self.W_in.T + self.b_in)
        x = x + hidden @ self.W_out.T + self.b_out
        return x @ self.W_U


def full_loss(model: nn.Module, inputs: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the logits at the last position (the public script's ``full_loss``)."""
    return F.cross_entropy(model(inputs)[:, -1], labels)


def full_accuracy(model: nn.Module, inputs: Tensor, labels: Tensor) -> Tensor:
    """Fraction of examples whose largest last-position logit is the answer (``full_accuracy``)."""
    return (model(inputs)[:, -1].argmax(-1) == labels).double().mean()


def train_reference(params: Mapping[str, Any], threads: int | None = None) -> Trajectory:
    """The straightforward recipe: one ``nn.Module`` and ``torch.optim.AdamW`` run per initialisation.

    Same initial parameters, data, arguments and output as :func:`train_ensemble`, on the CPU.
    Each iteration does the public script's work: the training loss from a whole-sequence
    forward pass with autograd (it is also the recorded training loss of the current state),
    then the test loss, training accuracy and test accuracy, each from its own forward pass
    (without autograd), then backward, optimiser step and (constrained setup) the norm
    projection.  Records are shifted by one against the script's, which logs the state
    before each step: here index t−1 holds the state after step t, as in :func:`train_ensemble`.
    """
    checked = check_params(params)
    cfg = E4Config.from_params(checked)
    threads = TRAIN_THREADS if threads is None else threads
    with reproducible(threads, torch.device("cpu")):
        x_train, y_train, x_test, y_test = (torch.from_numpy(x) for x in make_data(cfg.p, cfg.train_fraction, cfg.data_seed))
        inits = init_params(cfg, cfg.seed)
        m, n_steps = cfg.n_inits, cfg.n_steps
        records = torch.empty(m, n_steps, cfg.d_model * cfg.d_mlp, dtype=_TORCH_DTYPES[cfg.observable_dtype])
        metrics = {name: torch.empty(m, n_steps, dtype=torch.float64) for name in METRICS}
        for i in range(m):
            model = Transformer({name: t[i] for name, t in inits.items()})
            optimizer = torch.optim.AdamW(
                model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=ADAM_EPS, weight_decay=cfg.weight_decay
            )
            with torch.no_grad():
                initial_norm = torch.sqrt(sum(q.pow(2).sum() for q in model.parameters()))
            for t in range(n_steps + 1):  # t: steps taken so far
                train_loss = full_loss(model, x_train, y_train)
                if t > 0:
                    with torch.no_grad():
                        metrics["train_loss"][i, t - 1] = train_loss
                        metrics["test_loss"][i, t - 1] = full_loss(model, x_test, y_test)
                        metrics["train_accuracy"][i, t - 1] = full_accuracy(model, x_train, y_train)
                        metrics["test_accuracy"][i, t - 1] = full_accuracy(model, x_test, y_test)
                        metrics["param_norm"][i, t - 1] = torch.sqrt(sum(q.pow(2).sum() for q in model.parameters()))
                if t == n_steps:
                    break
                optimizer.zero_grad()
                train_loss.backward()
                optimizer.step()
                if cfg.project_norm:
                    with torch.no_grad():
                        norm = torch.sqrt(sum(q.pow(2).sum() for q in model.parameters()))
                        for q in model.parameters():
                            q.mul_(initial_norm / norm)
                records[i, t] = model.W_out.detach().reshape(-1)
    return _trajectory(checked, records, metrics, cfg.observable_dtype)


# ----------------------------------------------------------------------------- workflow entry


def _check_no_inputs(inputs: Mapping[str, Any] | None) -> None:
    if inputs:
        raise ParameterError(f"inputs: E4 generates its data and reads no input; got {sorted(inputs)}")


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def simulate(params: dict[str, Any], inputs: Mapping[str, Any] | None = None) -> Trajectory:
    """Train one E4 (setup, seed) ensemble with :func:`train_ensemble`.

    Parameters
    ----------
    params : dict
        Any of :data:`DEFAULTS`.
    inputs : mapping
        Must be empty: the data are generated.

    Returns
    -------
    Trajectory
        See :func:`train_ensemble`.  Trains on CUDA when available, else on the CPU.
    """
    checked = check_params(params)
    _check_no_inputs(inputs)
    return train_ensemble(checked, device=_default_device())


def simulate_long(params: dict[str, Any], inputs: Mapping[str, Any] | None = None) -> Trajectory:
    """One long run (:func:`train_long`) of initialisation 0 as a trajectory.

    Parameters
    ----------
    params : dict
        Any of :data:`LONG_DEFAULTS` (``n_steps``: the run's length; ``n_points``: logged states).
    inputs : mapping
        Must be empty.

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
    result = train_long(model_params, checked["n_steps"], checked["n_points"], device=_default_device())
    return Trajectory(
        experiment="e4",
        steps=result["steps"],
        observables={"param_norm": result["param_norm"].reshape(1, -1, 1)},
        metrics={name: result[name].reshape(1, -1) for name in METRICS if name != "param_norm"},
        params=checked,
    )
