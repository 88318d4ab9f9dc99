"""Experiment E3: the early phase of CNN training (paper Fig. 4).

LeNet-5 on MNIST or ResNet-20 on CIFAR-10 (:mod:`equivdyn.models`), trained with
``torch.optim.SGD`` (momentum, weight decay) on the cross-entropy of minibatches drawn
without replacement, for ``n_epochs`` epochs of ``n_train // batch_size`` steps (the
last partial batch of each epoch is dropped).  Inputs are ``uint8 / 255`` normalised
per channel with the dataset's mean and std (:data:`NORMALIZATION`).  With ``augment``
(CIFAR-10 only) each image of an epoch is randomly cropped from its copy zero-padded by
4 pixels and flipped left-right with probability 1/2, as torchvision's ``RandomCrop(32,
padding=4)`` and ``RandomHorizontalFlip`` do before normalisation.

Per seed, initialisation 0 is PyTorch's default initialisation of the network drawn
under ``torch.manual_seed(seed)`` (in a forked RNG: the caller's global RNG is left as
it was); initialisations 1 … M−1 multiply every parameter of initialisation 0 by
``1 + perturbation · U(−1, 1)`` (drawn in float64 from the same RNG, parameter by
parameter in registration order, initialisation after initialisation).  BatchNorm
buffers start as in initialisation 0.

All initialisations see the same data: the training subset, the order of every epoch
and every augmentation are drawn from ``numpy.random.default_rng((seed, stream))``, one
stream per purpose (:data:`_STREAMS`), independently of the initialisation.  BatchNorm
runs in train mode for the steps and in eval mode (running statistics) for the test
metrics.

Records: the observable ``final_layer`` (weight then bias of the output layer, flattened
row-major; 850 values for LeNet-5, 650 for ResNet-20) after every step, steps
1 … T; ``train_loss`` of every step (its minibatch, before the update); ``test_loss``
and ``test_accuracy`` at the end of every epoch, with ``metric_steps`` the last step of
each epoch, so that epoch e spans steps ``(metric_steps[e-1], metric_steps[e]]``.

The initialisations are trained one after another, each a plain ``nn.Module`` with its
own ``torch.optim.SGD``.  Batching them with ``torch.func.vmap`` over stacked parameters
was slower on the CPU (LeNet-5, 5 initialisations, batch 60, 1 thread: 58-68 ms a step
against 39-59 ms for the loop), and ResNet-20's BatchNorm state would have to be
threaded through by hand.  The data of an epoch are ordered, augmented and normalised
once, for all of them, into one dense tensor whose batches are views.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ...errors import ParameterError, check_choice
from ...models import MODELS, build_model, final_layer
from ...store import Trajectory
from .._torch import TORCH_DTYPES, reproducible
from ...params import check_job
from .settings import DTYPES, NETWORKS, OBSERVABLES, TRAIN, E3Job  # noqa: F401 (re-exported choices)

log = logging.getLogger(__name__)


def defaults_for(model: str) -> dict[str, Any]:
    """Every parameter's default for ``model``: its training section's (:mod:`.settings`), seed 0."""
    model = check_choice(model, "model", NETWORKS)
    return {**E3Job.defaults(), "model": model, **TRAIN[model].defaults()}


#: Defaults of every parameter (LeNet-5's); ``params`` given to :func:`simulate` may override
#: any.  ``train_subset``/``test_subset`` of ``None`` use the whole set.
DEFAULTS: dict[str, Any] = defaults_for("lenet")

#: Per-channel (mean, std) of the pixels (``uint8 / 255``) of each dataset's training set,
#: keyed by the number of channels.  CIFAR-10's std is that of all pixels of a channel
#: (not the often-quoted 0.2023, 0.1994, 0.2010, a mean of per-image stds).
NORMALIZATION: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    1: ((0.1307,), (0.3081,)),
    3: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

#: Intra-op CPU threads of the trainer, for both networks.  Measured on a 2-core CPU shared
#: with other jobs (load average 4-5), one initialisation, float32, a training step took:
#: LeNet-5 at batch 60, 6-11 ms with 1 thread and 34-168 ms with 2; ResNet-20 at batch 128
#: (augmented), 0.48-0.64 s with 1 thread and 2.5-2.8 s with 2.  A second thread waits on a
#: core that another job holds; the workflow runs jobs side by side, so 1 it is.
TRAIN_THREADS = 1

#: Padding of the random crops of ``augment``.
CROP_PADDING = 4
# Test images evaluated at once.
_EVAL_CHUNK = 1000
# Independent random streams drawn from each seed (numpy SeedSequence entropy (seed, n)).
_STREAMS = {"train_subset": 1, "test_subset": 2, "epochs": 3}


# ----------------------------------------------------------------------------- parameters


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """All E3 parameters: ``params`` over the model's defaults (:func:`defaults_for`), checked
    (types and ranges as in :mod:`.settings`), numbers as ``int``/``float``.

    A :class:`ParameterError` names any unknown field and any field with a bad value;
    ``augment`` is refused for LeNet-5, whose MNIST images have one channel.
    """
    model = params.get("model", DEFAULTS["model"])
    out = check_job(params, E3Job, TRAIN[check_choice(model, "model", NETWORKS)], "E3")
    if out["augment"] and MODELS[out["model"]].input_shape[0] != 3:
        raise ParameterError(
            f"augment: random crops and flips are for 3-channel (CIFAR-10) images; model {out['model']!r} "
            f"takes {MODELS[out['model']].dataset} images"
        )
    return out


@dataclass(frozen=True)
class E3Config:
    """Checked E3 parameters (see :data:`DEFAULTS`); build it with :meth:`from_params`."""

    model: str
    seed: int
    n_inits: int
    perturbation: float
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    n_epochs: int
    train_subset: int | None
    test_subset: int | None
    augment: bool
    dtype: str
    observable: str

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> E3Config:
        """Check ``params`` (merged over :data:`DEFAULTS`) and build the config."""
        return cls(**check_params(params))

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]

    def rng(self, stream: str) -> np.random.Generator:
        """The numpy generator of one of :data:`_STREAMS` of this seed."""
        return np.random.default_rng((self.seed, _STREAMS[stream]))


# ----------------------------------------------------------------------------- initialisation


def init_models(cfg: E3Config) -> list[nn.Module]:
    """The ``n_inits`` networks of one seed, on the CPU in the training dtype (see the module docstring)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        base = build_model(cfg.model)
        base_params = [p.detach().to(torch.float64) for p in base.parameters()]
        models = [base.to(cfg.torch_dtype)]
        for _ in range(1, cfg.n_inits):
            model = build_model(cfg.model).to(cfg.torch_dtype)
            model.load_state_dict(base.state_dict())  # BatchNorm buffers included
            with torch.no_grad():
                for p, p0 in zip(model.parameters(), base_params):
                    u = torch.empty_like(p0).uniform_(-1.0, 1.0)
                    p.copy_(p0 * (1.0 + cfg.perturbation * u))  # rounded once, to the training dtype
            models.append(model)
        return models


