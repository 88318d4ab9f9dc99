"""Benchmark: each experiment's trainer on the CPU and on CUDA, timed side by side, and whether the two record the same trajectory.

Three workloads, each one ensemble trained by the function the workflow's training job calls:

* **E2**: the FCN of width ``--e2-width`` (40) with E2's defaults (10 initialisations,
  SGD lr 0.1, batch 60, float32), one epoch of real MNIST (1000 steps) or ``--e2-steps``,
  by ``e2.trainer.train_ensemble``.  MNIST is ``--mnist PATH``, else the first of
  ``data/mnist.npz``, ``shared/data/mnist.npz`` in the repository and
  ``../shared/data/mnist.npz`` beside it; it is prepared (checksums verified) with
  ``equivdyn.data.mnist.prepare`` into a temporary folder and read with ``mnist.load``.
* **E3**: ResNet-20 with E3's ResNet-20 defaults (3 initialisations, SGD lr 0.1, momentum
  0.9, weight decay 1e-4, batch 128, augmentation, float32), ``--e3-epochs`` epochs (1) of
  a ``--e3-train-subset`` image subset (2,560: 20 steps an epoch), test metrics on
  ``--e3-test-subset`` images (1,000), by ``e3.trainer.train``.  There is no CIFAR-10
  offline: unless ``--cifar10 PATH`` names the real archive (its published MD5s are
  checked), the data are the SYNTHETIC stand-in of ``equivdyn.data.cifar10`` (the
  generator behind ``data: {cifar10: synthetic}``, ``write_synthetic_archive``: class
  patterns plus noise, in CIFAR-10's file format) with exactly as many training and test
  images as the subsets, read through ``cifar10.prepare`` and ``e3.trainer.load_data`` as
  the workflow reads its data.  Its rows are labelled SYNTHETIC; the timing does not depend
  on the pixel values.
* **E4**: the grokking setup with E4's defaults (10 initialisations, 100 steps, p 113,
  float64), by ``e4.train_ensemble``, except that the observable is recorded in float64
  (``observable_dtype``; the default float32 records would round the float64 training's
  differences away).  Training is the same either way.

Every workload runs with seed ``--seed`` (0) for everything the trainers draw
(initialisations, data order, augmentation; E4's data split uses its own ``data_seed``, 0).

**Arms.**  The CPU arm runs with the thread count of the workflow's training jobs: each
trainer's ``TRAIN_THREADS`` (E2 1, E3 1, E4 2, as the experiments' ``train_threads``
declare; ``--threads`` overrides); the CUDA arm (``--device``, default ``cuda``) gets the
same count for its host-side work.  The trainers run on CUDA with deterministic algorithms
(``equivdyn.experiments._torch.reproducible``).  Without a CUDA device the script says so
and stops, unless ``--cpu-only``: then the second arm is the CPU arm again, which must
reproduce the first bit for bit (the trainers promise that for a fixed thread count), so
the whole comparison runs with a tolerance of 0.  Such a run is written to
``gpu_cpu_only.json``, never to ``gpu.json``.

**Timing.**  Wall seconds (``time.perf_counter``) of one call of the trainer per arm,
from before the call until its trajectory is on the host, with ``torch.cuda.synchronize``
before and after on CUDA: moving the data to the device, initialisation, training,
evaluation and copying the records back are included, preparing the data files is not.
Before each timed call, one untimed warm-up call of the same trainer on the same device
trains a tiny version of the workload (1 initialisation, 2 steps; for E3 one epoch of two
batches) so that first-call costs (the CUDA context, cuBLAS/cuDNN handles and kernel
loading, oneDNN's primitives on the CPU) are not timed; ``--no-warmup`` times them too.
One timed run per arm: the speed-up is CPU seconds / CUDA seconds of that single run.

**Agreement.**  Every observable and metric array of the two trajectories ([M, T] or
[M, T, D], float64 as the trainers return them) is compared; steps, metric steps and shapes
must be equal.  Per array: the largest absolute difference; the largest relative difference,
that absolute difference divided by the array's scale, the largest absolute value of the
CPU arm's array; and both at the first, the middle (index (T-1)//2) and the last recorded
step.  The verdict of a workload is whether the relative difference of every array over all
steps is at most the tolerance of its training dtype (:data:`TOLERANCE`): 1e-3 for float32,
1e-8 for float64 (0 for CPU against CPU).  Why these numbers: the CPU kernels (MKL,
oneDNN) and the CUDA ones (cuBLAS, cuDNN) sum in other orders, so after one step the two
differ by rounding, a few units of the dtype's epsilon (1.2e-7, 2.2e-16) relative to the
values; training is chaotic and amplifies such differences step after step (E2's trainer
measured a changed summation order in float32 growing from 1e-8 after one step to 3e-2
after an epoch at width 40).  1e-3 is the size of the relative perturbations that separate
an ensemble's initialisations: a device difference below it is smaller than what the
experiments treat as a perturbation.  float64 gets 1e-8, eight orders above its epsilon and
far below float32's, since its rounding starts 1e9 times smaller.  A wrong computation on
one device (another data order, a missing term) differs already at the first step, by about
lr x gradient relative to the weights (1e-4 to 1e-2); rounding amplified by chaos starts at
1e-7 (float32) and grows.  So read the first / middle / last columns: a small first step
and a growing difference is the dynamics, not a bug, even where the verdict is NO (expect
that of long float32 runs, E2's full epoch among them).  Also given for scale: the "init
spread", the largest difference at the last step between initialisation 0 and the others
of the CPU arm's first observable, relative to the same scale: what the 1e-3 perturbations
grew into.  Accuracies are compared and reported but not judged between devices: an
accuracy counts argmax decisions, which a rounding-level change of a logit near a tie flips,
moving it by 1/N at once (with ``--cpu-only`` they are judged, exactly, like the rest).

On Ampere and later GPUs PyTorch runs float32 convolutions in TF32 by default (cuDNN's
``allow_tf32``, a 10-bit mantissa): E3's float32 CUDA arm then rounds at ~1e-3 per
convolution, as the workflow's own CUDA training does.  That is measured as is and the JSON
records the flags; ``--no-tf32`` switches TF32 off for convolutions and matmuls.

Writes ``benchmarks/results/gpu.json`` (``--out-dir``) after a run with CUDA, or
``gpu_cpu_only.json`` after a ``--cpu-only`` run, with the settings, the GPU's name, the
torch, CUDA and cuDNN versions, every arm's time and every array's comparison.  Exit
status 1 when a workload is outside its tolerance or an arm failed (the other workloads
still run), else 0.

Usage::

    python benchmarks/gpu.py                        # on a CUDA machine: E2 1 epoch, E3 20 steps, E4 100 steps
    python benchmarks/gpu.py --e3-train-subset 0 --e3-epochs 2 --no-tf32   # E3 at the workflow's size
    python benchmarks/gpu.py --cpu-only --e3-train-subset 512 --e3-test-subset 256 --e4-steps 5
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equivdyn._io import write_json_atomic
from equivdyn.data import cifar10, mnist
from equivdyn.errors import EquivdynError, ParameterError
from equivdyn.experiments.e2 import trainer as e2
from equivdyn.experiments.e3 import trainer as e3
from equivdyn.experiments.e4 import trainer as e4
from equivdyn.store import Trajectory

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = ("e2", "e3", "e4")
#: Largest relative difference (to the CPU array's largest absolute value) accepted between
#: the CPU and the CUDA arm, by training dtype; CPU against CPU must agree exactly.
TOLERANCE = {"float32": 1e-3, "float64": 1e-8}
#: Metrics that count decisions: reported, judged only between two CPU arms (see the docstring).
ACCURACIES = ("train_accuracy", "test_accuracy")
MNIST_CANDIDATES = (
    ROOT / "data" / "mnist.npz",
    ROOT / "shared" / "data" / "mnist.npz",
    ROOT.parent / "shared" / "data" / "mnist.npz",
)


#: A trainer call: (parameters, device, threads) -> trajectory.
Trainer = Callable[[dict[str, Any], torch.device, int], Trajectory]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    params: dict[str, Any]  # checked by the experiment's check_params
    warmup_params: dict[str, Any]
    threads: int
    data: str  # where the data come from
    synthetic: bool  # whether they are a synthetic stand-in
    train: Trainer


# ----------------------------------------------------------------------------- workloads


def find_mnist(given: Path | None) -> Path:
    if given is not None:
        if not given.exists():
            raise SystemExit(f"--mnist {given}: no such file or folder")
        return given
    found = next((p for p in MNIST_CANDIDATES if p.is_file()), None)
    if found is None:
        raise SystemExit(
            f"E2 needs MNIST: none of {', '.join(map(str, MNIST_CANDIDATES))} exists; give --mnist PATH"
        )
    return found


def e2_workload(args: argparse.Namespace, tmp: Path) -> Workload:
    source = find_mnist(args.mnist)
    data = mnist.load(mnist.prepare(source, tmp / "mnist.npz"))
    params = e2.check_params(
        {
            "width": args.e2_width,
            "seed": args.seed,
            "n_steps": args.e2_steps,
            "dtype": args.e2_dtype,
        }
    )

    def train(p: dict[str, Any], device: torch.device, threads: int) -> Trajectory:
        return e2.train_ensemble(
            data["x_train"],
            data["y_train"],
            data["x_test"],
            data["y_test"],
            p,
            device,
            threads=threads,
        )

    return Workload(
        name="e2",
        title=f"E2 FCN h{params['width']} (MNIST)",
        params=params,
        warmup_params={**params, "n_inits": 1, "n_steps": 2},
        threads=args.threads or e2.TRAIN_THREADS,
        data=f"real MNIST ({source}), checksums verified",
        synthetic=False,
        train=train,
    )


def cifar10_file(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """The prepared CIFAR-10 ``.npz`` for E3, and what it holds."""
    out = tmp / "cifar10.npz"
    if args.cifar10 is not None:
        source = f"real CIFAR-10 ({args.cifar10}), published MD5s verified"
        return cifar10.prepare(args.cifar10, out), source
    n_train = args.e3_train_subset or cifar10.SHAPES["y_train"][0]
    n_test = args.e3_test_subset or cifar10.SHAPES["y_test"][0]
    seed = cifar10.SYNTHETIC_SIZES["seed"]
    archive = cifar10.write_synthetic_archive(
        tmp / cifar10.ARCHIVE, n_train=n_train, n_test=n_test, seed=seed
    )
    # As prepare("synthetic") does for its fixed sizes: verified against the archive's own MD5s.
    prepared = cifar10.prepare(
        archive, out, checksums=cifar10._archive_checksums(archive)
    )
    return (
        prepared,
        f"SYNTHETIC CIFAR-10 stand-in (write_synthetic_archive, {n_train} training / {n_test} test images, seed {seed})",
    )


def e3_workload(args: argparse.Namespace, tmp: Path) -> Workload:
    path, source = cifar10_file(args, tmp)
    data = e3.load_data("resnet20", path)
    overrides = {"n_inits": args.e3_inits, "dtype": args.e3_dtype}
    params = e3.check_params(
        {
            "model": "resnet20",
            "seed": args.seed,
            "n_epochs": args.e3_epochs,
            "train_subset": args.e3_train_subset or None,
            "test_subset": args.e3_test_subset or None,
            **{k: v for k, v in overrides.items() if v is not None},
        }
    )
    batch = params["batch_size"]
    warmup = {
        **params,
        "n_inits": 1,
        "n_epochs": 1,
        "train_subset": min(2 * batch, len(data["x_train"])),
        "test_subset": min(100, len(data["x_test"])),
    }

    def train(p: dict[str, Any], device: torch.device, threads: int) -> Trajectory:
        return e3.train(data, p, device=device, threads=threads)

    synthetic = args.cifar10 is None
    return Workload(
        name="e3",
        title=f"E3 ResNet-20 ({'SYNTHETIC ' if synthetic else ''}CIFAR-10)",
        params=params,
        warmup_params=warmup,
        threads=args.threads or e3.TRAIN_THREADS,
        data=source,
        synthetic=synthetic,
        train=train,
    )


def e4_workload(args: argparse.Namespace, tmp: Path) -> Workload:
    overrides = {
        "n_inits": args.e4_inits,
        "n_steps": args.e4_steps,
        "dtype": args.e4_dtype,
    }
    params = e4.check_params(
        {
            "setup": args.e4_setup,
            "seed": args.seed,
            "observable_dtype": "float64",  # compare the weights as trained, not rounded to float32
            **{k: v for k, v in overrides.items() if v is not None},
        }
    )

    def train(p: dict[str, Any], device: torch.device, threads: int) -> Trajectory:
        return e4.train_ensemble(p, threads=threads, device=device)

    return Workload(
        name="e4",
        title=f"E4 transformer ({params['setup']})",
        params=params,
        warmup_params={**params, "n_inits": 1, "n_steps": 2},
        threads=args.threads or e4.TRAIN_THREADS,
        data=f"generated: (a + b) mod {params['p']}, data_seed {params['data_seed']}",
        synthetic=False,
        train=train,
    )


BUILDERS: dict[str, Callable[[argparse.Namespace, Path], Workload]] = {
    "e2": e2_workload,
    "e3": e3_workload,
    "e4": e4_workload,
}


# ----------------------------------------------------------------------------- running


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_arm(
    workload: Workload, device: torch.device, warmup: bool
) -> tuple[Trajectory, float]:
    """An untimed warm-up (unless ``warmup`` is false), then one timed run: (trajectory, wall seconds)."""
    if warmup:
        workload.train(workload.warmup_params, device, workload.threads)
    synchronize(device)
    start = time.perf_counter()
    traj = workload.train(workload.params, device, workload.threads)
    synchronize(device)
    return traj, time.perf_counter() - start


def measure(
    workload: Workload,
    arms: list[tuple[str, torch.device]],
    tolerance: float,
    *,
    warmup: bool,
    judge_accuracies: bool,
) -> dict[str, Any]:
    """Train ``workload`` on both arms, time them and compare their trajectories: the row of the results."""
    row: dict[str, Any] = {
        "workload": workload.name,
        "title": workload.title,
        "data": workload.data,
        "synthetic": workload.synthetic,
        "params": workload.params,
        "warmup_params": workload.warmup_params if warmup else None,
        "threads": workload.threads,
        "dtype": workload.params["dtype"],
        "tolerance": tolerance,
        "arms": " vs ".join(
            f"{label} ({workload.threads} thr)" if d.type == "cpu" else label
            for label, d in arms
        ),
        "n_inits": workload.params["n_inits"],
        "n_steps": None,
        "seconds": [None, None],
        "speed_up": None,
        "init_spread": None,
        "within_tolerance": False,
        "error": None,
    }
    trajectories = []
    try:
        for i, (label, device) in enumerate(arms):
            traj, row["seconds"][i] = run_arm(workload, device, warmup)
            trajectories.append(traj)
            print(f"  {label}: {row['seconds'][i]:.2f} s", flush=True)
        row["n_steps"] = int(trajectories[0].steps.size)
        row["speed_up"] = row["seconds"][0] / row["seconds"][1]
        row["init_spread"] = init_spread(trajectories[0])
        row["comparison"] = compare(*trajectories, tolerance, judge_accuracies)
        row["within_tolerance"] = row["comparison"]["within_tolerance"]
    # torch's errors (CUDA ones included), the comparison's and the trainers': a failing
    # arm must not hide the other workloads' results.
    except (RuntimeError, ValueError, EquivdynError) as exc:
        traceback.print_exc()
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


# ----------------------------------------------------------------------------- comparing


def abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b|, 0 where both are equal (infinities) or both NaN, inf where only one is NaN."""
    with np.errstate(invalid="ignore"):
        diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
    return np.nan_to_num(diff, nan=np.inf)


