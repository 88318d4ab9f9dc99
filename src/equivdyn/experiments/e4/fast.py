"""E4's fast trainers: every initialisation at once (train_ensemble) and the long runs (train_long)."""

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
from torch import Tensor
from tqdm import tqdm

from ...errors import check_int
from ...store import Trajectory
from .._torch import TORCH_DTYPES, StackedAdamW, reproducible
from .config import (
    LONG_DEFAULTS,
    METRICS,
    PARAM_NAMES,
    TRAIN_THREADS,
    E4Config,
    check_params,
)
from .task import _total_norm, _trajectory, init_params, make_data

log = logging.getLogger(__name__)

# The fast trainer runs the examples in chunks of _CHUNK_ELEMENTS // M (at least 64), which
# keeps its largest activations, [M, chunk, d_mlp], at 10 MB (d_mlp 512, float64): small
# enough to stay in cache and to be recycled by the memory allocator instead of being
# mapped fresh (page faults) every time.  Measured below (TRAIN_THREADS).
_CHUNK_ELEMENTS = 2560
_MAX_CHUNK_ROWS = 1280


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
    cfg = E4Config.from_checked(checked)
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
        records = torch.empty(m, n_steps, cfg.d_model * cfg.d_mlp, dtype=TORCH_DTYPES[cfg.observable_dtype], device=device)
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
    n_steps_long: int = LONG_DEFAULTS["n_steps"],
    n_points: int = LONG_DEFAULTS["n_points"],
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


