# The plan: every job the config asks for, as a spec holding every parameter that
# determines its output plus the content keys of its inputs.  A spec's content key
# (SHA-256 of its canonical JSON) names its output, so results form a Merkle DAG:
# changing a parameter changes the keys of exactly the results that depend on it, and
# reverting it points the workflow back at results that already exist.

import json
import os
import shlex
from itertools import combinations
from pathlib import Path

from equivdyn import content_key
from equivdyn.data import cifar10
from equivdyn.data.mnist import DATASET_KEY as MNIST_KEY, DATASET_SPEC as MNIST_SPEC
from equivdyn.stages import STAGE_VERSIONS, TRAJECTORY_INPUT_PREFIX, segment_names


wildcard_constraints:
    key="[0-9a-f]{16}",
    experiment="e[0-9]+(long)?",


# Content key -> (result path, spec) for every result the plan asks for.
PLAN = {}


def plan(stage, experiment, params, inputs=None, ext="h5"):
    """Record a job in the plan and return its content key."""
    version = STAGE_VERSIONS[f"train_{experiment}" if stage == "train" else stage]
    spec = {
        "stage": stage,
        "experiment": experiment,
        "version": version,
        "params": params,
        "inputs": inputs or {},
    }
    key = content_key(spec)
    PLAN[key] = (f"results/{stage}/{experiment}/{key}.{ext}", spec)
    return key


def path_of(key):
    return PLAN[key][0]


def planned_spec(wildcards):
    """The spec of the job whose output has content key {key}."""
    if wildcards.key not in PLAN:
        raise ValueError(
            f"no result with key {wildcards.key} is in the current plan "
            "(the config does not ask for it)"
        )
    return PLAN[wildcards.key][1]


def spec_json(wildcards):
    """Params function: the planned spec as JSON, passed to the `equivdyn` CLI."""
    return json.dumps(planned_spec(wildcards), sort_keys=True)


def input_path(name):
    """Input function: path of the planned job's input `name`."""

    def get(wildcards):
        return path_of(planned_spec(wildcards)["inputs"][name])

    return get


def named_inputs(wildcards):
    """Input function: every input of the planned job, by name (for `unpack`)."""
    return {n: path_of(k) for n, k in planned_spec(wildcards)["inputs"].items()}


def cli_named_inputs(wildcards, input):
    """Params function: `--input NAME=PATH ...` for every named input of the job."""
    return " ".join(
        f"--input {shlex.quote(f'{name}={path}')}" for name, path in input.items()
    )


# Memory (MB) of the jobs whose needs grow with their inputs, by content key; other jobs
# get their rule's default.
MEM_MB = {}


def planned_mem_mb(default):
    """Resource function: the planned job's memory estimate, else ``default`` (MB)."""

    def get(wildcards):
        return MEM_MB.get(wildcards.key, default)

    return get


def verdict_mem_mb(held, largest):
    """Memory (MB) of a job that computes verdicts (equivdyn.verdict.compare_runs).

    ``held`` is the number of float64 values the job holds throughout (e.g. segments cut
    from every seed), ``largest`` that of the largest single seed it reads: each seed is
    read and reduced by PCA one at a time, which takes up to five copies of it (the data
    as stored and as float64, the centred data, the SVD's factor and its workspace).
    """
    return int(1000 + (held + 5 * largest) * 8 / 2**20)


def traj_input(name):
    """Name of the trajectory input ``name`` of a compare or distances job."""
    return f"{TRAJECTORY_INPUT_PREFIX}{name}"


def verdict(name, a, b, observable, **extra):
    """A verdict of a compare or distances job: setups ``a`` and ``b`` are lists of
    trajectory names (one per seed), compared on ``observable``."""
    return {
        "name": name,
        "a": [traj_input(n) for n in a],
        "b": [traj_input(n) for n in b],
        "observable": observable,
        **extra,
    }


def train_threads(wildcards):
    """Intra-op threads a training job uses (E4's trainer measured fastest with 2)."""
    return 2 if wildcards.experiment.startswith("e4") else 1


