"""Tests of the CIFAR-10 data stage (equivdyn.data.cifar10).

Everything here runs on the SYNTHETIC stand-in archive (small, seeded, in the real file
format); the machine running the tests has no internet access and no copy of CIFAR-10.
Downloads are tested against an HTTP server on 127.0.0.1 and the offline error against
a port where nothing listens.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from equivdyn.data import _common, cifar10, mnist
from equivdyn.data.cifar10 import (
    ARCHIVE,
    FOLDER,
    MD5,
    MEMBERS,
    ChecksumError,
    DownloadError,
    load,
    prepare,
    read_archive,
    read_folder,
    write_synthetic_archive,
)
from equivdyn.errors import EquivdynError, InvalidFileError, ParameterError

from .test_mnist import UNREACHABLE, leftovers, serve

# The published checksums, written out independently of the module under test.
EXPECTED_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
N_TRAIN, N_TEST = 60, 20


@pytest.fixture(autouse=True)
def _direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reach the local test servers directly, whatever proxy the environment names."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


def md5_of(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def members_of(archive: Path) -> dict[str, bytes]:
    """The files in a synthetic archive, read with tarfile directly (not with the module)."""
    with tarfile.open(archive, "r:gz") as tar:
        return {name: tar.extractfile(f"{FOLDER}/{name}").read() for name in MEMBERS}  # type: ignore[union-attr]


def checksums_of(archive: Path) -> dict[str, str]:
    sums = {ARCHIVE: md5_of(archive.read_bytes())}
    sums.update({name: md5_of(raw) for name, raw in members_of(archive).items()})
    return sums


def unpickled(raw: bytes) -> dict[bytes, object]:
    return pickle.loads(raw, encoding="bytes")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SYNTHETIC archive (read only; tests that alter it copy it first)."""
    return write_synthetic_archive(tmp_path_factory.mktemp("synthetic") / ARCHIVE, N_TRAIN, N_TEST, seed=3)


@pytest.fixture(scope="module")
def sums(archive: Path) -> dict[str, str]:
    return checksums_of(archive)


# ----------------------------------------------------------------------------- constants and keys


def test_constants_and_keys() -> None:
    assert MD5 == EXPECTED_MD5
    assert cifar10.SHAPES == {
        "x_train": (50000, 32, 32, 3),
        "y_train": (50000,),
        "x_test": (10000, 32, 32, 3),
        "y_test": (10000,),
    }
    assert cifar10.MIRRORS == ("https://www.cs.toronto.edu/~kriz/",)
    record = {"stage": "data", "experiment": "cifar10", "params": {"md5": EXPECTED_MD5}, "inputs": {}}
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert cifar10.DATASET_KEY == hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
    assert cifar10.SYNTHETIC_KEY != cifar10.DATASET_KEY
    assert cifar10.dataset_key("synthetic") == cifar10.SYNTHETIC_KEY
    assert cifar10.dataset_key(None) == cifar10.dataset_key("data/x.tar.gz") == cifar10.DATASET_KEY
    assert cifar10.n_train("synthetic") == cifar10.SYNTHETIC_SIZES["n_train"]
    assert cifar10.n_train(None) == 50000


def test_errors_share_the_mnist_machinery_and_pickle() -> None:
    errors = [
        ChecksumError("a.tar.gz", ARCHIVE, "0" * 32, "1" * 32),
        DownloadError("data", ARCHIVE, [(UNREACHABLE + ARCHIVE, "Connection refused")]),
    ]
    for exc in errors:
        assert isinstance(exc, EquivdynError)
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)
    assert isinstance(errors[0], _common.ChecksumError) and isinstance(errors[1], _common.DownloadError)
    assert not isinstance(errors[0], mnist.ChecksumError)
    assert "CIFAR-10" in str(errors[0]) and "MD5" in str(errors[0])


# ----------------------------------------------------------------------------- the synthetic archive


