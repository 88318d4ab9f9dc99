"""Figures: each writes ``PREFIX.pdf``, ``PREFIX.png`` and ``PREFIX.json`` (the numbers shown).

Each experiment owns its figures (:attr:`equivdyn.experiments.Experiment.figures`); this
package holds what they share (:mod:`._common`) and :func:`plot`, which finds the
experiment that draws a figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ParameterError


def figure_names() -> dict[str, str]:
    """Every figure a registered experiment draws, by name (its file stem), and the experiment's name."""
    from ..experiments import registered

    return {figure: experiment.name for experiment in registered() for figure in experiment.figures}


def plot(figure: str, inputs: Mapping[str, Sequence[Path]], out_prefix: str | os.PathLike[str]) -> None:
    """Draw ``figure`` from its input files, by role (e.g. ``{"trajectories": [...], "compare": [...]}``)."""
    from ..experiments import get

    names = figure_names()
    if figure not in names:
        raise ParameterError(f"figure: unknown figure {figure!r}; known: {', '.join(names)}")
    get(names[figure]).draw(figure, inputs, Path(out_prefix))
