"""Benchmark: E2's batched ensemble trainer against the plain per-initialisation loop.

Trains the same (width, seed) ensemble twice on MNIST,

(a) batched, as the workflow does (``equivdyn.experiments.e2.train_ensemble``), and
(b) with ``train_reference``: one ``nn.Module`` + ``torch.optim.SGD`` loop per initialisation,

times both with ``time.perf_counter`` (the best of ``--repeats`` runs), checks that both
give the same output-layer weights, and prints wall times, the speed ratio (b)/(a) and the
largest weight difference.  Both run with the same intra-op thread count.

Usage::

    python benchmarks/e2_batched_vs_loop.py --width 40
    python benchmarks/e2_batched_vs_loop.py --width 5 --repeats 3
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from equivdyn.experiments.e2 import trainer as e2
from equivdyn.store import Trajectory

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = ROOT.parent / "shared/data/mnist.npz"
# Largest weight difference accepted between the two trainers, per training dtype.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}

log = logging.getLogger("e2_batched_vs_loop")


def best_time(train: Callable[[], Trajectory], repeats: int) -> tuple[float, Trajectory]:
    """Shortest wall time of ``repeats`` calls of ``train`` and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = train()
        times.append(time.perf_counter() - start)
    log.info("wall times %s s", ", ".join(f"{t:.3f}" for t in times))
    return min(times), result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="MNIST .npz (default: %(default)s)")
    parser.add_argument("--width", type=int, default=e2.DEFAULTS["width"])
    parser.add_argument("--seed", type=int, default=e2.DEFAULTS["seed"])
    parser.add_argument("--n-inits", type=int, default=10)
    parser.add_argument("--n-steps", type=int, default=None, help="default: one epoch")
    parser.add_argument("--optimizer", choices=e2.OPTIMIZERS, default="sgd")
    parser.add_argument("--dtype", choices=e2.DTYPES, default="float32")
    parser.add_argument("--threads", type=int, default=e2.TRAIN_THREADS, help="intra-op threads of both trainers")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each trainer; the best time counts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    with np.load(args.mnist, allow_pickle=False) as npz:
        data = tuple(npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    params = e2.check_params(
        {
            "width": args.width,
            "seed": args.seed,
            "n_inits": args.n_inits,
            "n_steps": args.n_steps,
            "optimizer": args.optimizer,
            "dtype": args.dtype,
            "lr": e2.DEFAULTS["lr"] if args.optimizer == "sgd" else 1e-3,
        }
    )
    # One short untimed run each, so that neither pays for first-call set-up.
    warm = {**params, "n_inits": 1, "n_steps": 2}
    e2.train_ensemble(*data, warm, threads=args.threads)
    e2.train_reference(*data, warm, threads=args.threads)

    t_batched, batched = best_time(lambda: e2.train_ensemble(*data, params, threads=args.threads), args.repeats)
    t_loop, loop = best_time(lambda: e2.train_reference(*data, params, threads=args.threads), args.repeats)
    diff = float(np.abs(batched.observables["output_weights"] - loop.observables["output_weights"]).max())
    n_steps = batched.steps.size

    print(
        f"E2 width {args.width}, seed {args.seed}, {args.n_inits} initialisations, {n_steps} steps, "
        f"{args.optimizer}, {args.dtype}, {args.threads} thread(s), torch {torch.__version__}, "
        f"best of {args.repeats}"
    )
    print(f"{'trainer':<34}{'wall [s]':>10}")
    print(f"{'(a) batched ensemble':<34}{t_batched:>10.3f}")
    print(f"{'(b) per-initialisation loops':<34}{t_loop:>10.3f}")
    print(f"speed ratio (b)/(a): {t_loop / t_batched:.2f}")
    print(f"max |weight difference|: {diff:.3e}")
    assert diff <= TOLERANCE[args.dtype], f"the trainers disagree: max weight difference {diff:.3e}"
    return {"batched_s": t_batched, "loop_s": t_loop, "ratio": t_loop / t_batched, "max_abs_diff": diff}


if __name__ == "__main__":
    main()
