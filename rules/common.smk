# The plan: every job the config asks for, as a spec holding every parameter that
# determines its output plus the content keys of its inputs.  A spec's content key
# (SHA-256 of its canonical JSON) names its output, so results form a Merkle DAG:
# changing a parameter changes the keys of exactly the results that depend on it, and
# reverting it points the workflow back at results that already exist.

import json
import shlex
from itertools import combinations

from equivdyn import content_key
from equivdyn.data.mnist import DATASET_KEY as MNIST_KEY
from equivdyn.stages import STAGE_VERSIONS


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


# ---------------------------------------------------------------- data
# The dataset's key is the hash of its content checksums, whatever the source (a local
# copy or a download), so every downstream key depends on the data, not on its path.
MNIST = f"results/data/mnist/{MNIST_KEY}.npz"
PLAN[MNIST_KEY] = (
    MNIST,
    {"stage": "data", "experiment": "mnist", "params": {}, "inputs": {}},
)


# ---------------------------------------------------------------- E1: OMD, OGD, BM
E1_METHODS = ["omd", "ogd", "bm"]
E1_PAIRS = [["omd", "ogd"], ["ogd", "bm"], ["omd", "bm"]]
check_delays(
    "e1.koopman.n_delays",
    config["e1"]["koopman"]["n_delays"],
    config["e1"]["train"]["n_steps"],
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
E1_COMPARE = plan(
    "compare", "e1", {"pairs": E1_PAIRS, **config["e1"]["compare"]}, E1_FIT, ext="json"
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
    },
    {e2_name(h, s): key for (h, s), key in E2_FIT.items()},
    ext="json",
)


# ---------------------------------------------------------------- E4: grokking
E4 = config["e4"]
E4_SETUPS = ["grokking", "constrained"]
E4_SEEDS = sorted(set(E4["seeds"]))
check_delays("e4.koopman.n_delays", E4["koopman"]["n_delays"], E4["train"]["n_steps"])


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
                if k not in ("n_inits", "perturbation")
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
    },
    {e4_name(*k): key for k, key in E4_FIT.items()},
    ext="json",
)


def figure_files(name):
    return expand(f"results/figures/{name}.{{ext}}", ext=["pdf", "png", "json"])


FIGURES = {
    "fig2": figure_files("fig2_omd_ogd_bm"),
    "fig3": figure_files("fig3_fcn_width"),
    "figS_fcn_seeds": figure_files("figS_fcn_seeds"),
    "fig5": figure_files("fig5_grokking"),
}
INDEX = "results/index.tsv"
