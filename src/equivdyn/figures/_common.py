"""Helpers shared by the figure modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._io import atomic_path, content_key, write_json_atomic  # noqa: E402
from ..errors import InvalidFileError  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9})


def save(fig: plt.Figure, numbers: dict[str, Any], prefix: Path) -> None:
    """Write ``prefix``.pdf/.png (atomically) and the numbers behind them as ``prefix``.json."""
    for ext in ("pdf", "png"):
        with atomic_path(prefix.with_name(prefix.name + "." + ext)) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", metadata=None if ext == "png" else {"CreationDate": None})
    plt.close(fig)
    write_json_atomic(prefix.with_name(prefix.name + ".json"), numbers)


def read_json_result(path: str | Path) -> Any:
    """Read a JSON result file; any problem raises :class:`InvalidFileError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise InvalidFileError(p, "file does not exist")
    if p.is_dir():
        raise InvalidFileError(p, "is a directory, not a JSON file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidFileError(p, f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise InvalidFileError(p, "file is empty (an interrupted write?)")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidFileError(p, "not valid JSON: the file is not UTF-8 text (a binary file?)") from None
    except json.JSONDecodeError as exc:
        raise InvalidFileError(p, f"not valid JSON (truncated or not a result?): {exc}") from None


def read_comparison(path: str | Path, experiment: str) -> dict[str, Any]:
    """Read the JSON that ``equivdyn compare`` wrote for ``experiment`` and check its shape and key."""
    p = Path(path)
    result = read_json_result(p)
    fields = ("key", "spec", "pairs", "permutation_tests")
    if not (isinstance(result, dict) and all(f in result for f in fields) and isinstance(result["spec"], dict)
            and result["spec"].get("stage") == "compare"):
        raise InvalidFileError(p, f"not a comparison (the JSON object with {', '.join(fields)} that "
                                  "`equivdyn compare` writes)")
    if result["spec"].get("experiment") != experiment:
        raise InvalidFileError(p, f"is a comparison of experiment {result['spec'].get('experiment')!r}; "
                                  f"this figure needs one of {experiment!r}")
    if result["key"] != content_key(result["spec"]):
        raise InvalidFileError(p, f"holds key {result['key']!r}, which is not the key of the spec inside it")
    return result


def pairs_of(eigenvalues: np.ndarray) -> list[list[float]]:
    """Complex eigenvalues as JSON-ready ``[[re, im], ...]``."""
    return [[float(z.real), float(z.imag)] for z in np.asarray(eigenvalues)]


def unit_circle(ax: plt.Axes) -> None:
    theta = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(theta), np.sin(theta), "k--", lw=0.8, zorder=0)


def spectra_near_one(
    ax: plt.Axes,
    spectra: list[tuple[str | None, np.ndarray, Any]],
    title: str,
    pad: float = 0.02,
    size: float = 18,
) -> None:
    """Scatter eigenvalue sets with the unit circle, zoomed to the data and λ = 1.

    ``spectra`` holds ``(label, eigenvalues, colour)`` triples (label ``None``: no legend entry).
    """
    unit_circle(ax)
    eigs = np.concatenate([np.asarray(e) for _, e, _ in spectra])
    for label, eig, colour in spectra:
        ax.scatter(eig.real, eig.imag, s=size, color=colour, label=label)
    ax.set(xlim=(min(eigs.real.min(), 1.0) - pad, max(eigs.real.max(), 1.0) + pad),
           ylim=(eigs.imag.min() - pad, eigs.imag.max() + pad),
           xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", title=title)
