"""Loading what the E2 figures (Fig. 3 and its between-seed appendix figure) draw from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..koopman import KoopmanSpectrum
from ..store import Trajectory, read_spectra, read_trajectory
from ._common import read_comparison

_NAME = re.compile(r"^(traj|spec)_h(\d+)_s(\d+)$")


@dataclass(frozen=True)
class E2Results:
    """Every trajectory, spectrum and comparison of one E2 run of the workflow."""

    widths: list[int]
    seeds: list[int]
    reference_width: int
    trajectories: dict[tuple[int, int], Trajectory]
    spectra: dict[tuple[int, int], KoopmanSpectrum]
    comparison: dict[str, Any]
    keys: dict[str, str]

    def distances(self, a: int, b: int) -> list[float]:
        """Per-seed distance between widths ``a`` and ``b`` (seed order)."""
        pairs = self.comparison["pairs"]
        return [pairs[f"h{a}_s{s}|h{b}_s{s}"]["distance"] for s in self.seeds]

    def randomization_p(self, a: int, b: int) -> list[float]:
        pairs = self.comparison["pairs"]
        return [pairs[f"h{a}_s{s}|h{b}_s{s}"]["p_value"] for s in self.seeds]

    def between_seeds(self) -> list[float]:
        """Distances between every pair of seeds at the reference width."""
        h = self.reference_width
        pairs = self.comparison["pairs"]
        return [
            pairs[f"h{h}_s{s}|h{h}_s{t}"]["distance"]
            for i, s in enumerate(self.seeds)
            for t in self.seeds[i + 1 :]
        ]

    def width_pairs(self) -> list[tuple[int, int]]:
        return [(a, b) for i, a in enumerate(self.widths) for b in self.widths[i + 1 :]]

    def images_seen(self, width: int) -> np.ndarray:
        traj = self.trajectories[width, self.seeds[0]]
        return traj.steps * int(traj.params["params"]["batch_size"])


def mean_sd(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (``None`` when fewer than two values)."""
    return {
        "mean": float(np.mean(values)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "n": len(values),
    }


def load(inputs: Mapping[str, Path]) -> E2Results:
    """Read the named inputs ``compare``, ``traj_h<h>_s<seed>`` and ``spec_h<h>_s<seed>``."""
    trajectories, spectra, keys = {}, {}, {}
    for name, path in inputs.items():
        match = _NAME.match(name)
        if name == "compare":
            continue
        if not match:
            raise ParameterError(f"--input {name}: expected compare, traj_h<width>_s<seed> or spec_h<width>_s<seed>")
        kind, width, seed = match.group(1), int(match.group(2)), int(match.group(3))
        if kind == "traj":
            trajectories[width, seed] = read_trajectory(path)
            keys[name] = trajectories[width, seed].key
        else:
            data = read_spectra(path)
            spectra[width, seed] = data.spectra["all"]
            keys[name] = data.key
    if set(trajectories) != set(spectra):
        raise ParameterError("every traj_h<width>_s<seed> input needs its spec_h<width>_s<seed> and vice versa")
    comparison = read_comparison(inputs["compare"], "e2")
    keys["compare"] = comparison["key"]
    widths = sorted({w for w, _ in trajectories})
    seeds = sorted({s for _, s in trajectories})
    reference = int(comparison["spec"]["params"]["reference_width"])
    return E2Results(widths, seeds, reference, trajectories, spectra, comparison, keys)