# ----------------------------------------------------------------------------- data


def _peek_image_shape(path: Path) -> tuple[int, ...] | None:
    """Shape of ``x_train`` in an ``.npz`` from its header, or ``None`` if it cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("x_train.npy") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read(handle)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return tuple(shape)


def load_data(model: str, path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the dataset that ``model`` trains on from a prepared ``.npz``.

    LeNet-5 reads an MNIST file of :func:`equivdyn.data.mnist.prepare`, ResNet-20 a
    CIFAR-10 file of :func:`equivdyn.data.cifar10.prepare`.

    Returns
    -------
    dict
        uint8 ``x_train``, ``x_test`` as [N, C, H, W] arrays (views), uint8 ``y_train``,
        ``y_test``.

    Raises
    ------
    ParameterError
        The file holds images of another shape than ``model`` takes (naming ``model``).
    InvalidFileError
        The file is missing, unreadable or malformed.
    """
    from ...data import cifar10, mnist

    path = Path(path)
    info = MODELS[model]
    channels, height, width = info.input_shape
    wanted = (height, width) if channels == 1 else (height, width, channels)
    shape = _peek_image_shape(path)
    if shape is not None and tuple(shape[1:]) != wanted:
        raise ParameterError(
            f"model: {model!r} takes {info.dataset} images of {'×'.join(map(str, info.input_shape))} (C×H×W), "
            f"but the data {path} hold images of shape {tuple(shape[1:])}"
        )
    data = (mnist if channels == 1 else cifar10).load(path)
    out = {}
    for split in ("train", "test"):
        x = data[f"x_{split}"]
        out[f"x_{split}"] = x[:, None] if channels == 1 else x.transpose(0, 3, 1, 2)
        out[f"y_{split}"] = data[f"y_{split}"]
    return out


