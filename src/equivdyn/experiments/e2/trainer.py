"""Experiment E2: fully connected networks of width h trained on MNIST (paper Fig. 3).

Network 784 → h → activation → 10, no biases, log-softmax + NLL loss (mean over the batch).
SGD with lr 0.1 and batch 60 for one epoch in the dataset's fixed order: step i (1-based)
uses training samples 60(i−1) … 60i−1, so one epoch is 1000 steps.  Inputs are the pixels
as ``uint8 / 255`` normalised by ``(x − 0.1307) / 0.3081`` and flattened to 784 values.

Per seed, initialisation 0 is PyTorch's default ``nn.Linear`` initialisation
(kaiming-uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in)); initialisations 1 … M−1
multiply every weight of initialisation 0 by ``1 + perturbation · U(−1, 1)``
(:func:`init_weights` documents the draw order).

The observable is the output layer's weights, 10·h values flattened row-major from the
[10, h] matrix, recorded after every optimiser step (steps 1 … n_steps), as the paper's
script does.  Metrics: the training loss of every step (that step's batch, before the
update) and, at the end, the test loss (mean NLL over the test set) and test accuracy.

Two trainers give the same trajectories:

* :func:`train_ensemble`, the one the workflow runs: all M initialisations train together
  as one batched ensemble (stacked weights, batched matmuls, one backward pass, a manual
  SGD/Adam update of the stacked tensors);
* :func:`train_reference`, the plain ``nn.Module`` + ``torch.optim`` loop, one
  initialisation at a time: the oracle of the tests and of
  ``benchmarks/e2_batched_vs_loop.py``.

Each member's products in the batched trainer are GEMMs of the same shapes as in the loop
(a batched matmul over the members, not one fused matmul of all hidden units), so with the
same thread count they round alike: on a 2-core CPU with MKL the weights of the two were
bit-identical after a full epoch, float32 included (the tests ask only for 1e-10 in
float64 and 1e-5 in float32).  This matters because the dynamics amplify rounding: a
fused first-layer matmul rounds differently, and in float32 that difference grew from
1e-8 after one step to 3e-2 after an epoch at width 40, comparable to the spread that
the 0.1 % perturbations themselves cause (0.04-0.07).

Both run with a fixed intra-op thread count (:data:`TRAIN_THREADS` unless told otherwise),
and on CUDA with deterministic algorithms, so the same parameters give bit-identical
trajectories run to run on the same machine and device.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ...data import mnist
from ...errors import ParameterError, check_int
from ...store import Trajectory
from .._torch import TORCH_DTYPES, StackedAdamW, StackedSGD, reproducible
from ...params import check_job
from .settings import ACTIVATIONS, DTYPES, OPTIMIZERS, E2Job, E2Train  # noqa: F401 (re-exported choices)

log = logging.getLogger(__name__)

#: The paper's settings (:class:`.settings.E2Train`) and the width and seed of one job;
#: ``params`` given to :func:`simulate` may override any of them.  ``n_steps=None`` means
#: one epoch of the training set (``len(x_train) // batch_size``).
DEFAULTS: dict[str, Any] = {**E2Job.defaults(), **E2Train.defaults()}

N_PIXELS = 28 * 28
N_CLASSES = 10
#: Size of the MNIST training set: the most samples any E2 run can use.
MNIST_TRAIN_SIZE = 60_000

#: Intra-op CPU threads of both trainers.  Measured on a 2-core CPU, one epoch, 10
#: initialisations, batched trainer, machine otherwise idle: width 5 takes 0.80-0.84 s with
#: 1 thread and 0.51-0.52 s with 2; width 40 takes 1.52-1.59 s with 1 and 0.90-1.00 s with
#: 2.  With another process busy on the second core, 2 threads took 2-48 s (OpenMP's
#: barriers wait on a descheduled thread) while 1 thread stayed at 0.8 s and 1.5 s.  The
#: workflow declares ``threads: 1`` per training job and runs jobs side by side, so 1 it is.
#: (The batched trainer's weights were bit-identical with 1 and 2 threads; the loop's were
#: not, since a GEMM's summation order can depend on the thread count.)
TRAIN_THREADS = 1

# Adam's betas in torch.optim.Adam; the batched update reproduces its arithmetic.
_ADAM_BETAS = (0.9, 0.999)
# Test images evaluated at once by the batched trainer: bounds the [M, chunk, h] activations.
_EVAL_CHUNK = 2_500

_ACTIVATION_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


# ----------------------------------------------------------------------------- parameters


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``params`` over :data:`DEFAULTS` and validate every field.

    Returns
    -------
    dict
        Every parameter, defaults filled in, numbers as plain ``int``/``float``.

    Raises
    ------
    ParameterError
        Naming the field that is unknown or has a bad value (types and ranges as in
        :mod:`.settings`).  ``n_steps`` may not ask for more batches than the MNIST training
        set (60,000 samples) holds, and ``normalize``'s std must be positive.
    """
    out = check_job(params, E2Job, E2Train, "E2")
    if out["n_steps"] is not None:
        available = MNIST_TRAIN_SIZE // out["batch_size"]
        if out["n_steps"] > available:
            raise ParameterError(
                f"n_steps: {out['n_steps']} steps need more batches than the MNIST training set holds "
                f"({MNIST_TRAIN_SIZE} samples give {available} batches of {out['batch_size']}; "
                "E2 trains one epoch at most)"
            )
    if out["normalize"][1] <= 0.0:
        raise ParameterError(f"normalize: must be [mean, std] with std > 0, got {out['normalize']!r}")
    return out


