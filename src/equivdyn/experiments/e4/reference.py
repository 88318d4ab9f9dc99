"""E4's reference trainer: the paper's straightforward recipe, one nn.Module and torch.optim.AdamW per initialisation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...store import Trajectory
from .._torch import ADAM_EPS, TORCH_DTYPES, reproducible
from .config import (
    METRICS,
    N_CTX,
    PARAM_NAMES,
    TRAIN_THREADS,
    E4Config,
    check_params,
)
from .task import _trajectory, init_params, make_data


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
    cfg = E4Config.from_checked(checked)
    threads = TRAIN_THREADS if threads is None else threads
    with reproducible(threads, torch.device("cpu")):
        x_train, y_train, x_test, y_test = (torch.from_numpy(x) for x in make_data(cfg.p, cfg.train_fraction, cfg.data_seed))
        inits = init_params(cfg, cfg.seed)
        m, n_steps = cfg.n_inits, cfg.n_steps
        records = torch.empty(m, n_steps, cfg.d_model * cfg.d_mlp, dtype=TORCH_DTYPES[cfg.observable_dtype])
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