def test_synthetic_archive_is_the_real_format_and_reads_back(archive: Path, sums: dict[str, str]) -> None:
    files = members_of(archive)
    # As the original: dicts with bytes keys, data uint8 [n, 3072] in channel planes.
    batches = [unpickled(files[name]) for name in (*cifar10.TRAIN_BATCHES, "test_batch")]
    for batch in batches:
        assert {b"data", b"labels", b"batch_label", b"filenames"} <= set(batch)
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape[1] == 3072
        assert len(batch[b"labels"]) == batch[b"data"].shape[0]
    assert sum(b[b"data"].shape[0] for b in batches[:5]) == N_TRAIN and batches[5][b"data"].shape[0] == N_TEST
    meta = unpickled(files["batches.meta"])
    assert meta[b"label_names"][0] == b"airplane" and len(meta[b"label_names"]) == 10

    arrays = read_archive(archive, sums)
    assert list(arrays) == ["x_train", "y_train", "x_test", "y_test"]
    assert arrays["x_train"].shape == (N_TRAIN, 32, 32, 3) and arrays["x_test"].shape == (N_TEST, 32, 32, 3)
    for name, array in arrays.items():
        assert array.dtype == np.uint8, name
        assert array.flags.c_contiguous
    # Labels and pixels round-trip: HWC image [i, r, c, ch] is data[i, ch·1024 + r·32 + c].
    y_written = np.concatenate([np.asarray(b[b"labels"]) for b in batches[:5]])
    np.testing.assert_array_equal(arrays["y_train"], y_written)
    np.testing.assert_array_equal(arrays["y_test"], batches[5][b"labels"])
    data = batches[0][b"data"]
    assert arrays["x_train"][1, 4, 7, 2] == data[1, 2 * 1024 + 4 * 32 + 7]
    assert arrays["x_train"][0, 31, 0, 0] == data[0, 31 * 32]
    # Class-dependent structure: the mean image differs between classes far more than noise.
    x, y = arrays["x_train"].astype(float), arrays["y_train"]
    means = [x[y == k].mean(0) for k in np.unique(y)]
    assert np.abs(means[0] - means[1]).mean() > 20


def test_synthetic_archive_is_reproducible(tmp_path: Path, archive: Path) -> None:
    again = write_synthetic_archive(tmp_path / "again.tar.gz", N_TRAIN, N_TEST, seed=3)
    assert again.read_bytes() == archive.read_bytes()
    other = write_synthetic_archive(tmp_path / "other.tar.gz", N_TRAIN, N_TEST, seed=4)
    assert other.read_bytes() != archive.read_bytes()
    with pytest.raises(ParameterError, match="n_train"):
        write_synthetic_archive(tmp_path / "bad.tar.gz", n_train=4)
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- errors


def test_published_checksums_refuse_the_stand_in(archive: Path) -> None:
    with pytest.raises(ChecksumError) as info:
        read_archive(archive)
    message = str(info.value)
    assert str(archive) in message and ARCHIVE in message
    assert EXPECTED_MD5[ARCHIVE] in message and md5_of(archive.read_bytes()) in message


def test_altered_member_is_named(tmp_path: Path, archive: Path, sums: dict[str, str]) -> None:
    # The archive's own checksum given as found, a member's as published: the member is named.
    with pytest.raises(ChecksumError) as info:
        read_archive(archive, {**sums, "data_batch_3": EXPECTED_MD5["data_batch_3"]})
    assert info.value.item == "data_batch_3"
    assert EXPECTED_MD5["data_batch_3"] in str(info.value) and sums["data_batch_3"] in str(info.value)


