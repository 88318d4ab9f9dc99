"""Figure 3: narrow and wide fully connected networks on MNIST train non-conjugately.

Panels: (a) training loss against images seen (mean and inter-quartile band over seeds and
initialisations), (b, c) output-layer weights of a narrow and the widest network, (d) Koopman
spectra near λ = 1 for one seed, (e) mean ± sd of the per-seed Wasserstein distances between
widths against the between-seed reference, with the label-permutation p-values and the
calibrated verdict of each width pair, (f) test loss relative to the reference width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...figures._common import (
    LABEL_PERMUTATION_TEST,
    RANDOMIZATION_CONTROL,
    VERDICT_NOTE,
    pairs_of,
    plt,
    save,
    spectra_near_one,
    verdict_text,
    verdicts_of,
)
from .results import E2Results, load, mean_sd

#: Weights shown per network in the example-trajectory panels.
N_EXAMPLE_WEIGHTS = 4
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


def _example_panel(ax: plt.Axes, res: E2Results, narrow: int, colours: dict[int, str]) -> None:
    seed = res.seeds[0]
    for w, style in ((narrow, "-"), (res.reference_width, "--")):
        traj = res.trajectories[w, seed]
        weights = traj.observables["output_weights"][0]
        for j in range(min(N_EXAMPLE_WEIGHTS, weights.shape[1])):
            ax.plot(traj.steps, weights[:, j], style, color=colours[w], lw=1,
                    label=f"h = {w}" if j == 0 else None)
    ax.set(xlabel="step", ylabel="output-layer weight",
           title=f"({'b' if narrow == res.widths[0] else 'c'}) weights, h = {narrow} vs {res.reference_width} (seed {seed})")
    ax.legend(fontsize=7)


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

    fig, grid = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = grid[0, 0]
    for w in res.widths:
        x = _running_mean(loss[str(w)]["images_seen"], SMOOTH_STEPS)
        ax.plot(x, _running_mean(loss[str(w)]["mean"], SMOOTH_STEPS), color=colours[w], lw=1, label=f"h = {w}")
        ax.fill_between(x, _running_mean(loss[str(w)]["q25"], SMOOTH_STEPS),
                        _running_mean(loss[str(w)]["q75"], SMOOTH_STEPS), color=colours[w], alpha=0.25, lw=0)
    ax.set(xlabel="images seen", ylabel="training loss", yscale="log",
           title=f"(a) training loss: mean, IQR band ({len(res.seeds)} seeds; {SMOOTH_STEPS}-step running mean)")
    ax.legend(fontsize=7)

    narrow = [w for w in res.widths if w != res.reference_width]
    _example_panel(grid[0, 1], res, narrow[0], colours)
    _example_panel(grid[0, 2], res, narrow[min(1, len(narrow) - 1)], colours)

    ax = grid[1, 0]
    seed = res.seeds[0]
    spectra_near_one(ax, [(f"h = {w}", res.spectra[w, seed].eigenvalues, colours[w]) for w in res.widths],
                     rf"(d) Koopman spectra near $\lambda$ = 1 (seed {seed})")
    ax.legend(fontsize=7)

    ax = grid[1, 1]
    labels = [f"{a} vs {b}" for a, b in pairs]
    summary = {k: mean_sd(v) for k, v in distances.items()}
    summary[f"between_seeds_{res.reference_width}"] = mean_sd(between)
    means = [summary[f"{a}|{b}"]["mean"] for a, b in pairs]
    sds = [summary[f"{a}|{b}"]["sd"] or 0.0 for a, b in pairs]
    ax.bar(labels, means, yerr=sds, capsize=4, color=[colours[a] for a, _ in pairs], alpha=0.8)
    ax.axhline(np.mean(between), color="k", ls="--", lw=1,
               label=f"between seeds, h = {res.reference_width} (mean)")
    for i, (a, b) in enumerate(pairs):
        text = (f"permutation p = {tests[f'{a}|{b}']['p_value']:.2g}\n"
                + verdict_text(verdicts[f"{a}|{b}"]).replace(": ", ":\n", 1))
        ax.annotate(text, (i, means[i] + sds[i]), ha="center", va="bottom", fontsize=6, xytext=(0, 2),
                    textcoords="offset points")
    ax.set(ylabel="Wasserstein distance", title="(e) distance between widths (mean ± sd over seeds)")
    ax.set_ylim(0, 1.6 * max(m + sd for m, sd in zip(means, sds)))
    ax.legend(fontsize=7, loc="upper right")

    ax = grid[1, 2]
    for w in narrow:
        ax.hist(relative[str(w)], bins=15, color=colours[w], alpha=0.6, label=f"h = {w}")
    ax.set(xlabel=f"(test loss − test loss at h = {res.reference_width}) / test loss at h = {res.reference_width}",
           ylabel="count", title="(f) relative test loss")
    ax.legend(fontsize=7)
    title = (f"E2: fully connected networks on MNIST, widths {res.widths}, {len(res.seeds)} seeds; "
             "(e) permutation p: label-permutation test across seeds\ncalibrated verdicts: "
             + ";   ".join(f"h = {k.replace('|', ' vs ')}: {verdict_text(v, prefix=False)}"
                        for k, v in verdicts.items()))
    fig.suptitle(title)
    fig.tight_layout()

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
