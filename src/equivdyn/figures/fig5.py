"""Figure 5: transformers that grok and transformers that do not train non-conjugately.

Panels: (a) long-run train and test accuracy of both setups on a log step axis (grokking
shows the late jump in test accuracy), (b) accuracies in the analysed window (mean and
min–max band over seeds and initialisations), (c) Koopman spectra of both setups for one
seed, (d) histogram of the per-seed distances between the setups against the within-setup
(between-seed) distances, with the label-permutation p-value and the calibrated verdict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..store import read_spectra, read_trajectory
from ._common import (
    LABEL_PERMUTATION_TEST,
    RANDOMIZATION_CONTROL,
    VERDICT_NOTE,
    pairs_of,
    plt,
    read_comparison,
    save,
    spectra_near_one,
    verdict_text,
    verdicts_of,
)

SETUPS = ("grokking", "constrained")
COLOURS = {"grokking": "tab:red", "constrained": "tab:blue"}
INPUTS = ("compare", *(f"long_{s}" for s in SETUPS))
_NAME = re.compile(r"^(traj|spec)_(grokking|constrained)_s(\d+)$")


def plot(inputs: Mapping[str, Path], prefix: Path) -> None:
    windows, spectra, keys = {}, {}, {}
    for name, path in inputs.items():
        match = _NAME.match(name)
        if match is None:
            if name not in INPUTS:
                raise ParameterError(f"--input {name}: not an input of fig5")
            continue
        kind, setup, seed = match.group(1), match.group(2), int(match.group(3))
        if kind == "traj":
            windows[setup, seed] = read_trajectory(path, observables=False)
            keys[name] = windows[setup, seed].key
        else:
            data = read_spectra(path)
            spectra[setup, seed] = data.spectra["all"]
            keys[name] = data.key
    longs = {s: read_trajectory(inputs[f"long_{s}"]) for s in SETUPS}
    keys.update({f"long_{s}": longs[s].key for s in SETUPS})
    comparison = read_comparison(inputs["compare"], "e4")
    keys["compare"] = comparison["key"]
    seeds = sorted({seed for _, seed in spectra})
    pairs = comparison["pairs"]
    distances = [pairs[f"grokking_s{s}|constrained_s{s}"]["distance"] for s in seeds]
    within = {
        setup: [pairs[f"{setup}_s{s}|{setup}_s{t}"]["distance"] for i, s in enumerate(seeds) for t in seeds[i + 1:]]
        for setup in SETUPS
    }
    test = comparison["permutation_tests"]["grokking|constrained"]
    verdicts = verdicts_of(comparison, ["grokking|constrained"])
    text = verdict_text(verdicts["grokking|constrained"])

    fig, grid = plt.subplots(2, 2, figsize=(11, 8.5))
    ax = grid[0, 0]
    long_steps = {}
    for setup in SETUPS:
        traj = longs[setup]
        steps = np.maximum(traj.steps, 1)  # step 0 drawn at 1 on the log axis
        long_steps[setup] = int(traj.steps[-1])
        ax.plot(steps, traj.metrics["train_accuracy"][0], color=COLOURS[setup], ls="--", label=f"{setup}: train")
        ax.plot(steps, traj.metrics["test_accuracy"][0], color=COLOURS[setup], label=f"{setup}: test")
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02),
           title=f"(a) long runs ({max(long_steps.values())} steps, seed {longs['grokking'].params['params']['seed']}, init 0)")
    ax.legend(fontsize=7)

    ax = grid[0, 1]
    for setup in SETUPS:
        for metric, style in (("train_accuracy", "--"), ("test_accuracy", "-")):
            values = np.concatenate([windows[setup, s].metrics[metric] for s in seeds])
            steps = windows[setup, seeds[0]].steps
            ax.plot(steps, values.mean(axis=0), color=COLOURS[setup], ls=style,
                    label=f"{setup}: {metric.split('_')[0]}")
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=COLOURS[setup], alpha=0.2, lw=0)
    ax.set(xlabel="step", ylabel="accuracy",
           title=f"(b) analysed window: mean, min-max band ({len(seeds)} seeds)")
    ax.legend(fontsize=7)

    ax = grid[1, 0]
    seed = seeds[0]
    spectra_near_one(ax, [(setup, spectra[setup, seed].eigenvalues, COLOURS[setup]) for setup in SETUPS],
                     f"(c) Koopman spectra (seed {seed})", pad=0.05, size=20)
    ax.legend(fontsize=7)

    ax = grid[1, 1]
    reference = within["grokking"] + within["constrained"]
    bins = np.histogram_bin_edges(np.concatenate([distances, reference]), bins=15)
    ax.hist(reference, bins=bins, color="grey", alpha=0.6, label="within setup, between seeds")
    ax.hist(distances, bins=bins, color="tab:purple", alpha=0.7, label="grokking vs constrained, per seed")
    ax.set(xlabel="Wasserstein distance", ylabel="count",
           title=f"(d) distances; permutation test p = {test['p_value']:.2g}\n{text}")
    ax.legend(fontsize=7)
    title = ("E4: one-layer transformers on addition mod "
             f"{windows['grokking', seed].params['params']['p']}, grokking vs constrained ({len(seeds)} seeds); {text}")
    fig.suptitle(title)
    fig.tight_layout()

    numbers = {
        "seeds": seeds,
        "spectra": {setup: {f"s{s}": pairs_of(spectra[setup, s].eigenvalues) for s in seeds} for setup in SETUPS},
        "distances": {"grokking|constrained": distances},
        "within": within,
        "summary": {
            "between_setups_mean": float(np.mean(distances)),
            "within_mean": float(np.mean(reference)),
        },
        "randomization_p_values": {"grokking|constrained": [pairs[f"grokking_s{s}|constrained_s{s}"]["p_value"]
                                                             for s in seeds]},
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
