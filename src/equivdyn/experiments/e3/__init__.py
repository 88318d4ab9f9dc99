"""Experiment E3: the early phase of CNN training, LeNet on MNIST and ResNet-20 on
CIFAR-10 (paper Fig. 4 and its per-epoch appendix figure).  The trainer is
:mod:`.trainer` (PyTorch)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...data import cifar10, mnist
from ...errors import ParameterError
from ...plan import Plan, read_seconds, traj_input, verdict, verdict_mem_mb
from ...stages import pair_name, segment_names
from ...store import Trajectory
from .. import Experiment, register
from .settings import NETWORKS, E3Settings

#: Size of the observable (weights and biases of the output layer) of each network.
OBSERVABLE_SIZES = {"lenet": 850, "resnet20": 650}
#: Seconds of training per initialisation and training image, per network (the job's
#: time limit follows from it), with one thread: a LeNet-5 step of 60 images took 14 ms
#: and a ResNet-20 step of 128 images 0.76 s (benchmarks/results/paper_scale.md, a
#: shared 2-core CPU).
IMAGE_SECONDS = {"lenet": 2.4e-4, "resnet20": 5.9e-3}
#: Seed of the verdicts' resampling (bootstrap intervals, sampled relabellings).
VERDICT_SEED = 0


def run_name(network: str, seed: int) -> str:
    """Name of the run of ``network`` and ``seed`` among a distances job's inputs."""
    return f"{network}_s{seed}"


def _dataset(plan: Plan, network: str) -> tuple[str, str, int, int]:
    """(dataset, its key, its numbers of training and test images) of ``network``."""
    if network == "lenet":
        return "MNIST", plan.dataset("mnist"), mnist.SHAPES["y_train"][0], mnist.SHAPES["y_test"][0]
    source = plan.config["data"]["cifar10"]
    n_test = cifar10.SYNTHETIC_SIZES["n_test"] if source == "synthetic" else cifar10.SHAPES["y_test"][0]
    return "CIFAR-10", plan.dataset("cifar10"), cifar10.n_train(source), n_test


def _check(
    section: Mapping[str, Any],
    network: str,
    train: Mapping[str, Any],
    windows: Mapping[str, int],
    dataset: tuple[str, str, int, int],
) -> int:
    """Cross-field checks of one network the schema cannot express (errors name the
    field); returns the steps of an epoch."""
    field = f"e3.{network}"
    if train["augment"] and network != "resnet20":
        raise ParameterError(
            f"{field}.train.augment=true: augmentation (random crops and flips) is for ResNet-20 on CIFAR-10 only"
        )
    name, _, size, test_size = dataset
    for subset, split, n in (("train_subset", "training", size), ("test_subset", "test", test_size)):
        if train[subset] is not None and train[subset] > n:
            raise ParameterError(f"{field}.train.{subset}={train[subset]} exceeds the {n} {split} images of {name}")
    images = train["train_subset"] or size
    per_epoch = images // train["batch_size"]
    if per_epoch < 1:
        raise ParameterError(
            f"{field}.train.batch_size={train['batch_size']} exceeds the {images} training images: "
            "an epoch would have no step"
        )
    n_steps = per_epoch * train["n_epochs"]
    needed = windows["length"] * windows["count"]
    if needed > n_steps:
        raise ParameterError(
            f"{field}.windows: {windows['count']} windows of {windows['length']} steps need {needed} steps, but "
            f"{field}.train records {n_steps} ({train['n_epochs']} epochs of {per_epoch} steps); lower "
            f"{field}.windows.count or .length, or raise {field}.train.n_epochs"
        )
    n_delays = section["koopman"]["n_delays"]
    for what, length in ((f"{field}.windows.length", windows["length"]), (f"an epoch of {field} ({per_epoch} steps)", per_epoch)):
        if length - n_delays < 2:
            raise ParameterError(
                f"e3.koopman.n_delays={n_delays} leaves fewer than 2 embedded snapshots in {what}={length}; "
                f"use n_delays <= {length - 2}"
            )
    return per_epoch