def _memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where oneDNN's convolutions run faster on it.

    Measured on a 2-core CPU, 1 thread, a training step took 7.2-9.7 ms against
    10.0-13.9 ms for LeNet-5 at batch 60, and 526-563 ms against 694-734 ms for ResNet-20
    at batch 128.  Untested on CUDA, which keeps the default layout.
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def _normalize(x: Tensor, dtype: torch.dtype) -> Tensor:
    """uint8 [N, C, H, W] → (x/255 − mean)/std per channel in ``dtype``, as ToTensor + Normalize."""
    mean, std = NORMALIZATION[x.shape[1]]
    shape = (1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=dtype, device=x.device).view(shape)
    std_t = torch.tensor(std, dtype=dtype, device=x.device).view(shape)
    return x.to(dtype).div_(255.0).sub_(mean_t).div_(std_t).contiguous(memory_format=_memory_format(x.device))


def subset_indices(cfg: E3Config, split: str, n: int) -> np.ndarray:
    """Sorted indices of the images of ``split`` ("train" or "test", of ``n``) that the run uses.

    All ``n`` without a subset; else ``{split}_subset`` of them drawn without replacement
    from the seed's ``{split}_subset`` stream.
    """
    field = f"{split}_subset"
    size = getattr(cfg, field)
    if size is None:
        return np.arange(n)
    if size > n:
        raise ParameterError(f"{field}: {size} images asked for, but the {split} set holds {n}")
    return np.sort(cfg.rng(field).choice(n, size=size, replace=False))


class _Epochs:
    """The training images of each epoch, ordered and augmented alike for every initialisation."""

    def __init__(self, x: np.ndarray, y: np.ndarray, cfg: E3Config, device: torch.device) -> None:
        self.cfg = cfg
        self.rng = cfg.rng("epochs")
        self.n = len(x)
        self.n_used = (self.n // cfg.batch_size) * cfg.batch_size
        self.y = torch.from_numpy(y.astype(np.int64)).to(device)
        if cfg.augment:
            pad = CROP_PADDING
            # Zero padding of the raw pixels (before normalisation), as RandomCrop pads the image.
            self.x = torch.from_numpy(np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))).to(device)
        else:
            self.x = _normalize(torch.from_numpy(np.ascontiguousarray(x)).to(device), cfg.torch_dtype)

    def next(self) -> tuple[Tensor, Tensor]:
        """Images [n_used, C, H, W] (normalised, dense) and labels [n_used] of the next epoch."""
        order = torch.from_numpy(self.rng.permutation(self.n)[: self.n_used]).to(self.x.device)
        if not self.cfg.augment:
            return self.x[order], self.y[order]
        pad = CROP_PADDING
        size = self.x.shape[-1] - 2 * pad
        offsets = self.rng.integers(0, 2 * pad + 1, size=(self.n_used, 2))
        flips = torch.from_numpy(self.rng.random(self.n_used) < 0.5).to(self.x.device)
        crops = torch.empty((self.n_used, self.x.shape[1], size, size), dtype=torch.uint8, device=self.x.device)
        # One slice per distinct (top, left) offset: 81 vectorised copies instead of n_used.
        codes = offsets[:, 0] * (2 * pad + 1) + offsets[:, 1]
        for code in np.unique(codes):
            rows = np.flatnonzero(codes == code)
            top, left = divmod(int(code), 2 * pad + 1)
            idx = torch.from_numpy(rows).to(self.x.device)
            crops[idx] = self.x[order[idx], :, top : top + size, left : left + size]
        crops = torch.where(flips[:, None, None, None], crops.flip(-1), crops)
        return _normalize(crops, self.cfg.torch_dtype), self.y[order]