@dataclass(frozen=True)
class FCNConfig:
    """Checked E2 parameters (see :data:`DEFAULTS`); build it with :meth:`from_params`."""

    width: int
    seed: int
    n_inits: int
    perturbation: float
    lr: float
    batch_size: int
    n_steps: int | None
    activation: str
    optimizer: str
    dtype: str
    normalize: tuple[float, float]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FCNConfig:
        """Check ``params`` (merged over :data:`DEFAULTS`) and build the config."""
        return cls.from_checked(check_params(params))

    @classmethod
    def from_checked(cls, p: Mapping[str, Any]) -> FCNConfig:
        """The config of parameters :func:`check_params` returned (not checked again)."""
        return cls(**{**p, "normalize": (p["normalize"][0], p["normalize"][1])})

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]

    def steps_for(self, n_train: int) -> int:
        """Number of optimiser steps on a training set of ``n_train`` samples."""
        available = n_train // self.batch_size
        n_steps = available if self.n_steps is None else self.n_steps
        if n_steps < 1 or n_steps > available:
            raise ParameterError(
                f"n_steps: {n_steps} steps of batch_size {self.batch_size} need "
                f"{max(n_steps, 1) * self.batch_size} training samples, but the training set holds "
                f"{n_train} ({available} batches)"
            )
        return n_steps


# ----------------------------------------------------------------------------- initialisation


def init_weights(
    width: int, seed: int, n_inits: int, perturbation: float, dtype: str | torch.dtype = "float32"
) -> tuple[Tensor, Tensor]:
    """Initial weights of every initialisation of one seed.

    Everything is drawn on the CPU in float64 from one ``torch.Generator`` seeded with
    ``seed`` (the global RNG is never touched), then rounded to ``dtype``, so the float32
    and float64 runs of a seed start from the same weights up to rounding.  Draw order:

    1. W1 of initialisation 0, [width, 784], kaiming-uniform a=√5 (U(±1/√784));
    2. W2 of initialisation 0, [10, width], kaiming-uniform a=√5 (U(±1/√width));
    3. for m = 1 … n_inits−1: U(−1, 1) of shape [width, 784], then of shape [10, width];
       W·(1 + perturbation·U) gives initialisation m.

    Returns
    -------
    w1 : Tensor [n_inits, width, 784]
    w2 : Tensor [n_inits, 10, width]
    """
    width = check_int(width, "width", 1)
    n_inits = check_int(n_inits, "n_inits", 1)
    torch_dtype = TORCH_DTYPES[dtype] if isinstance(dtype, str) else dtype
    gen = torch.Generator(device="cpu")
    gen.manual_seed(check_int(seed, "seed", 0))
    w1 = torch.empty(n_inits, width, N_PIXELS, dtype=torch.float64)
    w2 = torch.empty(n_inits, N_CLASSES, width, dtype=torch.float64)
    # PyTorch's own nn.Linear.reset_parameters scheme, with our generator.
    nn.init.kaiming_uniform_(w1[0], a=math.sqrt(5), generator=gen)
    nn.init.kaiming_uniform_(w2[0], a=math.sqrt(5), generator=gen)
    for m in range(1, n_inits):
        u1 = torch.empty(width, N_PIXELS, dtype=torch.float64).uniform_(-1.0, 1.0, generator=gen)
        u2 = torch.empty(N_CLASSES, width, dtype=torch.float64).uniform_(-1.0, 1.0, generator=gen)
        w1[m] = w1[0] * (1.0 + perturbation * u1)
        w2[m] = w2[0] * (1.0 + perturbation * u2)
    return w1.to(torch_dtype), w2.to(torch_dtype)


