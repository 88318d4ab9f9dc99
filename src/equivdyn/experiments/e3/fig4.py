"""Figure 4: the early phase of CNN training has dynamics of its own.

One row per network (LeNet on MNIST, ResNet-20 on CIFAR-10; a network left out of the
config loses its row): (a) training loss over the windowed early steps, mean and
inter-quartile band over seeds and initialisations, windows shaded alternately; (b) the
log10 Wasserstein distance between the Koopman spectra of every two windows, mean over
seeds; (c) the distance of each window to the last one, mean and min–max band over seeds.
A table under the rows gives, per network, the first window's distance to the last, the
median distance between consecutive late windows, and the calibrated verdict of the first
window against the last across seeds.  Early
windows far from the last while late windows stay close to each other mark an early phase
whose dynamics differ from the later ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...figures._common import (
    VERDICT_NOTE,
    format_distance,
    new_figure,
    numbers_table,
    plt,
    save,
    table_height,
    verdict_text,
)
from .results import E3Network, early_vs_late, heat_map, load, to_last

#: Height of one network's row of panels, inches.
ROW_HEIGHT = 3.4


def _train_loss(net: E3Network, last_step: int) -> dict[str, list[float]]:
    """Training loss up to ``last_step`` over every seed and initialisation."""
    steps = net.trajectories[net.seeds[0]].steps
    keep = steps <= last_step
    losses = np.concatenate([net.trajectories[s].metrics["train_loss"][:, keep] for s in net.seeds])
    q25, q75 = np.percentile(losses, [25, 75], axis=0)
    return {
        "steps": [int(v) for v in steps[keep]],
        "mean": losses.mean(axis=0).tolist(),
        "q25": q25.tolist(),
        "q75": q75.tolist(),
    }


def _row(fig: plt.Figure, axes: Any, net: E3Network, row: int) -> dict[str, Any]:
    windows = net.steps("window")
    per_seed = net.per_seed("window")
    mean = np.asarray(net.group("window")["mean"], dtype=float)
    loss = _train_loss(net, windows[-1][1])
    last = to_last(per_seed)
    label = net.label()
    a, b, c = (f"({chr(ord('a') + 3 * row + i)})" for i in range(3))

    ax = axes[0]
    for i, (first, end) in enumerate(windows):
        if i % 2 == 0:
            ax.axvspan(first - 0.5, end + 0.5, color="0.92", lw=0)
    ax.plot(loss["steps"], loss["mean"], color="tab:blue", lw=1, label="mean")
    ax.fill_between(loss["steps"], loss["q25"], loss["q75"], color="tab:blue", alpha=0.3, lw=0,
                    label="inter-quartile band")
    n_runs = sum(net.trajectories[s].n_initialisations for s in net.seeds)
    ax.set(xlabel="step", ylabel="training loss",
           title=f"{a} {label}\ntraining loss ({n_runs} runs)")
    ax.legend()

    heat_map(axes[1], fig, mean, [str(first) for first, _ in windows], "window (first step)",
             f"{b} {label}\ndistance between windows (mean of {len(net.seeds)} seeds)")

    ax = axes[2]
    starts = np.array([w[0] for w in windows])
    # The last window's distance to itself is 0: left out of the log-scaled curve.
    ax.plot(starts[:-1], last["mean"][:-1], "o-", color="tab:purple", ms=3, label="mean over seeds")
    ax.fill_between(starts[:-1], last["min"][:-1], last["max"][:-1], color="tab:purple", alpha=0.25, lw=0,
                    label="min-max over seeds")
    if np.all(np.asarray(last["min"][:-1]) > 0):
        ax.set_yscale("log")
    verdict_name, verdict = net.first_vs_last("window")
    ax.set(xlabel="window (first step)", ylabel="distance to the last window",
           title=f"{c} {label}\nWasserstein distance to the last window")
    ax.legend()

    return {
        "seeds": net.seeds,
        "window_steps": windows,
        "distances": mean.tolist(),
        "sd": net.group("window")["sd"],
        "per_seed": per_seed.tolist(),
        "to_last": last,
        "early_vs_late": early_vs_late(mean),
        "train_loss": loss,
        "verdicts": {verdict_name: verdict},
        "verdict_text": {verdict_name: net.first_vs_last_text("window")},
    }


def _table_row(net: E3Network) -> list[str]:
    """``net``'s row of the table: the distances of its windows in brief, and its verdict."""
    summary = early_vs_late(np.asarray(net.group("window")["mean"], dtype=float))
    _, verdict = net.first_vs_last("window")
    (a0, a1), (b0, b1) = net.steps("window")[0], net.steps("window")[-1]
    return [
        net.label().replace(" (", "\n("),
        format_distance(summary["first_to_last"]),
        "-" if summary["median_consecutive_late"] is None else format_distance(summary["median_consecutive_late"]),
        "-" if summary["ratio"] is None else f"{summary['ratio']:.3g}",
        f"steps {a0}-{a1} vs {b0}-{b1}:\n{verdict_text(verdict, prefix=False)}",
    ]


def plot(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    networks, keys = load(inputs)
    header = ("network", "first to last window:\nmean distance", "late windows: median\nconsecutive distance",
              "ratio", "calibrated verdict, first vs\nlast window across seeds")
    rows = [_table_row(net) for net in networks.values()]
    heights = (*[ROW_HEIGHT] * len(networks), table_height(header, rows))
    fig = new_figure(sum(heights) + 0.3 + 0.2 * len(networks))
    grid = fig.add_gridspec(len(heights), 3, height_ratios=heights)
    numbers: dict[str, Any] = {"networks": list(networks)}
    for row, (name, net) in enumerate(networks.items()):
        numbers[name] = _row(fig, [fig.add_subplot(grid[row, i]) for i in range(3)], net, row)
    numbers_table(fig.add_subplot(grid[-1, :]), header, rows, title=f"({chr(ord('a') + 3 * len(networks))}) "
                  "distances between windows (mean over seeds) and the calibrated verdicts")
    numbers["keys"] = keys
    numbers["synthetic_data"] = {name: net.synthetic for name, net in networks.items()}
    synthetic = " (SYNTHETIC DATA in the panels that say so)" if any(numbers["synthetic_data"].values()) else ""
    title = (f"E3: early phase of CNN training, Koopman spectra of consecutive windows{synthetic}\n"
             "first vs last window across seeds:\n"
             + "\n".join(f"{net.label()}: {net.first_vs_last_text('window')}" for net in networks.values()))
    fig.suptitle(title)
    numbers["verdicts_are"] = VERDICT_NOTE
    numbers["title"] = title
    save(fig, numbers, prefix)
