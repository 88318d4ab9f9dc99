"""Figure ``custom_verdicts``: for each compared pair of your setups, the principal Koopman
modes of every seed of both (on the unit disk and zoomed), titled with the calibrated verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...figures._common import VERDICT_NOTE, one, plt, read_comparison, save, verdict_panels


def draw(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    result = read_comparison(one(inputs, "compare"), "custom")
    questions = result["spec"]["params"]["questions"]
    fig, axes = plt.subplots(len(questions), 2, figsize=(8.5, 4.2 * len(questions)), squeeze=False)
    numbers = {"verdicts_are": VERDICT_NOTE, "comparisons": [], "compare_key": result["key"]}
    for row, q in zip(axes, questions):
        v = result["verdicts"][q["verdict"]]
        verdict_panels(row, v, (q["a"], q["b"]), title=f"{q['a']} vs {q['b']}")
        numbers["comparisons"].append(
            {"a": q["a"], "b": q["b"], "p_value": v["p_value"], "non_conjugate": v["non_conjugate"], "verdict": v}
        )
    fig.tight_layout()
    save(fig, numbers, prefix)
