"""Figure 5: transformers that grok and transformers that do not train non-conjugately.

Panels: (a) long-run train and test accuracy of both setups on a log step axis (grokking
shows the late jump in test accuracy), (b) accuracies in the analysed window (mean and
min–max band over seeds and initialisations), (c) Koopman spectra of both setups for one
seed, (d) histogram of the per-seed distances between the setups against the within-setup
(between-seed) distances, (e) a table of those distances, the label-permutation p-value and
the calibrated verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ...errors import ParameterError
from ...figures._common import (
    LABEL_PERMUTATION_TEST,
    RANDOMIZATION_CONTROL,
    VERDICT_NOTE,
    format_p,
    input_names,
    mean_sd_text,
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
    verdict_text,
    verdicts_of,
)
from ...stages import pair_name
from ...store import read_trajectory
from . import SETUPS

COLOURS = {"grokking": "tab:red", "constrained": "tab:blue"}
MARKERS = {"grokking": "o", "constrained": "s"}


def plot(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    windows = read_runs(inputs, ("setup", "seed"), observables=False)
    files = read_run_spectra(inputs, windows)
    spectra = {ident: data.spectra["all"] for ident, data in files.items()}
    longs = {}
    for path in inputs.get("long", []):
        traj = read_trajectory(path)
        longs[traj.params["params"]["setup"]] = traj
    if set(longs) != set(SETUPS):
        raise ParameterError(f"--input long: the figure needs one long run of each setup {', '.join(SETUPS)}")
    comparison = read_comparison(one(inputs, "compare"), "e4")
    names = input_names(comparison, {ident: data.key for ident, data in files.items()})
    keys = {f"traj_{names[i]}": t.key for i, t in windows.items()}
    keys.update({f"spec_{names[i]}": d.key for i, d in files.items()})
    keys.update({f"long_{s}": longs[s].key for s in SETUPS})
    keys["compare"] = comparison["key"]
    seeds = sorted({seed for _, seed in spectra})
    pairs = comparison["pairs"]

    def distance(a: tuple[str, int], b: tuple[str, int]) -> float:
        return pairs[pair_name(names[a], names[b])]["distance"]

    distances = [distance(("grokking", s), ("constrained", s)) for s in seeds]
    within = {
        setup: [distance((setup, s), (setup, t)) for i, s in enumerate(seeds) for t in seeds[i + 1:]]
        for setup in SETUPS
    }
    versus = pair_name(*SETUPS)
    test = comparison["permutation_tests"][versus]
    verdicts = verdicts_of(comparison, [versus])
    text = verdict_text(verdicts[versus])

    reference = within["grokking"] + within["constrained"]
    header = ("distances", "Wasserstein distance,\nmean ± sd", "pairs", "label-permutation p\n(across seeds)",
              "calibrated verdict\n(setups across seeds)")
    rows = [
        ["grokking vs constrained, per seed", mean_sd_text(distances), str(len(distances)), format_p(test["p_value"]),
         verdict_text(verdicts[versus], prefix=False)],
        ["within a setup, between seeds", mean_sd_text(reference), str(len(reference)), "-", "-"],
    ]
    heights = (3.6, 4.2, table_height(header, rows))
    fig = new_figure(sum(heights) + 0.5)
    grid = fig.add_gridspec(3, 2, height_ratios=heights)
    ax = fig.add_subplot(grid[0, 0])
    long_steps = {}
    for setup in SETUPS:
        traj = longs[setup]
        steps = np.maximum(traj.steps, 1)  # step 0 drawn at 1 on the log axis
        long_steps[setup] = int(traj.steps[-1])
        ax.plot(steps, traj.metrics["train_accuracy"][0], color=COLOURS[setup], ls="--", label=f"{setup}: train")
        ax.plot(steps, traj.metrics["test_accuracy"][0], color=COLOURS[setup], label=f"{setup}: test")
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02),
           title=f"(a) long runs ({max(long_steps.values())} steps, seed {longs['grokking'].params['params']['seed']}, init 0)")
    ax.legend()

    ax = fig.add_subplot(grid[0, 1])
    for setup in SETUPS:
        for metric, style in (("train_accuracy", "--"), ("test_accuracy", "-")):
            values = np.concatenate([windows[setup, s].metrics[metric] for s in seeds])
            steps = windows[setup, seeds[0]].steps
            ax.plot(steps, values.mean(axis=0), color=COLOURS[setup], ls=style,
                    label=f"{setup}: {metric.split('_')[0]}")
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=COLOURS[setup], alpha=0.2, lw=0)
    ax.set(xlabel="step", ylabel="accuracy",
           title=f"(b) analysed window: mean, min-max band ({len(seeds)} seeds)")
    ax.legend()

    ax = fig.add_subplot(grid[1, 0])
    seed = seeds[0]
    spectra_near_one(ax, [(setup, spectra[setup, seed].eigenvalues, {"color": COLOURS[setup], "marker": MARKERS[setup],
                                                                     "s": 24}) for setup in SETUPS],
                     rf"(c) Koopman spectra and $\lambda$ = 1 (seed {seed})", radius=None)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

    ax = fig.add_subplot(grid[1, 1])
    bins = np.histogram_bin_edges(np.concatenate([distances, reference]), bins=15)
    ax.hist(reference, bins=bins, color="grey", alpha=0.6, label="within a setup, between seeds")
    ax.hist(distances, bins=bins, color="tab:purple", alpha=0.7, label="grokking vs constrained, per seed")
    ax.set(xlabel="Wasserstein distance", ylabel="count", title="(d) distances (numbers in (e))")
    ax.xaxis.set_major_locator(MaxNLocator(5))  # distances' tick labels are long
    ax.legend()

    numbers_table(fig.add_subplot(grid[2, :]), header, rows, title="(e) distances and tests")
    title = ("E4: one-layer transformers on addition mod "
             f"{windows['grokking', seed].params['params']['p']}, grokking vs constrained ({len(seeds)} seeds); {text}")
    fig.suptitle(title)

    numbers = {
        "seeds": seeds,
        "spectra": {setup: {f"s{s}": pairs_of(spectra[setup, s].eigenvalues) for s in seeds} for setup in SETUPS},
        "distances": {versus: distances},
        "within": within,
        "summary": {
            "between_setups_mean": float(np.mean(distances)),
            "within_mean": float(np.mean(reference)),
        },
        "randomization_p_values": {
            versus: [pairs[pair_name(names["grokking", s], names["constrained", s])]["p_value"] for s in seeds]
        },
        "randomization_control_is": RANDOMIZATION_CONTROL,
        "permutation_test": {k: test[k] for k in ("statistic", "p_value", "effect_size", "between_mean",
                                                   "between_ci95", "within_mean", "n_permutations", "paired")},
        "permutation_test_is": LABEL_PERMUTATION_TEST,
        "verdicts": verdicts,
        "verdict_text": {k: verdict_text(v) for k, v in verdicts.items()},
        "verdicts_are": VERDICT_NOTE,
        "title": title,
        "long_runs": {
            setup: {
                "steps": [int(v) for v in longs[setup].steps],
                **{m: [float(v) for v in longs[setup].metrics[m][0]]
                   for m in ("train_accuracy", "test_accuracy", "train_loss", "test_loss")},
            }
            for setup in SETUPS
        },
        "window_accuracy": {
            setup: {m: np.concatenate([windows[setup, s].metrics[m] for s in seeds]).mean(axis=0).tolist()
                    for m in ("train_accuracy", "test_accuracy")}
            for setup in SETUPS
        },
        "keys": keys,
    }
    save(fig, numbers, prefix)
