"""Time ``equivdyn.compare_runs`` on 2 x 8 seeds of ``[10, 100, 64]`` (goal: at most 2 s).

The data are the calibration suite's ``lift`` family (SYNTHETIC: a 3-dimensional map seen
through a nonlinear change of coordinates and a random lift to 64 observables).  Measured
side by side in one run: the verdict, and the procedure it replaces (rank-10, 4-delay
spectra of every seed and the paired label-permutation test with 10,000 relabellings).
Prints the median of ``--repeats`` runs of each and the ratio to the 2 s budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# One BLAS thread, as the workflow runs every job: on 2 cores shared with other work, a
# multi-threaded BLAS on these small matrices is many times slower, not faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from equivdyn import calibration, compare_runs, permutation_test  # noqa: E402
from equivdyn.koopman import KoopmanEstimator  # noqa: E402

BUDGET_S = 2.0


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    a, b = calibration.generate_pair("lift", n_seeds=8, n_inits=10, n_steps=100, n_obs=64)
    assert a[0].shape == (10, 100, 64)

    def baseline() -> None:
        est = KoopmanEstimator(n_delays=4, rank=10)
        permutation_test([est.fit(x).eigenvalues for x in a], [est.fit(x).eigenvalues for x in b], n_permutations=10000)

    verdict_s = median_time(lambda: compare_runs(a, b), args.repeats)
    baseline_s = median_time(baseline, args.repeats)
    print(f"compare_runs, 2 x 8 seeds of [10, 100, 64]: {verdict_s:.3f} s (median of {args.repeats})")
    print(f"rank-10 spectra + paired permutation test:  {baseline_s:.3f} s")
    print(f"verdict / budget ({BUDGET_S:g} s): {verdict_s / BUDGET_S:.2f}; verdict / old procedure: {verdict_s / baseline_s:.2f}")


if __name__ == "__main__":
    main()
