"""Experiment E4: one-layer transformers on modular addition that do and do not grok
(paper Fig. 5).  Modules: :mod:`.config` (parameters and every default), :mod:`.task`
(data, initialisation), :mod:`.fast` (the ensemble and long-run trainers),
:mod:`.reference` (the straightforward recipe, the tests' oracle), :mod:`.trainer` (the
public training API), :mod:`.fig5` (the figure).  Only this module is imported to plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

from ...errors import ParameterError
from ...koopman import check_fit_shape
from ...plan import Plan, read_seconds, traj_input, verdict, verdict_mem_mb
from ...stages import pair_name
from ...store import Trajectory
from .. import Experiment, register
from .settings import ENSEMBLE_ONLY, SETUPS, E4Settings

#: The observable: MLP output weights, d_model x d_mlp.
OBSERVABLE = "mlp_out"
#: Job kinds: an ensemble of perturbed initialisations for one seed (the Koopman fits'
#: data), or one long run of initialisation 0 per setup (the accuracy curves).
KINDS = ("ensemble", "long")


def run_name(setup: str, seed: int) -> str:
    """Name of the run of ``setup`` and ``seed`` among a comparison's inputs."""
    return f"{setup}_s{seed}"



#: Seconds of training per initialisation, step and unit of model size (training pairs x
#: d_model x d_mlp; the job's time limit follows from it): the fast trainer took 0.20 s of
#: wall time per step and initialisation at the paper's sizes (3,831 pairs, 128 x 512) with
#: 2 threads (benchmarks/results/paper_scale.md, a shared 2-core CPU).
UNIT_SECONDS = 7.8e-10


def train_seconds(train: Mapping[str, Any], n_steps: int, n_inits: int) -> float:
    """Estimated seconds of training ``n_inits`` models of ``train``'s size for ``n_steps``."""
    pairs = train["train_fraction"] * train["p"] ** 2
    return n_inits * n_steps * pairs * train["d_model"] * train["d_mlp"] * UNIT_SECONDS


class E4(Experiment):
    name = "e4"
    # 3: trajectory files store the resolved parameters; 4: long runs are jobs of kind
    # "long" of this experiment (they were an experiment "e4long" of their own)
    train_version = 4
    train_threads = 2  # the fast trainer measured fastest with 2
    figures = {"fig5_grokking": f"{__name__}.fig5:plot"}
    settings = E4Settings
    devices = ("cpu", "cuda")

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        seeds = sorted(set(section["seeds"]))
        train, koopman = section["train"], section["koopman"]
        n_observables = train["d_model"] * train["d_mlp"]
        check_fit_shape(train["n_inits"], train["n_steps"], n_observables, **koopman, field="e4.koopman")
        trajectories, spectra = {}, {}
        for setup in SETUPS:
            for s in seeds:
                trajectories[setup, s] = plan.train(
                    self,
                    {**train, "setup": setup, "seed": s, "kind": "ensemble"},
                    seconds=train_seconds(train, train["n_steps"], train["n_inits"]),
                    device=section["device"],
                )
                spectra[setup, s] = plan.fit(
                    self.name,
                    {"observable": OBSERVABLE, **koopman},
                    trajectories[setup, s],
                    values=train["n_inits"] * train["n_steps"] * n_observables,
                )
        model = {k: v for k, v in train.items() if k not in ENSEMBLE_ONLY}
        longs = [
            plan.train(
                self,
                {**model, **section["long"], "setup": setup, "kind": "long"},
                seconds=train_seconds(train, section["long"]["n_steps"], 1),
                device=section["device"],
            )
            for setup in SETUPS
        ]
        grok = [run_name("grokking", s) for s in seeds]
        constrained = [run_name("constrained", s) for s in seeds]
        name = pair_name(*SETUPS)
        compare = plan.add(
            "compare",
            self.name,
            {
                **section["compare"],
                # Grokking vs constrained within each seed, then each setup between seeds.
                "pairs": [list(p) for p in zip(grok, constrained)]
                + [[run_name(setup, s), run_name(setup, t)] for setup in SETUPS for s, t in combinations(seeds, 2)],
                "permutation_tests": [{"name": name, "group_a": grok, "group_b": constrained, "paired": True}],
                "verdicts": [verdict(name, grok, constrained, OBSERVABLE, split=None)],
            },
            {
                **{run_name(*k): key for k, key in spectra.items()},
                **{traj_input(run_name(*k)): key for k, key in trajectories.items()},
            },
            ext="json",
            mem_mb=verdict_mem_mb(held=0, largest=train["n_inits"] * train["n_steps"] * n_observables),
            seconds=read_seconds(len(trajectories) * train["n_inits"] * train["n_steps"] * n_observables),
        )
        plan.figure(
            self,
            "fig5",
            "fig5_grokking",
            {
                "trajectories": list(trajectories.values()),
                "spectra": list(spectra.values()),
                "long": longs,
                "compare": [compare],
            },
            caption="fig5.rst",
            json_caption="fig5_json.rst",
            category="Figure 5: grokking transformers",
            values={"n_seeds": len(seeds)},
            mem_mb=2000,
        )

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        from .trainer import simulate, simulate_long

        params = dict(params)
        kind = params.pop("kind", "ensemble")
        if kind not in KINDS:
            raise ParameterError(f"kind: unknown E4 job kind {kind!r}; known: {', '.join(KINDS)}")
        traj = (simulate_long if kind == "long" else simulate)(params, dict(inputs), device=device)
        return dataclasses.replace(traj, params={**traj.params, "kind": kind})


EXPERIMENT = register(E4())
