"""Experiment E2: fully connected networks of different widths on MNIST (paper Fig. 3 and
its between-seed appendix figure).  The trainer is :mod:`.trainer` (PyTorch)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

from ...data import mnist
from ...errors import ParameterError
from ...koopman import check_fit_shape
from ...plan import Plan, read_seconds, traj_input, verdict, verdict_mem_mb
from ...stages import pair_name
from ...store import Trajectory
from .. import Experiment, register
from .settings import E2Settings

#: The observable: output-layer weights, 10 classes x width.
OBSERVABLE = "output_weights"
N_CLASSES = 10
#: Seconds of training per initialisation, step, image of the batch and hidden unit (the
#: job's time limit follows from it): width 40 took 7.5e-4 CPU s per step and
#: initialisation (batch 60; benchmarks/results/paper_scale.md, a shared 2-core CPU).
UNIT_SECONDS = 3.1e-7


def run_name(width: int, seed: int) -> str:
    """Name of the run of ``width`` and ``seed`` among a comparison's inputs."""
    return f"h{width}_s{seed}"



class E2(Experiment):
    name = "e2"
    train_version = 3  # 3: trajectory files store the trainer's resolved parameters
    figures = {
        "fig3_fcn_width": f"{__name__}.fig3:plot",
        "figS_fcn_seeds": f"{__name__}.figS_fcn_seeds:plot",
    }
    settings = E2Settings
    devices = ("cpu", "cuda")

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        widths, seeds = sorted(set(section["widths"])), sorted(set(section["seeds"]))
        reference = section["reference_width"]
        if reference not in widths:
            raise ParameterError(f"e2.reference_width={reference} is not one of e2.widths {widths}")
        train, koopman = section["train"], section["koopman"]
        n_steps = train["n_steps"] or mnist.SHAPES["y_train"][0] // train["batch_size"]
        data = plan.dataset("mnist")
        trajectories, spectra = {}, {}
        for h in widths:
            # Delays scale with width so that embeddings have similar size (paper: 320 / h).
            n_delays = max(0, koopman["delay_budget"] // h)
            check_fit_shape(
                train["n_inits"],
                n_steps,
                N_CLASSES * h,  # the observable: output-layer weights, 10 classes x width
                n_delays=n_delays,
                rank=koopman["rank"],
                n_components=None,
                field="e2.koopman",
                delays_name=f"e2.koopman.delay_budget // {h} = n_delays",
            )
            for s in seeds:
                trajectories[h, s] = plan.train(
                    self,
                    {**train, "width": h, "seed": s},
                    {"mnist": data},
                    seconds=train["n_inits"] * n_steps * train["batch_size"] * h * UNIT_SECONDS,
                    device=section["device"],
                )
                spectra[h, s] = plan.fit(
                    self.name,
                    {"observable": OBSERVABLE, "n_delays": n_delays, "rank": koopman["rank"], "n_components": None},
                    trajectories[h, s],
                    values=train["n_inits"] * n_steps * N_CLASSES * h,
                )
        width_pairs = list(combinations(widths, 2))
        compare = plan.add(
            "compare",
            self.name,
            {
                **section["compare"],
                "reference_width": reference,
                # Each width pair within each seed, then the reference width between seeds.
                "pairs": [[run_name(a, s), run_name(b, s)] for a, b in width_pairs for s in seeds]
                + [[run_name(reference, s), run_name(reference, t)] for s, t in combinations(seeds, 2)],
                # Widths as labels, seeds as samples.
                "permutation_tests": [
                    {
                        "name": pair_name(str(a), str(b)),
                        "group_a": [run_name(a, s) for s in seeds],
                        "group_b": [run_name(b, s) for s in seeds],
                        "paired": True,
                    }
                    for a, b in width_pairs
                ],
                # The calibrated verdict of each width pair: widths as setups, seeds as seeds.
                "verdicts": [
                    verdict(
                        pair_name(str(a), str(b)),
                        [run_name(a, s) for s in seeds],
                        [run_name(b, s) for s in seeds],
                        OBSERVABLE,
                        split=None,
                    )
                    for a, b in width_pairs
                ],
            },
            {
                **{run_name(*hs): key for hs, key in spectra.items()},
                **{traj_input(run_name(*hs)): key for hs, key in trajectories.items()},
            },
            ext="json",
            mem_mb=verdict_mem_mb(held=0, largest=train["n_inits"] * n_steps * N_CLASSES * max(widths)),
            seconds=read_seconds(train["n_inits"] * n_steps * N_CLASSES * sum(widths) * len(seeds)),
        )
        inputs = {
            "trajectories": list(trajectories.values()),
            "spectra": list(spectra.values()),
            "compare": [compare],
        }
        values = {"n_seeds": len(seeds), "n_inits": train["n_inits"]}
        plan.figure(
            self,
            "fig3",
            "fig3_fcn_width",
            inputs,
            caption="fig3.rst",
            json_caption="fig3_json.rst",
            category="Figure 3: FCN width on MNIST",
            values=values,
            mem_mb=2000,
        )
        plan.figure(
            self,
            "figS_fcn_seeds",
            "figS_fcn_seeds",
            inputs,
            caption="figS_fcn_seeds.rst",
            json_caption="figS_fcn_seeds_json.rst",
            category="Figure S: FCN between-seed spectra",
            values=values,
            mem_mb=2000,
        )

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        from .trainer import simulate

        return simulate(dict(params), dict(inputs), device=device)


EXPERIMENT = register(E2())
