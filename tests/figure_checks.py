"""What every figure must satisfy as a reader sees it: readable at the report's size, and the
numbers it claims drawn inside its axes (not only in its title).

:func:`capture` catches the figure a drawing function makes; :func:`check_readable` and
:func:`axes_texts` inspect it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from equivdyn.experiments import get as get_experiment
from equivdyn.figures import figure_names
from equivdyn.figures._common import FIGURE_WIDTH, MIN_FONT_PT


def figure_module(figure: str) -> Any:
    """The module whose function draws ``figure`` (a registered figure's name)."""
    target = get_experiment(figure_names()[figure]).figures[figure]
    return importlib.import_module(target.split(":")[0])


@contextmanager
def capture(monkeypatch: pytest.MonkeyPatch, figure: str) -> Iterator[list[Figure]]:
    """While open, the figures that ``figure``'s module saves are appended to the list it gives."""
    module = figure_module(figure)
    saved: list[Figure] = []
    original: Callable[..., None] = module.save

    def save(fig: Figure, numbers: dict[str, Any], prefix: Any) -> None:
        saved.append(fig)
        original(fig, numbers, prefix)

    with monkeypatch.context() as m:
        m.setattr(module, "save", save)
        yield saved


def axes_texts(fig: Figure) -> list[str]:
    """Every text drawn inside the figure's axes: titles, labels, annotations, legends and
    table cells (not the figure's own title)."""
    out = []
    for ax in fig.axes:
        out.extend(t.get_text() for t in ax.findobj(Text) if t.get_visible() and t.get_text())
        for table in ax.tables:
            out.extend(cell.get_text().get_text() for cell in table.get_celld().values())
    return out


def assert_shown(fig: Figure, *numbers: str) -> None:
    """Each of ``numbers`` (formatted as the figure formats them) is part of a text inside an axes."""
    texts = axes_texts(fig)
    missing = [n for n in numbers if not any(n in t for t in texts)]
    assert not missing, (missing, texts)


def check_readable(fig: Figure) -> None:
    """The figure is as wide as the report shows it and no visible text is smaller than
    :data:`MIN_FONT_PT`; nothing says "equivalent" where a test found no difference."""
    fig.canvas.draw()  # makes the tick labels
    assert fig.get_figwidth() == pytest.approx(FIGURE_WIDTH)
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT
    ]
    for ax in fig.axes:
        for table in ax.tables:
            small.extend((c.get_text().get_text(), c.get_text().get_fontsize()) for c in table.get_celld().values()
                         if c.get_text().get_fontsize() < MIN_FONT_PT)
    assert not small, small
    every = [t.get_text() for t in fig.findobj(Text)] + axes_texts(fig)
    assert not any("equivalent" in t.lower() for t in every)
