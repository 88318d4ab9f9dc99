"""Helpers shared by the figure modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from .._io import atomic_path, content_key, read_json_result, write_json_atomic
from ..errors import InvalidFileError, ParameterError
from ..store import SpectrumFile, Trajectory, read_spectra, read_trajectory

# ---------------------------------------------------------------- size and text
# The report shows each PNG about 1000 px wide, i.e. about 10.4 inches at a browser's 96 px an
# inch: a figure FIGURE_WIDTH inches wide appears there near its true size, so its point sizes
# hold, whatever the DPI of the PNG (the DPI only sets how sharp it is).

#: Width of every figure, inches.
FIGURE_WIDTH = 10.0
#: Smallest text, points (legends, ticks, tables): about 12 px in the report.
MIN_FONT_PT = 9
#: Body text, axis labels and panel titles, points.
FONT_PT = 10

plt.rcParams.update({
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "figure.titlesize": FONT_PT + 1,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
})


def new_figure(height: float) -> plt.Figure:
    """An empty figure of the shared width (:data:`FIGURE_WIDTH`), ``height`` inches tall, whose
    panels are laid out by constrained layout (it makes room for titles, legends and colour bars)."""
    return plt.figure(figsize=(FIGURE_WIDTH, height), layout="constrained")


def format_distance(value: float) -> str:
    """A Wasserstein distance as the figures write it."""
    return f"{value:.3g}"


def format_p(value: float) -> str:
    """A p-value as the figures write it."""
    return f"{value:.2g}"


def mean_sd_text(values: Sequence[float]) -> str:
    """``mean ± sd`` of distances (sample sd; the mean alone for one value)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return format_distance(float(v.mean()))
    return f"{format_distance(float(v.mean()))} ± {format_distance(float(v.std(ddof=1)))}"


#: Characters in one line of a figure's title (at ``figure.titlesize`` across :data:`FIGURE_WIDTH`).
TITLE_CHARS = 110


def join_lines(items: Sequence[str], sep: str = ";   ", width: int = TITLE_CHARS) -> str:
    """``items`` joined by ``sep``, breaking the line between items where it would pass ``width``."""
    lines = [""]
    for item in items:
        if lines[-1] and len(lines[-1]) + len(sep) + len(item) > width:
            lines[-1] += sep.rstrip()
            lines.append(item)
        else:
            lines[-1] += (sep if lines[-1] else "") + item
    return "\n".join(lines)


#: Height of one line of a numbers table, inches.
TABLE_LINE_HEIGHT = 0.24


def table_height(header: Sequence[str], rows: Sequence[Sequence[str]]) -> float:
    """Height in inches that :func:`numbers_table` needs for ``header`` and ``rows``."""
    return TABLE_LINE_HEIGHT * sum(_lines(row) for row in [header, *rows]) + 0.1


def _lines(row: Sequence[str]) -> int:
    return max(str(cell).count("\n") + 1 for cell in row)


