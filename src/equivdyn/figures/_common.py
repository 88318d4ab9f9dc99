"""Helpers shared by the figure modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._io import atomic_path, write_json_atomic  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9})


def save(fig: plt.Figure, numbers: dict[str, Any], prefix: Path) -> None:
    """Write ``prefix``.pdf/.png (atomically) and the numbers behind them as ``prefix``.json."""
    for ext in ("pdf", "png"):
        with atomic_path(prefix.with_name(prefix.name + "." + ext)) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", metadata=None if ext == "png" else {"CreationDate": None})
    plt.close(fig)
    write_json_atomic(prefix.with_name(prefix.name + ".json"), numbers)


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
