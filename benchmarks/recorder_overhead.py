"""Cost of ``equivdyn.Recorder`` recording the output layer after every optimiser step (goal: at most 5 %).

Measured side by side in one run, on CPU, for

* LeNet-5 on MNIST-shaped batches of 60 (real MNIST training images when the file is found:
  ``--mnist PATH``, else ``data/mnist.npz`` then ``../shared/data/mnist.npz`` beside the
  repository; otherwise SYNTHETIC random tensors of MNIST's shape);
* ResNet-20 on CIFAR-10-shaped batches of 128 (always SYNTHETIC random tensors of
  CIFAR-10's shape: there is no CIFAR-10 offline; timing does not depend on pixel values).

Each network is trained as ``M`` perturbed copies side by side (``equivdyn.perturbed_copies``,
scale 1e-3; ``M`` from ``--copies``), every copy with SGD (lr 0.01, momentum 0.9), all
copies on the same batch.  Blocks of ``--steps`` steps WITH the recorder (observable: the
output layer's module, weight then bias; a snapshot and the copies' losses after every
step) alternate with blocks of the same loop WITHOUT it (ABAB...), so that drift in the
machine's load hits both alike.  Both arms do the same training work (losses are kept as
detached tensors in both); the recording arm adds only ``rec.snapshot(loss=...)``.  Each
block's time per step is its wall time over its steps; the table gives the median over the
``--blocks`` blocks of each arm (the JSON also has the means, in which the recorder's
occasional buffer flushes are amortised).  By default a block is one step: on a loaded
machine, the finer the interleaving the less the two arms differ by chance (with blocks of
25 LeNet steps the ratio wandered by +-10 % between runs; with single steps, by ~1 %).
Warm-up steps of both arms run first and are not timed.  The recorder's creation (which
records step 0) and its ``close`` (the last flush, checksums, rename) are timed apart.

On a loaded machine the difference of two step times is noisy (several %, either sign);
so the time spent inside ``rec.snapshot`` is also timed directly in the recording arm, and
its mean over the step time without the recorder is given as the "direct" overhead (it
misses indirect costs, e.g. on caches, that the ratio would catch on a quiet machine).

Bytes per recorded step on disk = final file size / number of snapshots (step 0, warm-up
and timed ones; the file's metadata, steps and losses included); raw = ``M * D * 4`` (the
float32 observable alone).  Trajectory files go to a temporary directory, removed at the end.

Usage::

    python benchmarks/recorder_overhead.py                     # defaults: about 3 minutes
    python benchmarks/recorder_overhead.py --models lenet --copies 1 --steps 25 --blocks 20
    python benchmarks/recorder_overhead.py --steps lenet=1,resnet20=2 --blocks lenet=400,resnet20=5

``--steps``, ``--blocks`` and ``--warmup`` take one number for every model or
``model=N`` pairs (the defaults fill in the models not named).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from equivdyn._io import write_json_atomic
from equivdyn.models import MODELS, build_model, final_layer
from equivdyn.recorder import Recorder, perturbed_copies

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL_PERCENT = 5.0
BATCH = {"lenet": 60, "resnet20": 128}
#: Steps per block, blocks per arm and untimed warm-up steps per arm, by model (a ResNet-20
#: step at batch 128 takes ~0.3-1 s on one CPU thread, LeNet-5 at batch 60 ~15-20 ms).
DEFAULT_STEPS = {"lenet": 1, "resnet20": 1}
DEFAULT_BLOCKS = {"lenet": 250, "resnet20": 10}
DEFAULT_WARMUP = {"lenet": 10, "resnet20": 1}
MNIST_CANDIDATES = (ROOT / "data" / "mnist.npz", ROOT.parent / "shared" / "data" / "mnist.npz")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
N_BATCHES = 8  # distinct batches cycled through (a real loader gives new tensors every step)
LR, MOMENTUM, SCALE, SEED = 0.01, 0.9, 1e-3, 0


def per_model(option: str, text: str, models: list[str], defaults: dict[str, int], least: int) -> dict[str, int]:
    """``"50"`` (every model) or ``"lenet=50,resnet20=2"`` (per model; ``defaults`` for the rest)."""
    values = {name: defaults[name] for name in models}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.rpartition("=")
        if sep and name not in MODELS:
            raise SystemExit(f"{option}: unknown model {name!r} (known: {', '.join(MODELS)})")
        try:
            number = int(value)
        except ValueError:
            raise SystemExit(f"{option}: {item!r} is not N or model=N") from None
        for key in [name] if sep else models:
            values[key] = number
    if any(v < least for v in values.values()):
        raise SystemExit(f"{option}: every value must be >= {least}")
    return values


def find_mnist(given: Path | None) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise SystemExit(f"--mnist {given}: no such file")
        return given
    return next((p for p in MNIST_CANDIDATES if p.is_file()), None)


def batches(name: str, mnist: Path | None) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    """``N_BATCHES`` (images, labels) batches for ``name``, and where they come from."""
    info, size = MODELS[name], BATCH[name]
    generator = torch.Generator().manual_seed(SEED)
    if name == "lenet" and mnist is not None:
        with np.load(mnist) as data:
            x = torch.from_numpy(data["x_train"][: N_BATCHES * size].astype(np.float32) / 255.0)
            y = torch.from_numpy(data["y_train"][: N_BATCHES * size].astype(np.int64))
        x = ((x - MNIST_MEAN) / MNIST_STD).unsqueeze(1)
        source = f"real MNIST training images ({mnist})"
    else:
        x = torch.randn(N_BATCHES * size, *info.input_shape, generator=generator)
        y = torch.randint(0, 10, (N_BATCHES * size,), generator=generator)
        source = f"SYNTHETIC random tensors of {info.dataset}'s shape {list(info.input_shape)}"
    return [(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(N_BATCHES)], source


def layer_name(model: torch.nn.Module) -> str:
    """The module name of ``model``'s output layer (as the E3 trainer's ``final_layer``)."""
    layer = final_layer(model)
    return next(name for name, module in model.named_modules() if module is layer)


def measure(name: str, m: int, steps: int, blocks: int, warmup: int, data: list[Any], tmp: Path, buffer: int) -> dict[str, Any]:
    torch.manual_seed(SEED)
    models = perturbed_copies(build_model(name), n=m, scale=SCALE, seed=SEED)
    for model in models:
        model.train()
    optimisers = [torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM) for model in models]
    observable = layer_name(models[0])
    counter = iter(range(10**12))

    def train_step() -> torch.Tensor:
        x, y = data[next(counter) % len(data)]
        losses = []
        for model, opt in zip(models, optimisers):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return torch.stack(losses)

    path = tmp / f"{name}_m{m}.h5"
    start = time.perf_counter()
    rec = Recorder(path, models, observables=[observable], buffer=buffer, params={"benchmark": "recorder_overhead"})
    open_s = time.perf_counter() - start
    snapshots = 1  # step 0
    in_snapshot = [0.0, 0]  # seconds inside rec.snapshot during the timed blocks, and calls

    def without() -> None:
        train_step()

    def with_recorder() -> None:
        nonlocal snapshots
        losses = train_step()
        start = time.perf_counter()
        rec.snapshot(loss=losses)
        in_snapshot[0] += time.perf_counter() - start
        in_snapshot[1] += 1
        snapshots += 1

    def block(fn: Callable[[], None], n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / max(n, 1)

    try:
        block(without, warmup)
        block(with_recorder, warmup)
        in_snapshot[:] = [0.0, 0]
        times: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(blocks):  # ABAB...
            times["without"].append(block(without, steps))
            times["with"].append(block(with_recorder, steps))
        start = time.perf_counter()
        rec.close()
        close_s = time.perf_counter() - start
    except BaseException:
        rec.discard()
        raise
    size = path.stat().st_size
    path.unlink()
    dim = sum(p.numel() for p in final_layer(models[0]).parameters())
    without_s, with_s = statistics.median(times["without"]), statistics.median(times["with"])
    overhead = 100.0 * (with_s / without_s - 1.0)
    mean_without_s, mean_with_s = statistics.fmean(times["without"]), statistics.fmean(times["with"])
    snapshot_s = in_snapshot[0] / in_snapshot[1]
    return {
        "model": name,
        "batch": BATCH[name],
        "copies": m,
        "observable": observable,
        "dim": dim,
        "steps_per_block": steps,
        "blocks_per_arm": blocks,
        "warmup_steps_per_arm": warmup,
        "step_without_s": without_s,
        "step_with_s": with_s,
        "overhead_percent": overhead,
        "paired_overhead_percent": 100.0 * statistics.median(w / wo - 1.0 for w, wo in zip(times["with"], times["without"])),
        "meets_goal": overhead <= GOAL_PERCENT,
        "mean_step_without_s": mean_without_s,
        "mean_step_with_s": mean_with_s,
        "mean_overhead_percent": 100.0 * (mean_with_s / mean_without_s - 1.0),
        "snapshot_s": snapshot_s,
        "direct_overhead_percent": 100.0 * snapshot_s / without_s,
        "snapshots": snapshots,
        "file_bytes": size,
        "bytes_per_step_on_disk": size / snapshots,
        "raw_bytes_per_step": m * dim * 4,
        "open_s": open_s,
        "close_s": close_s,
        "block_times_s": times,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| model | batch | M | without (ms/step) | with (ms/step) | overhead % | <= 5 % | snapshot (ms) | direct % "
            "| bytes/step on disk | raw bytes/step | close (ms) |"
        ),
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['copies']} | {1e3 * r['step_without_s']:.1f} | {1e3 * r['step_with_s']:.1f} "
            f"| {r['overhead_percent']:+.2f} | {'yes' if r['meets_goal'] else 'NO'} | {1e3 * r['snapshot_s']:.2f} "
            f"| {r['direct_overhead_percent']:.2f} | {r['bytes_per_step_on_disk']:.0f} | {r['raw_bytes_per_step']} "
            f"| {1e3 * r['close_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet,resnet20", help="comma-separated: lenet, resnet20")
    parser.add_argument("--copies", default="1,4", help="comma-separated numbers of copies M")
    parser.add_argument("--steps", default="", help="steps per block: N or lenet=N,resnet20=N (default lenet=1,resnet20=1)")
    parser.add_argument("--blocks", default="", help="timed blocks per arm: N or model=N (default lenet=250,resnet20=10)")
    parser.add_argument("--warmup", default="", help="untimed warm-up steps per arm: N or model=N (default lenet=10,resnet20=1)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--buffer", type=int, default=256, help="the recorder's buffer (snapshots held before a write)")
    parser.add_argument("--mnist", type=Path, default=None, help="MNIST .npz for LeNet (default: searched; else synthetic)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "recorder_overhead.json")
    args = parser.parse_args()
    models = [s.strip() for s in args.models.split(",") if s.strip()]
    unknown = [s for s in models if s not in MODELS]
    if unknown or not models:
        raise SystemExit(f"--models: unknown {unknown} (known: {', '.join(MODELS)})")
    copies = [int(s) for s in args.copies.split(",") if s.strip()]
    if not copies or min(copies) < 1 or args.threads < 1 or args.buffer < 1:
        raise SystemExit("--copies, --threads and --buffer must be >= 1")
    steps = per_model("--steps", args.steps, models, DEFAULT_STEPS, 1)
    blocks = per_model("--blocks", args.blocks, models, DEFAULT_BLOCKS, 1)
    warmups = per_model("--warmup", args.warmup, models, DEFAULT_WARMUP, 0)
    torch.set_num_threads(args.threads)
    mnist = find_mnist(args.mnist)

    begin = time.perf_counter()
    rows, sources = [], {}
    with tempfile.TemporaryDirectory(prefix="recorder_overhead_") as tmp:
        for name in models:
            data, sources[name] = batches(name, mnist)
            print(f"{name}: inputs are {sources[name]}", flush=True)
            for m in copies:
                row = measure(name, m, steps[name], blocks[name], warmups[name], data, Path(tmp), args.buffer)
                rows.append(row)
                print(
                    f"  M={m}: {1e3 * row['step_without_s']:.1f} -> {1e3 * row['step_with_s']:.1f} ms/step "
                    f"({row['overhead_percent']:+.2f} %)",
                    flush=True,
                )
    wall = time.perf_counter() - begin

    text = table(rows)
    print()
    print(f"Recorder overhead, output layer recorded every step (CPU, {args.threads} torch thread(s), goal <= {GOAL_PERCENT:g} %)")
    for name in models:
        print(f"- {name}: {sources[name]}")
    print()
    print(text)
    print()
    print(
        "Step times: median over the blocks of each arm (interleaved, without/with); overhead % = with / without - 1; "
        "snapshot = mean time inside rec.snapshot; direct % = snapshot / without. Steps per block x blocks per arm: "
        + ", ".join(f"{n} {steps[n]} x {blocks[n]}" for n in models)
        + f". Recorder buffer {args.buffer}: when a row records fewer snapshots than that, "
        "all its writing happens in close."
    )
    for r in rows:
        if r["snapshots"] < args.buffer:
            print(f"  ({r['model']} M={r['copies']}: {r['snapshots']} snapshots, written at close)")
    met = sum(r["meets_goal"] for r in rows)
    print(f"{met}/{len(rows)} rows meet the <= {GOAL_PERCENT:g} % goal. Wall time {wall:.0f} s.")

    result = {
        "settings": {
            "models": models,
            "copies": copies,
            "steps_per_block": steps,
            "blocks_per_arm": blocks,
            "warmup_steps_per_arm": warmups,
            "threads": args.threads,
            "buffer": args.buffer,
            "optimiser": {"name": "SGD", "lr": LR, "momentum": MOMENTUM},
            "perturbation": {"scale": SCALE, "seed": SEED},
            "inputs": sources,
            "goal_percent": GOAL_PERCENT,
            "torch": torch.__version__,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        },
        "rows": rows,
        "table": text,
        "wall_seconds": wall,
    }
    if args.out is not None:
        write_json_atomic(args.out, result)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
