"""A toy experiment, registered from the tests (config ``plugins: [toy_experiment]``).

It shows what adding an experiment takes: this package and its two caption files, nothing
in the workflow.  SYNTHETIC dynamics: each run is a linear system x_{t+1} = A x_t in the
plane, A a rotation by ``angle`` scaled by ``decay``; setup ``a`` and setup ``b`` differ
only in the angle of ``b`` (config ``toy.angle_b``), so their Koopman spectra differ exactly
when the angles do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from equivdyn.experiments import Experiment, register
from equivdyn.params import Section, param
from equivdyn.plan import Plan, traj_input, verdict
from equivdyn.stages import pair_name
from equivdyn.store import Trajectory

SETUPS = ("a", "b")


@dataclass(frozen=True)
class ToySettings(Section):
    """The toy's section of the configuration (its one home of defaults)."""

    seeds: list[int] = param([0, 1, 2, 3], "Seeds of both setups.", items={"minimum": 0}, minItems=2, uniqueItems=True)
    n_inits: int = param(4, "Initial conditions per seed.", minimum=1)
    n_steps: int = param(30, "Snapshots per run.", minimum=3)
    angle: float = param(0.3, "Rotation angle of setup a (radians).")
    angle_b: float = param(0.3, "Rotation angle of setup b (radians).")
    decay: float = param(0.97, "Contraction per step.", exclusiveMinimum=0, maximum=1)
    n_delays: int = param(0, "Lagged copies added to each snapshot.", minimum=0)
    rank: int = param(2, "DMD rank.", minimum=1)


def run_name(setup: str, seed: int) -> str:
    return f"{setup}_s{seed}"


class Toy(Experiment):
    name = "toy"
    train_version = 1
    figures = {"toy_spectra": f"{__name__}:draw_spectra"}
    settings = ToySettings

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        cfg = section  # filled in and checked by ToySettings
        seeds = sorted(set(cfg["seeds"]))
        train = {k: cfg[k] for k in ("n_inits", "n_steps", "decay")}
        trajectories, spectra = {}, {}
        for setup in SETUPS:
            angle = cfg["angle_b"] if setup == "b" else cfg["angle"]
            for s in seeds:
                trajectories[setup, s] = plan.train(self, {**train, "angle": angle, "setup": setup, "seed": s})
                spectra[setup, s] = plan.fit(
                    self.name,
                    {"observable": "state", "n_delays": cfg["n_delays"], "rank": cfg["rank"], "n_components": None},
                    trajectories[setup, s],
                )
        a = [run_name("a", s) for s in seeds]
        b = [run_name("b", s) for s in seeds]
        compare = plan.add(
            "compare",
            self.name,
            {
                "pairs": [[x, y] for x, y in zip(a, b)],
                "n_shuffles": 20,
                "seed": 0,
                "verdicts": [verdict(pair_name("a", "b"), a, b, "state", split=None)],
            },
            {
                **{run_name(*k): key for k, key in spectra.items()},
                **{traj_input(run_name(*k)): key for k, key in trajectories.items()},
            },
            ext="json",
        )
        plan.figure(
            self,
            "toy_fig",
            "toy_spectra",
            {"trajectories": list(trajectories.values()), "spectra": list(spectra.values()), "compare": [compare]},
            caption="toy.rst",
            json_caption="toy_json.rst",
            category="Toy: rotations (SYNTHETIC)",
            values={"n_seeds": len(seeds)},
        )

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        p = dict(params)
        rng = np.random.default_rng(p["seed"])
        c, s = np.cos(p["angle"]), np.sin(p["angle"])
        a = p["decay"] * np.array([[c, -s], [s, c]])
        x = np.empty((p["n_inits"], p["n_steps"], 2))
        x[:, 0] = rng.normal(size=(p["n_inits"], 2))
        for t in range(1, p["n_steps"]):
            x[:, t] = x[:, t - 1] @ a.T
        return Trajectory(
            experiment=self.name,
            steps=np.arange(p["n_steps"]),
            observables={"state": x},
            metrics={"norm": np.linalg.norm(x, axis=2)},
            params=p,
        )


def draw_spectra(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    """The spectra of both setups, every seed, and the calibrated verdict."""
    from equivdyn.figures._common import (
        one,
        pairs_of,
        plt,
        read_comparison,
        read_run_spectra,
        read_runs,
        save,
        unit_circle,
        verdict_text,
        verdicts_of,
    )

    runs = read_runs(inputs, ("setup", "seed"), observables=False)
    files = read_run_spectra(inputs, runs)
    comparison = read_comparison(one(inputs, "compare"), "toy")
    name = pair_name("a", "b")
    verdicts = verdicts_of(comparison, [name])
    fig, ax = plt.subplots(figsize=(5, 5))
    unit_circle(ax)
    for (setup, seed), data in sorted(files.items()):
        eig = data.spectra["all"].eigenvalues
        ax.scatter(eig.real, eig.imag, color="tab:red" if setup == "a" else "tab:blue", s=12)
    title = f"toy (SYNTHETIC): a vs b: {verdict_text(verdicts[name])}"
    ax.set(aspect="equal", title=title)
    numbers = {
        "spectra": {f"{setup}_s{seed}": pairs_of(d.spectra["all"].eigenvalues) for (setup, seed), d in files.items()},
        "verdicts": verdicts,
        "title": title,
    }
    save(fig, numbers, prefix)


EXPERIMENT = register(Toy())
