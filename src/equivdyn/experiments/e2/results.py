"""Loading what the E2 figures (Fig. 3 and its between-seed appendix figure) draw from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...figures._common import input_names, one, read_comparison, read_run_spectra, read_runs
from ...koopman import KoopmanSpectrum
from ...store import Trajectory
from ...stages import pair_name

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
    #: The comparison's name of each (width, seed)'s spectrum.
    names: dict[tuple[int, int], str]

    def _pair(self, a: tuple[int, int], b: tuple[int, int]) -> dict[str, Any]:
        return self.comparison["pairs"][pair_name(self.names[a], self.names[b])]

    def distances(self, a: int, b: int) -> list[float]:
        """Per-seed distance between widths ``a`` and ``b`` (seed order)."""
        return [self._pair((a, s), (b, s))["distance"] for s in self.seeds]

    def randomization_p(self, a: int, b: int) -> list[float]:
        return [self._pair((a, s), (b, s))["p_value"] for s in self.seeds]

    def between_seeds(self) -> list[float]:
        """Distances between every pair of seeds at the reference width."""
        h = self.reference_width
        return [
            self._pair((h, s), (h, t))["distance"]
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


def load(inputs: Mapping[str, Sequence[Path]]) -> E2Results:
    """Read the inputs of roles ``trajectories``, ``spectra`` and ``compare``; each run's
    width and seed are the ones stored in its trajectory file."""
    runs = read_runs(inputs, ("width", "seed"))
    files = read_run_spectra(inputs, runs)
    comparison = read_comparison(one(inputs, "compare"), "e2")
    names = input_names(comparison, {ident: data.key for ident, data in files.items()})
    keys = {f"traj_{names[i]}": t.key for i, t in runs.items()}
    keys.update({f"spec_{names[i]}": d.key for i, d in files.items()})
    keys["compare"] = comparison["key"]
    widths = sorted({w for w, _ in runs})
    seeds = sorted({s for _, s in runs})
    reference = int(comparison["spec"]["params"]["reference_width"])
    spectra = {ident: data.spectra["all"] for ident, data in files.items()}
    return E2Results(widths, seeds, reference, runs, spectra, comparison, keys, names)
