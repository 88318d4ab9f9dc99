"""What the framework callbacks share: their settings and the recorder while training runs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import check_int
from ..recorder import Observable, Recorder


class RecordingCallback:
    """Base of the framework callbacks: records the trained model to one trajectory file
    ``[1, T, D]`` (with the training loss as metric ``"loss"``) between :meth:`start` and
    :meth:`finish`; :meth:`discard` abandons it (no file is written).

    Parameters
    ----------
    path : str or path
        The trajectory file to write (``.h5``).
    observables : sequence of str or callable, or mapping of name to either, optional
        What to record (see :class:`equivdyn.recorder.Recorder`): parameter names
        (``"fc2.weight"``), module names (``"fc2"``) or functions of the model.  Default:
        the last module that has parameters.
    every : int
        Record every ``every``-th optimiser step.
    project : int, optional
        Project each observable with more than ``project`` values onto ``project``
        dimensions by a fixed Gaussian random matrix.
    projection_seed : int
        Seed of the projection matrices.
    params : mapping, optional
        What describes the run (optimiser, learning rate, seed, …): stored in the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        observables: Sequence[Observable] | Mapping[str, Observable] | None = None,
        *,
        every: int = 1,
        project: int | None = None,
        projection_seed: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.observables = observables
        self.every = check_int(every, "every", 1)
        self.project = project
        self.projection_seed = projection_seed
        self.params = dict(params or {})
        self.recorder: Recorder | None = None

    def start(self, model: Any) -> None:
        """Start recording ``model`` (step 0 is the model as it is now)."""
        self.discard()  # a recording left open by an earlier, failed run
        self.recorder = Recorder(
            self.path,
            model,
            self.observables,
            every=self.every,
            project=self.project,
            projection_seed=self.projection_seed,
            params=self.params,
        )

    def finish(self) -> None:
        """Finish the file: it appears at ``path``."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()

    def discard(self) -> None:
        """Abandon an open recording, if any: no file is written."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.discard()
