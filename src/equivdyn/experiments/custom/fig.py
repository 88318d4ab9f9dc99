"""Figure ``custom_verdicts``: for each compared pair of your setups, the principal Koopman
modes of every seed of both (on the unit disk and zoomed), titled with the calibrated verdict;
a table under them gives each verdict's numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...figures._common import (
    VERDICT_COLUMNS,
    VERDICT_NOTE,
    VERDICT_PANEL_HEIGHT,
    new_figure,
    numbers_table,
    one,
    read_comparison,
    save,
    table_height,
    verdict_cells,
    verdict_panels,
)


def draw(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    result = read_comparison(one(inputs, "compare"), "custom")
    questions = result["spec"]["params"]["questions"]
    names = [f"{q['a']} vs {q['b']}" for q in questions]
    rows = [verdict_cells(name, result["verdicts"][q["verdict"]]) for name, q in zip(names, questions)]
    heights = (*[VERDICT_PANEL_HEIGHT] * len(questions), table_height(VERDICT_COLUMNS, rows))
    fig = new_figure(sum(heights) + 0.2)
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights)
    numbers = {"verdicts_are": VERDICT_NOTE, "comparisons": [], "compare_key": result["key"]}
    for i, (name, q) in enumerate(zip(names, questions)):
        v = result["verdicts"][q["verdict"]]
        verdict_panels([fig.add_subplot(grid[i, 0]), fig.add_subplot(grid[i, 1])], v, (q["a"], q["b"]), title=name)
        numbers["comparisons"].append(
            {"a": q["a"], "b": q["b"], "p_value": v["p_value"], "non_conjugate": v["non_conjugate"], "verdict": v}
        )
    numbers_table(fig.add_subplot(grid[-1, :]), VERDICT_COLUMNS, rows, title="the calibrated verdicts' numbers")
    save(fig, numbers, prefix)