# ----------------------------------------------------------------------------- shared pieces


def _check_arrays(x: np.ndarray, y: np.ndarray, name: str) -> None:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or x.shape[0] == 0:
        raise ValueError(f"x_{name} must be a non-empty uint8 array [N, 28, 28], got {x.dtype} {x.shape}")
    if y.dtype != np.uint8 or y.shape != (x.shape[0],):
        raise ValueError(f"y_{name} must be a uint8 array [{x.shape[0]}], got {y.dtype} {y.shape}")
    if y.max() >= N_CLASSES:
        raise ValueError(f"y_{name} holds label {int(y.max())}; labels must be 0 … {N_CLASSES - 1}")


def _pixels(x: np.ndarray, cfg: FCNConfig, device: torch.device) -> Tensor:
    """uint8 images [N, 28, 28] → normalised [N, 784] in the training dtype, as ToTensor + Normalize do."""
    mean, std = cfg.normalize
    flat = torch.from_numpy(np.ascontiguousarray(x).reshape(len(x), N_PIXELS)).to(device)
    return flat.to(cfg.torch_dtype).div_(255.0).sub_(mean).div_(std)


def _trajectory(
    params: dict[str, Any],
    weights: Tensor,
    train_loss: Tensor,
    test_loss: Tensor,
    test_accuracy: Tensor,
) -> Trajectory:
    """Package the records (on any device, in the training dtype) as an E2 trajectory."""
    n_steps = weights.shape[1]
    last = np.array([n_steps], dtype=np.int64)
    return Trajectory(
        experiment="e2",
        steps=np.arange(1, n_steps + 1, dtype=np.int64),
        observables={"output_weights": weights.cpu().numpy().astype(np.float64)},
        metrics={
            "train_loss": train_loss.cpu().numpy().astype(np.float64),
            "test_loss": test_loss.cpu().numpy().astype(np.float64).reshape(-1, 1),
            "test_accuracy": test_accuracy.cpu().numpy().astype(np.float64).reshape(-1, 1),
        },
        metric_steps={"test_loss": last, "test_accuracy": last.copy()},
        params=params,
    )


# ----------------------------------------------------------------------------- batched ensemble


def ensemble_logits(x: Tensor, w1: Tensor, w2: Tensor, activation: str) -> Tensor:
    """Logits of every member of the ensemble on the same inputs.

    Parameters
    ----------
    x : Tensor [B, 784]
    w1 : Tensor [M, h, 784]
    w2 : Tensor [M, 10, h]

    Returns
    -------
    Tensor [M, B, 10]
    """
    # One batched matmul over the members, each member's product a GEMM of the same shape as
    # in the per-initialisation loop, so that the rounding, and with it the trajectory, is
    # the loop's (see the module docstring).  The input batch is shared: expand is a view.
    x = x.expand(w1.shape[0], *x.shape)
    hidden = _ACTIVATION_FUNCTIONS[activation](torch.bmm(x, w1.transpose(1, 2)))  # [M, B, h]
    return torch.bmm(hidden, w2.transpose(1, 2))


def _make_optimizer(name: str, params: list[Tensor], lr: float) -> StackedSGD | StackedAdamW:
    return StackedSGD(params, lr) if name == "sgd" else StackedAdamW(params, lr, _ADAM_BETAS)


@torch.no_grad()
def _evaluate_ensemble(x: Tensor, y: Tensor, w1: Tensor, w2: Tensor, activation: str) -> tuple[Tensor, Tensor]:
    """Mean NLL [M] and accuracy [M] of every member on (x [N, 784], y int64 [N])."""
    nll_sum = torch.zeros(w1.shape[0], dtype=torch.float64, device=x.device)
    correct = torch.zeros(w1.shape[0], dtype=torch.int64, device=x.device)
    for start in range(0, x.shape[0], _EVAL_CHUNK):
        logp = F.log_softmax(ensemble_logits(x[start : start + _EVAL_CHUNK], w1, w2, activation), dim=-1)
        yc = y[start : start + _EVAL_CHUNK]
        target = yc.expand(logp.shape[0], -1).unsqueeze(-1)  # [M, chunk, 1]
        nll_sum -= logp.gather(-1, target).squeeze(-1).sum(-1, dtype=torch.float64)
        correct += (logp.argmax(-1) == yc).sum(-1)
    return nll_sum / x.shape[0], correct.to(torch.float64) / x.shape[0]