def check_delays(field, n_delays, n_steps):
    """Cross-field check the schema cannot express; the error names the field."""
    if n_steps - n_delays < 2:
        raise ValueError(
            f"{field}={n_delays} leaves fewer than 2 embedded snapshots from {n_steps} "
            f"recorded steps; use n_delays <= {n_steps - 2}"
        )


def check_koopman(field, n_delays, rank, n_components, n_inits, n_steps, n_observables):
    """Check a fit's rank and principal components against what its data allow.

    ``field`` is the config section (e.g. ``e1.koopman``).  The fit projects each of
    ``n_inits`` trajectories of ``n_steps`` snapshots of ``n_observables`` values on
    ``n_components`` principal components (if given), embeds each snapshot with
    ``n_delays`` lagged copies, and pairs consecutive embedded snapshots; DMD's rank
    cannot exceed the dimension of an embedded snapshot nor the number of pairs.
    """
    most_components = min(n_inits * n_steps, n_observables)
    if n_components is not None and n_components > most_components:
        raise ValueError(
            f"{field}.n_components={n_components} exceeds what the data allow: "
            f"{n_inits} x {n_steps} snapshots of {n_observables} observables have at most "
            f"{most_components} principal components"
        )
    n_features = n_observables if n_components is None else n_components
    dimension = (n_delays + 1) * n_features
    n_pairs = n_inits * (n_steps - n_delays - 1)
    if rank is not None and rank > min(dimension, n_pairs):
        raise ValueError(
            f"{field}.rank={rank} exceeds what the data allow: an embedded snapshot has "
            f"({n_delays} + 1) x {n_features} = {dimension} dimensions and there are "
            f"{n_inits} x ({n_steps} - {n_delays} - 1) = {n_pairs} snapshot pairs; "
            f"use {field}.rank <= {min(dimension, n_pairs)}"
        )


# ---------------------------------------------------------------- data
# The dataset's key is the hash of its content checksums, whatever the source (a local
# copy or a download), so every downstream key depends on the data, not on its path.
MNIST = f"results/data/mnist/{MNIST_KEY}.npz"
PLAN[MNIST_KEY] = (MNIST, MNIST_SPEC)


def check_data_path(field):
    """Refuse a data path Snakemake would misread: braces are wildcards in its file names."""
    path = config["data"][field]
    if path is not None and ("{" in path or "}" in path):
        raise ValueError(
            f"data.{field}={path!r}: a path with '{{' or '}}' cannot be an input (Snakemake "
            "reads braces as wildcards); rename the file or folder, or link it under another name"
        )


def source_option(path):
    """`--source=PATH` of a data job ('=' so that a path starting with '-' is no option)."""
    return "" if path is None else f"--source={shlex.quote(path)}"


for _field in ("mnist", "cifar10"):
    check_data_path(_field)


# ---------------------------------------------------------------- E1: OMD, OGD, BM
E1_METHODS = ["omd", "ogd", "bm"]
E1_PAIRS = [["omd", "ogd"], ["ogd", "bm"], ["omd", "bm"]]
check_delays(
    "e1.koopman.n_delays",
    config["e1"]["koopman"]["n_delays"],
    config["e1"]["train"]["n_steps"],
)
check_koopman(
    "e1.koopman",
    **config["e1"]["koopman"],
    n_inits=config["e1"]["train"]["grid_size"] ** config["e1"]["train"]["dim"],
    n_steps=config["e1"]["train"]["n_steps"],
    n_observables=config["e1"]["train"]["dim"],
)
E1_TRAIN = {
    m: plan("train", "e1", {"method": m, **config["e1"]["train"]}) for m in E1_METHODS
}
E1_FIT = {
    m: plan(
        "fit",
        "e1",
        {"observable": "state", **config["e1"]["koopman"]},
        {"trajectory": E1_TRAIN[m]},
    )
    for m in E1_METHODS
}
# The verdicts (OMD vs OGD, OMD vs BM) need seeds; E1 has one trajectory file per
# method, so the grid's rows (initial conditions that share their last coordinate) serve
# as pseudo-seeds: `split` cuts each file's grid_size**dim runs into grid_size groups.
E1_GRID = config["e1"]["train"]["grid_size"]
E1_VERDICTS = [["omd", "ogd"], ["omd", "bm"]] if E1_GRID >= 2 else []
E1_COMPARE = plan(
    "compare",
    "e1",
    {
        "pairs": E1_PAIRS,
        **config["e1"]["compare"],
        "verdicts": [
            verdict(f"{a}|{b}", [a], [b], "state", split=E1_GRID)
            for a, b in E1_VERDICTS
        ],
    },
    {**E1_FIT, **{traj_input(m): E1_TRAIN[m] for m in E1_METHODS}},
    ext="json",
)


