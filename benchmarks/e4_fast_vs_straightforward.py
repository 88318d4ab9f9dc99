"""Benchmark: E4's fast ensemble trainer against the straightforward per-initialisation recipe.

Trains the same (setup, seed) ensemble at the paper's sizes twice,

(a) with the shipped fast trainer (``equivdyn.experiments.e4.train_ensemble``): all
    initialisations batched, only the last position computed, keys and values tabulated
    per token, a hand-written backward pass over the reduced graph, and
(b) with ``train_reference``: the paper's recipe, one ``nn.Module`` + ``torch.optim.AdamW``
    run per initialisation on whole sequences, the metrics from separate forward passes,

times both with ``time.perf_counter``, checks that both record the same MLP output weights
(float64 records, largest difference over all steps at most 1e-9 in float64) and the
same losses, and prints wall times and the speed ratio (b)/(a).  Both run with the same
intra-op thread count.  With ``--reference-inits k`` (k < n_inits) only the first k
initialisations run through (b); its time is then scaled by n_inits/k, which the output
says, and only those k are compared.

Usage::

    python benchmarks/e4_fast_vs_straightforward.py
    python benchmarks/e4_fast_vs_straightforward.py --setup constrained --reference-inits 3
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import torch

from equivdyn.experiments.e4 import trainer as e4

# Largest difference accepted between the two trainers, per training dtype.
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}

log = logging.getLogger("e4_fast_vs_straightforward")


def fast_trainer_flop(params: dict[str, Any]) -> float:
    """Floating-point operations of the fast trainer's matrix products for one run (multiply-add = 2)."""
    d, heads, d_head, d_mlp, vocab = params["d_model"], params["n_heads"], params["d_head"], params["d_mlp"], params["p"] + 1
    n_pairs = params["p"] ** 2
    n_train = int(params["train_fraction"] * n_pairs)
    forward = 2 * (heads * d_head * d + 2 * d * d_mlp + d * vocab)  # W_O, W_in, W_out, W_U per example
    passes = params["n_steps"] + 1  # one training pass per step plus the last state's
    per_member = passes * n_train * 3 * forward + params["n_steps"] * (n_pairs - n_train) * forward
    return float(params["n_inits"] * per_member)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", choices=e4.SETUPS, default="grokking")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-inits", type=int, default=e4.DEFAULTS["n_inits"])
    parser.add_argument("--n-steps", type=int, default=e4.DEFAULTS["n_steps"])
    parser.add_argument("--dtype", choices=e4.DTYPES, default="float64")
    parser.add_argument("--threads", type=int, default=e4.TRAIN_THREADS, help="intra-op threads of both trainers")
    parser.add_argument(
        "--reference-inits", type=int, default=None, help="initialisations run through (b) (default: all; time scaled)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    params = e4.check_params(
        {
            "setup": args.setup,
            "seed": args.seed,
            "n_inits": args.n_inits,
            "n_steps": args.n_steps,
            "dtype": args.dtype,
            "observable_dtype": "float64",  # compare the weights as trained, not rounded to float32
        }
    )
    ref_inits = args.n_inits if args.reference_inits is None else min(args.reference_inits, args.n_inits)
    # One short untimed run each, so that neither pays for first-call set-up.
    warm = {**params, "n_inits": 1, "n_steps": 2}
    e4.train_ensemble(warm, threads=args.threads)
    e4.train_reference(warm, threads=args.threads)

    start = time.perf_counter()
    fast = e4.train_ensemble(params, threads=args.threads)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    reference = e4.train_reference({**params, "n_inits": ref_inits}, threads=args.threads)
    t_ref_measured = time.perf_counter() - start
    t_ref = t_ref_measured * args.n_inits / ref_inits

    w_fast = fast.observables["mlp_out"][:ref_inits]
    w_ref = reference.observables["mlp_out"]
    diff_all = float(np.abs(w_fast - w_ref).max())
    diff_last = float(np.abs(w_fast[:, -1] - w_ref[:, -1]).max())
    loss_diff = max(
        float(np.abs(fast.metrics[name][:ref_inits] - reference.metrics[name]).max()) for name in ("train_loss", "test_loss")
    )
    acc_same = all(
        np.array_equal(fast.metrics[name][:ref_inits], reference.metrics[name]) for name in ("train_accuracy", "test_accuracy")
    )
    flop = fast_trainer_flop(params)

    print(
        f"E4 {args.setup}, seed {args.seed}, {args.n_inits} initialisations, {args.n_steps} steps, p {params['p']}, "
        f"d_model {params['d_model']}, {args.dtype}, {args.threads} thread(s), torch {torch.__version__}"
    )
    print(f"{'trainer':<44}{'wall [s]':>10}")
    print(f"{'(a) fast ensemble (shipped)':<44}{t_fast:>10.2f}")
    if ref_inits == args.n_inits:
        print(f"{'(b) straightforward recipe':<44}{t_ref:>10.2f}")
    else:
        print(f"{f'(b) straightforward recipe, {ref_inits} inits measured':<44}{t_ref_measured:>10.2f}")
        print(f"{f'(b) scaled to {args.n_inits} initialisations':<44}{t_ref:>10.2f}")
    print(f"speed ratio (b)/(a): {t_ref / t_fast:.2f}")
    print(
        f"fast trainer: {flop / 1e12:.2f} TFLOP in its matrix products, "
        f"{flop / t_fast / 1e9:.0f} GFLOP/s over the whole run"
    )
    print(f"max |W_out difference|: {diff_all:.3e} over all steps, {diff_last:.3e} after step {args.n_steps}")
    print(f"max |loss difference|: {loss_diff:.3e}; accuracies identical: {acc_same}")
    print(
        f"last step, mean over initialisations: train accuracy {fast.metrics['train_accuracy'][:, -1].mean():.3f}, "
        f"test accuracy {fast.metrics['test_accuracy'][:, -1].mean():.3f}"
    )
    assert diff_all <= TOLERANCE[args.dtype], f"the trainers disagree: max weight difference {diff_all:.3e}"
    assert loss_diff <= TOLERANCE[args.dtype], f"the trainers disagree: max loss difference {loss_diff:.3e}"
    return {"fast_s": t_fast, "reference_s": t_ref, "ratio": t_ref / t_fast, "max_abs_diff": diff_all}


if __name__ == "__main__":
    main()
