"""Figure 3: narrow and wide fully connected networks on MNIST train non-conjugately.

Panels: (a) training loss against images seen (mean and inter-quartile band over seeds and
initialisations), (b, c) some of the observable's output-layer weights of the narrowest and
the reference width, (d) Koopman spectra near λ = 1 of every seed, one small panel per width
in a common view, (e) mean ± sd of the per-seed Wasserstein distances between widths against
the between-seed reference, (f) test loss relative to the reference width, (g) a table of the
distances, the label-permutation p-values and the calibrated verdict of each width pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...figures._common import (
    LABEL_PERMUTATION_TEST,
    RANDOMIZATION_CONTROL,
    VERDICT_NOTE,
    ZOOM_RADIUS,
    format_p,
    join_lines,
    mean_sd_text,
    new_figure,
    numbers_table,
    pairs_of,
    plt,
    save,
    spectra_near_one,
    table_height,
    verdict_text,
    verdicts_of,
    zoom_window,
)
from . import N_CLASSES, OBSERVABLE
from .results import E2Results, load, mean_sd

#: Weights shown per network in the example-trajectory panels.
N_EXAMPLE_WEIGHTS = 4
#: Markers of the widths in the spectra panels, in width order.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Steps of the running mean drawn in panel (a): every run sees the same batch at a given
#: step, so the per-step loss jumps with the batch; the JSON keeps the raw per-step values.
SMOOTH_STEPS = 20


def _running_mean(values: list[float], n: int) -> np.ndarray:
    v = np.asarray(values)
    n = max(1, min(n, v.size))
    return np.convolve(v, np.ones(n) / n, mode="valid")


def _colours(widths: list[int]) -> dict[int, str]:
    cmap = plt.get_cmap("viridis")
    return {w: cmap(i / max(1, len(widths) - 1) * 0.85) for i, w in enumerate(widths)}


def _train_loss_summary(res: E2Results) -> dict[str, dict[str, list[float]]]:
    out = {}
    for w in res.widths:
        losses = np.concatenate([res.trajectories[w, s].metrics["train_loss"] for s in res.seeds])
        q25, q50, q75 = np.percentile(losses, [25, 50, 75], axis=0)
        out[str(w)] = {
            "images_seen": [int(v) for v in res.images_seen(w)],
            "mean": [float(v) for v in losses.mean(axis=0)],
            "median": [float(v) for v in q50],
            "q25": [float(v) for v in q25],
            "q75": [float(v) for v in q75],
        }
    return out


def _relative_test_loss(res: E2Results) -> dict[str, list[float]]:
    """(L_h - L_ref) / L_ref for every seed and initialisation, per non-reference width."""
    out = {}
    for w in res.widths:
        if w == res.reference_width:
            continue
        values = []
        for s in res.seeds:
            mine = res.trajectories[w, s].metrics["test_loss"][:, -1]
            ref = res.trajectories[res.reference_width, s].metrics["test_loss"][:, -1]
            values.extend(((mine - ref) / ref).tolist())
        out[str(w)] = [float(v) for v in values]
    return out


def _example_panel(ax: plt.Axes, res: E2Results, width: int, colour: str, panel: str) -> None:
    """The first :data:`N_EXAMPLE_WEIGHTS` recorded output-layer weights of ``width`` (the
    first seed, initialisation 0), named from the observable's layout."""
    seed = res.seeds[0]
    traj = res.trajectories[width, seed]
    weights = traj.observables[OBSERVABLE][0]
    h = weights.shape[1] // N_CLASSES  # the observable: the [10, h] matrix flattened row-major
    n = min(N_EXAMPLE_WEIGHTS, weights.shape[1])
    shades = np.linspace(1.0, 0.45, n)
    for j in range(n):
        c, unit = divmod(j, h)
        ax.plot(traj.steps, weights[:, j], color=colour, alpha=float(shades[j]), lw=1.2,
                label=f"$W_{{{c},{unit + 1}}}$")
    which = f"class 0 from hidden units 1-{n}" if n <= h else f"the first {n}, row by row"
    ax.set(xlabel="SGD step", ylabel="weight $W_{c,j}$ (class c, unit j)",
           title=f"({panel}) h = {width}: output-layer weights,\n{which} (seed {seed}, init 0)")
    ax.legend(ncol=2, loc="best")