# ---------------------------------------------------------------- E2: FCN width on MNIST
E2 = config["e2"]
E2_WIDTHS = sorted(set(E2["widths"]))
E2_SEEDS = sorted(set(E2["seeds"]))
E2_REF = E2["reference_width"]
if E2_REF not in E2_WIDTHS:
    raise ValueError(f"e2.reference_width={E2_REF} is not one of e2.widths {E2_WIDTHS}")
E2_STEPS = E2["train"]["n_steps"] or 60000 // E2["train"]["batch_size"]


def e2_name(width, seed):
    return f"h{width}_s{seed}"


def e2_delays(width):
    """Delays scale with width so that embeddings have similar size (paper: 320 / h)."""
    n_delays = max(0, E2["koopman"]["delay_budget"] // width)
    check_delays(f"e2.koopman.delay_budget // {width} = n_delays", n_delays, E2_STEPS)
    check_koopman(
        "e2.koopman",
        n_delays=n_delays,
        rank=E2["koopman"]["rank"],
        n_components=None,
        n_inits=E2["train"]["n_inits"],
        n_steps=E2_STEPS,
        # The observable: output-layer weights, 10 classes x width.
        n_observables=10 * width,
    )
    return n_delays


E2_TRAIN, E2_FIT = {}, {}
for h in E2_WIDTHS:
    for s in E2_SEEDS:
        E2_TRAIN[h, s] = plan(
            "train", "e2", {**E2["train"], "width": h, "seed": s}, {"mnist": MNIST_KEY}
        )
        E2_FIT[h, s] = plan(
            "fit",
            "e2",
            {
                "observable": "output_weights",
                "n_delays": e2_delays(h),
                "rank": E2["koopman"]["rank"],
                "n_components": None,
            },
            {"trajectory": E2_TRAIN[h, s]},
        )
E2_WIDTH_PAIRS = [f"{a}|{b}" for a, b in combinations(E2_WIDTHS, 2)]
E2_COMPARE = plan(
    "compare",
    "e2",
    {
        **E2["compare"],
        "reference_width": E2_REF,
        # Each width pair within each seed, then the reference width between seeds.
        "pairs": [
            [e2_name(a, s), e2_name(b, s)]
            for a, b in combinations(E2_WIDTHS, 2)
            for s in E2_SEEDS
        ]
        + [
            [e2_name(E2_REF, s), e2_name(E2_REF, t)]
            for s, t in combinations(E2_SEEDS, 2)
        ],
        # Widths as labels, seeds as samples.
        "permutation_tests": [
            {
                "name": f"{a}|{b}",
                "group_a": [e2_name(a, s) for s in E2_SEEDS],
                "group_b": [e2_name(b, s) for s in E2_SEEDS],
                "paired": True,
            }
            for a, b in combinations(E2_WIDTHS, 2)
        ],
        # The calibrated verdict of each width pair: widths as setups, seeds as seeds.
        "verdicts": [
            verdict(
                f"{a}|{b}",
                [e2_name(a, s) for s in E2_SEEDS],
                [e2_name(b, s) for s in E2_SEEDS],
                "output_weights",
                split=None,
            )
            for a, b in combinations(E2_WIDTHS, 2)
        ],
    },
    {
        **{e2_name(h, s): key for (h, s), key in E2_FIT.items()},
        **{traj_input(e2_name(h, s)): key for (h, s), key in E2_TRAIN.items()},
    },
    ext="json",
)
MEM_MB[E2_COMPARE] = verdict_mem_mb(
    held=0, largest=E2["train"]["n_inits"] * E2_STEPS * 10 * max(E2_WIDTHS)
)


# ---------------------------------------------------------------- E4: grokking
E4 = config["e4"]
E4_SETUPS = ["grokking", "constrained"]
E4_SEEDS = sorted(set(E4["seeds"]))
# The observable: MLP output weights, d_model x d_mlp.
E4_OBSERVABLES = E4["train"]["d_model"] * E4["train"]["d_mlp"]
check_delays("e4.koopman.n_delays", E4["koopman"]["n_delays"], E4["train"]["n_steps"])
check_koopman(
    "e4.koopman",
    **E4["koopman"],
    n_inits=E4["train"]["n_inits"],
    n_steps=E4["train"]["n_steps"],
    n_observables=E4_OBSERVABLES,
)


def e4_name(setup, seed):
    return f"{setup}_s{seed}"


E4_TRAIN, E4_FIT = {}, {}
for setup in E4_SETUPS:
    for s in E4_SEEDS:
        E4_TRAIN[setup, s] = plan(
            "train", "e4", {**E4["train"], "setup": setup, "seed": s}
        )
        E4_FIT[setup, s] = plan(
            "fit",
            "e4",
            {"observable": "mlp_out", **E4["koopman"]},
            {"trajectory": E4_TRAIN[setup, s]},
        )
E4_LONG = {
    setup: plan(
        "train",
        "e4long",
        {
            **{
                k: v
                for k, v in E4["train"].items()
                if k
                not in ("n_inits", "perturbation", "observable", "observable_dtype")
            },
            **E4["long"],
            "setup": setup,
        },
    )
    for setup in E4_SETUPS
}
E4_COMPARE = plan(
    "compare",
    "e4",
    {
        **E4["compare"],
        # Grokking vs constrained within each seed, then each setup between seeds.
        "pairs": [[e4_name("grokking", s), e4_name("constrained", s)] for s in E4_SEEDS]
        + [
            [e4_name(setup, s), e4_name(setup, t)]
            for setup in E4_SETUPS
            for s, t in combinations(E4_SEEDS, 2)
        ],
        "permutation_tests": [
            {
                "name": "grokking|constrained",
                "group_a": [e4_name("grokking", s) for s in E4_SEEDS],
                "group_b": [e4_name("constrained", s) for s in E4_SEEDS],
                "paired": True,
            }
        ],
        "verdicts": [
            verdict(
                "grokking|constrained",
                [e4_name("grokking", s) for s in E4_SEEDS],
                [e4_name("constrained", s) for s in E4_SEEDS],
                "mlp_out",
                split=None,
            )
        ],
    },
    {
        **{e4_name(*k): key for k, key in E4_FIT.items()},
        **{traj_input(e4_name(*k)): key for k, key in E4_TRAIN.items()},
    },
    ext="json",
)
E4_SEED_SIZE = E4["train"]["n_inits"] * E4["train"]["n_steps"] * E4_OBSERVABLES
MEM_MB[E4_COMPARE] = verdict_mem_mb(held=0, largest=E4_SEED_SIZE)


# ---------------------------------------------------------------- E3: early phase of CNN training
E3 = config["e3"]
E3_SEEDS = sorted(set(E3["seeds"]))
E3_KOOPMAN = E3["koopman"]
# The CIFAR-10 key depends on the source only in that the synthetic test stand-in has
# its own; the real data has one key whether it is read locally or downloaded.
CIFAR10_KEY = cifar10.dataset_key(config["data"]["cifar10"])
CIFAR10 = f"results/data/cifar10/{CIFAR10_KEY}.npz"
# Network -> (dataset, its key, its numbers of training and test images).
E3_DATA = {
    "lenet": ("MNIST", MNIST_KEY, 60000, 10000),
    "resnet20": (
        "CIFAR-10",
        CIFAR10_KEY,
        cifar10.n_train(config["data"]["cifar10"]),
        (
            cifar10.SYNTHETIC_SIZES["n_test"]
            if config["data"]["cifar10"] == "synthetic"
            else cifar10.SHAPES["y_test"][0]
        ),
    ),
}
for net in E3["networks"]:
    if net not in E3_DATA:
        raise ValueError(
            f"e3.networks: unknown network {net!r}; known: {', '.join(E3_DATA)}"
        )
E3_NETWORKS = [net for net in E3_DATA if net in E3["networks"]]
if "resnet20" in E3_NETWORKS:
    PLAN[CIFAR10_KEY] = (CIFAR10, cifar10.dataset_spec(config["data"]["cifar10"]))


def cifar10_source(wildcards):
    """Input function: the local CIFAR-10 copy named in config (none for synthetic)."""
    source = config["data"]["cifar10"]
    return [] if source in (None, "synthetic") else source


def cifar10_source_option(wildcards):
    """Params function: `--source=...` of the CIFAR-10 data job, if config names one."""
    return source_option(config["data"]["cifar10"])


def e3_name(network, seed):
    return f"{network}_s{seed}"


def check_e3(network):
    """Cross-field checks of one E3 network the schema cannot express; errors name the field."""
    train, windows = E3[network]["train"], E3[network]["windows"]
    field = f"e3.{network}"
    if train["augment"] and network != "resnet20":
        raise ValueError(
            f"{field}.train.augment=true: augmentation (random crops and flips) is for "
            "ResNet-20 on CIFAR-10 only"
        )
    dataset, _, size, test_size = E3_DATA[network]
    for name, split, n in (
        ("train_subset", "training", size),
        ("test_subset", "test", test_size),
    ):
        if train[name] is not None and train[name] > n:
            raise ValueError(
                f"{field}.train.{name}={train[name]} exceeds the {n} {split} images "
                f"of {dataset}"
            )
    subset = train["train_subset"]
    per_epoch = (subset or size) // train["batch_size"]
    if per_epoch < 1:
        raise ValueError(
            f"{field}.train.batch_size={train['batch_size']} exceeds the {subset or size} "
            "training images: an epoch would have no step"
        )
    n_steps = per_epoch * train["n_epochs"]
    needed = windows["length"] * windows["count"]
    if needed > n_steps:
        raise ValueError(
            f"{field}.windows: {windows['count']} windows of {windows['length']} steps need "
            f"{needed} steps, but {field}.train records {n_steps} ({train['n_epochs']} epochs "
            f"of {per_epoch} steps); lower {field}.windows.count or .length, or raise "
            f"{field}.train.n_epochs"
        )
    n_delays = E3_KOOPMAN["n_delays"]
    for what, length in (
        (f"{field}.windows.length", windows["length"]),
        (f"an epoch of {field} ({per_epoch} steps)", per_epoch),
    ):
        if length - n_delays < 2:
            raise ValueError(
                f"e3.koopman.n_delays={n_delays} leaves fewer than 2 embedded snapshots "
                f"in {what}={length}; use n_delays <= {length - 2}"
            )


E3_TRAIN, E3_FIT = {}, {}
for net in E3_NETWORKS:
    check_e3(net)
    for s in E3_SEEDS:
        E3_TRAIN[net, s] = plan(
            "train",
            "e3",
            {**E3[net]["train"], "model": net, "seed": s},
            {"data": E3_DATA[net][1]},
        )
        # One fit per seed: a spectrum per window of early steps and per epoch.
        E3_FIT[net, s] = plan(
            "fit",
            "e3",
            {
                "observable": E3[net]["train"]["observable"],
                **E3_KOOPMAN,
                "windows": E3[net]["windows"],
                "epochs": True,
            },
            {"trajectory": E3_TRAIN[net, s]},
        )
# Size of the observable (weights and biases of the output layer) of each network.
E3_OBSERVABLES = {"lenet": 850, "resnet20": 650}
# Seed of the verdicts' resampling (bootstrap intervals, sampled relabellings).
E3_VERDICT_SEED = 0


def e3_verdicts(network):
    """The calibrated verdicts of one network: its first window against its last, and its
    first epoch against its last, across seeds (none with a single seed)."""
    if len(E3_SEEDS) < 2:
        return []
    names = [e3_name(network, s) for s in E3_SEEDS]
    observable = E3[network]["train"]["observable"]
    windows = segment_names("window", E3[network]["windows"]["count"])
    epochs = segment_names("epoch", E3[network]["train"]["n_epochs"])
    return [
        verdict(
            f"{segments[0]}|{segments[-1]}",
            names,
            names,
            observable,
            segment_a=segments[0],
            segment_b=segments[-1],
        )
        for segments in (windows, epochs)
        if len(segments) >= 2
    ]


def e3_mem_mb(network):
    """Memory of a distances job: its verdicts hold every seed's first and last window
    and epoch, and each trajectory file is read whole once."""
    train, windows = E3[network]["train"], E3[network]["windows"]
    per_epoch = (train["train_subset"] or E3_DATA[network][2]) // train["batch_size"]
    run = train["n_inits"] * E3_OBSERVABLES[network]
    segments = 2 * (windows["length"] + per_epoch) * run
    return verdict_mem_mb(
        held=len(E3_SEEDS) * segments, largest=per_epoch * train["n_epochs"] * run
    )


# Per network: window x window and epoch x epoch distances of every seed, mean and sd,
# and the verdicts between the first and the last window and epoch.
E3_DISTANCES = {}
for net in E3_NETWORKS:
    E3_DISTANCES[net] = plan(
        "distances",
        "e3",
        {
            "groups": ["window", "epoch"],
            "seed": E3_VERDICT_SEED,
            "verdicts": e3_verdicts(net),
        },
        {
            **{e3_name(net, s): E3_FIT[net, s] for s in E3_SEEDS},
            **{traj_input(e3_name(net, s)): E3_TRAIN[net, s] for s in E3_SEEDS},
        },
        ext="json",
    )
    MEM_MB[E3_DISTANCES[net]] = e3_mem_mb(net)


def planned_results(wildcards):
    """Input function of `all`: every result of the plan, intermediate ones included.

    Snakemake leaves a deleted intermediate file missing while what was made from it is
    up to date; as targets, a deleted result and what depends on it are recomputed.
    """
    return sorted(path for path, _ in PLAN.values())


def figure_files(name):
    return expand(f"results/figures/{name}.{{ext}}", ext=["pdf", "png", "json"])


FIGURES = {
    "fig2": figure_files("fig2_omd_ogd_bm"),
    "fig3": figure_files("fig3_fcn_width"),
    "figS_fcn_seeds": figure_files("figS_fcn_seeds"),
    "fig5": figure_files("fig5_grokking"),
    "fig4": figure_files("fig4_cnn_early"),
    "figS_cnn_epochs": figure_files("figS_cnn_epochs"),
}
INDEX = "results/index.tsv"


def protect_cache_entries():
    """Make the between-workflow cache entries that results/ links to read-only.

    Snakemake stores cache entries writable by everyone (0666); one write would then
    change every checkout's result.  Run when a workflow run ends (Snakefile's
    onsuccess/onerror), so entries are read-only (0444) like every other result.
    """
    root = os.environ.get("SNAKEMAKE_OUTPUT_CACHE")
    if not root or not Path("results").is_dir():
        return
    cache = Path(root).resolve()
    for dirpath, _, filenames in os.walk("results"):
        for name in filenames:
            link = Path(dirpath) / name
            if link.is_symlink():
                target = link.resolve()
                if target.parent == cache and target.is_file():
                    target.chmod(0o444)
