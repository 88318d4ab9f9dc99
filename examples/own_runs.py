"""Compare your own training runs with equivdyn: SGD vs Adam, and learning rates.

A small network (784-32-10, tanh) is trained on MNIST (real data: ``data/mnist.npz``, or
``--mnist PATH``; its checksums are verified as the workflow's data stage does) in three
setups (SGD with learning rates 0.1, 0.05 and 0.01, Adam with 0.001), each seed recorded to its own trajectory file with ``equivdyn.Recorder``: five
perturbed copies of the seed's initialisation trained side by side, the output layer
``fc2`` recorded after every step.  The recording takes three lines of the training loop
(marked ``# equivdyn``).

Everything, through the Python API (records every run, then prints the verdicts)::

    python examples/own_runs.py --out runs

One run, as a command template of the workflow's ``custom`` section calls it::

    python examples/own_runs.py --setup adam_lr0.001 --seed 0 --file runs/adam_lr0.001/s0.h5

Then compare any two folders from the command line::

    equivdyn compare runs/sgd_lr0.1 --vs runs/adam_lr0.001 --plot sgd_vs_adam.png
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import equivdyn
from equivdyn.data import mnist

#: Each setup: optimiser and learning rate.
SETUPS = {
    "sgd_lr0.1": ("sgd", 0.1),
    "sgd_lr0.05": ("sgd", 0.05),
    "sgd_lr0.01": ("sgd", 0.01),
    "adam_lr0.001": ("adam", 1e-3),
}
#: Perturbed copies of each seed's initialisation, and their relative perturbation.
N_COPIES, SCALE = 5, 1e-3
#: Optimiser steps per run, examples per step, and training images used.
N_STEPS, BATCH, N_TRAIN = 100, 60, 6000


def load_mnist(path: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``N_TRAIN`` training images (scaled to [0, 1]) and labels of a verified MNIST copy."""
    candidates = [Path(path)] if path else [Path("data/mnist.npz"), Path("../shared/data/mnist.npz")]
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise SystemExit(f"no MNIST copy at {', '.join(map(str, candidates))}; pass --mnist PATH")
    arrays = mnist.load_source(found)
    mnist.verify(arrays, found)  # the published checksums, as the workflow's data stage checks them
    x = torch.from_numpy(arrays["x_train"][:N_TRAIN].reshape(N_TRAIN, -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(arrays["y_train"][:N_TRAIN].astype(np.int64))


def train(setup: str, seed: int, out: str | Path, x: torch.Tensor, y: torch.Tensor) -> None:
    """Train ``N_COPIES`` perturbed copies of seed ``seed``'s network in ``setup``; record them to ``out``."""
    optimiser, lr = SETUPS[setup]
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(784, 32), act=nn.Tanh(), fc2=nn.Linear(32, 10)))
    models = equivdyn.perturbed_copies(model, n=N_COPIES, scale=SCALE, seed=seed)  # equivdyn
    make = torch.optim.SGD if optimiser == "sgd" else torch.optim.Adam
    optimisers = [make(m.parameters(), lr=lr) for m in models]
    order = np.random.default_rng(seed).permutation(len(x))
    run = {"setup": setup, "optimiser": optimiser, "lr": lr, "seed": seed}
    with equivdyn.Recorder(out, models, observables=["fc2"], params=run) as rec:  # equivdyn
        for step in range(N_STEPS):
            batch = order[step * BATCH : (step + 1) * BATCH]
            losses = []
            for m, opt in zip(models, optimisers):
                opt.zero_grad()
                loss = F.cross_entropy(m(x[batch]), y[batch])
                loss.backward()
                opt.step()
                losses.append(loss.item())
            rec.snapshot(loss=losses)  # equivdyn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder of the runs (default runs)")
    parser.add_argument("--seeds", type=int, default=6, help="seeds per setup (default 6; sgd_lr0.1 gets twice as many)")
    parser.add_argument("--mnist", default=None, help="MNIST .npz or IDX folder (default data/mnist.npz)")
    parser.add_argument("--setup", choices=sorted(SETUPS), help="record only this setup's run ...")
    parser.add_argument("--seed", type=int, help="... of this seed ...")
    parser.add_argument("--file", type=Path, help="... to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = load_mnist(args.mnist)
    if args.setup is not None or args.file is not None:
        if args.setup is None or args.seed is None or args.file is None:
            parser.error("one run needs --setup, --seed and --file")
        train(args.setup, args.seed, args.file, x, y)
        return

    start = time.perf_counter()
    files: dict[str, list[Path]] = {}
    for setup in SETUPS:
        n = 2 * args.seeds if setup == "sgd_lr0.1" else args.seeds
        files[setup] = [args.out / setup / f"s{seed}.h5" for seed in range(n)]
        for seed, path in enumerate(files[setup]):
            train(setup, seed, path, x, y)
    print(f"recorded {sum(map(len, files.values()))} runs in {time.perf_counter() - start:.1f} s")

    sgd = files["sgd_lr0.1"]
    questions = {
        "SGD vs Adam": (sgd[: args.seeds], files["adam_lr0.001"]),
        "SGD lr 0.1 vs lr 0.05": (sgd[: args.seeds], files["sgd_lr0.05"]),
        "SGD lr 0.1 vs lr 0.01": (sgd[: args.seeds], files["sgd_lr0.01"]),
        f"SGD lr 0.1, seeds 0-{args.seeds - 1} vs {args.seeds}-{2 * args.seeds - 1} (same setup)": (sgd[: args.seeds], sgd[args.seeds :]),
    }
    for question, (a, b) in questions.items():
        start = time.perf_counter()
        verdict = equivdyn.compare_runs(a, b)
        print(f"\n{question} ({time.perf_counter() - start:.1f} s):\n{verdict.summary()}")


if __name__ == "__main__":
    main()