def train_ensemble(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: Mapping[str, Any],
    device: str | torch.device = "cpu",
    *,
    threads: int = TRAIN_THREADS,
) -> Trajectory:
    """Train every initialisation of one (width, seed) together as one batched ensemble.

    Parameters
    ----------
    x_train, x_test : uint8 [N, 28, 28]
    y_train, y_test : uint8 [N]
    params : dict
        E2 parameters (see :data:`DEFAULTS`).
    device : str or torch.device
        Where to train; the result is the same format on every device.
    threads : int
        Intra-op CPU threads during training (restored afterwards).

    Returns
    -------
    Trajectory
        ``steps`` 1 … n_steps; observable ``output_weights`` float64 [M, n_steps, 10·h];
        metrics ``train_loss`` [M, n_steps], ``test_loss`` and ``test_accuracy`` [M, 1]
        (recorded at the last step).
    """
    checked = check_params(params)
    cfg = FCNConfig.from_checked(checked)
    for x, y, name in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        _check_arrays(x, y, name)
    n_steps = cfg.steps_for(len(x_train))
    device = torch.device(device)
    batch, n_members = cfg.batch_size, cfg.n_inits
    log.info(
        "E2 ensemble: width %d, seed %d, %d initialisations, %d steps, %s, %s, %s on %s with %d thread(s)",
        cfg.width, cfg.seed, n_members, n_steps, cfg.optimizer, cfg.activation, cfg.dtype, device, threads,
    )
    started = time.perf_counter()
    with reproducible(threads, device):
        # Data: the part of the training set this run uses, converted once; batches are views.
        n_used = n_steps * batch
        x_all = _pixels(x_train[:n_used], cfg, device)
        # One-hot targets turn the NLL into a product: no scatter in the backward pass,
        # which on CUDA uses atomics (nondeterministic, or slow in deterministic mode).
        y_all = F.one_hot(torch.from_numpy(y_train[:n_used].astype(np.int64)), N_CLASSES).to(device, cfg.torch_dtype)

        # Model: the stacked weights of all members.
        w1, w2 = init_weights(cfg.width, cfg.seed, n_members, cfg.perturbation, cfg.dtype)
        w1, w2 = w1.to(device).requires_grad_(True), w2.to(device).requires_grad_(True)
        optimizer = _make_optimizer(cfg.optimizer, [w1, w2], cfg.lr)

        # Records, preallocated on the device: nothing is copied to the host until the end.
        weights = torch.empty(n_members, n_steps, N_CLASSES * cfg.width, dtype=cfg.torch_dtype, device=device)
        train_loss = torch.empty(n_members, n_steps, dtype=cfg.torch_dtype, device=device)

        # The job's log is stderr; a bar every few seconds shows progress without flooding it.
        bar = tqdm(
            total=n_steps, desc=f"e2 width {cfg.width} seed {cfg.seed}", unit="step", file=sys.stderr, mininterval=5.0
        )
        for t in range(n_steps):
            xb, yb = x_all[t * batch : (t + 1) * batch], y_all[t * batch : (t + 1) * batch]
            logp = F.log_softmax(ensemble_logits(xb, w1, w2, cfg.activation), dim=-1)
            member_loss = -(logp * yb).sum(-1).mean(-1)  # [M], each member's mean NLL
            # The members share no weights, so the gradient of the summed loss with respect
            # to a member's weights is that member's own gradient.
            grads = torch.autograd.grad(member_loss.sum(), (w1, w2))
            optimizer.step(grads)
            with torch.no_grad():
                train_loss[:, t] = member_loss
                weights[:, t] = w2.reshape(n_members, -1)
            bar.update()
        bar.close()

        x_eval = _pixels(x_test, cfg, device)
        y_eval = torch.from_numpy(y_test.astype(np.int64)).to(device)
        test_loss, test_accuracy = _evaluate_ensemble(x_eval, y_eval, w1.detach(), w2.detach(), cfg.activation)
    traj = _trajectory(checked, weights, train_loss, test_loss, test_accuracy)
    log.info(
        "E2 ensemble done in %.2f s: train loss (last step, mean over initialisations) %.4f, test accuracy %.4f",
        time.perf_counter() - started, traj.metrics["train_loss"][:, -1].mean(), traj.metrics["test_accuracy"].mean(),
    )
    return traj


# ----------------------------------------------------------------------------- reference loop


