"""Figures: each writes ``PREFIX.pdf``, ``PREFIX.png`` and ``PREFIX.json`` (the numbers shown)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ParameterError

#: Figure name -> module that draws it.
FIGURES = {
    "fig2": "equivdyn.figures.fig2",
    "fig3": "equivdyn.figures.fig3",
    "figS_fcn_seeds": "equivdyn.figures.figS_fcn_seeds",
    "fig5": "equivdyn.figures.fig5",
    "fig4": "equivdyn.figures.fig4",
    "figS_cnn_epochs": "equivdyn.figures.figS_cnn_epochs",
}


def plot(figure: str, inputs: Mapping[str, Path], out_prefix: str | os.PathLike[str]) -> None:
    """Draw ``figure`` from its named input files."""
    if figure not in FIGURES:
        raise ParameterError(f"figure: unknown figure {figure!r}; known: {', '.join(FIGURES)}")
    module = importlib.import_module(FIGURES[figure])
    missing = sorted(set(module.INPUTS) - set(inputs))
    if missing:
        raise ParameterError(f"plot {figure}: missing --input for {', '.join(missing)}")
    module.plot(inputs, Path(out_prefix))
