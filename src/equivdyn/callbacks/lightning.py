"""Record a PyTorch Lightning training run: :class:`RecordDynamics`.

::

    from equivdyn.callbacks.lightning import RecordDynamics

    trainer = lightning.pytorch.Trainer(callbacks=[RecordDynamics("run_s0.h5", ["fc2.weight"])])
    trainer.fit(module, loader)           # run_s0.h5 holds [1, T, D] and the training loss

An optional extra (``pip install 'equivdyn[lightning]'``): ``lightning.pytorch`` (or the
older ``pytorch_lightning``) is imported only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._recording import RecordingCallback

try:
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise ImportError(
            "equivdyn.callbacks.lightning needs PyTorch Lightning: pip install 'equivdyn[lightning]'"
        ) from None

__all__ = ["RecordDynamics"]


def _batch_loss(outputs: Any) -> Any:
    """The loss in ``outputs`` of a training batch (a tensor, or a mapping with ``"loss"``), or None."""
    import torch

    if isinstance(outputs, Mapping):
        outputs = outputs.get("loss")
    if isinstance(outputs, torch.Tensor) and outputs.numel() == 1:
        return outputs.detach().reshape(())
    return None


class RecordDynamics(RecordingCallback, Callback):  # type: ignore[misc]
    """Record observables of the trained ``LightningModule`` after every (k-th) optimiser
    step, to one trajectory file ``[1, T, D]``, with the training loss as metric ``"loss"``.

    The recording starts when training starts (:meth:`on_train_start`: step 0 is the
    module as it is then) and the file appears when training ends (:meth:`on_train_end`).
    An exception during training (:meth:`on_exception`) discards the recording: no file is
    written at ``path`` and no temporary file is left.  Only the global rank-zero process
    records (under DDP every rank holds the same weights).

    A step is an optimiser step, not a batch: with ``accumulate_grad_batches=k`` a
    snapshot is taken only after the batches whose ``trainer.global_step`` increased.  The
    loss of a step is the mean of the ``training_step`` losses of its batches (Lightning
    divides each batch's loss by ``k`` before the callback sees it; this is undone).  With
    manual optimisation several optimisers stepped in one batch count as one step.  Steps
    are counted from the start of this ``fit`` (a resumed run's file starts at step 0).

    The constructor takes the arguments of
    :class:`~equivdyn.callbacks._recording.RecordingCallback`.
    """

    _last_step = 0
    _loss_sum: Any = None
    _loss_batches = 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the recording (rank zero only): step 0 is ``pl_module`` as it is now."""
        self.discard()  # a recording left open by an earlier fit
        if not trainer.is_global_zero:
            return
        self.start(pl_module)
        self._last_step = int(trainer.global_step)
        self._loss_sum, self._loss_batches = None, 0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Take a snapshot if this batch ended with an optimiser step (``global_step`` increased)."""
        if self.recorder is None:
            return
        loss = _batch_loss(outputs)
        if loss is not None:
            # automatic optimisation divides each batch's loss by accumulate_grad_batches
            scale = int(trainer.accumulate_grad_batches) if pl_module.automatic_optimization else 1
            loss = loss * scale
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._loss_batches += 1
        step = int(trainer.global_step)
        if step <= self._last_step:
            return  # accumulating gradients: no optimiser step yet
        self._last_step = step
        if self._loss_sum is None:
            self.recorder.snapshot()
        else:
            self.recorder.snapshot(loss=self._loss_sum / self._loss_batches)
        self._loss_sum, self._loss_batches = None, 0

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Finish the file: it appears at ``path``."""
        self.finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Discard the recording: nothing is written."""
        self.discard()