def test_truncated_and_corrupt_archives(tmp_path: Path, archive: Path, sums: dict[str, str]) -> None:
    raw = archive.read_bytes()
    path = tmp_path / "synthetic-cut.tar.gz"
    cases = {
        "half": raw[: len(raw) // 2],
        "header": raw[:50],
        "trailer": raw[:-4],  # every member intact, the gzip trailer cut
        "empty": b"",
        "text": b"<html>moved</html>\n",
        "damaged": raw[:5000] + bytes(64) + raw[5064:],
    }
    for case, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(InvalidFileError) as info:
            read_archive(path, sums)
        assert str(path) in str(info.value), case
    with pytest.raises(InvalidFileError, match="does not exist"):
        read_archive(tmp_path / "missing.tar.gz", sums)


def write_tar(path: Path, entries: dict[str, bytes | None], link: str | None = None) -> Path:
    """A tar.gz holding ``entries`` (None: a directory) and optionally a symlink ``link``."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        if link is not None:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def test_malformed_archives_are_refused_without_extracting(tmp_path: Path, archive: Path) -> None:
    files = members_of(archive)
    # A missing member, a member that is a link, and an entry that would escape the folder.
    lacking = write_tar(tmp_path / "lacking.tar.gz", {f"{FOLDER}/{n}": files[n] for n in MEMBERS[:-1]})
    with pytest.raises(InvalidFileError, match="lacks cifar-10-batches-py/batches.meta"):
        read_archive(lacking, checksums_of_any(lacking, files))
    linked = write_tar(
        tmp_path / "linked.tar.gz",
        {"../escape": b"x", **{f"{FOLDER}/{n}": files[n] for n in MEMBERS[:-1]}},
        link=f"{FOLDER}/batches.meta",
    )
    with pytest.raises(InvalidFileError, match="not a regular file"):
        read_archive(linked, checksums_of_any(linked, files))
    assert not (tmp_path.parent / "escape").exists()
    # A file that is a pickle of something else (right checksums, wrong content).
    evil = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": print}, protocol=2)
    odd_files = {**files, "test_batch": evil}
    odd = write_tar(tmp_path / "odd.tar.gz", {f"{FOLDER}/{n}": odd_files[n] for n in MEMBERS})
    with pytest.raises(InvalidFileError, match=r"test_batch.*refused global \w+\.print"):
        read_archive(odd, checksums_of_any(odd, odd_files))


def checksums_of_any(path: Path, files: dict[str, bytes]) -> dict[str, str]:
    sums = {ARCHIVE: md5_of(path.read_bytes())}
    sums.update({name: md5_of(raw) for name, raw in files.items()})
    return sums


def test_checksums_argument_must_be_complete(archive: Path, sums: dict[str, str]) -> None:
    with pytest.raises(ParameterError, match="checksums.*test_batch"):
        read_archive(archive, {k: v for k, v in sums.items() if k != "test_batch"})


# ----------------------------------------------------------------------------- folders


def test_extracted_folder(tmp_path: Path, archive: Path, sums: dict[str, str]) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir()
    for name, raw in members_of(archive).items():
        (folder / name).write_bytes(raw)
    expected = read_archive(archive, sums)
    for source in (folder, tmp_path):  # the folder itself, or the folder holding it
        arrays = read_folder(source, sums)
        for name in expected:
            np.testing.assert_array_equal(arrays[name], expected[name])
    out = tmp_path / "out.npz"
    prepare(folder, out, checksums=sums)
    np.testing.assert_array_equal(load(out)["y_train"], expected["y_train"])
    # Published checksums: the first batch is named.
    with pytest.raises(ChecksumError) as info:
        read_folder(folder)
    assert info.value.item == "data_batch_1" and EXPECTED_MD5["data_batch_1"] in str(info.value)
    (folder / "test_batch").unlink()
    with pytest.raises(InvalidFileError, match="missing test_batch"):
        read_folder(folder, sums)


# ----------------------------------------------------------------------------- prepare and load


def test_prepare_synthetic_and_load(tmp_path: Path) -> None:
    out = tmp_path / "results" / f"{cifar10.SYNTHETIC_KEY}.npz"
    assert prepare("synthetic", out) == out
    assert leftovers(tmp_path) == []
    with zipfile.ZipFile(out) as npz:
        names = ("x_train", "y_train", "x_test", "y_test", "synthetic", "sha256")
        assert sorted(npz.namelist()) == sorted(f"{n}.npy" for n in names)
    arrays = load(out)
    assert arrays["synthetic"] is True
    sizes = cifar10.SYNTHETIC_SIZES
    assert arrays["x_train"].shape == (sizes["n_train"], 32, 32, 3) and arrays["y_test"].shape == (sizes["n_test"],)
    # The same stand-in as write_synthetic_archive with those sizes, through the same reader.
    reference = write_synthetic_archive(tmp_path / "ref.tar.gz", **sizes)
    expected = read_archive(reference, checksums_of(reference))
    for name in expected:
        np.testing.assert_array_equal(arrays[name], expected[name])


def test_load_refuses_bad_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    good = {
        "x_train": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        "y_train": np.zeros(4, np.uint8),
        "x_test": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "y_test": np.zeros(2, np.uint8),
        "synthetic": np.array(True),
    }
    cases = {
        "shape": ({"x_train": good["x_train"][:, :, :, :1]}, "x_train has shape"),
        "dtype": ({"y_test": good["y_test"].astype(np.int64)}, "y_test has dtype int64"),
        "labels": ({"y_train": good["y_train"][:3]}, "4 images but 3 labels"),
        "flag": ({"synthetic": np.array(1)}, "synthetic must be a 0-d bool"),
        "canonical": ({"synthetic": np.array(False)}, r"expected \(50000, 32, 32, 3\)"),
    }
    for case, (change, message) in cases.items():
        path = tmp_path / f"{case}.npz"
        _common.write_npz(path, {**good, **change})
        with pytest.raises(InvalidFileError, match=message) as info:
            load(path)
        assert str(path) in str(info.value)
    path = tmp_path / "missing.npz"
    _common.write_npz(path, {k: v for k, v in good.items() if k != "synthetic"})
    with pytest.raises(InvalidFileError, match="missing array.*synthetic"):
        load(path)


def test_prepare_writes_nothing_on_error(tmp_path: Path, archive: Path) -> None:
    out = tmp_path / "out" / "cifar10.npz"
    with pytest.raises(ChecksumError):
        prepare(archive, out)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:1000])
    with pytest.raises(InvalidFileError, match="cut.tar.gz"):
        prepare(cut, out)
    with pytest.raises(InvalidFileError, match="does not exist"):
        prepare(tmp_path / "nowhere.tar.gz", out)
    assert not out.exists() and leftovers(tmp_path) == []


def test_prepare_uses_the_cached_archive(tmp_path: Path, archive: Path, sums: dict[str, str]) -> None:
    cache = tmp_path / "data"
    cache.mkdir()
    (cache / ARCHIVE).symlink_to(archive)
    out = tmp_path / "out.npz"
    # The only mirror is unreachable: success shows that nothing was downloaded.
    prepare(None, out, cache_dir=cache, mirrors=(UNREACHABLE,), checksums=sums)
    assert load(out)["x_test"].shape == (N_TEST, 32, 32, 3)


# ----------------------------------------------------------------------------- download


def test_offline_without_a_copy_says_how_to_supply_one(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        prepare(None, tmp_path / "out.npz", cache_dir=tmp_path / "cache", mirrors=(UNREACHABLE,), timeout=5)
    for part in ("data.cifar10", f"data/{ARCHIVE}", f"{UNREACHABLE}{ARCHIVE} (Connection refused)"):
        assert part in str(info.value)
    assert info.value.attempts == [(UNREACHABLE + ARCHIVE, "Connection refused")]
    assert list(tmp_path.rglob("*")) == []  # nothing written, not even the download folder


def test_download_from_local_mirror(tmp_path: Path, archive: Path, sums: dict[str, str]) -> None:
    requests: list[str] = []
    cache = tmp_path / "cache"
    out = tmp_path / "out.npz"
    with serve(archive.parent, requests) as url:
        # With the published checksums the stand-in is refused before it is cached.
        with pytest.raises(DownloadError, match=f"MD5 {sums[ARCHIVE]}, expected {EXPECTED_MD5[ARCHIVE]}"):
            prepare(None, out, cache_dir=cache, mirrors=(url,), timeout=5)
        assert not (cache / ARCHIVE).exists() and not out.exists()
        # With its own checksums it is downloaded (after an unreachable mirror), verified, written.
        prepare(None, out, cache_dir=cache, mirrors=(UNREACHABLE, url), timeout=5, checksums=sums)
        assert (cache / ARCHIVE).read_bytes() == archive.read_bytes()
        assert requests == [f"/{ARCHIVE}"] * 2
        # Present now: not downloaded again.
        assert cifar10.download(cache, mirrors=(url,), checksums=sums) == cache / ARCHIVE
        assert len(requests) == 2
    arrays = load(out)
    assert arrays["synthetic"] is True  # not verified against the published checksums
    np.testing.assert_array_equal(arrays["y_train"], read_archive(archive, sums)["y_train"])
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- command line


def test_cli_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "cifar10.npz"
    cmd = [sys.executable, "-m", "equivdyn.cli", "data", "cifar10", "--source", "synthetic", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert load(out)["synthetic"] is True
    missing = tmp_path / "missing.tar.gz"
    bad = [*cmd[:-4], "--source", str(missing), "--out", str(tmp_path / "x.npz")]
    proc = subprocess.run(bad, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "equivdyn data: error" in proc.stderr and str(missing) in proc.stderr
    assert not (tmp_path / "x.npz").exists()
