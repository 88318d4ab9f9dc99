"""Wall time of Snakemake when there is nothing, or only a plan, to make.

Prints the median (and range) over repeats of

  (a) `snakemake all -n` on tests/tiny.yaml with every result up to date,
  (b) `snakemake all` on tests/tiny.yaml with nothing to do (a no-op run),
  (c) `snakemake all -n` of the default config (config.yaml), no results present,
  (d) `snakemake all -n --profile profiles/paper`, no results present.

Each runs in a scratch copy of the workflow; (a) and (b) first build the tiny results
there (a few minutes), unless --built names a copy that has them.  The target for (d) is
under 10 s on a 2-core machine.

    python benchmarks/noop.py [--repeats 5] [--built DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import copy_workflow, run_snakemake  # noqa: E402  (the tests' workflow copy and runner)


def snakemake(workdir: Path, *args: str) -> str:
    proc = run_snakemake(workdir, *args, check=False)
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}")
    return proc.stdout


def timed(workdir: Path, repeats: int, *args: str, expect: str = "") -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = snakemake(workdir, *args)
        times.append(time.perf_counter() - start)
        if expect and expect not in out:
            sys.exit(f"snakemake {' '.join(args)}: expected {expect!r} in its output:\n{out[-3000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--built", type=Path, help="a workflow copy with the tiny results built")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="noop-") as tmp:
        scratch = Path(tmp)
        tiny = ("all", "--configfile", "tests/tiny.yaml")
        if args.built:
            built = args.built.resolve()
        else:
            built = copy_workflow(scratch / "tiny" / "wf")
            print("building the tiny results ...", flush=True)
            snakemake(built, *tiny)
        fresh = copy_workflow(scratch / "fresh" / "wf")
        cases = [
            ("(a) tiny, up to date: snakemake all -n", built, (*tiny, "-n"), "Nothing to be done"),
            ("(b) tiny, no-op run: snakemake all", built, tiny, "Nothing to be done"),
            ("(c) default config, plan only: snakemake all -n", fresh, ("all", "-n"), "Job stats"),
            (
                "(d) paper profile, plan only: snakemake all -n --profile profiles/paper",
                fresh,
                ("all", "-n", "--profile", "profiles/paper"),
                "Job stats",
            ),
        ]
        print(f"median of {args.repeats} runs, wall time in seconds (min-max)")
        for name, workdir, cmd, expect in cases:
            times = timed(workdir, args.repeats, *cmd, expect=expect)
            print(f"{name:<75} {statistics.median(times):6.2f}  ({min(times):.2f}-{max(times):.2f})", flush=True)


if __name__ == "__main__":
    main()
