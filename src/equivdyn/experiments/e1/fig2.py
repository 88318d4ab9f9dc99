"""Figure 2: OMD and OGD are conjugate, the bisection method (BM) is not.

Panels: (a) one trajectory of each method, (b) their losses, (c) the Koopman spectra with
the unit circle, (d) the spectra near λ = 1.  The title gives the Wasserstein distances with
the paper's randomisation control, and the calibrated verdicts of OMD vs OGD and OMD vs BM.
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
    one,
    pairs_of,
    plt,
    read_comparison,
    read_run_spectra,
    read_runs,
    save,
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

    fig, grid = plt.subplots(2, 2, figsize=(10, 8.5))
    axes = grid.ravel()
    ax = axes[0]
    for m in METHODS:
        colour, _ = STYLES[m]
        state = trajs[m].observables["state"][example]
        for d in range(state.shape[1]):
            ax.plot(trajs[m].steps, state[:, d], color=colour, ls="-" if d == 0 else "--",
                    label=f"{LABELS[m]} ${STATE_NAMES[m]}_{d + 1}$")
    ax.set(xlabel="iteration", ylabel="state", title="(a) example run (OMD $x_0$ = (" + ", ".join(f"{v:g}" for v in x0[example]) + "))")
    ax.legend(fontsize=6, ncol=3)

    ax = axes[1]
    for m in METHODS:
        colour, _ = STYLES[m]
        values = trajs[m].metrics["loss"][example]
        ax.plot(trajs[m].steps, np.abs(values) if m == "bm" else values, color=colour, label=LABELS[m])
    ax.set(xlabel="iteration", ylabel="loss (BM: |g(z)|)", yscale="log", title=f"(b) loss ({loss})")
    ax.legend(fontsize=7)

    for ax, zoom in ((axes[2], False), (axes[3], True)):
        if not zoom:
            unit_circle(ax)
        for m in METHODS:
            colour, marker = STYLES[m]
            eig = spectra[m].eigenvalues
            ax.scatter(eig.real, eig.imag, color=colour, marker=marker, s=22, label=LABELS[m],
                       facecolors="none" if m == "ogd" else colour)
        ax.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$")
        if zoom:
            ax.set(xlim=(0.5, 1.1), ylim=(-0.05, 0.05), title=r"(d) near $\lambda$ = 1")
        else:
            ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), aspect="equal", title="(c) Koopman spectra")
        ax.legend(fontsize=7, loc="lower left")

    pairs = {(a, b): comparison["pairs"][pair_name(a, b)] for a, b in PAIRS}
    verdicts = verdicts_of(comparison, [pair_name(a, b) for a, b in VERDICTS])
    by_pair = dict(zip(VERDICTS, verdicts.values()))
    n_seeds = [v["n_seeds"][0] for v in verdicts.values() if v is not None]
    unit = f"grid rows as pseudo-seeds, {n_seeds[0]} per method" if n_seeds else "grid rows"
    title = (
        f"E1, loss {loss}: Wasserstein distance between spectra (p: the paper's randomisation control)\n"
        + ",   ".join(
            _label(*k) + f": {v['distance']:.3g} (control p = {v['p_value']:.2g})" for k, v in pairs.items()
        )
        + f"\ncalibrated verdicts ({unit}): "
        + ";   ".join(f"{_label(*k)}: {verdict_text(v, 'grid rows', prefix=False)}" for k, v in by_pair.items())
    )
    fig.suptitle(title)
    fig.tight_layout()

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
        "ratio_bm_to_omd_ogd": min(pairs["ogd", "bm"]["distance"], pairs["omd", "bm"]["distance"])
        / pairs["omd", "ogd"]["distance"],
        "example": {"index": example, "x0": [float(v) for v in x0[example]]},
        "loss": loss,
        "keys": {"compare": comparison["key"], **{f"traj_{m}": trajs[m].key for m in METHODS},
                 **{f"spec_{m}": files[m,].key for m in METHODS}},
    }
    save(fig, numbers, prefix)
