"""Integrity: damaged, edited or oversized results are refused with one error naming the file.

Each test reproduces a probe that a damaged file once passed: flipped bytes in every
kind of dataset, edited attributes and JSON, size bombs, non-monotonic steps, a full
disk, thread-dependent fits; and ``equivdyn verify`` finds and removes what is damaged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from equivdyn import content_key, read_spectra, read_trajectory
from equivdyn import store
from equivdyn._io import array_digest, read_json_result, write_json_atomic
from equivdyn.cli import main
from equivdyn.data._common import write_npz
from equivdyn.errors import InvalidFileError
from equivdyn.experiments import get as get_experiment
from equivdyn.stages import STAGE_VERSIONS
from equivdyn.store import Trajectory, write_trajectory

from .conftest import SHARED_MNIST
from .test_store import make_trajectory, reseal, write_spectrum_file

EXE = str(Path(sys.executable).with_name("equivdyn"))


def flip_byte(path: Path, dataset: str, offset: int = 0, mask: int = 0x80) -> None:
    """Flip bits of the byte ``offset`` bytes into ``dataset``'s stored data (its first
    chunk if chunked), leaving everything else, the mtime included, as it was."""
    with h5py.File(path, "r") as h5:
        ds = h5[dataset]
        start = ds.id.get_chunk_info(0).byte_offset if ds.chunks else ds.id.get_offset()
    stat = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        handle.seek(start + offset)
        byte = handle.read(1)[0]
        handle.seek(start + offset)
        handle.write(bytes([byte ^ mask]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# ----------------------------------------------------------------------------- HDF5 checksums


@pytest.mark.parametrize(
    "dataset, offset",
    [
        ("steps", 3),  # int64, uncompressed: once made the steps non-monotonic unnoticed
        ("observables/state", 40),  # float64, gzip-compressed chunks
        ("observables/weights", 40),  # float32, gzip-compressed chunks
        ("metrics/loss", 30),
        ("metrics/val_loss_steps", 0),
    ],
)
def test_a_flipped_byte_in_any_trajectory_dataset_is_refused(tmp_path: Path, dataset: str, offset: int) -> None:
    path = tmp_path / "traj.h5"
    write_trajectory(path, make_trajectory(seed=3))
    read_trajectory(path)
    flip_byte(path, dataset, offset)
    with pytest.raises(InvalidFileError) as info:
        read_trajectory(path)
    assert str(path) in str(info.value)
    assert dataset in str(info.value) or "corrupt" in str(info.value)


@pytest.mark.parametrize("dataset", ["eigenvalues", "residuals", "singular_values", "modes"])
def test_a_flipped_sign_bit_in_a_spectrum_is_refused(tmp_path: Path, dataset: str) -> None:
    # The probe: the sign bit of one eigenvalue flipped Fig. 2's conclusion unnoticed.
    path = tmp_path / "spec.h5"
    write_spectrum_file(path)
    flip_byte(path, f"spectra/all/{dataset}", offset=7)  # the last byte of a little-endian float64: its sign
    # uncompressed data fail the checksum; compressed ones (modes) already fail decompression
    with pytest.raises(InvalidFileError, match=rf"dataset /spectra/all/{dataset}(: checksum mismatch| is unreadable)") as info:
        read_spectra(path)
    assert str(path) in str(info.value)


def test_a_large_dataset_hashed_while_it_is_read_is_checked_too(tmp_path: Path) -> None:
    # above store._PARALLEL_HASH_BYTES, slices are hashed in a second thread while read
    data = np.random.default_rng(1).standard_normal((4, 50, 20000))
    assert data.nbytes > store._PARALLEL_HASH_BYTES
    path = tmp_path / "big.h5"
    write_trajectory(path, Trajectory("e1", np.arange(50), {"w": data}, key="0" * 16))
    assert read_trajectory(path).observables["w"].tobytes() == data.tobytes()
    with h5py.File(path, "a") as h5:  # one value rewritten through HDF5 (valid chunks), the checksums kept
        h5["observables/w"][2, 10, 5] += 1e-9
    with pytest.raises(InvalidFileError, match="dataset /observables/w: checksum mismatch"):
        read_trajectory(path)


def test_an_edited_attribute_or_removed_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "traj.h5"
    write_trajectory(path, make_trajectory(seed=4))
    edits = {
        "params": lambda h5: h5.attrs.__setitem__("params", json.dumps({"method": "ogd"})),
        "key": lambda h5: h5.attrs.__setitem__("key", "f" * 16),
        "dataset checksum": lambda h5: h5["steps"].attrs.__setitem__(store.DATASET_DIGEST, "0" * 64),
        "removed dataset": lambda h5: h5.__delitem__("metrics/loss"),
        "added dataset": lambda h5: h5.create_dataset("observables/extra", data=np.zeros((3, 7, 1))),
    }
    for name, edit in edits.items():
        copy = tmp_path / f"{name.replace(' ', '_')}.h5"
        shutil.copyfile(path, copy)
        with h5py.File(copy, "a") as h5:
            edit(h5)
        with pytest.raises(InvalidFileError, match="checksum mismatch in the file's attributes or structure"):
            read_trajectory(copy)
    with h5py.File(copy, "a") as h5:  # an attribute kind no equivdyn writer makes
        h5.attrs["odd"] = np.array((1, 2.0), dtype=[("a", "i4"), ("b", "f8")])
    with pytest.raises(InvalidFileError, match="an attribute cannot be checked"):
        read_trajectory(copy)


def test_files_without_checksums_are_refused_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "old.h5"
    write_trajectory(path, make_trajectory(seed=5))
    with h5py.File(path, "a") as h5:  # as format 1 wrote it: no digests
        del h5.attrs[store.FILE_DIGEST]
        h5.attrs["format_version"] = 1
    with pytest.raises(InvalidFileError, match=r"format_version 1 .*written before files carried checksums.*verify --remove"):
        read_trajectory(path)


def test_steps_must_increase_strictly(tmp_path: Path) -> None:
    good = make_trajectory(seed=6)
    with pytest.raises(ValueError, match=r"steps must be strictly increasing, but entry 2 \(2\) follows 2"):
        Trajectory("e1", np.array([0, 2, 2, 3]), {"x": np.zeros((1, 4, 1))})
    with pytest.raises(ValueError, match="steps of metric 'val_loss' must be strictly increasing"):
        Trajectory(good.experiment, good.steps, good.observables, good.metrics, {"val_loss": np.array([0, 11, 5])})
    # a file whose steps were damaged by a writer (checksums recomputed): still refused
    path = tmp_path / "traj.h5"
    write_trajectory(path, good)
    with h5py.File(path, "a") as h5:
        steps = h5["steps"][()]
        steps[3] = 248
        del h5["steps"]
        h5.create_dataset("steps", data=steps)
        reseal(h5)
    with pytest.raises(InvalidFileError, match="strictly increasing"):
        read_trajectory(path)


# ----------------------------------------------------------------------------- size bombs


def _bomb(tmp_path: Path, shape: tuple[int, ...], name: str) -> Path:
    """A sealed trajectory whose observable block declares ``shape`` float64 but stores nothing."""
    path = tmp_path / name
    write_trajectory(path, make_trajectory(seed=7, n_steps=shape[1] if shape[1] < 100 else 7))
    with h5py.File(path, "a") as h5:
        del h5["observables/state"]
        ds = h5.create_dataset("observables/state", shape=shape, dtype="f8", chunks=(1, min(shape[1], 64), shape[2]),
                               compression="gzip")
        ds.attrs[store.DATASET_DIGEST] = "0" * 64
        if shape[1] != 7:
            del h5["steps"]
            h5.create_dataset("steps", data=np.arange(shape[1], dtype=np.int64))
            h5["steps"].attrs[store.DATASET_DIGEST] = array_digest(np.arange(shape[1], dtype=np.int64))
        store._seal(h5)
    return path


def test_a_file_declaring_a_huge_dataset_is_refused_before_reading(tmp_path: Path) -> None:
    # 7 TiB declared in a file of a few KB: refused by the read limit, nothing allocated
    huge = _bomb(tmp_path, (1000, 1000, 1_000_000), "huge.h5")
    assert huge.stat().st_size < 100_000
    with pytest.raises(InvalidFileError, match=r"dataset /observables/state declares .* more than the read limit") as info:
        read_trajectory(huge)
    assert str(huge) in str(info.value) and "EQUIVDYN_MAX_READ_BYTES" in str(info.value)
    # 2 GB declared, below the limit, but never written: refused before it is read
    big = _bomb(tmp_path, (10, 7, 3_600_000), "big.h5")
    with pytest.raises(InvalidFileError, match=r"dataset /observables/state declares .* but the file stores only 0 bytes"):
        read_trajectory(big)
    with pytest.raises(InvalidFileError, match="stores only"):
        read_trajectory(big, observables=False)


def test_the_read_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "traj.h5"
    write_trajectory(path, make_trajectory(seed=8))
    monkeypatch.setenv(store.MAX_READ_ENV, "100")
    with pytest.raises(InvalidFileError, match="more than the read limit 0.0954 KiB|more than the read limit"):
        read_trajectory(path)
    monkeypatch.setenv(store.MAX_READ_ENV, "lots")
    with pytest.raises(ValueError, match="EQUIVDYN_MAX_READ_BYTES must be a positive number of bytes, got 'lots'"):
        read_trajectory(path)
    monkeypatch.delenv(store.MAX_READ_ENV)
    read_trajectory(path)


# ----------------------------------------------------------------------------- JSON and npz


def test_edited_or_unsealed_json_results_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_json_atomic(path, {"pairs": {"omd|ogd": {"distance": 0.0092}}})
    assert read_json_result(path) == {"pairs": {"omd|ogd": {"distance": 0.0092}}}
    os.chmod(path, 0o644)
    path.write_text(path.read_text().replace("0.0092", "0.9092"))
    with pytest.raises(InvalidFileError, match="checksum mismatch"):
        read_json_result(path)
    path.write_text(json.dumps({"pairs": {}}))
    with pytest.raises(InvalidFileError, match="no 'sha256' checksum field"):
        read_json_result(path)


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_gives_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], depth: int) -> None:
    nested = "[" * depth + "]" * depth
    path = tmp_path / "deep.json"
    path.write_text(nested)
    assert main(["key", "--spec", nested]) == 2
    assert capsys.readouterr().err.strip() == "equivdyn key: error: --spec is nested deeper than 64 levels"
    assert main(["index", "--plan", str(path), "--out", str(tmp_path / "index.tsv")]) == 2
    assert capsys.readouterr().err.strip() == f"equivdyn index: error: --plan {path} is nested deeper than 64 levels"
    assert not (tmp_path / "index.tsv").exists()
    with pytest.raises(InvalidFileError, match="nested deeper than 64 levels"):
        read_json_result(path)


# ----------------------------------------------------------------------------- verify


@pytest.fixture
def results(tmp_path: Path) -> dict[str, Path]:
    """A results folder with one valid file of every kind that carries a checksum."""
    root = tmp_path / "results"
    files = {
        "trajectory": root / "train" / "e1" / "t.h5",
        "spectrum": root / "fit" / "e1" / "s.h5",
        "comparison": root / "compare" / "e1" / "c.json",
        "data": root / "data" / "d.npz",
    }
    write_trajectory(files["trajectory"], make_trajectory(seed=9))
    files["spectrum"].parent.mkdir(parents=True)
    write_spectrum_file(files["spectrum"])
    write_json_atomic(files["comparison"], {"pairs": {"a|b": {"distance": 0.5}}})
    write_npz(files["data"], {"x": np.arange(10, dtype=np.uint8)})
    (root / "figures").mkdir()
    (root / "figures" / "fig.png").write_bytes(b"\x89PNG not checked")
    return files


def test_results_are_read_only(results: dict[str, Path]) -> None:
    for path in results.values():
        assert path.stat().st_mode & 0o222 == 0, path


def test_verify_finds_and_removes_exactly_the_damaged_results(
    results: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = results["trajectory"].parents[2]
    assert main(["verify", str(root)]) == 0
    assert "verified 4 file(s): 0 damaged" in capsys.readouterr().out
    flip_byte(results["spectrum"], "spectra/all/eigenvalues", 7)
    os.chmod(results["comparison"], 0o644)
    results["comparison"].write_text(results["comparison"].read_text().replace("0.5", "0.6"))
    with np.load(results["data"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x"] = arrays["x"][::-1].copy()
    os.chmod(results["data"], 0o644)
    np.savez(open(results["data"], "wb"), **arrays)
    assert main(["verify", str(root)]) == 1
    err = capsys.readouterr().err
    damaged = [line for line in err.splitlines() if line.startswith("DAMAGED")]
    assert len(damaged) == 3
    for name in ("spectrum", "comparison", "data"):
        assert any(str(results[name]) in line for line in damaged)
        assert results[name].exists()
    assert "verify --remove" in err
    assert main(["verify", "--remove", str(root)]) == 0
    assert "verified 4 file(s): 3 damaged, removed" in capsys.readouterr().out
    assert [p.exists() for p in results.values()] == [True, False, False, False]
    assert main(["verify", str(root)]) == 0


def test_verify_removes_the_cache_entry_behind_a_damaged_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    entry = cache / uuid.uuid4().hex
    write_trajectory(entry, make_trajectory(seed=10))
    link = tmp_path / "results" / "t.h5"
    link.parent.mkdir()
    link.symlink_to(entry)
    flip_byte(entry, "observables/state", 40)
    assert main(["verify", str(link.parent)]) == 1
    assert f"DAMAGED {link} (a link to the cache entry {entry})" in capsys.readouterr().err
    assert main(["verify", "--remove", str(link.parent)]) == 0
    assert not link.is_symlink() and not entry.exists()


def test_a_stage_meeting_a_damaged_input_says_how_to_recover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traj = tmp_path / "t.h5"
    tspec = {"stage": "train", "experiment": "e1", "version": get_experiment("e1").train_version, "params": {}, "inputs": {}}
    write_trajectory(traj, Trajectory("e1", np.arange(20), {"state": np.random.default_rng(0).random((4, 20, 2))},
                                      key=content_key(tspec)))
    flip_byte(traj, "observables/state", 10)
    spec = {"stage": "fit", "experiment": "e1", "version": STAGE_VERSIONS["fit"],
            "params": {"observable": "state", "n_delays": 1, "rank": 2, "n_components": None},
            "inputs": {"trajectory": content_key(tspec)}}
    out = tmp_path / "s.h5"
    assert main(["fit", "--spec", json.dumps(spec), "--input", str(traj), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"equivdyn fit: error: {traj}: ")
    assert f"`equivdyn verify --remove {traj}`, then rerun" in line
    assert not out.exists()


# ----------------------------------------------------------------------------- full disk, threads


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (CI runs as root), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_gives_one_line_and_leaves_nothing(full_disk: Path) -> None:
    # The probe: HDF5 crashed the process (exit 139) when the disk filled while writing.
    spec = {"stage": "train", "experiment": "e1", "version": get_experiment("e1").train_version,
            "params": {"method": "omd", "grid_size": 20, "n_steps": 400}, "inputs": {}}
    out = full_disk / "t.h5"
    proc = subprocess.run([EXE, "train", "--spec", json.dumps(spec), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"equivdyn train: error: {out}: writing failed (No space left on device); nothing was written"
    assert list(full_disk.iterdir()) == []
    # the MNIST data stage: once three chained tracebacks
    out = full_disk / "mnist.npz"
    proc = subprocess.run([EXE, "data", "mnist", "--source", str(SHARED_MNIST), "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"equivdyn data: error: {out}: writing failed (No space left on device); nothing was written"
    )
    assert list(full_disk.iterdir()) == []
    # the same for a JSON result and a prepared .npz
    with pytest.raises(Exception, match="No space left on device"):
        write_json_atomic(full_disk / "r.json", {"x": "y" * 200_000})
    with pytest.raises(Exception, match="No space left on device"):
        write_npz(full_disk / "d.npz", {"x": np.zeros(100_000)})
    assert list(full_disk.iterdir()) == []


def test_a_fit_gives_the_same_bits_whatever_the_thread_count(tmp_path: Path) -> None:
    # The probe: a fit by hand with 2 BLAS threads differed in the last digits from the workflow's.
    rng = np.random.default_rng(0)
    tspec = {"stage": "train", "experiment": "e2", "version": get_experiment("e2").train_version, "params": {}, "inputs": {}}
    traj = tmp_path / "t.h5"
    data = np.cumsum(rng.standard_normal((10, 300, 200)), axis=1) * 0.01
    write_trajectory(traj, Trajectory("e2", np.arange(300), {"w": data}, key=content_key(tspec)))
    spec = {"stage": "fit", "experiment": "e2", "version": STAGE_VERSIONS["fit"],
            "params": {"observable": "w", "n_delays": 8, "rank": 40, "n_components": 100},
            "inputs": {"trajectory": content_key(tspec)}}
    eigenvalues = []
    for threads in ("1", "2"):
        env = {**os.environ, **{v: threads for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
        out = tmp_path / f"s{threads}.h5"
        subprocess.run([EXE, "fit", "--spec", json.dumps(spec), "--input", str(traj), "--out", str(out)], env=env,
                       check=True, capture_output=True, timeout=300)
        eigenvalues.append(read_spectra(out).spectra["all"].eigenvalues)
    assert eigenvalues[0].tobytes() == eigenvalues[1].tobytes()
