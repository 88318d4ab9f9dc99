"""Record a Hugging Face ``transformers.Trainer`` run: :class:`RecordDynamicsCallback`.

::

    from equivdyn.callbacks.hf import RecordDynamicsCallback

    trainer = transformers.Trainer(model, args, train_dataset=data,
                                   callbacks=[RecordDynamicsCallback("run_s0.h5", ["classifier.weight"])])
    trainer.train()                       # run_s0.h5 holds [1, T, D] and the logged loss

An optional extra (``pip install 'equivdyn[hf]'``): ``transformers`` is imported only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ParameterError, is_number
from ._recording import RecordingCallback

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "equivdyn.callbacks.hf needs Hugging Face transformers: pip install 'equivdyn[hf]'"
    ) from None

__all__ = ["RecordDynamicsCallback"]


class RecordDynamicsCallback(RecordingCallback, TrainerCallback):  # type: ignore[misc]
    """Record observables of the trained model after every (k-th) optimiser step, to one
    trajectory file ``[1, T, D]``, with the logged training loss as metric ``"loss"``.

    The recording starts when training starts (:meth:`on_train_begin`: step 0 is the model
    as it is then); the Trainer calls :meth:`on_step_end` once per optimiser step (after
    all its gradient-accumulation micro-batches), and the file appears when training ends
    (:meth:`on_train_end`).  The loss is what the Trainer logs (``logs["loss"]``: the mean
    training loss since the previous log, every ``logging_steps`` steps), stored at the
    step it was logged at.  Only the main process records
    (``state.is_world_process_zero``).  Steps are counted from the start of this
    ``train()`` call (a resumed run's file starts at step 0).

    The Trainer has no hook for exceptions: a run that fails leaves no file at ``path``,
    only the hidden temporary ``.part`` file beside it, which :meth:`discard` (or the next
    :meth:`on_train_begin` of this callback) removes.

    The constructor takes the arguments of
    :class:`~equivdyn.callbacks._recording.RecordingCallback`.
    """

    _logged_step = -1

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Start the recording (main process only): step 0 is ``model`` as it is now."""
        self.discard()  # a recording left open by an earlier, failed run
        if not state.is_world_process_zero:
            return
        if model is None:
            raise ParameterError("model: the Trainer passed no model to RecordDynamicsCallback.on_train_begin")
        self.start(model)
        self._logged_step = -1

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Count one optimiser step; take a snapshot if it is a recorded step."""
        if self.recorder is not None:
            self.recorder.snapshot()

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Record ``logs["loss"]`` at the current step (once per step; other logs are ignored)."""
        if self.recorder is None or not logs or not is_number(logs.get("loss")):
            return
        step = self.recorder.step
        if step <= self._logged_step:
            return  # this step's loss is recorded already
        self.recorder.log(loss=float(logs["loss"]))
        self._logged_step = step

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Finish the file: it appears at ``path``."""
        self.finish()