def relative(diff: float, scale: float) -> float:
    if diff == 0.0:
        return 0.0
    return diff / scale if scale > 0.0 else float("inf")


def compare_array(a: np.ndarray, b: np.ndarray, steps: np.ndarray) -> dict[str, Any]:
    """Differences of one [M, T, ...] array of the second arm (b) from the CPU arm's (a)."""
    finite = np.abs(a[np.isfinite(a)])
    scale = float(finite.max()) if finite.size else 0.0
    diff = abs_diff(a, b)
    at = {}
    for label, index in (
        ("first", 0),
        ("middle", (a.shape[1] - 1) // 2),
        ("last", a.shape[1] - 1),
    ):
        d = float(diff[:, index].max())
        at[label] = {
            "step": int(steps[index]),
            "max_abs_diff": d,
            "max_rel_diff": relative(d, scale),
        }
    d = float(diff.max())
    return {
        "shape": list(a.shape),
        "scale": scale,
        "max_abs_diff": d,
        "max_rel_diff": relative(d, scale),
        "at": at,
    }


def compare(
    a: Trajectory, b: Trajectory, tolerance: float, judge_accuracies: bool
) -> dict[str, Any]:
    """Every observable and metric of trajectory ``b`` against the CPU arm's ``a``."""
    if not np.array_equal(a.steps, b.steps):
        raise ValueError("the arms recorded different steps")
    names = [("observables", n) for n in a.observables] + [
        ("metrics", n) for n in a.metrics
    ]
    if set(a.observables) != set(b.observables) or set(a.metrics) != set(b.metrics):
        raise ValueError("the arms recorded different arrays")
    arrays = {}
    for group, name in names:
        x, y = getattr(a, group)[name], getattr(b, group)[name]
        steps = a.metric_steps.get(name, a.steps) if group == "metrics" else a.steps
        if x.shape != y.shape or not np.array_equal(
            steps, b.metric_steps.get(name, b.steps) if group == "metrics" else b.steps
        ):
            raise ValueError(
                f"{group}/{name}: shapes {x.shape} and {y.shape} or their steps differ"
            )
        result = compare_array(
            np.asarray(x, np.float64), np.asarray(y, np.float64), steps
        )
        result["judged"] = judge_accuracies or name not in ACCURACIES
        result["within_tolerance"] = result["max_rel_diff"] <= tolerance
        arrays[f"{group}/{name}"] = result
    judged = [r for r in arrays.values() if r["judged"]]
    return {
        "arrays": arrays,
        "max_rel_diff": {
            "first": max(r["at"]["first"]["max_rel_diff"] for r in judged),
            "middle": max(r["at"]["middle"]["max_rel_diff"] for r in judged),
            "last": max(r["at"]["last"]["max_rel_diff"] for r in judged),
            "all": max(r["max_rel_diff"] for r in judged),
        },
        "within_tolerance": all(r["within_tolerance"] for r in judged),
    }


def init_spread(traj: Trajectory) -> float | None:
    """Largest difference at the last step between initialisation 0 and the others (first
    observable), relative to the array's largest absolute value; None with one initialisation."""
    obs = next(iter(traj.observables.values()))
    if obs.shape[0] < 2:
        return None
    last = obs[:, -1]
    return relative(float(np.abs(last[1:] - last[0]).max()), float(np.abs(obs).max()))


# ----------------------------------------------------------------------------- reporting


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (the JSON writer refuses them)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def fmt(value: float | None, spec: str = ".1e") -> str:
    if value is None:
        return "-"
    return "0" if value == 0.0 else format(value, spec)


def table(rows: list[dict[str, Any]], arms: list[str]) -> str:
    lines = [
        (
            f"| workload | device arms | M x steps | {arms[0]} s | {arms[1]} s | speed-up "
            "| max rel. diff first / middle / last (all steps) | tolerance | within tolerance | init spread (last) |"
        ),
        "|---|---|---|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        diff = r.get("comparison", {}).get("max_rel_diff")
        diffs = (
            "-"
            if diff is None
            else f"{fmt(diff['first'])} / {fmt(diff['middle'])} / {fmt(diff['last'])} ({fmt(diff['all'])})"
        )
        verdict = (
            "ERROR" if r.get("error") else ("yes" if r["within_tolerance"] else "NO")
        )
        lines.append(
            f"| {r['title']} | {r['arms']} | {r['n_inits']} x {r['n_steps'] or '-'} | {fmt(r['seconds'][0], '.2f')} "
            f"| {fmt(r['seconds'][1], '.2f')} | {fmt(r['speed_up'], '.1f')} | {diffs} | {fmt(r['tolerance'], 'g')} "
            f"| {verdict} | {fmt(r['init_spread'])} |"
        )
    return "\n".join(lines)


def details(row: dict[str, Any]) -> list[str]:
    """One line per compared array of a workload."""
    lines = []
    for name, r in row.get("comparison", {}).get("arrays", {}).items():
        at = r["at"]
        steps = " / ".join(
            f"{fmt(at[k]['max_rel_diff'])} @ {at[k]['step']}"
            for k in ("first", "middle", "last")
        )
        judged = (
            ("ok" if r["within_tolerance"] else "OUTSIDE")
            if r["judged"]
            else "not judged"
        )
        lines.append(
            f"  {name} {r['shape']}: scale {fmt(r['scale'], '.3g')}, max abs diff {fmt(r['max_abs_diff'])}, "
            f"rel {fmt(r['max_rel_diff'])}; rel at first / middle / last step: {steps}; {judged}"
        )
    return lines


def environment(device: torch.device | None, tf32: dict[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "tf32": tf32,
    }
    if device is not None:
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=torch.cuda.get_device_name(device),
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=props.total_memory / 2**30,
            cudnn=torch.backends.cudnn.version(),
            cublas_workspace_config=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        )
    return env


def tf32_flags() -> dict[str, Any]:
    return {
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    e3_defaults = e3.defaults_for("resnet20")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated: e2, e3, e4 (default all)",
    )
    parser.add_argument(
        "--device", default="cuda", help="the accelerator arm's device (default cuda)"
    )
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="no CUDA: run the CPU arm twice (must agree exactly); writes gpu_cpu_only.json",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every workload (default 0)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of every arm (default: each trainer's TRAIN_THREADS)",
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="time the first call too (no untimed warm-up run)",
    )
    parser.add_argument(
        "--no-tf32",
        action="store_true",
        help="switch TF32 off for cuDNN convolutions and CUDA matmuls",
    )
    parser.add_argument(
        "--mnist",
        type=Path,
        default=None,
        help="MNIST .npz or IDX folder (default: searched)",
    )
    parser.add_argument(
        "--cifar10",
        type=Path,
        default=None,
        help="the real CIFAR-10 archive or folder (default: SYNTHETIC)",
    )
    parser.add_argument(
        "--e2-width",
        type=int,
        default=e2.DEFAULTS["width"],
        help="E2 hidden width (default %(default)s)",
    )
    parser.add_argument(
        "--e2-steps", type=int, default=None, help="E2 steps (default one epoch, 1000)"
    )
    parser.add_argument("--e2-dtype", choices=e2.DTYPES, default=e2.DEFAULTS["dtype"])
    parser.add_argument(
        "--e3-epochs",
        type=int,
        default=1,
        help="E3 epochs (default 1; the workflow's: 2)",
    )
    parser.add_argument(
        "--e3-train-subset",
        type=int,
        default=2560,
        help="E3 training images, 0 = all (default 2560)",
    )
    parser.add_argument(
        "--e3-test-subset",
        type=int,
        default=1000,
        help="E3 test images, 0 = all (default 1000)",
    )
    parser.add_argument(
        "--e3-inits",
        type=int,
        default=None,
        help=f"E3 initialisations (default {e3_defaults['n_inits']})",
    )
    parser.add_argument(
        "--e3-dtype",
        choices=e3.DTYPES,
        default=None,
        help=f"default {e3_defaults['dtype']}",
    )
    parser.add_argument("--e4-setup", choices=e4.SETUPS, default=e4.DEFAULTS["setup"])
    parser.add_argument(
        "--e4-inits",
        type=int,
        default=None,
        help=f"E4 initialisations (default {e4.DEFAULTS['n_inits']})",
    )
    parser.add_argument(
        "--e4-steps",
        type=int,
        default=None,
        help=f"E4 steps (default {e4.DEFAULTS['n_steps']})",
    )
    parser.add_argument(
        "--e4-dtype",
        choices=e4.DTYPES,
        default=None,
        help=f"default {e4.DEFAULTS['dtype']}",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=HERE / "results",
        help="folder of the JSON (default %(default)s)",
    )
    args = parser.parse_args(argv)
    args.workloads = [s.strip() for s in args.workloads.split(",") if s.strip()]
    unknown = [s for s in args.workloads if s not in WORKLOADS]
    if unknown or not args.workloads:
        parser.error(f"--workloads: unknown {unknown} (known: {', '.join(WORKLOADS)})")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.e3_train_subset < 0 or args.e3_test_subset < 0:
        parser.error("--e3-train-subset and --e3-test-subset must be >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cpu = torch.device("cpu")
    if not torch.cuda.is_available():
        print(
            "No CUDA device is available"
            + (
                ": --cpu-only, the second arm is the CPU again."
                if args.cpu_only
                else "."
            )
        )
        if not args.cpu_only:
            raise SystemExit(
                "Nothing measured: run on a machine with CUDA, or with --cpu-only to check this script."
            )
    elif args.cpu_only:
        print(
            "--cpu-only: the second arm is the CPU again, although CUDA is available."
        )
    accelerator = None if args.cpu_only else torch.device(args.device)
    if accelerator is not None and accelerator.type != "cuda":
        raise SystemExit(f"--device {args.device}: not a CUDA device")
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    arms = (
        [("cpu", cpu), ("cpu (repeat)", cpu)]
        if accelerator is None
        else [("cpu", cpu), (str(accelerator), accelerator)]
    )
    if accelerator is not None:
        print(
            f"GPU: {torch.cuda.get_device_name(accelerator)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
        )

    begin = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_benchmark_") as tmp:
        for name in args.workloads:
            try:
                workload = BUILDERS[name](args, Path(tmp))
            except ParameterError as exc:
                raise SystemExit(f"{name}: {exc}") from None
            dtype = workload.params["dtype"]
            tolerance = 0.0 if accelerator is None else TOLERANCE[dtype]
            print(
                f"\n{workload.title}: {workload.data}; {dtype}, {workload.threads} CPU thread(s)",
                flush=True,
            )
            row = measure(
                workload,
                arms,
                tolerance,
                warmup=not args.no_warmup,
                judge_accuracies=accelerator is None,
            )
            rows.append(row)
            print("\n".join(details(row)), flush=True)
    wall = time.perf_counter() - begin

    labels = [label for label, _ in arms]
    text = table(rows, labels)
    print()
    mode = (
        "CPU ONLY (the second arm is the CPU again: no GPU measurement)"
        if accelerator is None
        else str(accelerator)
    )
    print(f"CPU vs {mode}; torch {torch.__version__}, seed {args.seed}")
    for r in rows:
        print(
            f"- {r['title']}: {r['data']}"
            + (f"; FAILED: {r['error']}" if r["error"] else "")
        )
    print()
    print(text)
    print()
    print(
        "Seconds: one timed call of the trainer per arm"
        + (
            " after an untimed warm-up call (1 initialisation, 2 steps)"
            if not args.no_warmup
            else ", no warm-up"
        )
        + "; speed-up = first arm / second arm. Max rel. diff: largest |difference| over every judged observable "
        "and metric, over the CPU array's largest |value|, at the first / middle / last recorded step (over all steps). "
        "Init spread: initialisation 0 against the others at the last step (CPU arm), same scale."
    )
    all_ok = all(r["within_tolerance"] and not r["error"] for r in rows)
    print(
        f"{sum(r['within_tolerance'] for r in rows)}/{len(rows)} workloads within tolerance. Wall time {wall:.0f} s."
    )

    result = {
        "mode": "cpu_only" if accelerator is None else "cuda",
        "settings": {
            "arms": labels,
            "workloads": args.workloads,
            "seed": args.seed,
            "warmup": not args.no_warmup,
            "tolerance": {"cpu_vs_cpu": 0.0} if accelerator is None else TOLERANCE,
            "accuracies_judged": accelerator is None,
            "argv": sys.argv[1:] if argv is None else argv,
        },
        "environment": environment(accelerator, tf32_flags()),
        "rows": rows,
        "table": text,
        "all_within_tolerance": all_ok,
        "wall_seconds": wall,
    }
    out = args.out_dir / ("gpu_cpu_only.json" if accelerator is None else "gpu.json")
    write_json_atomic(out, json_safe(result))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["all_within_tolerance"] else 1)
