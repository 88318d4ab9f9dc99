"""E4's section of the configuration: every default, written once (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

from ...params import Comparison, Section, SeededJob, device_param, param, sub

SETUPS = ("grokking", "constrained")
DTYPES = ("float32", "float64")
#: Recorded observable blocks: ``mlp_out`` is the MLP output weights W_out, flattened.
OBSERVABLES = ("mlp_out",)


@dataclass(frozen=True)
class E4Train(Section):
    """The paper's settings of one ensemble; ``weight_decay`` and ``alpha`` null take the setup's value."""

    n_inits: int = param(10, "Initialisations per seed, trained as one batched ensemble.", minimum=1, maximum=1000)
    perturbation: float = param(
        0.001,
        "Relative size of the multiplicative perturbation, W (1 + perturbation U(-1, 1)).",
        minimum=0,
        exclusiveMaximum=1,
    )
    p: int = param(113, "Modulus of the addition task (vocabulary p + 1 with the '=' token).", minimum=2, maximum=1000)
    train_fraction: float = param(
        0.3, "Fraction of all p^2 pairs used for training.", exclusiveMinimum=0, exclusiveMaximum=1
    )
    data_seed: int = param(0, "Seed of the train/test split.", minimum=0, maximum=2**63 - 1)
    d_model: int = param(128, "Residual stream width.", minimum=1)
    n_heads: int = param(4, "Attention heads.", minimum=1)
    d_head: int = param(32, "Width of each head.", minimum=1)
    d_mlp: int = param(512, "MLP hidden width.", minimum=1)
    lr: float = param(0.001, "AdamW learning rate (full batch).", exclusiveMinimum=0)
    betas: list[float] = param(
        [0.9, 0.98],
        "AdamW's (beta1, beta2).",
        items={"minimum": 0, "exclusiveMaximum": 1},
        minItems=2,
        maxItems=2,
    )
    weight_decay: float | None = param(
        None, "AdamW's decoupled weight decay; null = the setup's (1 for grokking, 0 for constrained).", minimum=0
    )
    alpha: float | None = param(
        None,
        "Scale of the initialisation (the constrained setup then keeps the total parameter norm at its initial "
        "value); null = the setup's (1 for grokking, 0.8 for constrained).",
        exclusiveMinimum=0,
    )
    n_steps: int = param(100, "Steps recorded per ensemble (the analysed window).", minimum=1)
    dtype: str = param("float64", "Floating-point type of training.", enum=list(DTYPES))
    observable: str = param("mlp_out", "What is recorded each step (the MLP output weights).", enum=list(OBSERVABLES))
    observable_dtype: str = param("float32", "Floating-point type the observable is stored in.", enum=list(DTYPES))


#: Training parameters of an ensemble that a long run does not take.
ENSEMBLE_ONLY = ("n_inits", "perturbation", "observable", "observable_dtype")


@dataclass(frozen=True)
class E4Long(Section):
    """One long run of initialisation 0 per setup, for the accuracy curves.  Measured: the
    grokking run's test accuracy is 0.08 at step 1415, 0.45 at 6570 and 1.00 at 9645, so
    10,000 steps show the jump at half the paper's 2e4 (profiles/paper)."""

    DESCRIPTION = "Long runs of initialisation 0, one per setup (the model and optimiser of e4.train)."

    seed: int = param(0, "Seed of the long runs (initialisation 0 of that seed, both setups).", minimum=0)
    n_steps: int = param(10_000, "Length of the long runs that show the late jump in test accuracy.", minimum=2)
    n_points: int = param(200, "Log-spaced steps at which the long runs log their metrics.", minimum=2)


@dataclass(frozen=True)
class E4Koopman(Section):
    n_components: int = param(10, "Principal components of the MLP output weights kept before embedding.", minimum=1)
    n_delays: int = param(32, "Lagged copies added to each snapshot.", minimum=0)
    rank: int = param(10, "DMD rank.", minimum=1)


@dataclass(frozen=True)
class E4Settings(Section):
    DESCRIPTION = "Experiment E4, transformers that do and do not grok on modular addition (paper Fig. 5)."

    seeds: list[int] = param(
        [0, 1, 2, 3, 4, 5],
        "Seeds; each gives a fresh initialisation 0 plus its perturbed copies, for both setups. The paper uses 10 "
        "(profiles/paper).",
        items={"minimum": 0},
        minItems=2,
        uniqueItems=True,
    )
    device: str = device_param()
    train: E4Train = sub(E4Train)
    long: E4Long = sub(E4Long)
    koopman: E4Koopman = sub(E4Koopman)
    compare: Comparison = sub(Comparison)


@dataclass(frozen=True)
class E4Job(SeededJob):
    """What the plan sets per E4 training job beside the section's settings."""

    setup: str = param("grokking", "Setup: weight decay 1 (groks) or a constrained parameter norm (does not).", enum=list(SETUPS))