class FCN(nn.Module):
    """784 → h → activation → 10 without biases, holding given weights."""

    def __init__(self, w1: Tensor, w2: Tensor, activation: str) -> None:
        super().__init__()
        width, n_in = w1.shape
        # Built on the meta device so that nn.Linear's own initialisation draws nothing
        # from the global RNG; the weights are the given ones.
        self.fc1 = nn.Linear(n_in, width, bias=False, device="meta")
        self.fc2 = nn.Linear(width, w2.shape[0], bias=False, device="meta")
        self.fc1.weight = nn.Parameter(w1.detach().clone())
        self.fc2.weight = nn.Parameter(w2.detach().clone())
        self.activation = _ACTIVATION_FUNCTIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation(self.fc1(x)))


def train_reference(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: Mapping[str, Any],
    device: str | torch.device = "cpu",
    *,
    threads: int = TRAIN_THREADS,
) -> Trajectory:
    """The plain implementation: one ``nn.Module`` and ``torch.optim`` loop per initialisation.

    Same initial weights, data, arguments and output as :func:`train_ensemble`.  The data
    are converted once and the records preallocated here too, so that a timing comparison
    measures the batching, not avoidable overhead.
    """
    checked = check_params(params)
    cfg = FCNConfig.from_checked(checked)
    for x, y, name in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        _check_arrays(x, y, name)
    n_steps = cfg.steps_for(len(x_train))
    device = torch.device(device)
    batch = cfg.batch_size
    with reproducible(threads, device):
        x_all = _pixels(x_train[: n_steps * batch], cfg, device)
        y_all = torch.from_numpy(y_train[: n_steps * batch].astype(np.int64)).to(device)
        x_eval = _pixels(x_test, cfg, device)
        y_eval = torch.from_numpy(y_test.astype(np.int64)).to(device)
        w1s, w2s = init_weights(cfg.width, cfg.seed, cfg.n_inits, cfg.perturbation, cfg.dtype)

        weights = torch.empty(cfg.n_inits, n_steps, N_CLASSES * cfg.width, dtype=cfg.torch_dtype, device=device)
        train_loss = torch.empty(cfg.n_inits, n_steps, dtype=cfg.torch_dtype, device=device)
        test_loss = torch.empty(cfg.n_inits, dtype=torch.float64)
        test_accuracy = torch.empty(cfg.n_inits, dtype=torch.float64)
        for m in range(cfg.n_inits):
            model = FCN(w1s[m].to(device), w2s[m].to(device), cfg.activation)
            if cfg.optimizer == "sgd":
                optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
            else:
                optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            for t in range(n_steps):
                xb, yb = x_all[t * batch : (t + 1) * batch], y_all[t * batch : (t + 1) * batch]
                loss = F.nll_loss(F.log_softmax(model(xb), dim=1), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    train_loss[m, t] = loss
                    weights[m, t] = model.fc2.weight.reshape(-1)
            with torch.no_grad():
                logp = F.log_softmax(model(x_eval), dim=1)
                test_loss[m] = F.nll_loss(logp, y_eval).item()
                test_accuracy[m] = (logp.argmax(1) == y_eval).double().mean().item()
    return _trajectory(checked, weights, train_loss, test_loss, test_accuracy)


# ----------------------------------------------------------------------------- workflow entry


def simulate(
    params: dict[str, Any], inputs: Mapping[str, str | os.PathLike[str]] | None = None, *, device: str = "cpu"
) -> Trajectory:
    """Train one E2 (width, seed) ensemble on MNIST with :func:`train_ensemble`.

    Parameters
    ----------
    params : dict
        Any of :data:`DEFAULTS`.
    inputs : mapping
        ``{"mnist": path}`` of a prepared ``.npz`` with uint8 ``x_train``, ``y_train``,
        ``x_test``, ``y_test``.

    device : str
        ``cpu`` or ``cuda``.

    Returns
    -------
    Trajectory
        See :func:`train_ensemble`.
    """
    checked = check_params(params)
    inputs = dict(inputs or {})
    if set(inputs) != {"mnist"}:
        raise ParameterError(f"inputs: E2 reads exactly one input, 'mnist'; got {sorted(inputs)}")
    path = Path(inputs["mnist"])
    data = mnist.load(path)
    cfg = FCNConfig.from_checked(checked)
    try:
        cfg.steps_for(len(data["x_train"]))
    except ParameterError as exc:
        raise ParameterError(f"{exc} (training set of {path})") from None
    return train_ensemble(data["x_train"], data["y_train"], data["x_test"], data["y_test"], checked, device)