def _spectra_panels(fig: plt.Figure, spec: Any, res: E2Results, colours: dict[int, str]) -> None:
    """(d): one small panel per width, every seed, all in the same view of λ = 1."""
    sub = fig.add_subfigure(spec)
    axes = sub.subplots(1, len(res.widths))
    every = np.concatenate([res.spectra[w, s].eigenvalues for w in res.widths for s in res.seeds])
    window = zoom_window(every)
    for i, (ax, w) in enumerate(zip(np.atleast_1d(axes), res.widths)):
        eig = np.concatenate([res.spectra[w, s].eigenvalues for s in res.seeds])
        style = {"color": colours[w], "marker": MARKERS[i % len(MARKERS)], "alpha": 0.75, "s": 22}
        spectra_near_one(ax, [(None, eig, style)], f"h = {w}", window=window)
        # Square panels narrower than their cells: drawn side by side in the middle of the row.
        ax.set_anchor("E" if i < (len(res.widths) - 1) / 2 else "W" if i > (len(res.widths) - 1) / 2 else "C")
        if i:
            ax.set(ylabel="", yticklabels=[])
    sub.suptitle(rf"(d) Koopman spectra near $\lambda$ = 1, {len(res.seeds)} seeds each (eigenvalues within "
                 f"{ZOOM_RADIUS:g} of 1)", fontsize=plt.rcParams["axes.titlesize"])


