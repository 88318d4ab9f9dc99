# The plan: every job the config asks for, as a spec holding every parameter that
# determines its output plus the content keys of its inputs.  A spec's content key
# (SHA-256 of its canonical JSON) names its output, so results form a Merkle DAG:
# changing a parameter changes the keys of exactly the results that depend on it, and
# reverting it points the workflow back at results that already exist.

import json

from equivdyn import content_key
from equivdyn.stages import STAGE_VERSIONS


wildcard_constraints:
    key="[0-9a-f]{16}",


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


def cli_inputs(names):
    """Shell fragment `--input NAME=PATH ...` for named inputs."""
    return " ".join(f"--input {n}={{input.{n}:q}}" for n in names)


def check_koopman(experiment, n_steps, koopman):
    """Cross-field checks the schema cannot express; errors name the field."""
    if n_steps - koopman["n_delays"] < 2:
        raise ValueError(
            f"{experiment}.koopman.n_delays={koopman['n_delays']} leaves fewer than 2 "
            f"embedded snapshots from {n_steps} steps; use n_delays <= {n_steps - 2}"
        )


# ---------------------------------------------------------------- E1: OMD, OGD, BM
E1_METHODS = ["omd", "ogd", "bm"]
E1_PAIRS = [["omd", "ogd"], ["ogd", "bm"], ["omd", "bm"]]
check_koopman("e1", config["e1"]["train"]["n_steps"], config["e1"]["koopman"])
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

FIGURES = {
    "fig2": expand("results/figures/fig2_omd_ogd_bm.{ext}", ext=["pdf", "png", "json"]),
}
INDEX = "results/index.tsv"
