"""Appendix figure to Fig. 4: distances between the Koopman spectra of whole epochs.

One panel per network (LeNet on MNIST, ResNet-20 on CIFAR-10; a network left out of the
config loses its panel): the log10 Wasserstein distance between the spectra fitted on
every two epochs, mean over seeds, with the calibrated verdict of the first epoch against
the last across seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...figures._common import VERDICT_NOTE, new_figure, save
from .results import heat_map, load, to_last



def plot(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    networks, keys = load(inputs)
    fig = new_figure(5.5)
    axes = fig.subplots(1, len(networks), squeeze=False)
    numbers: dict[str, Any] = {"networks": list(networks)}
    for i, (ax, (name, net)) in enumerate(zip(axes[0], networks.items())):
        epochs = net.steps("epoch")
        per_seed = net.per_seed("epoch")
        mean = np.asarray(net.group("epoch")["mean"], dtype=float)
        heat_map(ax, fig, mean, [str(e + 1) for e in range(len(epochs))], "epoch",
                 f"({chr(ord('a') + i)}) {net.label()}\ndistance between epochs (mean of {len(net.seeds)} seeds)\n"
                 + net.first_vs_last_text("epoch"))
        verdict_name, verdict = net.first_vs_last("epoch")
        test_accuracy = np.concatenate([net.trajectories[s].metrics["test_accuracy"] for s in net.seeds])
        numbers[name] = {
            "seeds": net.seeds,
            "epoch_steps": epochs,
            "distances": mean.tolist(),
            "sd": net.group("epoch")["sd"],
            "per_seed": per_seed.tolist(),
            "to_last": to_last(per_seed),
            "test_accuracy": test_accuracy.mean(axis=0).tolist(),
            "verdicts": {verdict_name: verdict},
            "verdict_text": {verdict_name: net.first_vs_last_text("epoch")},
        }
    numbers["keys"] = keys
    numbers["synthetic_data"] = {name: net.synthetic for name, net in networks.items()}
    title = ("E3 appendix: Koopman spectra of whole epochs\nfirst vs last epoch across seeds:\n"
             + "\n".join(f"{net.label()}: {net.first_vs_last_text('epoch')}" for net in networks.values()))
    fig.suptitle(title)
    numbers["verdicts_are"] = VERDICT_NOTE
    numbers["title"] = title
    save(fig, numbers, prefix)
