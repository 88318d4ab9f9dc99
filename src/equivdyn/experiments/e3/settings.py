"""E3's section of the configuration: every default, written once (torch-free).

The two networks have their own training and window defaults (LeNet-5's and standard
ResNet-20 CIFAR-10 settings), so each has its own section.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...params import Section, SeededJob, device_param, param, sub

#: The networks, in the order their jobs are planned and their panels drawn.
NETWORKS = ("lenet", "resnet20")
DTYPES = ("float32", "float64")
OBSERVABLES = ("final_layer",)


@dataclass(frozen=True)
class LeNetTrain(Section):
    """Training of one E3 network by SGD with momentum (LeNet-5's defaults)."""

    DESCRIPTION = "Training by SGD with momentum."

    n_inits: int = param(
        5, "Initialisations per seed (init 0 and n_inits - 1 perturbed copies).", minimum=1, maximum=1000
    )
    perturbation: float = param(
        0.001,
        "Relative size of the multiplicative perturbation, W (1 + perturbation U(-1, 1)).",
        minimum=0,
        exclusiveMaximum=1,
    )
    lr: float = param(0.01, "Learning rate.", exclusiveMinimum=0)
    momentum: float = param(0.9, "SGD momentum.", minimum=0, exclusiveMaximum=1)
    weight_decay: float = param(0, "L2 weight decay of SGD.", minimum=0)
    batch_size: int = param(
        60,
        "Mini-batch size; an epoch is train_subset (or the whole training set) // batch_size steps.",
        minimum=1,
        maximum=60000,
    )
    n_epochs: int = param(
        3,
        "Epochs trained and recorded (the observable after every step); each epoch takes the training images in a "
        "new seeded order.",
        minimum=1,
        maximum=1000,
    )
    train_subset: int | None = param(
        None,
        "Train on a random subset (seeded by the seed) of this many training images; null = the whole training set.",
        minimum=1,
    )
    test_subset: int | None = param(
        None,
        "Evaluate on a random subset (seeded by the seed) of this many test images at the end of each epoch; "
        "null = the whole test set.",
        minimum=1,
    )
    augment: bool = param(False, "Random crops (padding 4) and horizontal flips of the training images; ResNet-20 only.")
    dtype: str = param("float32", "Floating-point type of training.", enum=list(DTYPES))
    observable: str = param(
        "final_layer",
        "Observable block recorded every step (final_layer = weights and bias of the last layer).",
        enum=list(OBSERVABLES),
    )


ResNet20Train = LeNetTrain.with_defaults(
    "ResNet20Train",
    "ResNet-20's training defaults (standard CIFAR-10 settings) where they differ from LeNet's.",
    n_inits=3,
    lr=0.1,
    weight_decay=0.0001,
    batch_size=128,
    n_epochs=2,
    augment=True,
)


@dataclass(frozen=True)
class LeNetWindows(Section):
    """Consecutive windows of the early steps, each fitted on its own, the first starting at step 1."""

    DESCRIPTION = "Consecutive windows of the early steps, each fitted on its own, the first starting at step 1."

    length: int = param(50, "Steps per window; at least koopman.n_delays + 2.", minimum=2)
    count: int = param(20, "Number of windows; length * count must not exceed the recorded steps.", minimum=2)


ResNet20Windows = LeNetWindows.with_defaults("ResNet20Windows", "ResNet-20's windows.", length=40, count=10)


@dataclass(frozen=True)
class LeNet(Section):
    DESCRIPTION = "LeNet on MNIST."

    train: LeNetTrain = sub(LeNetTrain)
    windows: LeNetWindows = sub(LeNetWindows)


@dataclass(frozen=True)
class ResNet20(Section):
    DESCRIPTION = "ResNet-20 on CIFAR-10."

    train: ResNet20Train = sub(ResNet20Train)
    windows: ResNet20Windows = sub(ResNet20Windows)


@dataclass(frozen=True)
class E3Koopman(Section):
    DESCRIPTION = "Koopman fit of every window and every epoch (the same settings for both networks)."

    n_delays: int = param(
        8,
        "Lagged copies added to each snapshot; each window and each epoch needs at least n_delays + 2 steps.",
        minimum=0,
    )
    rank: int = param(10, "DMD rank, the number of leading eigenvalues kept per window and epoch.", minimum=1)
    n_components: int | None = param(
        20, "Principal components of the observable kept before embedding; null = no projection.", minimum=1
    )


@dataclass(frozen=True)
class E3Settings(Section):
    DESCRIPTION = (
        "Experiment E3, the early phase of CNN training (paper Fig. 4 and its per-epoch appendix figure): LeNet on "
        "MNIST and ResNet-20 on CIFAR-10, a Koopman spectrum per window of consecutive early steps and per epoch, "
        "log10 Wasserstein distances between them."
    )

    networks: list[str] = param(
        list(NETWORKS),
        "Networks to train; a network left out loses its panels, and ResNet-20 is what needs CIFAR-10.",
        items={"enum": list(NETWORKS)},
        minItems=1,
        uniqueItems=True,
    )
    seeds: list[int] = param(
        [0, 1, 2],
        "Seeds; each gives a fresh initialisation 0 plus its perturbed copies, for every network.",
        items={"minimum": 0},
        minItems=1,
        uniqueItems=True,
    )
    device: str = device_param()
    lenet: LeNet = sub(LeNet)
    resnet20: ResNet20 = sub(ResNet20)
    koopman: E3Koopman = sub(E3Koopman)


#: Each network's training section.
TRAIN = {"lenet": LeNetTrain, "resnet20": ResNet20Train}


@dataclass(frozen=True)
class E3Job(SeededJob):
    """What the plan sets per E3 training job beside the network's settings."""

    model: str = param("lenet", "Network.", enum=list(NETWORKS))
