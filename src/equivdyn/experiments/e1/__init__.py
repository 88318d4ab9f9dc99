"""Experiment E1: online mirror descent vs online gradient descent, bisection as the
non-conjugate control (paper Fig. 2).  The trainer is :mod:`.trainer` (NumPy only)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...koopman import check_fit_shape
from ...plan import Plan, read_seconds, traj_input, verdict
from ...stages import pair_name
from ...store import Trajectory
from .. import Experiment, register
from .settings import METHODS, E1Settings

#: Pairs whose distance and randomisation control the figure shows.
PAIRS = (("omd", "ogd"), ("ogd", "bm"), ("omd", "bm"))
#: Pairs that get the calibrated verdict.
VERDICTS = (("omd", "ogd"), ("omd", "bm"))
#: The observable: the state of each run.
OBSERVABLE = "state"


class E1(Experiment):
    name = "e1"
    train_version = 3  # 3: trajectory files store the trainer's resolved parameters
    figures = {"fig2_omd_ogd_bm": f"{__name__}.fig2:plot"}
    settings = E1Settings

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        train, koopman = section["train"], section["koopman"]
        grid = train["grid_size"]
        check_fit_shape(grid ** train["dim"], train["n_steps"], train["dim"], **koopman, field="e1.koopman")
        values = grid ** train["dim"] * train["n_steps"] * train["dim"]  # of each trajectory
        trajectories = {m: plan.train(self, {"method": m, **train}) for m in METHODS}
        spectra = {
            m: plan.fit(self.name, {"observable": OBSERVABLE, **koopman}, trajectories[m], values=values) for m in METHODS
        }
        # The verdicts need seeds; E1 has one trajectory file per method, so the grid's
        # rows (initial conditions that share their last coordinate) serve as
        # pseudo-seeds: `split` cuts each file's grid_size**dim runs into grid_size groups.
        compare = plan.add(
            "compare",
            self.name,
            {
                "pairs": [list(p) for p in PAIRS],
                **section["compare"],
                "verdicts": [
                    verdict(pair_name(a, b), [a], [b], OBSERVABLE, split=grid) for a, b in (VERDICTS if grid >= 2 else ())
                ],
            },
            {**spectra, **{traj_input(m): trajectories[m] for m in METHODS}},
            ext="json",
            seconds=read_seconds(len(METHODS) * values),
        )
        plan.figure(
            self,
            "fig2",
            "fig2_omd_ogd_bm",
            {"trajectories": list(trajectories.values()), "spectra": list(spectra.values()), "compare": [compare]},
            caption="fig2.rst",
            json_caption="fig2_json.rst",
            category="Figure 2: OMD vs OGD vs BM",
            values={"grid_size": grid},
        )

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        from .trainer import simulate

        return simulate(dict(params), dict(inputs))


EXPERIMENT = register(E1())
