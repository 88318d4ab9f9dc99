"""Benchmark: Dynamical Similarity Analysis (DSA) against equivdyn on the calibration suite.

Measures how well each method separates conjugate from non-conjugate pairs of systems
whose answer is known.  The data are SYNTHETIC: pairs from equivdyn's known-answer
calibration suite (:mod:`equivdyn.calibration`), each side a list of ``S`` seeds of
``[M=10 trials, T=100 steps, D]`` trajectories.

* conjugate pairs: family ``warp_moderate`` (same latent map, seen through a linear and a
  smooth nonlinear change of coordinates);
* non-conjugate pairs: family ``shift_warp`` (principal eigenvalues shifted by a relative
  ``delta`` in {0.01, 0.02, 0.05, 0.1}, the same kind of change of coordinates).

Pairs ``0 .. N-1`` of every cell are scored by every method:

* DSA (``dsa-metric``, the authors' package): a HAVOK (delay-embedded) DMD fitted to
  all seeds of each side pooled as trials (the same data equivdyn sees), then the
  distance between the two fitted models, both the Procrustes distance over vector fields (``score_method="angular"``, the metric of
  the DSA paper) and the Wasserstein distance between DMD eigenvalues (the package's
  default ``score_method`` of its ``DSA`` class);
* equivdyn: :func:`equivdyn.verdict.compare_runs` on all ``S`` seeds of each side
  (distance, statistic, ``1 - p`` and the decision ``non_conjugate``).

For each ``delta`` it reports the AUC of every score (probability that a non-conjugate
pair scores higher than a conjugate one, ties counting 1/2), equivdyn's power, its
type-I error on the conjugate pairs, and the wall time per comparison of each method,
all measured in the same run.  Seeds are explicit: pair ``i`` comes from the suite's
generator seeded with ``(--seed, family, i)``, and DSA's optimiser is seeded with ``i``.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/dsa_head_to_head.py --pairs 5
    python benchmarks/dsa_head_to_head.py --pairs 100 --out benchmarks/results/dsa_head_to_head.json
"""

from __future__ import annotations

import argparse
import inspect
import logging
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from equivdyn import calibration, verdict
from equivdyn._io import read_json_result, write_json_atomic

DELTAS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
CONJUGATE_FAMILY, SHIFT_FAMILY = "warp_moderate", "shift_warp"
N_INITS, N_STEPS = 10, 100
#: DSA's HAVOK DMD: 10 delays of D = 3 observables (a 30-dimensional embedding), rank 10.
DSA_FIT: dict[str, int] = {"n_delays": 10, "rank": 10}
DSA_SCORES: tuple[str, ...] = ("angular", "wasserstein")
VERDICT_SEED = 0
ALPHA = 0.05

#: Score columns (higher = more different) and their table headings.
COLUMNS: dict[str, str] = {
    "dsa_angular": "AUC DSA (Procrustes, angular)",
    "dsa_wasserstein": "AUC DSA (eigenvalue Wasserstein)",
    "equivdyn_distance": "AUC equivdyn distance",
    "equivdyn_statistic": "AUC equivdyn statistic",
    "equivdyn_1_minus_p": "AUC equivdyn 1-p",
}

Runs = list[NDArray[np.float64]]
Scorer = Callable[[Runs, Runs, int], dict[str, float]]

log = logging.getLogger("dsa_head_to_head")


def auc(positive: ArrayLike, negative: ArrayLike) -> float:
    """Mann-Whitney AUC: P(positive score > negative score), ties counting 1/2."""
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auc needs at least one score on each side")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("auc needs finite scores")
    greater = np.count_nonzero(pos[:, None] > neg[None, :])
    ties = np.count_nonzero(pos[:, None] == neg[None, :])
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def dsa_scorer(score_method: str) -> Scorer:
    """DSA distance between the two sides, every seed's ``M`` trajectories pooled as trials."""

    def score(a: Runs, b: Runs, index: int) -> dict[str, float]:
        import torch
        from DSA import DSA

        torch.manual_seed(index)  # the Procrustes optimiser's random initialisation
        return {f"dsa_{score_method}": float(DSA(np.concatenate(a), np.concatenate(b), score_method=score_method, **DSA_FIT).fit_score())}

    return score


def equivdyn_scorer(a: Runs, b: Runs, index: int) -> dict[str, float]:
    """equivdyn's verdict on all seeds of the two sides."""
    v = verdict.compare_runs(a, b, seed=VERDICT_SEED, alpha=ALPHA)
    return {
        "equivdyn_distance": v.distance,
        "equivdyn_statistic": v.statistic,
        "equivdyn_1_minus_p": 1.0 - v.p_value,
        "equivdyn_reject": float(v.non_conjugate),
    }