def plot(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    res = load(inputs)
    colours = _colours(res.widths)
    loss = _train_loss_summary(res)
    relative = _relative_test_loss(res)
    pairs = res.width_pairs()
    distances = {f"{a}|{b}": res.distances(a, b) for a, b in pairs}
    between = res.between_seeds()
    tests = res.comparison["permutation_tests"]
    verdicts = verdicts_of(res.comparison, [f"{a}|{b}" for a, b in pairs])
    narrow = [w for w in res.widths if w != res.reference_width]
    summary = {k: mean_sd(v) for k, v in distances.items()}
    summary[f"between_seeds_{res.reference_width}"] = mean_sd(between)

    header = ("widths h", f"Wasserstein distance,\nmean ± sd over {len(res.seeds)} seeds",
              "label-permutation p\n(across seeds)", "calibrated verdict\n(widths as setups)")
    rows = [[f"{a} vs {b}", mean_sd_text(distances[f"{a}|{b}"]), format_p(tests[f"{a}|{b}"]["p_value"]),
             verdict_text(verdicts[f"{a}|{b}"], prefix=False)] for a, b in pairs]
    rows.append([f"{res.reference_width}, between seeds", mean_sd_text(between), "-", "-"])

    heights = (3.3, 3.0, 3.0, table_height(header, rows))
    fig = new_figure(sum(heights) + 0.8)
    grid = fig.add_gridspec(4, 3, height_ratios=heights)
    ax = fig.add_subplot(grid[0, 0])
    for w in res.widths:
        x = _running_mean(loss[str(w)]["images_seen"], SMOOTH_STEPS)
        ax.plot(x, _running_mean(loss[str(w)]["mean"], SMOOTH_STEPS), color=colours[w], lw=1, label=f"h = {w}")
        ax.fill_between(x, _running_mean(loss[str(w)]["q25"], SMOOTH_STEPS),
                        _running_mean(loss[str(w)]["q75"], SMOOTH_STEPS), color=colours[w], alpha=0.25, lw=0)
    ax.set(xlabel="images seen", ylabel="training loss", yscale="log",
           title=f"(a) training loss: mean, IQR band\n({len(res.seeds)} seeds, {SMOOTH_STEPS}-step running mean)")
    ax.legend()

    bx = fig.add_subplot(grid[0, 1])
    _example_panel(bx, res, narrow[0], colours[narrow[0]], "b")
    _example_panel(fig.add_subplot(grid[0, 2], sharey=bx), res, res.reference_width,
                   colours[res.reference_width], "c")

    _spectra_panels(fig, grid[1, :], res, colours)

    ax = fig.add_subplot(grid[2, 0])
    labels = [f"{a} vs {b}" for a, b in pairs]
    means = [summary[f"{a}|{b}"]["mean"] for a, b in pairs]
    sds = [summary[f"{a}|{b}"]["sd"] or 0.0 for a, b in pairs]
    ax.bar(labels, means, yerr=sds, capsize=4, color=[colours[a] for a, _ in pairs], alpha=0.8)
    ax.axhline(np.mean(between), color="k", ls="--", lw=1, label=f"between seeds, h = {res.reference_width}")
    ax.set(xlabel="widths h", ylabel="Wasserstein distance",
           title="(e) distance between widths\n(mean ± sd over seeds; numbers in (g))")
    ax.set_ylim(0, 1.3 * max(max(m + sd for m, sd in zip(means, sds)), float(np.mean(between))))
    ax.legend(loc="upper right")

    ax = fig.add_subplot(grid[2, 1:])
    for w in narrow:
        ax.hist(relative[str(w)], bins=15, color=colours[w], alpha=0.6, label=f"h = {w}")
    ax.set(xlabel=f"(test loss − test loss at h = {res.reference_width}) / test loss at h = {res.reference_width}",
           ylabel="runs (seeds × inits)", title=f"(f) test loss relative to h = {res.reference_width}")
    ax.legend()

    numbers_table(fig.add_subplot(grid[3, :]), header, rows, title="(g) distances and tests")
    title = (f"E2: fully connected networks on MNIST, widths {res.widths}, {len(res.seeds)} seeds\ncalibrated verdicts: "
             + join_lines([f"h = {k.replace('|', ' vs ')}: {verdict_text(v, prefix=False)}" for k, v in verdicts.items()]))
    fig.suptitle(title)

    numbers = {
        "widths": res.widths,
        "seeds": res.seeds,
        "reference_width": res.reference_width,
        "spectra": {f"h{w}": {f"s{s}": pairs_of(res.spectra[w, s].eigenvalues) for s in res.seeds} for w in res.widths},
        "distances": distances,
        "between_seeds": {str(res.reference_width): between},
        "distance_summary": summary,
        "randomization_p_values": {f"{a}|{b}": res.randomization_p(a, b) for a, b in pairs},
        "randomization_control_is": RANDOMIZATION_CONTROL,
        "permutation_tests": {k: {f: v[f] for f in ("statistic", "p_value", "effect_size", "between_mean",
                                                      "between_ci95", "within_mean", "n_permutations", "paired")}
                              for k, v in tests.items()},
        "permutation_tests_are": LABEL_PERMUTATION_TEST,
        "verdicts": verdicts,
        "verdict_text": {k: verdict_text(v) for k, v in verdicts.items()},
        "verdicts_are": VERDICT_NOTE,
        "title": title,
        "train_loss": loss,
        "test_loss": {f"h{w}": {f"s{s}": [float(v) for v in res.trajectories[w, s].metrics["test_loss"][:, -1]]
                                for s in res.seeds} for w in res.widths},
        "test_accuracy": {f"h{w}": {f"s{s}": [float(v) for v in res.trajectories[w, s].metrics["test_accuracy"][:, -1]]
                                    for s in res.seeds} for w in res.widths},
        "relative_test_loss": relative,
        "keys": res.keys,
    }
    save(fig, numbers, prefix)
