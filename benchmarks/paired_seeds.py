"""Paired seeds: is the verdict still calibrated when two setups share each seed's start?

Researchers comparing their own runs often give seed s the same initialisation in both
setups (``torch.manual_seed(s)`` before building the network in each), which makes the
two setups' runs of one seed alike.  The verdict's label test treats the 2S seeds as
exchangeable; this measures, on the known-answer suite (:mod:`equivdyn.calibration`,
SYNTHETIC data), the verdict's rejection rate at alpha = 0.05 with independent and with
paired seeds side by side: the same families, pair indices and settings, only the
initial conditions of side b's seeds either drawn anew or taken from side a's.

Writes ``benchmarks/results/paired_seeds.{json,md}``.  ``python benchmarks/paired_seeds.py``
(60 pairs per cell, 8 seeds per setup: about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from equivdyn import calibration  # noqa: E402

HERE = Path(__file__).resolve().parent
#: Conjugate families (type-I error) and non-conjugate cells (power) of the latent design.
CELLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("same", {}),
    ("linear", {}),
    ("warp_moderate", {}),
    ("lift", {}),
    ("noise", {}),
    ("shift", {"delta": 0.02}),
    ("shift_warp", {"delta": 0.02}),
    ("shift_warp", {"delta": 0.05}),
)


def run(job: tuple[str, dict[str, Any], bool, int, int]) -> dict[str, Any]:
    family, knobs, paired, n_pairs, n_seeds = job
    cell = calibration.run_cell(family, "verdict", n_pairs=n_pairs, n_seeds=n_seeds, paired=paired, **knobs)
    return {**asdict(cell), "paired": paired, "knobs": knobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=60, help="pairs per cell (default 60)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per setup (default 8)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "paired_seeds")
    args = parser.parse_args()
    start = time.perf_counter()
    jobs = [(family, knobs, paired, args.pairs, args.seeds) for family, knobs in CELLS for paired in (False, True)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.perf_counter() - start

    lines = [
        f"Verdict at alpha = 0.05, {args.seeds} seeds per setup, {args.pairs} pairs per cell (SYNTHETIC): "
        "rejection rate [95 % Wilson interval].",
        "",
        "| family | known answer | independent seeds | paired seeds |",
        "| --- | --- | --- | --- |",
    ]
    for family, knobs in CELLS:
        row = {r["paired"]: r for r in results if r["family"] == family and r["knobs"] == knobs}
        name = family + "".join(f", {k} = {v}" for k, v in knobs.items())
        answer = "conjugate (type-I error)" if row[False]["conjugate"] else "not conjugate (power)"
        cells = [f"{row[p]['rejections'] / row[p]['n_pairs']:.2f} [{row[p]['interval'][0]:.2f}, {row[p]['interval'][1]:.2f}]"
                 for p in (False, True)]
        lines.append(f"| `{name}` | {answer} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Wall time {elapsed / 60:.1f} min ({args.jobs} processes)."]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"cells": results, "seconds": elapsed}, indent=1) + "\n")


if __name__ == "__main__":
    main()