def numbers_table(ax: plt.Axes, header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    """Draw ``rows`` of text cells under ``header`` as a table that fills ``ax``: the numbers
    a figure claims, shown inside it.  Columns are as wide as their longest line; a cell
    may hold several lines (``"\\n"``).  Give ``ax`` the height :func:`table_height` says."""
    ax.axis("off")
    every = [list(header), *[list(r) for r in rows]]
    widths = [max(len(line) for row in every for line in str(row[i]).split("\n")) + 2 for i in range(len(header))]
    fractions = [w / sum(widths) for w in widths]
    table = ax.table(cellText=[[str(c) for c in r] for r in rows], colLabels=list(header), cellLoc="left",
                     colLoc="left", colWidths=fractions, bbox=(0, 0, 1, 1))
    table.auto_set_font_size(False)
    table.set_fontsize(MIN_FONT_PT)
    lines = [_lines(row) for row in every]
    for (r, c), cell in table.get_celld().items():
        cell.set_height(lines[r] / sum(lines))  # scaled to fill the axes: rows keep their proportions
        cell.PAD = 0.01 / fractions[c]  # the text's indent, a share of the cell: 1 % of the table's width
        cell.set_edgecolor("0.75")
        if r == 0:
            cell.set_facecolor("0.92")
            cell.get_text().set_fontweight("bold")
    if title:
        ax.set_title(title, loc="left")


def save(fig: plt.Figure, numbers: dict[str, Any], prefix: Path) -> None:
    """Write ``prefix``.pdf/.png (atomically) and the numbers behind them as ``prefix``.json."""
    for ext in ("pdf", "png"):
        with atomic_path(prefix.with_name(prefix.name + "." + ext)) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", metadata=None if ext == "png" else {"CreationDate": None})
    plt.close(fig)
    write_json_atomic(prefix.with_name(prefix.name + ".json"), numbers)


def read_comparison(path: str | Path, experiment: str) -> dict[str, Any]:
    """Read the JSON that ``equivdyn compare`` wrote for ``experiment`` and check its shape and key."""
    p = Path(path)
    result = read_json_result(p)
    fields = ("key", "spec", "pairs", "permutation_tests", "verdicts")
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


def one(inputs: Mapping[str, Sequence[Path]], role: str) -> Path:
    """The single file of input ``role``."""
    files = inputs.get(role, [])
    if len(files) != 1:
        raise ParameterError(f"--input {role}: the figure needs exactly one {role} file, got {len(files)}")
    return Path(files[0])


def read_runs(inputs: Mapping[str, Sequence[Path]], fields: Sequence[str], *, observables: bool = True) -> dict[tuple, Trajectory]:
    """The trajectory files of role ``trajectories``, by the values of their planned
    parameters ``fields`` (e.g. ``("width", "seed")``), read from the files themselves."""
    runs: dict[tuple, Trajectory] = {}
    for path in inputs.get("trajectories", []):
        traj = read_trajectory(path, observables=observables)
        planned = traj.params.get("params", {})
        missing = [f for f in fields if f not in planned]
        if missing:
            raise InvalidFileError(Path(path), f"its planned parameters hold no {', '.join(missing)}")
        ident = tuple(planned[f] for f in fields)
        if ident in runs:
            raise ParameterError(f"--input trajectories: two files have {dict(zip(fields, ident))}")
        runs[ident] = traj
    if not runs:
        raise ParameterError("--input trajectories: the figure needs the trajectory files")
    return runs


def read_run_spectra(inputs: Mapping[str, Sequence[Path]], runs: Mapping[tuple, Trajectory]) -> dict[tuple, SpectrumFile]:
    """The spectrum files of role ``spectra``, by the run (see :func:`read_runs`) each was fitted to."""
    by_key = {traj.key: ident for ident, traj in runs.items()}
    files: dict[tuple, SpectrumFile] = {}
    for path in inputs.get("spectra", []):
        data = read_spectra(path)
        ident = by_key.get(data.inputs[0] if data.inputs else None)
        if ident is None:
            raise ParameterError(f"--input spectra: {path} was fitted to a trajectory that is not an input")
        files[ident] = data
    if set(files) != set(runs):
        raise ParameterError("--input: every trajectory needs its spectrum file and vice versa")
    return files


def input_names(result: Mapping[str, Any], keys: Mapping[tuple, str]) -> dict[tuple, str]:
    """The name a compare or distances result gives each run's spectrum (``keys``: run -> key)."""
    names = {key: name for name, key in result["spec"]["inputs"].items()}
    missing = [ident for ident, key in keys.items() if key not in names]
    if missing:
        raise ParameterError(f"the comparison {result['key']} has no input for the runs {missing}")
    return {ident: names[key] for ident, key in keys.items()}


def pairs_of(eigenvalues: np.ndarray) -> list[list[float]]:
    """Complex eigenvalues as JSON-ready ``[[re, im], ...]``."""
    return [[float(z.real), float(z.imag)] for z in np.asarray(eigenvalues)]


#: The eigenvalues within this distance of λ = 1 set the window of a view of λ = 1.
ZOOM_RADIUS = 0.1
#: Smallest half-width of that window, so that eigenvalues at 1 still show their surroundings.
ZOOM_MIN_HALF_WIDTH = 0.01


def unit_circle(ax: plt.Axes) -> None:
    # Points 0.0016 apart: still round in the narrowest view of λ = 1.
    theta = np.linspace(0, 2 * np.pi, 4001)
    ax.plot(np.cos(theta), np.sin(theta), "k--", lw=0.8, zorder=0)


def zoom_window(eigenvalues: np.ndarray, radius: float | None = ZOOM_RADIUS) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(xlim, ylim)`` of a square view of λ = 1 and the eigenvalues within ``radius`` of it
    (``None``: every eigenvalue).

    The view is the bounding box of λ = 1 and those eigenvalues, symmetric about the real
    axis (the spectra of real maps are), padded by 10 %, at least :data:`ZOOM_MIN_HALF_WIDTH`
    either side of λ = 1, and widened to a square about its centre.
    """
    z = np.asarray(eigenvalues, dtype=complex).ravel()
    near = z if radius is None else z[np.abs(z - 1) <= radius]
    re = np.concatenate([[1.0], near.real])
    top = float(np.abs(near.imag).max()) if near.size else 0.0
    pad = 0.1 * max(float(np.ptp(re)), 2 * top)
    lo, hi = min(re.min() - pad, 1 - ZOOM_MIN_HALF_WIDTH), max(re.max() + pad, 1 + ZOOM_MIN_HALF_WIDTH)
    half = max((hi - lo) / 2, top + pad)
    centre = (lo + hi) / 2
    return (centre - half, centre + half), (-half, half)


def spectra_near_one(
    ax: plt.Axes,
    spectra: Sequence[tuple[str | None, np.ndarray, Mapping[str, Any]]],
    title: str,
    radius: float | None = ZOOM_RADIUS,
    window: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> None:
    """Scatter eigenvalue sets with the unit circle in a square view of λ = 1 (:func:`zoom_window`
    of them all, or ``window``), equal aspect, λ = 1 marked.

    ``spectra`` holds ``(label, eigenvalues, style)`` triples: label ``None`` for no legend
    entry, ``style`` the keywords of :meth:`~matplotlib.axes.Axes.scatter` (colour, marker, …).
    When ``radius`` leaves eigenvalues out of the view, a note in the panel says how many.
    """
    unit_circle(ax)
    eigs = np.concatenate([np.asarray(e).ravel() for _, e, _ in spectra])
    for label, eig, style in spectra:
        ax.scatter(np.asarray(eig).real, np.asarray(eig).imag, label=label, **{"s": 18, **style})
    ax.plot([1.0], [0.0], "+", color="0.4", ms=10, mew=1, zorder=0)
    xlim, ylim = window or zoom_window(eigs, radius)
    ax.set(xlim=xlim, ylim=ylim, xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", title=title)
    ax.set_aspect("equal", adjustable="box")
    inside = (eigs.real >= xlim[0]) & (eigs.real <= xlim[1]) & (eigs.imag >= ylim[0]) & (eigs.imag <= ylim[1])
    if not inside.all():
        ax.text(0.02, 0.02, f"{int((~inside).sum())} of {eigs.size} eigenvalues\nlie outside this view",
                transform=ax.transAxes, ha="left", va="bottom", fontsize=MIN_FONT_PT, color="0.3")


# ---------------------------------------------------------------- verdicts and controls
# How the figures describe the tests they show.  The calibrated verdict
# (equivdyn.verdict.compare_runs) answers "are the two setups conjugate?"; the paper's
# randomisation control and the label-permutation test are kept to reproduce the paper.

#: What the paper's matched-pair randomisation control is (stated in the figures' JSON).
RANDOMIZATION_CONTROL = (
    "the paper's matched-pair randomisation control, kept to reproduce the paper; it is not a calibrated "
    "test: after swapping matched pairs the original matching is still available at the same cost, so its "
    "null never exceeds the observed distance and its p-value is the share of swaps after which the "
    "observed matching stays optimal"
)
#: What the label-permutation test is (stated in the figures' JSON).
LABEL_PERMUTATION_TEST = (
    "label-permutation test of the fitted spectra across seeds (setups as labels), kept for comparison "
    "with the paper's analysis; the calibrated verdict is under 'verdicts'"
)
#: What the verdicts are (stated in the figures' JSON).
VERDICT_NOTE = (
    "calibrated verdicts (equivdyn.compare_runs, alpha 0.05) from the trajectories: 'not conjugate' when "
    "p < alpha; 'inconclusive' when the number of seeds cannot reach p < alpha; otherwise 'no evidence of a "
    "difference', which is not proof of equivalence"
)


def verdict_text(verdict: Mapping[str, Any] | None, unit: str = "seeds", prefix: bool = True) -> str:
    """A verdict in a few words for a title, e.g. ``verdict: not conjugate (p=0.002)``.

    ``verdict`` is :meth:`equivdyn.verdict.Verdict.to_dict` (``None``: none was computed,
    which happens when a setup has fewer than 2 seeds); ``unit`` names what the seeds are;
    without ``prefix`` the text leaves out its leading ``verdict:``.
    """
    if verdict is None:
        text = f"none (needs at least 2 {unit} per setup)"
    elif verdict["non_conjugate"]:
        text = f"not conjugate (p={format_p(verdict['p_value'])})"
    elif verdict["inconclusive"]:
        n_a, n_b = verdict["n_seeds"]
        text = f"inconclusive ({n_a if n_a == n_b else f'{n_a} vs {n_b}'} {unit}, p={format_p(verdict['p_value'])})"
    else:
        text = f"no evidence of a difference (p={format_p(verdict['p_value'])})"
    return f"verdict: {text}" if prefix else text


def verdicts_of(result: Mapping[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """The verdicts ``names`` of a compare or distances result (``None`` where none was computed)."""
    verdicts = result.get("verdicts", {})
    return {name: verdicts.get(name) for name in names}


#: Columns of :func:`verdict_cells`: the numbers behind a calibrated verdict.
VERDICT_COLUMNS = (
    "setups",
    "seeds",
    "distance between the setups'\nprincipal spectra (95 % CI)",
    "between seeds\nof one setup",
    "calibrated verdict",
)
#: Height of a row of :func:`verdict_panels`, inches.
VERDICT_PANEL_HEIGHT = 4.6


def verdict_cells(name: str, verdict: Mapping[str, Any] | None, unit: str = "seeds") -> list[str]:
    """The numbers of the calibrated ``verdict`` of the setups ``name`` (:meth:`Verdict.to_dict`;
    ``None``: none was computed) as table cells under :data:`VERDICT_COLUMNS`."""
    if verdict is None:
        return [name, "-", "-", "-", verdict_text(None, unit, prefix=False)]
    n_a, n_b = verdict["n_seeds"]
    lo, hi = verdict["distance_ci"]
    return [
        name,
        f"{n_a} vs {n_b}",
        f"{format_distance(verdict['distance'])} ({format_distance(lo)}-{format_distance(hi)})",
        format_distance(verdict["within_distance"]),
        verdict_text(verdict, unit, prefix=False),
    ]


def verdict_panels(axes: Sequence[plt.Axes], verdict: Mapping[str, Any], labels: Sequence[str], title: str = "") -> None:
    """The principal modes of every seed of both setups of ``verdict`` (:meth:`Verdict.to_dict`),
    mirrored to both half-planes: on ``axes[0]`` with the unit circle, on ``axes[1]`` zoomed
    to the modes; the first title gives the verdict."""
    points = {}
    for side, label in zip(("a", "b"), labels):
        eig = np.array([complex(*z) for seed in verdict[f"eigenvalues_{side}"] for z in seed], dtype=complex)
        points[f"{label} ({len(verdict[f'eigenvalues_{side}'])} seeds)"] = np.concatenate([eig, eig.conj()])
    for ax, zoom in zip(axes, (False, True)):
        unit_circle(ax)
        for (label, eig), colour, marker in zip(points.items(), ("tab:blue", "tab:orange"), ("o", "x")):
            ax.scatter(eig.real, eig.imag, s=18, color=colour, marker=marker, label=label)
        ax.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$")
        if zoom:
            every = np.concatenate(list(points.values()))
            pad = max(0.01, 0.1 * float(np.ptp(every.real) + np.ptp(every.imag)))
            ax.set(xlim=(every.real.min() - pad, every.real.max() + pad), ylim=(every.imag.min() - pad, every.imag.max() + pad))
            ax.set_title("zoomed to the modes")
        else:
            ax.set_aspect("equal")
            ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1))
            ax.set_title(f"{title}\n{verdict_text(verdict)}" if title else verdict_text(verdict))
            ax.legend(loc="lower left")


def write_verdict_plot(path: str | Path, verdict: Mapping[str, Any], labels: Sequence[str]) -> None:
    """Draw :func:`verdict_panels` into the image file ``path`` (its format from its suffix), atomically."""
    p = Path(path)
    fmt = p.suffix.lstrip(".").lower()
    if fmt not in plt.gcf().canvas.get_supported_filetypes():
        raise ParameterError(f"--plot {p}: unknown image format {p.suffix or '(no suffix)'}; use .png, .pdf or .svg")
    plt.close("all")
    name = f"{labels[0]} vs {labels[1]}"
    header, rows = VERDICT_COLUMNS, [verdict_cells(name, verdict)]
    fig = new_figure(VERDICT_PANEL_HEIGHT + table_height(header, rows))
    grid = fig.add_gridspec(2, 2, height_ratios=(VERDICT_PANEL_HEIGHT, table_height(header, rows)))
    verdict_panels([fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])], verdict, labels, title=name)
    numbers_table(fig.add_subplot(grid[1, :]), header, rows)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata={"CreationDate": None} if fmt == "pdf" else None)
    plt.close(fig)
