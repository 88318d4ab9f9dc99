"""Helpers shared by the figure modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._io import atomic_path, content_key, read_json_result, write_json_atomic  # noqa: E402
from ..errors import InvalidFileError, ParameterError  # noqa: E402
from ..store import SpectrumFile, Trajectory, read_spectra, read_trajectory  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9})


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
        text = f"not conjugate (p={verdict['p_value']:.2g})"
    elif verdict["inconclusive"]:
        n_a, n_b = verdict["n_seeds"]
        text = f"inconclusive ({n_a if n_a == n_b else f'{n_a} vs {n_b}'} {unit}, p={verdict['p_value']:.2g})"
    else:
        text = f"no evidence of a difference (p={verdict['p_value']:.2g})"
    return f"verdict: {text}" if prefix else text


def verdicts_of(result: Mapping[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """The verdicts ``names`` of a compare or distances result (``None`` where none was computed)."""
    verdicts = result.get("verdicts", {})
    return {name: verdicts.get(name) for name in names}


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
            ax.legend(loc="lower left", fontsize=7)


def write_verdict_plot(path: str | Path, verdict: Mapping[str, Any], labels: Sequence[str]) -> None:
    """Draw :func:`verdict_panels` into the image file ``path`` (its format from its suffix), atomically."""
    p = Path(path)
    fmt = p.suffix.lstrip(".").lower()
    if fmt not in plt.gcf().canvas.get_supported_filetypes():
        raise ParameterError(f"--plot {p}: unknown image format {p.suffix or '(no suffix)'}; use .png, .pdf or .svg")
    plt.close("all")
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 4.2))
    verdict_panels(axes, verdict, labels, title=f"{labels[0]} vs {labels[1]}")
    fig.tight_layout()
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata={"CreationDate": None} if fmt == "pdf" else None)
    plt.close(fig)
