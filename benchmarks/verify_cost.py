"""What verification costs when a result is read: checked read vs plain HDF5 read, side by side.

Reads one trajectory file repeatedly, alternating between

* ``plain``: every dataset read with h5py, nothing checked (what reading cost before
  files carried checksums), and
* ``checked``: :func:`equivdyn.read_trajectory`, which checks the file's digest, each
  dataset's declared size and stored bytes, and the SHA-256 of every dataset it reads,

and prints the median times and their ratio.  Without ``--file`` it writes a trajectory
the size of the largest default-scale result (E4's: 10 initialisations x 100 snapshots x
65,536 float32 observables, SYNTHETIC values) into a temporary folder.

    python benchmarks/verify_cost.py [--file TRAJ.h5] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from equivdyn import Trajectory, read_trajectory, write_trajectory


def plain_read(path: Path) -> int:
    """Every dataset of the file read with h5py (no checks); returns the bytes read."""
    total = 0

    def visit(_: str, obj: object) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += obj[()].nbytes

    with h5py.File(path, "r") as h5:
        h5.visititems(visit)
    return total


def synthetic_e4(path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = np.cumsum(rng.standard_normal((10, 100, 65536), dtype=np.float32) * 1e-3, axis=1, dtype=np.float32)
    metrics = {name: rng.random((10, 100)) for name in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    write_trajectory(path, Trajectory("e4", np.arange(100), {"mlp_out": weights}, metrics, key="0" * 16))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="trajectory to read (default: a synthetic E4-sized one)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "e4_sized.h5"
            synthetic_e4(path)
        size = path.stat().st_size
        read_trajectory(path)  # warm the page cache for both
        times: dict[str, list[float]] = {"plain": [], "checked": []}
        for _ in range(args.repeats):
            for name, read in (("plain", plain_read), ("checked", read_trajectory)):
                start = time.perf_counter()
                read(path)
                times[name].append(time.perf_counter() - start)
    plain, checked = statistics.median(times["plain"]), statistics.median(times["checked"])
    print(f"file: {path if args.file else 'synthetic E4-sized trajectory'} ({size / 2**20:.0f} MiB on disk, "
          f"{args.repeats} alternating repeats)")
    print(f"plain h5py read: median {plain:.3f} s")
    print(f"checked read:    median {checked:.3f} s")
    print(f"ratio checked / plain: {checked / plain:.3f}  (verification adds {100 * (checked / plain - 1):.1f} %)")


if __name__ == "__main__":
    main()
