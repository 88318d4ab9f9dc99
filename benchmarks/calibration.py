"""How often is the verdict right?  The full known-answer calibration suite (SYNTHETIC data).

For every cell (family x setting x procedure) this generates ``--pairs`` independent
(twice as many for the verdict on conjugate families)
system pairs with a known answer (:mod:`equivdyn.calibration`), applies the procedure at
alpha = 0.05 and reports the rejection rate with its 95 % Wilson interval: the type-I
error on conjugate families, the power on non-conjugate ones.  Procedures:

* ``randomization``: the paper's randomisation control (one seed's rank-10 spectra per side);
* ``permutation_paired`` / ``permutation_unpaired``: the label-permutation test across seeds
  on rank-10, 4-delay spectra (the workflow's comparisons before the verdict);
* ``verdict``: :func:`equivdyn.compare_runs` with its automatic settings.

Writes ``benchmarks/results/calibration.{json,md,png}`` (the table and a power-vs-delta
figure).  ``python benchmarks/calibration.py`` runs the full suite (about 30 minutes on two
cores); ``--pairs 20`` gives a rough version in minutes.
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
os.environ.setdefault("MKL_NUM_THREADS", "1")

from equivdyn import calibration  # noqa: E402

HERE = Path(__file__).resolve().parent
BASELINES = ("randomization", "permutation_paired", "permutation_unpaired")
DELTAS = (0.01, 0.02, 0.05, 0.1)
SEEDS = (4, 6, 8, 16)


def cells() -> list[dict[str, Any]]:
    """Every cell of the full suite: family, procedure and knobs."""
    out: list[dict[str, Any]] = []
    for name in calibration.FAMILIES:
        for proc in (*BASELINES, "verdict"):
            out.append({"family": name, "procedure": proc, "n_seeds": 8})
        if calibration.FAMILIES[name].conjugate:
            out.append({"family": name, "procedure": "verdict", "n_seeds": 16})
    for family in ("shift", "shift_warp"):
        for delta in DELTAS:
            for s in SEEDS:
                if not (delta == 0.05 and s == 8):  # the family's default cell, above
                    out.append({"family": family, "procedure": "verdict", "n_seeds": s, "delta": delta})
    for delta in DELTAS:
        if delta != 0.05:
            out += [{"family": "shift", "procedure": p, "n_seeds": 8, "delta": delta} for p in BASELINES]
    # knob sweeps of the verdict on conjugate families
    out += [{"family": "lift", "procedure": "verdict", "n_seeds": 8, "n_obs": d} for d in (4, 16, 256)]
    out += [{"family": "noise", "procedure": "verdict", "n_seeds": 8, "noise": n} for n in (0.003, 0.03)]
    out += [{"family": "warp_moderate", "procedure": "verdict", "n_seeds": 8, "n_steps": t} for t in (50, 200)]
    out += [{"family": "warp_moderate", "procedure": "verdict", "n_seeds": 8, "n_inits": m} for m in (3, 20)]
    out += [{"family": "shift_warp", "procedure": "verdict", "n_seeds": 8, "noise": 0.01, "delta": 0.05}]
    return out


def run(cell: dict[str, Any], n_pairs: int) -> dict[str, Any]:
    start = time.perf_counter()
    knobs = {k: v for k, v in cell.items() if k not in ("family", "procedure")}
    if cell["procedure"] == "verdict" and calibration.FAMILIES[cell["family"]].conjugate:
        n_pairs *= 2  # a type-I bound of 0.05 needs a tight interval
    result = calibration.run_cell(cell["family"], cell["procedure"], n_pairs=n_pairs, **knobs)
    return {**asdict(result), "rate": result.rate, "seconds": time.perf_counter() - start}


def fmt(row: dict[str, Any]) -> str:
    low, high = row["interval"]
    return f"{row['rate']:.2f} [{low:.2f}, {high:.2f}]"


def tables(rows: list[dict[str, Any]]) -> str:
    """Markdown: the S = 8 comparison of all procedures, the S = 16 verdict, the sweeps."""
    by = {}
    rows = json.loads(json.dumps(rows))  # tuples as lists, as in the saved JSON
    for r in rows:
        defaults = json.loads(json.dumps(calibration.FAMILIES[r["family"]].defaults))  # tuples as lists
        knobs = {k: v for k, v in r["setting"].items() if k not in defaults or v != defaults[k]}
        knobs = {k: v for k, v in knobs.items() if (k, v) not in (("n_inits", 10), ("n_steps", 100))}
        by[(r["family"], r["procedure"], json.dumps(knobs, sort_keys=True))] = r
    procs = (*BASELINES, "verdict")
    lines = [
        "| family | known answer | " + " | ".join(procs) + " | verdict, S = 16 |",
        "| --- | --- | " + " | ".join("---" for _ in procs) + " | --- |",
    ]
    for name, fam in calibration.FAMILIES.items():
        s8 = json.dumps({"n_seeds": 8}, sort_keys=True)
        cells8 = [by.get((name, p, s8)) for p in procs]
        s16 = by.get((name, "verdict", json.dumps({"n_seeds": 16}, sort_keys=True)))
        answer = "conjugate (type-I error)" if fam.conjugate else "not conjugate (power)"
        lines.append(
            f"| `{name}`: {fam.description} | {answer} | "
            + " | ".join(fmt(c) if c else "" for c in cells8)
            + f" | {fmt(s16) if s16 else ''} |"
        )
    lines += ["", "Power of the verdict against a relative shift delta of the principal eigenvalues:", ""]
    lines += ["| family | delta | " + " | ".join(f"S = {s}" for s in SEEDS) + " |", "| --- | --- | " + " | ".join("---" for _ in SEEDS) + " |"]
    for family in ("shift", "shift_warp"):
        for delta in DELTAS:
            entries = []
            for s in SEEDS:
                knobs = {"n_seeds": s} if delta == 0.05 else {"n_seeds": s, "delta": delta}
                c = by.get((family, "verdict", json.dumps(knobs, sort_keys=True)))
                entries.append(fmt(c) if c else "")
            lines.append(f"| `{family}` | {delta} | " + " | ".join(entries) + " |")
    lines += ["", "Baselines against the same shifts (S = 8):", ""]
    lines += ["| delta | " + " | ".join(BASELINES) + " |", "| --- | " + " | ".join("---" for _ in BASELINES) + " |"]
    for delta in DELTAS:
        knobs = json.dumps({"n_seeds": 8} if delta == 0.05 else {"n_seeds": 8, "delta": delta}, sort_keys=True)
        lines.append(f"| {delta} | " + " | ".join(fmt(by[("shift", p, knobs)]) if ("shift", p, knobs) in by else "" for p in BASELINES) + " |")
    lines += ["", "Other settings of the verdict (S = 8):", "", "| family | setting | rate [95 % CI] |", "| --- | --- | --- |"]
    for (family, proc, knobs), r in by.items():
        k = json.loads(knobs)
        extra = {a: v for a, v in k.items() if a != "n_seeds"}
        if proc == "verdict" and k.get("n_seeds") == 8 and extra and "delta" not in extra or (proc == "verdict" and "noise" in extra):
            lines.append(f"| `{family}` | {', '.join(f'{a} = {v}' for a, v in extra.items())} | {fmt(r)} |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, family in zip(axes, ("shift", "shift_warp")):
        for s in SEEDS:
            pts = []
            for r in rows:
                st = r["setting"]
                if r["family"] == family and r["procedure"] == "verdict" and st["n_seeds"] == s and set(st) <= {"n_seeds", "n_inits", "n_steps", *calibration.FAMILIES[family].defaults} and st.get("noise", 0.0) == calibration.FAMILIES[family].defaults.get("noise", 0.0):
                    pts.append((st["delta"], r["rate"], *r["interval"]))
            pts.sort()
            if pts:
                d, rate, low, high = (list(v) for v in zip(*pts))
                below = [max(0.0, x - y) for x, y in zip(rate, low)]
                above = [max(0.0, y - x) for x, y in zip(rate, high)]
                ax.errorbar(d, rate, yerr=[below, above], marker="o", capsize=3, label=f"S = {s}")
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("relative shift delta of the principal eigenvalues")
        ax.set_title(f"{family} (SYNTHETIC, 95 % Wilson CI)", fontsize=9)
    axes[0].set_ylabel("power of the verdict at alpha = 0.05")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100, help="pairs per cell (default 100)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "calibration", help="output prefix")
    parser.add_argument("--replot", action="store_true", help="redraw the table and figure from the JSON of a run")
    parser.add_argument("--procedures", default=",".join((*BASELINES, "verdict")), help="comma-separated procedures to run")
    parser.add_argument("--families", default=",".join(calibration.FAMILIES), help="comma-separated families to run")
    parser.add_argument(
        "--merge", type=Path, default=None, help="JSON of an earlier run whose cells of the other procedures complete the tables"
    )
    args = parser.parse_args()
    from equivdyn._io import write_json_atomic, write_text_atomic

    if args.replot:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        rows, elapsed, args.pairs, n_cells = saved["cells"], saved["seconds"], saved["pairs"], len(saved["cells"])
    else:
        wanted, families = set(args.procedures.split(",")), set(args.families.split(","))
        todo = [c for c in cells() if c["procedure"] in wanted and c["family"] in families]
        n_cells = len(todo)
        start = time.perf_counter()
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(run, todo, [args.pairs] * len(todo)))
        elapsed = time.perf_counter() - start
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.merge is not None:  # cells of an earlier run that this one did not recompute
            def cell_id(r: dict[str, Any]) -> str:
                return json.dumps([r["family"], r["procedure"], r["setting"]], sort_keys=True)

            done = {cell_id(r) for r in rows}
            earlier = json.loads(args.merge.read_text())["cells"]
            rows += [r for r in earlier if cell_id(r) not in done and r["family"] in calibration.FAMILIES]
        write_json_atomic(args.out.with_suffix(".json"), {"pairs": args.pairs, "seconds": elapsed, "cells": rows})
    text = tables(rows) + f"\n{n_cells} cells x {args.pairs} pairs in {elapsed / 60:.1f} min ({args.jobs} processes).\n"
    write_text_atomic(args.out.with_suffix(".md"), text)
    figure(rows, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