# ----------------------------------------------------------------------------- training


def _nll(logits: Tensor, one_hot: Tensor) -> Tensor:
    """Mean cross-entropy by a product with one-hot targets: on CUDA, F.nll_loss's scatter
    in the backward pass is nondeterministic."""
    return -(F.log_softmax(logits, dim=1) * one_hot).sum(1).mean()


@torch.no_grad()
def _evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and accuracy (float64 scalars) of ``model`` in eval mode."""
    model.eval()
    nll = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), _EVAL_CHUNK):
        logits = model(x[start : start + _EVAL_CHUNK])
        yc = y[start : start + _EVAL_CHUNK]
        logp = F.log_softmax(logits, dim=1)
        nll -= logp.gather(1, yc[:, None]).sum(dtype=torch.float64)
        correct += (logits.argmax(1) == yc).sum()
    model.train()
    return nll / len(x), correct.to(torch.float64) / len(x)


def train(
    data: Mapping[str, np.ndarray], params: Mapping[str, Any], *, device: str | torch.device = "cpu", threads: int = 1
) -> Trajectory:
    """Train the initialisations of one (model, seed), one after another, and record their trajectory.

    Parameters
    ----------
    data : mapping
        uint8 ``x_train`` [N, C, H, W], ``y_train`` [N], ``x_test`` [n, C, H, W],
        ``y_test`` [n] (as :func:`load_data` returns them).
    params : dict
        E3 parameters (see :data:`DEFAULTS`).
    device, threads
        The torch device, and the CPU threads used there (the workflow's are
        :data:`TRAIN_THREADS`); neither changes the format of the result.

    Returns
    -------
    Trajectory
        ``steps`` 1 … T; observable ``final_layer`` float64 [M, T, D]; metrics
        ``train_loss`` [M, T], ``test_loss`` and ``test_accuracy`` [M, n_epochs] at
        ``metric_steps`` (the last step of each epoch).

    Raises
    ------
    ParameterError
        A bad parameter, images of another shape than the model takes, a subset larger
        than its set, or a batch larger than the training images used.
    """
    checked = check_params(params)
    cfg = E3Config(**checked)
    device = torch.device(device)
    info = MODELS[cfg.model]
    for split in ("train", "test"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape[1:] != info.input_shape or len(x) == 0:
            raise ParameterError(
                f"model: {cfg.model!r} takes uint8 images [N, {', '.join(map(str, info.input_shape))}], "
                f"got x_{split} {x.dtype} {x.shape}"
            )
        if y.shape != (len(x),):
            raise ParameterError(f"y_{split}: expected {len(x)} labels, got shape {y.shape}")
    train_idx = subset_indices(cfg, "train", len(data["x_train"]))
    test_idx = subset_indices(cfg, "test", len(data["x_test"]))
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ParameterError(
            f"batch_size: {cfg.batch_size} is more than the {len(train_idx)} training images used; "
            "an epoch needs a step"
        )
    n_steps = steps_per_epoch * cfg.n_epochs
    batch, n_members = cfg.batch_size, cfg.n_inits
    log.info(
        "E3: %s, seed %d, %d initialisations, %d epochs of %d steps, %s on %s with %d thread(s)",
        cfg.model, cfg.seed, n_members, cfg.n_epochs, steps_per_epoch, cfg.dtype, device, threads,
    )  # fmt: skip
    started = time.perf_counter()
    with reproducible(threads, device):
        # Data: converted once; an epoch's images are ordered (and augmented) once for all members.
        epochs = _Epochs(data["x_train"][train_idx], data["y_train"][train_idx], cfg, device)
        x_test = _normalize(torch.from_numpy(data["x_test"][test_idx]).to(device), cfg.torch_dtype)
        y_test = torch.from_numpy(data["y_test"][test_idx].astype(np.int64)).to(device)

        # Models and optimisers.
        models = [model.to(device=device, memory_format=_memory_format(device)) for model in init_models(cfg)]
        optimizers = [
            torch.optim.SGD(m.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
            for m in models
        ]
        layers = [final_layer(m) for m in models]
        n_weights = layers[0].weight.numel()
        n_obs = n_weights + layers[0].bias.numel()

        # Records, preallocated on the device: nothing is copied to the host until the end.
        observed = torch.empty(n_members, n_steps, n_obs, dtype=cfg.torch_dtype, device=device)
        train_loss = torch.empty(n_members, n_steps, dtype=cfg.torch_dtype, device=device)
        test_loss = torch.empty(n_members, cfg.n_epochs, dtype=torch.float64, device=device)
        test_accuracy = torch.empty(n_members, cfg.n_epochs, dtype=torch.float64, device=device)

        bar = tqdm(
            total=n_steps * n_members, desc=f"e3 {cfg.model} seed {cfg.seed}", unit="step", file=sys.stderr,
            mininterval=5.0,
        )  # fmt: skip
        for epoch in range(cfg.n_epochs):
            x_epoch, y_epoch = epochs.next()
            one_hot = F.one_hot(y_epoch, layers[0].out_features).to(cfg.torch_dtype)
            first = epoch * steps_per_epoch
            for m, (model, optimizer, layer) in enumerate(zip(models, optimizers, layers)):
                model.train()
                for s in range(steps_per_epoch):
                    xb = x_epoch[s * batch : (s + 1) * batch]
                    loss = _nll(model(xb), one_hot[s * batch : (s + 1) * batch])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    with torch.no_grad():
                        t = first + s
                        train_loss[m, t] = loss
                        observed[m, t, :n_weights] = layer.weight.view(-1)
                        observed[m, t, n_weights:] = layer.bias
                bar.update(steps_per_epoch)
                test_loss[m, epoch], test_accuracy[m, epoch] = _evaluate(model, x_test, y_test)
        bar.close()
    traj = Trajectory(
        experiment="e3",
        steps=np.arange(1, n_steps + 1, dtype=np.int64),
        observables={"final_layer": observed.cpu().numpy().astype(np.float64)},
        metrics={
            "train_loss": train_loss.cpu().numpy().astype(np.float64),
            "test_loss": test_loss.cpu().numpy(),
            "test_accuracy": test_accuracy.cpu().numpy(),
        },
        metric_steps={
            name: np.arange(1, cfg.n_epochs + 1, dtype=np.int64) * steps_per_epoch
            for name in ("test_loss", "test_accuracy")
        },
        params=checked,
    )
    log.info(
        "E3 done in %.1f s: train loss (last step, mean over initialisations) %.4f, test accuracy %.4f",
        time.perf_counter() - started,
        traj.metrics["train_loss"][:, -1].mean(),
        traj.metrics["test_accuracy"][:, -1].mean(),
    )
    return traj


# ----------------------------------------------------------------------------- workflow entry


def simulate(
    params: dict[str, Any], inputs: Mapping[str, str | os.PathLike[str]] | None = None, *, device: str = "cpu"
) -> Trajectory:
    """The train stage of E3: :func:`train` on the prepared dataset ``inputs["data"]``.

    That is MNIST (:func:`equivdyn.data.mnist.prepare`) for ``model="lenet"`` and
    CIFAR-10 (:func:`equivdyn.data.cifar10.prepare`) for ``"resnet20"``; ``params`` are
    any of :data:`DEFAULTS`.  Trains on ``device`` (``cpu`` or ``cuda``) with
    :data:`TRAIN_THREADS` CPU threads.
    """
    checked = check_params(params)
    inputs = dict(inputs or {})
    if set(inputs) != {"data"}:
        raise ParameterError(f"inputs: E3 reads exactly one input, 'data'; got {sorted(inputs)}")
    data = load_data(checked["model"], inputs["data"])
    return train(data, checked, device=device, threads=TRAIN_THREADS)
