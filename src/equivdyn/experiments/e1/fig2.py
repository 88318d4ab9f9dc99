"""Figure 2: OMD and OGD are conjugate, the bisection method (BM) is not.

Panels: (a) one trajectory of each method, (b) their losses, (c) the Koopman spectra with
the unit circle, (d) a square view of λ = 1 holding the eigenvalues near it, (e) a table of
the Wasserstein distances with the paper's randomisation control and the calibrated verdicts
of OMD vs OGD and OMD vs BM, which the title repeats.
E1 has one trajectory file per method, so the verdicts use the grid's rows as pseudo-seeds.
The JSON beside the figure holds the spectra, the distances, the controls and the verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...errors import ParameterError
from ...figures._common import (
    RANDOMIZATION_CONTROL,
    VERDICT_NOTE,
    ZOOM_RADIUS,
    format_distance,
    format_p,
    new_figure,
    numbers_table,
    one,
    pairs_of,
    read_comparison,
    read_run_spectra,
    read_runs,
    save,
    spectra_near_one,
    table_height,
    unit_circle,
    verdict_text,
    verdicts_of,
)
from ...stages import pair_name
from . import METHODS, PAIRS, VERDICTS

LABELS = {"omd": "OMD", "ogd": "OGD", "bm": "BM"}
STYLES = {"omd": ("k", "o"), "ogd": ("tab:red", "^"), "bm": ("tab:blue", "*")}
STATE_NAMES = {"omd": "x", "ogd": "u", "bm": "z"}
#: The paper's example run: the OMD initial condition x0 = (0.5, 0.7); the other methods
#: show the run with the same index on their own grids.
EXAMPLE_X0 = (0.5, 0.7)


def _pseudo_seeds(comparison: dict, n_runs: int) -> str:
    """How the verdicts' pseudo-seeds were made (from the comparison's spec)."""
    splits = {v["split"] for v in comparison["spec"]["params"].get("verdicts", [])}
    if not splits:
        return "no verdicts were computed"
    (k,) = splits
    return (
        f"each method's {n_runs} runs cut into {k} consecutive groups of {n_runs // k} initial conditions "
        "(one grid row each: the initial conditions that share their last coordinate), used as pseudo-seeds"
    )


def _label(a: str, b: str) -> str:
    return f"{LABELS[a]} vs {LABELS[b]}"


def plot(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    runs = read_runs(inputs, ("method",))
    files = read_run_spectra(inputs, runs)
    if set(runs) != {(m,) for m in METHODS}:
        raise ParameterError(f"--input trajectories: the figure needs one run of each method {', '.join(METHODS)}")
    trajs = {m: runs[m,] for m in METHODS}
    spectra = {m: files[m,].spectra["all"] for m in METHODS}
    comparison = read_comparison(one(inputs, "compare"), "e1")
    loss = trajs["omd"].params["params"]["loss"]

    x0 = trajs["omd"].observables["state"][:, 0, :]
    target = np.resize(np.asarray(EXAMPLE_X0), x0.shape[1])
    example = int(np.argmin(np.abs(x0 - target).sum(axis=1)))

    pairs = {(a, b): comparison["pairs"][pair_name(a, b)] for a, b in PAIRS}
    verdicts = verdicts_of(comparison, [pair_name(a, b) for a, b in VERDICTS])
    by_pair = dict(zip(VERDICTS, verdicts.values()))
    n_seeds = [v["n_seeds"][0] for v in verdicts.values() if v is not None]
    unit = f"grid rows as pseudo-seeds, {n_seeds[0]} per method" if n_seeds else "grid rows"
    ratio = min(pairs["ogd", "bm"]["distance"], pairs["omd", "bm"]["distance"]) / pairs["omd", "ogd"]["distance"]
    header = ("pair", "Wasserstein distance\nbetween the spectra", "randomisation control p\n(the paper's, not calibrated)",
              f"calibrated verdict\n({unit})")
    rows = [
        [_label(*k), format_distance(v["distance"]), format_p(v["p_value"]),
         verdict_text(by_pair[k], "grid rows", prefix=False) if k in by_pair else "- (not computed)"]
        for k, v in pairs.items()
    ]

    heights = (3.6, 4.6, table_height(header, rows))
    fig = new_figure(sum(heights) + 0.6)
    grid = fig.add_gridspec(3, 2, height_ratios=heights)
    axes = [fig.add_subplot(grid[r, c]) for r in (0, 1) for c in (0, 1)]
    ax = axes[0]
    for m in METHODS:
        colour, _ = STYLES[m]
        state = trajs[m].observables["state"][example]
        for d in range(state.shape[1]):
            ax.plot(trajs[m].steps, state[:, d], color=colour, ls="-" if d == 0 else "--",
                    label=f"{LABELS[m]} ${STATE_NAMES[m]}_{d + 1}$")
    ax.set(xlabel="iteration", ylabel="state", title="(a) example run (OMD $x_0$ = (" + ", ".join(f"{v:g}" for v in x0[example]) + "))")
    ax.legend(ncol=3)

    ax = axes[1]
    for m in METHODS:
        colour, _ = STYLES[m]
        values = trajs[m].metrics["loss"][example]
        ax.plot(trajs[m].steps, np.abs(values) if m == "bm" else values, color=colour, label=LABELS[m])
    ax.set(xlabel="iteration", ylabel="loss (BM: |g(z)|)", yscale="log", title=f"(b) loss ({loss})")
    ax.legend()

    styles = {m: {"color": STYLES[m][0], "marker": STYLES[m][1], "s": 30,
                  **({"facecolors": "none"} if m == "ogd" else {})} for m in METHODS}
    ax = axes[2]
    unit_circle(ax)
    for m in METHODS:
        eig = spectra[m].eigenvalues
        ax.scatter(eig.real, eig.imag, label=LABELS[m], **styles[m])
    ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), aspect="equal", title="(c) Koopman spectra",
           xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$")
    ax.legend(loc="lower left")
    ax = axes[3]
    spectra_near_one(ax, [(LABELS[m], spectra[m].eigenvalues, styles[m]) for m in METHODS],
                     rf"(d) near $\lambda$ = 1: eigenvalues within {ZOOM_RADIUS:g} of 1")
    ax.legend(loc="upper left")

    numbers_table(fig.add_subplot(grid[2, :]), header, rows,
                  title=f"(e) distances and tests; the smaller distance to BM is {ratio:.3g} times OMD vs OGD's")
    title = (
        f"E1, loss {loss}: OMD and OGD vs the bisection method (BM); Wasserstein distances and "
        "the paper's randomisation control in (e)\ncalibrated verdicts: "
        + ";   ".join(f"{_label(*k)}: {verdict_text(v, 'grid rows', prefix=False)}" for k, v in by_pair.items())
    )
    fig.suptitle(title)

    distances = {pair_name(*k): v["distance"] for k, v in pairs.items()}
    numbers = {
        "spectra": {m: pairs_of(spectra[m].eigenvalues) for m in METHODS},
        "residuals": {m: [float(r) for r in spectra[m].residuals] for m in METHODS},
        "distances": distances,
        "controls": {pair_name(*k): {"p_value": v["p_value"], "n_shuffles": v["n_shuffles"], "null_mean": v["null_mean"]}
                     for k, v in pairs.items()},
        "controls_are": RANDOMIZATION_CONTROL,
        "verdicts": verdicts,
        "verdict_text": {k: verdict_text(v, "grid rows") for k, v in verdicts.items()},
        "verdicts_are": VERDICT_NOTE,
        "verdict_pseudo_seeds": _pseudo_seeds(comparison, int(x0.shape[0])),
        "title": title,
        "ratio_bm_to_omd_ogd": ratio,
        "example": {"index": example, "x0": [float(v) for v in x0[example]]},
        "loss": loss,
        "keys": {"compare": comparison["key"], **{f"traj_{m}": trajs[m].key for m in METHODS},
                 **{f"spec_{m}": files[m,].key for m in METHODS}},
    }
    save(fig, numbers, prefix)