SCORERS: dict[str, Scorer] = {**{f"dsa_{m}": dsa_scorer(m) for m in DSA_SCORES}, "equivdyn": equivdyn_scorer}


def run_cell(
    family: str, knobs: dict[str, float], n_pairs: int, n_seeds: int, seed: int, earlier: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Scores, errors and wall times of every method on pairs ``0 .. n_pairs-1`` of one cell.

    With ``earlier`` (the same cell of an earlier run with the same settings), DSA's scores,
    errors and times are taken from it and only equivdyn is run again.
    """
    reused = [] if earlier is None else [name for name in SCORERS if name.startswith("dsa_")]
    scores: list[dict[str, float]] = []
    errors: list[dict[str, Any]] = [e for e in (earlier or {}).get("errors", []) if e["method"] in reused]
    seconds: dict[str, list[float]] = {name: list(earlier["seconds"][name]) if name in reused else [] for name in SCORERS}
    for i in range(n_pairs):
        a, b = calibration.generate_pair(
            family, n_seeds=n_seeds, n_inits=N_INITS, n_steps=N_STEPS, seed=seed, index=i, **knobs
        )
        row: dict[str, float] = {}
        if earlier is not None:
            row.update({k: v for k, v in earlier["scores"][i].items() if k.startswith("dsa_")})
        for name, scorer in SCORERS.items():
            if name in reused:
                continue
            start = time.perf_counter()
            try:
                values = scorer(a, b, i)
            except Exception as exc:  # a failure of either package is recorded, not fatal
                values = {}
                errors.append({"pair": i, "method": name, "error": f"{type(exc).__name__}: {exc}"})
            seconds[name].append(time.perf_counter() - start)
            for key, value in values.items():
                if np.isfinite(value):
                    row[key] = float(value)
                else:
                    errors.append({"pair": i, "method": name, "error": f"non-finite {key}: {value}"})
        scores.append(row)
    log.info("%s %s: %d pairs, %d errors", family, knobs, n_pairs, len(errors))
    return {"family": family, "knobs": knobs, "scores": scores, "errors": errors, "seconds": seconds}


def column(cell: dict[str, Any], key: str) -> NDArray[np.float64]:
    """One score over the pairs of a cell (NaN where the method failed)."""
    return np.array([row.get(key, np.nan) for row in cell["scores"]], dtype=np.float64)


def rate(cell: dict[str, Any]) -> dict[str, Any]:
    """equivdyn's rejection rate on a cell, with its 95 % Wilson interval (failures count as no rejection)."""
    reject = np.nan_to_num(column(cell, "equivdyn_reject"))
    k, n = int(reject.sum()), reject.size
    return {"rejections": k, "pairs": n, "rate": k / n, "interval": list(calibration.wilson_interval(k, n))}


def summarise(conjugate: dict[str, Any], shifted: dict[float, dict[str, Any]]) -> dict[str, Any]:
    """AUCs (over the finite scores of each cell), power, type-I error and time per comparison."""
    aucs: dict[str, dict[str, float | None]] = {}
    for delta, cell in shifted.items():
        aucs[str(delta)] = {}
        for key in COLUMNS:
            pos, neg = column(cell, key), column(conjugate, key)
            pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
            aucs[str(delta)][key] = auc(pos, neg) if pos.size and neg.size else None
    cells = [conjugate, *shifted.values()]
    seconds = {name: float(np.mean([t for c in cells for t in c["seconds"][name]])) for name in SCORERS}
    return {
        "auc": aucs,
        "power": {str(delta): rate(cell) for delta, cell in shifted.items()},
        "type_i": rate(conjugate),
        "seconds_per_comparison": seconds,
        "errors": sum(len(c["errors"]) for c in cells),
    }


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of the run, including the DSA defaults left in place."""
    from DSA import DMD, DSA

    def defaults(fn: Callable[..., Any], names: tuple[str, ...]) -> dict[str, Any]:
        params = inspect.signature(fn).parameters
        return {n: params[n].default for n in names}

    return {
        "data": "SYNTHETIC: equivdyn.calibration known-answer suite",
        "conjugate_family": CONJUGATE_FAMILY,
        "non_conjugate_family": SHIFT_FAMILY,
        "deltas": list(DELTAS),
        "pairs_per_cell": args.pairs,
        "seeds_per_side": args.seeds,
        "n_inits": N_INITS,
        "n_steps": N_STEPS,
        "seed": args.seed,
        "dsa": {
            "package": f"dsa-metric {version('dsa-metric')}",
            "data": "all seeds of each side pooled, [S * M, T, D] trials",
            "fit": DSA_FIT,
            "score_methods": list(DSA_SCORES),
            "dmd_defaults": defaults(DMD.__init__, ("delay_interval", "lamb")),
            "similarity_defaults": defaults(DSA.__init__, ("iters", "lr")),
            "optimiser_seed": "torch.manual_seed(pair index)",
        },
        "equivdyn": {
            "call": f"verdict.compare_runs(a, b, seed={VERDICT_SEED}, alpha={ALPHA})",
            "data": "all seeds of each side",
            "defaults": verdict.VERDICT_DEFAULTS,
        },
        "torch_threads": 1,
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown report of a run."""
    s, summary = result["settings"], result["summary"]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def fmt_rate(r: dict[str, Any]) -> str:
        return f"{r['rate']:.2f} [{r['interval'][0]:.2f}, {r['interval'][1]:.2f}] ({r['rejections']}/{r['pairs']})"

    head = ["delta", *COLUMNS.values(), f"equivdyn power at alpha={ALPHA} [95% CI]"]
    lines = [
        f"DSA vs equivdyn on SYNTHETIC calibration pairs: {s['pairs_per_cell']} pairs per cell, "
        f"conjugate family `{s['conjugate_family']}`, non-conjugate family `{s['non_conjugate_family']}`.",
        f"DSA ({s['dsa']['package']}): all seeds per side pooled as trials, n_delays={DSA_FIT['n_delays']}, rank={DSA_FIT['rank']}, "
        f"iters={s['dsa']['similarity_defaults']['iters']}, lr={s['dsa']['similarity_defaults']['lr']}. "
        f"equivdyn: {s['seeds_per_side']} seeds per side, automatic settings.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for delta in DELTAS:
        row = [fmt(summary["auc"][str(delta)][key]) for key in COLUMNS]
        lines.append(f"| {delta:g} | " + " | ".join(row) + f" | {fmt_rate(summary['power'][str(delta)])} |")
    t = summary["seconds_per_comparison"]
    lines += [
        "",
        f"equivdyn type-I error on `{s['conjugate_family']}` at alpha={ALPHA}: {fmt_rate(summary['type_i'])}",
        "Wall time per comparison (mean, one thread, "
        + (f"DSA's measured in {s['dsa']['scores_from']}): " if "scores_from" in s["dsa"] else "measured in the same run): ")
        + ", ".join(f"{name} {t[name]:.3f} s" for name in SCORERS),
        f"Failed comparisons: {summary['errors']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100, help="pairs per cell (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per side for equivdyn (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration suite (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file with every number and the settings")
    parser.add_argument(
        "--reuse-dsa",
        type=Path,
        default=None,
        help="JSON of an earlier run with the same settings: take DSA's scores from it and run only equivdyn again",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(1)
    run_settings = settings(args)  # imports DSA before any timing
    cells: dict[str, Any] = {}
    if args.reuse_dsa is not None:
        earlier = read_json_result(args.reuse_dsa)
        for key in ("pairs_per_cell", "seeds_per_side", "seed", "n_inits", "n_steps", "deltas", "dsa"):
            if earlier["settings"].get(key) != run_settings[key]:
                raise SystemExit(f"--reuse-dsa {args.reuse_dsa}: its setting {key!r} differs from this run's")
        cells = earlier["cells"]
        run_settings["dsa"]["scores_from"] = f"{args.reuse_dsa.name} (an earlier run with the same settings)"
    start = time.perf_counter()
    conjugate = run_cell(CONJUGATE_FAMILY, {}, args.pairs, args.seeds, args.seed, cells.get("conjugate"))
    shifted = {
        delta: run_cell(SHIFT_FAMILY, {"delta": delta}, args.pairs, args.seeds, args.seed, cells.get(f"delta={delta}"))
        for delta in DELTAS
    }
    result = {
        "settings": run_settings,
        "summary": summarise(conjugate, shifted),
        "cells": {"conjugate": conjugate, **{f"delta={d}": c for d, c in shifted.items()}},
        "wall_seconds": time.perf_counter() - start,
    }
    print(table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, result)
    return result


if __name__ == "__main__":
    main()