def _verdicts(train: Mapping[str, Any], windows: Mapping[str, int], network: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The calibrated verdicts of one network: its first window against its last, and its
    first epoch against its last, across seeds (none with a single seed)."""
    if len(seeds) < 2:
        return []
    names = [run_name(network, s) for s in seeds]
    observable = train["observable"]
    window_names = segment_names("window", windows["count"])
    epochs = segment_names("epoch", train["n_epochs"])
    return [
        verdict(pair_name(segments[0], segments[-1]), names, names, observable, segment_a=segments[0], segment_b=segments[-1])
        for segments in (window_names, epochs)
        if len(segments) >= 2
    ]


class E3(Experiment):
    name = "e3"
    train_version = 3  # 3: trajectory files store the trainer's resolved parameters
    figures = {
        "fig4_cnn_early": f"{__name__}.fig4:plot",
        "figS_cnn_epochs": f"{__name__}.figS_cnn_epochs:plot",
    }
    settings = E3Settings
    devices = ("cpu", "cuda")

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        for net in section["networks"]:
            if net not in NETWORKS:
                raise ParameterError(f"e3.networks: unknown network {net!r}; known: {', '.join(NETWORKS)}")
        seeds = sorted(set(section["seeds"]))
        koopman = section["koopman"]
        trajectories, distances = [], []
        for net in (n for n in NETWORKS if n in section["networks"]):
            dataset = _dataset(plan, net)
            train, windows = section[net]["train"], section[net]["windows"]
            per_epoch = _check(section, net, train, windows, dataset)
            run = train["n_inits"] * OBSERVABLE_SIZES[net]  # values per recorded step
            runs, fits = {}, {}
            for s in seeds:
                runs[s] = plan.train(
                    self,
                    {**train, "model": net, "seed": s},
                    {"data": dataset[1]},
                    seconds=train["n_inits"] * train["n_epochs"] * per_epoch * train["batch_size"] * IMAGE_SECONDS[net],
                    device=section["device"],
                )
                # One fit per seed: a spectrum per window of early steps and per epoch.
                fits[s] = plan.fit(
                    self.name,
                    {"observable": train["observable"], **koopman, "windows": windows, "epochs": True},
                    runs[s],
                    values=per_epoch * train["n_epochs"] * run,
                )
            # Memory: the verdicts hold every seed's first and last window and epoch, and
            # each trajectory file is read whole once.
            segments = 2 * (windows["length"] + per_epoch) * run
            # Window x window and epoch x epoch distances of every seed, mean and sd, and
            # the verdicts between the first and the last window and epoch.
            distances.append(
                plan.add(
                    "distances",
                    self.name,
                    {"groups": ["window", "epoch"], "seed": VERDICT_SEED, "verdicts": _verdicts(train, windows, net, seeds)},
                    {
                        **{run_name(net, s): fits[s] for s in seeds},
                        **{traj_input(run_name(net, s)): runs[s] for s in seeds},
                    },
                    ext="json",
                    mem_mb=verdict_mem_mb(held=len(seeds) * segments, largest=per_epoch * train["n_epochs"] * run),
                    seconds=read_seconds(len(seeds) * per_epoch * train["n_epochs"] * run),
                )
            )
            trajectories.extend(runs.values())
        if not distances:
            return
        inputs = {"trajectories": trajectories, "distances": distances}
        values = {
            "n_seeds": len(seeds),
            **koopman,
            **{f"{net}_{k}": section[net]["windows"][k] for net in NETWORKS for k in ("count", "length")},
        }
        category = "Figure 4: early phase of CNN training"
        plan.figure(
            self, "fig4", "fig4_cnn_early", inputs,
            caption="fig4.rst", json_caption="fig4_json.rst", category=category, values=values,
        )
        plan.figure(
            self, "figS_cnn_epochs", "figS_cnn_epochs", inputs,
            caption="figS_cnn_epochs.rst", json_caption="figS_cnn_epochs_json.rst", category=category, values=values,
        )

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        from .trainer import simulate

        return simulate(dict(params), dict(inputs), device=device)


EXPERIMENT = register(E3())
