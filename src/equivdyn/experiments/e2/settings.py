"""E2's section of the configuration: every default, written once (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

from ...params import Comparison, Section, SeededJob, device_param, param, sub

ACTIVATIONS = ("relu", "gelu")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class E2Train(Section):
    """The paper's settings of one width's ensemble; ``n_steps`` null is one epoch."""

    n_inits: int = param(
        10,
        "Initialisations per seed (init 0 and n_inits - 1 perturbed copies), trained as one batched ensemble.",
        minimum=1,
        maximum=1000,
    )
    perturbation: float = param(
        0.001,
        "Relative size of the multiplicative perturbation, W (1 + perturbation U(-1, 1)).",
        minimum=0,
        exclusiveMaximum=1,
    )
    lr: float = param(0.1, "Learning rate.", exclusiveMinimum=0)
    batch_size: int = param(
        60, "Mini-batch size; batches are taken in the dataset's fixed order.", minimum=1, maximum=60000
    )
    n_steps: int | None = param(None, "Optimiser steps recorded; null = one epoch (60000 / batch_size).", minimum=1)
    activation: str = param("relu", "Activation of the hidden layer.", enum=list(ACTIVATIONS))
    optimizer: str = param("sgd", "Optimiser of every initialisation.", enum=list(OPTIMIZERS))
    dtype: str = param("float32", "Floating-point type of training.", enum=list(DTYPES))
    normalize: list[float] = param(
        [0.1307, 0.3081],
        "Pixel (mean, std) of the inputs (uint8 / 255); the default is MNIST's training set's.",
        minItems=2,
        maxItems=2,
    )


@dataclass(frozen=True)
class E2Koopman(Section):
    delay_budget: int = param(
        320, "n_delays = delay_budget // h, so that embeddings of all widths have similar size (paper 320).", minimum=0
    )
    rank: int = param(10, "DMD rank, the number of leading eigenvalues kept.", minimum=1)


@dataclass(frozen=True)
class E2Settings(Section):
    DESCRIPTION = "Experiment E2, fully connected networks of width h on MNIST (paper Fig. 3)."

    widths: list[int] = param(
        [5, 10, 40],
        "Hidden-layer widths h to compare.",
        items={"minimum": 1, "maximum": 4096},
        minItems=2,
        uniqueItems=True,
    )
    seeds: list[int] = param(
        [0, 1, 2, 3, 4, 5, 6, 7],
        "Seeds; each gives a fresh initialisation 0 plus its perturbed copies. The paper uses 25 (profiles/paper); "
        "8 keep the default laptop-sized while leaving the paired permutation test 2^7 = 128 relabellings.",
        items={"minimum": 0},
        minItems=2,
        uniqueItems=True,
    )
    device: str = device_param()
    reference_width: int = param(40, "Width whose between-seed distances form the reference distribution.", minimum=1)
    train: E2Train = sub(E2Train)
    koopman: E2Koopman = sub(E2Koopman)
    compare: Comparison = sub(Comparison)


@dataclass(frozen=True)
class E2Job(SeededJob):
    """What the plan sets per E2 training job beside the section's settings."""

    width: int = param(40, "Hidden-layer width h.", minimum=1)
