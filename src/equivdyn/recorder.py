"""Record your own training runs: :class:`Recorder` and :func:`perturbed_copies`.

The paper's question, asked of any PyTorch training loop::

    models = equivdyn.perturbed_copies(model, n=10, scale=1e-3, seed=0)
    with equivdyn.Recorder("run_s0.h5", models, observables=["fc2.weight"]) as rec:
        for x, y in loader:
            for m, opt in zip(models, optimizers):
                ...                   # one optimiser step of every copy
            rec.snapshot(loss=losses) # every copy's observables: the file holds [M, T, D]

One file per seed (independent initialisation), each holding ``M`` perturbed copies of
that seed's initialisation trained side by side; ``equivdyn compare`` (or
:func:`equivdyn.compare_runs`) then compares the files of two setups.

torch is imported only when a recorder or copies are made (``import equivdyn`` stays light).
"""

from __future__ import annotations

import copy
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._io import CloseOrDiscard
from .errors import ParameterError, check_int, is_number
from .store import TrajectoryWriter

#: ``experiment`` attribute of the files a recorder writes.
OWN_RUN = "own"

Observable = str | Callable[[Any], Any]


def perturbed_copies(model: Any, n: int, scale: float, seed: int) -> list[Any]:
    """``model`` and ``n - 1`` copies with every parameter multiplied by ``1 + scale * U(-1, 1)``.

    The paper's perturbations of one initialisation: copy 0 is an unchanged deep copy of
    ``model``; copies 1 … n-1 draw their factors in float64 from a generator seeded with
    ``seed`` (NumPy's ``default_rng``; parameter by parameter in registration order, copy
    after copy), so the same ``seed`` gives the same copies on any device, and torch's
    global RNG is left untouched.
    Buffers (e.g. BatchNorm statistics) are copied unchanged.
    """
    import torch

    n = check_int(n, "n", 1)
    seed = check_int(seed, "seed", 0)
    if not (is_number(scale) and float(scale) >= 0.0):
        raise ParameterError(f"scale must be a number >= 0, got {scale!r}")
    if not isinstance(model, torch.nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    rng = np.random.default_rng(seed)  # every bit of the seed counts (torch's CPU generator keeps 32)
    copies = [copy.deepcopy(model)]
    for _ in range(1, n):
        twin = copy.deepcopy(model)
        with torch.no_grad():
            for p in twin.parameters():
                u = torch.from_numpy(rng.uniform(-1.0, 1.0, size=tuple(p.shape)))
                p.copy_((p.detach().to(torch.float64).cpu() * (1.0 + float(scale) * u)).to(p.device, p.dtype))
        copies.append(twin)
    return copies


def _resolve(model: Any, name: str) -> list[Any]:
    """The parameters (or buffer) that ``name`` names in ``model``: a parameter, a buffer,
    or a module (all its parameters, in registration order)."""
    params = dict(model.named_parameters())
    if name in params:
        return [params[name]]
    buffers = dict(model.named_buffers())
    if name in buffers:
        return [buffers[name]]
    modules = dict(model.named_modules())
    if name in modules and list(modules[name].parameters()):
        return list(modules[name].parameters())
    known = ", ".join(list(params)[:12]) + (", ..." if len(params) > 12 else "")
    raise ParameterError(f"observables: the model has no parameter, buffer or module {name!r} (parameters: {known})")


class Recorder(CloseOrDiscard):
    """Record named observables of ``M`` models after every (k-th) optimiser step, to one
    trajectory file ``[M, T, D]``.

    Parameters
    ----------
    path : str or path
        The trajectory file to write (``.h5``).  It appears only when the recording is
        closed without error: an exception inside the ``with`` block, or a crash, leaves no
        file that reads as valid (the partial recording is a hidden ``.part`` file, removed
        on an exception).
    models : torch.nn.Module or sequence of them
        The copies trained side by side (e.g. from :func:`perturbed_copies`); all alike.
    observables : sequence of str or callable, or mapping of name to either
        What to record: a parameter's name (``"fc2.weight"``), a module's name (``"fc2"``:
        its parameters, flattened and concatenated), or a function of a model returning a
        tensor.  A sequence names each entry by itself (functions by their ``__name__``).
        Default: the last module that has parameters (the output layer, usually).
    every : int
        Record every ``every``-th step (steps are counted by :meth:`snapshot` calls or the
        attached optimiser's steps).
    project : int, optional
        Project each observable with more than ``project`` values onto ``project``
        dimensions by a fixed Gaussian random matrix (seeded by ``projection_seed`` and the
        observable's name; stored in the file under ``/extras/projection:<name>``).
    initial : bool
        Also record the models as they are before the first step (step 0).
    params : mapping, optional
        What describes the run (optimiser, learning rate, seed, …): stored in the file.
    buffer : int
        Snapshots held in memory before they are written (memory stays bounded).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        models: Any,
        observables: Sequence[Observable] | Mapping[str, Observable] | None = None,
        *,
        every: int = 1,
        project: int | None = None,
        projection_seed: int = 0,
        initial: bool = True,
        params: Mapping[str, Any] | None = None,
        buffer: int = 256,
    ) -> None:
        import torch

        self._torch = torch
        self.models = [models] if isinstance(models, torch.nn.Module) else list(models)
        if not self.models or not all(isinstance(m, torch.nn.Module) for m in self.models):
            raise ParameterError("models must be a torch.nn.Module or a non-empty sequence of them")
        self.every = check_int(every, "every", 1)
        self.getters = self._getters(observables)
        self.step = 0
        self._hooks: list[Any] = []
        projections: dict[str, Any] = {}
        shapes: dict[str, tuple[int, int, Any]] = {}
        first = {name: self._values(name) for name in self.getters}
        if project is not None:
            project = check_int(project, "project", 1)
            projection_seed = check_int(projection_seed, "projection_seed", 0)
        for name, values in first.items():
            dim = values.shape[1]
            if project is not None and dim > project:
                rng = np.random.default_rng([projection_seed, zlib.crc32(name.encode())])
                matrix = torch.from_numpy(rng.standard_normal((dim, project)) / project**0.5)
                projections[name] = matrix
                dim = project
            shapes[name] = (len(self.models), dim, np.float64 if values.dtype == torch.float64 else np.float32)
        self._projections = projections  # float64 on the CPU: applied to each snapshot there
        described = {
            "recorder": {
                "observables": list(self.getters),
                "every": self.every,
                "n_models": len(self.models),
                "initial": bool(initial),
                "project": project,
                "projection_seed": projection_seed if projections else None,
                "projected": sorted(projections),
            },
            "run": dict(params or {}),
        }
        self.writer = TrajectoryWriter(
            path,
            experiment=OWN_RUN,
            params=described,
            observables=shapes,
            extras={f"projection:{n}": m.numpy() for n, m in projections.items()},
            buffer=check_int(buffer, "buffer", 1),
            # where the models live (the first parameter of the first model)
            device=str(next((p.device for p in self.models[0].parameters()), "cpu")),
        )
        if initial:
            try:
                self._record()
            except BaseException:
                self.writer.discard()
                raise

    # ------------------------------------------------------------------ observables

    def _getters(self, observables: Any) -> dict[str, Callable[[Any], Any]]:
        if observables is None:
            owners = [name for name, mod in self.models[0].named_modules() if list(mod.parameters(recurse=False))]
            if not owners:
                raise ParameterError("observables: the model has no parameters to record")
            observables = {owners[-1] or "model": owners[-1]}  # "" is the model itself
        if isinstance(observables, (str, bytes)) or callable(observables):
            observables = [observables]
        items = observables.items() if isinstance(observables, Mapping) else ((self._name(o), o) for o in observables)
        getters: dict[str, Callable[[Any], Any]] = {}
        for name, item in items:
            if name in getters:
                raise ParameterError(f"observables: {name!r} is named twice")
            if isinstance(item, str):
                # resolved once: parameters keep their identity across optimiser steps
                found = {id(model): _resolve(model, item) for model in self.models}

                def get(model: Any, found: dict[int, list[Any]] = found) -> Any:
                    return found[id(model)]

                getters[name] = get
            elif callable(item):
                getters[name] = item
            else:
                raise ParameterError(f"observables: {name!r} must be a parameter or module name or a function, got {item!r}")
        if not getters:
            raise ParameterError("observables: name at least one")
        return getters

    @staticmethod
    def _name(item: Any) -> str:
        if isinstance(item, str):
            return item
        name = getattr(item, "__name__", None)
        if not name or name == "<lambda>":
            raise ParameterError("observables: give a function a name (pass a mapping {name: function})")
        return str(name)

    def _values(self, name: str) -> Any:
        """Observable ``name`` of every model as one ``[M, D]`` tensor (detached)."""
        torch = self._torch
        rows = []
        for model in self.models:
            found = self.getters[name](model)
            parts = found if isinstance(found, (list, tuple)) else [found]
            try:
                rows.append(torch.cat([torch.as_tensor(p).detach().reshape(-1) for p in parts]))
            except (TypeError, RuntimeError) as exc:
                raise ParameterError(f"observables: {name!r} did not give tensors: {exc}") from None
        try:
            values = torch.stack(rows)
        except RuntimeError:
            raise ParameterError(f"observables: {name!r} has different sizes in different models") from None
        if values.dtype not in (torch.float32, torch.float64):
            values = values.to(torch.float32)  # integers, half precision
        return values

    def _record(self) -> None:
        with self._torch.no_grad():
            snapshot = {}
            for name in self.getters:
                values = self._values(name).cpu()
                if name in self._projections:
                    values = (values.to(self._torch.float64) @ self._projections[name]).to(values.dtype)
                snapshot[name] = values.numpy()
        self.writer.append(self.step, snapshot)

    # ------------------------------------------------------------------ recording

    def snapshot(self, **metrics: Any) -> None:
        """Count one optimiser step of every model; record the observables (and ``metrics``,
        one value per model or a scalar for one model) if it is a recorded step."""
        self.step += 1
        if self.step % self.every == 0:
            self._record()
            if metrics:
                self.log(**metrics)

    def log(self, **metrics: Any) -> None:
        """Record metrics (one value per model, e.g. a list or tensor of losses) at the current
        step, e.g. ``rec.log(test_accuracy=accs)`` after an evaluation."""
        for name, value in metrics.items():
            if isinstance(value, self._torch.Tensor):
                value = value.detach().cpu().to(self._torch.float64).numpy()
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.size != len(self.models):
                raise ParameterError(f"metric {name!r}: expected {len(self.models)} values (one per model), got {arr.size}")
            self.writer.append_metric(name, self.step, arr)

    def attach(self, optimizer: Any) -> Recorder:
        """Take a snapshot after every step of ``optimizer`` (with several models, the one
        stepped last); :meth:`close` removes the hook."""
        self._hooks.append(optimizer.register_step_post_hook(lambda *_: self.snapshot()))
        return self

    def close(self) -> None:
        """Finish the file: checksums, then an atomic rename onto ``path``."""
        self._detach()
        self.writer.close()

    def discard(self) -> None:
        """Abandon the recording: no file is written."""
        self._detach()
        self.writer.discard()

    def _detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

