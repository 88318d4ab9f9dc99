"""Tests of the MNIST data stage (equivdyn.data.mnist).

The machine running the tests has no internet access: downloads are tested against
HTTP servers on 127.0.0.1 serving synthetic IDX files, and the offline error against a
port where nothing listens.  The real MNIST comes from the shared copy beside the
checkout and proves the checksums.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import pickle
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from equivdyn._io import content_key
from equivdyn.data import mnist
from equivdyn.data._common import NPZ_DIGEST, write_npz
from equivdyn.data.mnist import (
    DATASET_KEY,
    FILES,
    MIRRORS,
    SHA256,
    SHAPES,
    ChecksumError,
    DownloadError,
    download,
    load,
    load_source,
    prepare,
    read_idx,
    verify,
    write_idx,
)
from equivdyn.errors import EquivdynError, InvalidFileError, ParameterError

MNIST_NPZ = Path(__file__).resolve().parents[2] / "shared/data/mnist.npz"
#: Nothing listens on the discard port: connections are refused at once.
UNREACHABLE = "http://127.0.0.1:9/"
NAMES = ("x_train", "y_train", "x_test", "y_test")
# The checksums, written out independently of the module under test.
EXPECTED_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reach the local test servers directly, whatever proxy the environment names."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


def synthetic_mnist(seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic arrays (random, NOT MNIST) with MNIST's dtype and shapes.

    The images are zero but for a random 4×4 patch, so that gzip is quick.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for name, shape in SHAPES.items():
        if len(shape) == 3:
            array = np.zeros(shape, dtype=np.uint8)
            array[:, 12:16, 12:16] = rng.integers(0, 256, (shape[0], 4, 4), dtype=np.uint8)
        else:
            array = rng.integers(0, 10, shape, dtype=np.uint8)
        arrays[name] = array
    return arrays


def small_synthetic(seed: int = 0, **changes: Any) -> dict[str, Any]:
    """Small synthetic uint8 arrays under MNIST's names (wrong shapes on purpose), with ``changes``."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, Any] = {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 6, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 2, dtype=np.uint8),
    }
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes left in ``folder`` (there should be none)."""
    return sorted(p.name for p in folder.rglob("*.part"))


@contextlib.contextmanager
def serve(directory: Path, requests: list[str] | None = None) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (an ephemeral port); yield the base URL.

    Each requested path is appended to ``requests``.  The server is shut down on exit.
    """

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self) -> None:  # the name http.server calls
            if requests is not None:
                requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def real_arrays() -> dict[str, np.ndarray]:
    """The real MNIST from the shared copy (read once for the module; do not modify)."""
    return load_source(MNIST_NPZ)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the four gzipped IDX files of :func:`synthetic_mnist` (synthetic data)."""
    folder = tmp_path_factory.mktemp("synthetic_idx")
    for name, array in synthetic_mnist(seed=1).items():
        write_idx(folder / FILES[name], array)
    return folder


# ----------------------------------------------------------------------------- constants


def test_constants_and_dataset_key() -> None:
    assert SHA256 == EXPECTED_SHA256
    assert SHAPES == {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
    assert FILES == {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    assert MIRRORS and all(m.startswith(("https://", "http://")) and m.endswith("/") for m in MIRRORS)
    # The content key, computed independently: SHA-256 of the canonical JSON, 16 hex digits.
    record = {"stage": "data", "experiment": "mnist", "params": {"sha256": EXPECTED_SHA256}, "inputs": {}}
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert DATASET_KEY == hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
    assert DATASET_KEY == content_key(record)


def test_errors_are_equivdyn_errors_and_pickle() -> None:
    errors = [
        ChecksumError("a.npz", "x_train", "0" * 64, "1" * 64, "dtype int16, expected uint8"),
        DownloadError("data/mnist", FILES["y_test"], [(UNREACHABLE + FILES["y_test"], "Connection refused")]),
    ]
    for exc in errors:
        assert isinstance(exc, EquivdynError)
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)


# ----------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (5, 3, 4)])
def test_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)  # synthetic
    path = tmp_path / f"synthetic-idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    raw = path.read_bytes()
    if suffix:
        assert raw[:2] == b"\x1f\x8b"
        write_idx(tmp_path / "again.gz", array)  # no time stamp: equal arrays, equal files
        assert (tmp_path / "again.gz").read_bytes() == raw
    else:
        header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        assert raw == header + array.tobytes()
    assert leftovers(tmp_path) == []


def test_read_idx_detects_gzip_by_magic(tmp_path: Path) -> None:
    array = np.arange(30, dtype=np.uint8).reshape(3, 10)  # synthetic
    write_idx(tmp_path / "synthetic.gz", array)
    (tmp_path / "synthetic.gz").rename(tmp_path / "synthetic-no-suffix")
    np.testing.assert_array_equal(read_idx(tmp_path / "synthetic-no-suffix"), array)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_idx(tmp_path: Path, suffix: str) -> None:
    array = np.random.default_rng(3).integers(0, 256, (50, 28, 28), dtype=np.uint8)  # synthetic
    path = tmp_path / f"synthetic-images{suffix}"
    write_idx(path, array)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InvalidFileError) as info:
        read_idx(path)
    assert path.name in str(info.value)
    if not suffix:
        assert "truncated" in str(info.value)
    # Only part of the header.
    path.write_bytes(raw[:6] if not suffix else b"")
    with pytest.raises(InvalidFileError, match=path.name):
        read_idx(path)


def test_bad_idx_files(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(InvalidFileError, match="magic"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + bytes(12))  # float32 IDX
    with pytest.raises(InvalidFileError, match="unsupported IDX data type 0x0d"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"abcd")  # one byte too many
    with pytest.raises(InvalidFileError, match="data after"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x02" + (2**31).to_bytes(4, "big") * 2 + b"ab")  # absurd header
    with pytest.raises(InvalidFileError, match="truncated"):
        read_idx(path)
    with pytest.raises(InvalidFileError, match="does not exist"):
        read_idx(tmp_path / "missing.gz")
    # A gzip stream with a damaged body (a CRC or zlib error, never a bare exception).
    gz = tmp_path / "synthetic-damaged.gz"
    write_idx(gz, np.random.default_rng(4).integers(0, 256, 4000, dtype=np.uint8))
    raw = bytearray(gz.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 8] = bytes(8)
    gz.write_bytes(bytes(raw))
    with pytest.raises(InvalidFileError, match=gz.name):
        read_idx(gz)


def test_write_idx_refuses_other_dtypes(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="uint8"):
        write_idx(tmp_path / "f.gz", np.zeros(3, dtype=np.float32))
    with pytest.raises(ParameterError, match="shape"):
        write_idx(tmp_path / "f.gz", np.zeros((), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- load_source


def test_load_source_idx_folders(tmp_path: Path, synthetic_dir: Path) -> None:
    expected = synthetic_mnist(seed=1)
    arrays = load_source(synthetic_dir)
    assert list(arrays) == list(NAMES)
    for name in NAMES:
        np.testing.assert_array_equal(arrays[name], expected[name])
    # The same files without compression and without ".gz".
    raw_dir = tmp_path / "raw"
    for name in NAMES:
        write_idx(raw_dir / FILES[name].removesuffix(".gz"), expected[name])
    for name, array in load_source(raw_dir).items():
        np.testing.assert_array_equal(array, expected[name])


def test_load_source_npz(tmp_path: Path) -> None:
    expected = synthetic_mnist(seed=5)
    path = tmp_path / "synthetic.npz"
    np.savez_compressed(path, **expected)
    arrays = load_source(str(path))
    for name in NAMES:
        assert arrays[name].dtype == np.uint8
        np.testing.assert_array_equal(arrays[name], expected[name])


def test_load_source_missing(tmp_path: Path, synthetic_dir: Path) -> None:
    with pytest.raises(InvalidFileError, match="does not exist"):
        load_source(tmp_path / "nowhere.npz")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("x_train", "y_train", "x_test"):
        (partial / FILES[name]).symlink_to(synthetic_dir / FILES[name])
    with pytest.raises(InvalidFileError) as info:
        load_source(partial)
    assert str(partial) in str(info.value) and FILES["y_test"] in str(info.value)
    with pytest.raises(ParameterError):
        load_source(None)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        load_source("")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x_train": np.zeros((6, 28, 28), dtype=np.float32)}, "x_train has dtype float32, expected uint8"),
        ({}, r"x_train has shape \(6, 28, 28\), expected \(60000, 28, 28\)"),
        ({"y_train": None}, "missing array"),
        ({"x_train": np.array([{"a": 1}], dtype=object)}, "Python objects"),
    ],
    ids=["float32", "shape", "missing", "object"],
)
def test_npz_content_errors(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = tmp_path / "synthetic-bad.npz"
    arrays = small_synthetic(seed=6, **changes)
    np.savez(path, **arrays)
    # a prepared file also holds a checksum entry; the content checks come first
    prepared = tmp_path / "prepared-bad.npz"
    np.savez(prepared, **arrays, **{NPZ_DIGEST: np.array("0" * 64)})
    for reader, p in ((load_source, path), (load, prepared)):
        with pytest.raises(InvalidFileError, match=message) as info:
            reader(p)
        assert str(p) in str(info.value)


def test_prepared_npz_verifies_its_checksum(tmp_path: Path, real_arrays: dict[str, np.ndarray]) -> None:
    out = tmp_path / "prepared.npz"
    write_npz(out, real_arrays)
    assert all(np.array_equal(load(out)[n], real_arrays[n]) for n in NAMES)
    assert all(np.array_equal(load_source(out)[n], real_arrays[n]) for n in NAMES)  # a source ignores the entry
    with np.load(out) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["y_test"] = arrays["y_test"].copy()
    arrays["y_test"][0] ^= 1  # one changed label, the stored checksum kept
    edited = tmp_path / "edited.npz"
    np.savez(edited, **arrays)
    with pytest.raises(InvalidFileError, match="checksum mismatch") as info:
        load(edited)
    assert str(edited) in str(info.value)
    unsealed = tmp_path / "unsealed.npz"
    np.savez(unsealed, **real_arrays)
    with pytest.raises(InvalidFileError, match="no checksum entry 'sha256'.*verify --remove"):
        load(unsealed)


def test_npz_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.npz"
    np.savez(path, **small_synthetic(seed=7))
    raw = path.read_bytes()
    cases = {
        "half": raw[: len(raw) // 2],
        "empty": b"",
        "text": b"this is not an npz file\n",
        # Damaged member data with the zip directory intact: a CRC error on reading.
        "damaged": raw[:1000] + bytes(64) + raw[1064:],
    }
    for case, content in cases.items():
        path.write_bytes(content)
        for reader in (load_source, load):
            with pytest.raises(InvalidFileError, match="synthetic.npz") as info:
                reader(path)
            assert str(path) in str(info.value), case
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3, dtype=np.uint8))
    with pytest.raises(InvalidFileError, match=r"single \.npy"):
        load_source(npy)


# ----------------------------------------------------------------------------- verify / prepare


def test_verify_real_mnist(real_arrays: dict[str, np.ndarray]) -> None:
    for name in NAMES:
        assert real_arrays[name].dtype == np.uint8 and real_arrays[name].shape == SHAPES[name]
        assert sha256_of(real_arrays[name]) == EXPECTED_SHA256[name]
    verify(real_arrays, MNIST_NPZ)


def test_verify_one_pixel_changed(real_arrays: dict[str, np.ndarray]) -> None:
    arrays = dict(real_arrays)
    arrays["x_train"] = real_arrays["x_train"].copy()
    arrays["x_train"][123, 14, 14] ^= 1
    with pytest.raises(ChecksumError) as info:
        verify(arrays, "altered-copy.npz")
    message = str(info.value)
    assert "x_train" in message and "altered-copy.npz" in message
    assert EXPECTED_SHA256["x_train"] in message and sha256_of(arrays["x_train"]) in message
    assert info.value.array == "x_train"
    # A different dtype with equal values is different content, and the message says why.
    arrays = dict(real_arrays, y_test=real_arrays["y_test"].astype(np.int64))
    with pytest.raises(ChecksumError, match="y_test.*dtype int64, expected uint8"):
        verify(arrays, "copy.npz")
    with pytest.raises(ParameterError, match="y_test"):
        verify({k: v for k, v in real_arrays.items() if k != "y_test"}, "copy.npz")


def test_prepare_real_mnist(
    tmp_path: Path, real_arrays: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "results" / "data" / "mnist" / f"{DATASET_KEY}.npz"
    with caplog.at_level(logging.INFO, logger="equivdyn.data.mnist"):
        assert prepare(MNIST_NPZ, out, cache_dir=tmp_path / "unused", mirrors=(UNREACHABLE,)) == out
    assert str(MNIST_NPZ) in caplog.text
    assert out.is_file() and leftovers(out.parent) == []
    assert not (tmp_path / "unused").exists()
    with zipfile.ZipFile(out) as archive:  # uncompressed, only the four arrays and their checksum
        assert sorted(archive.namelist()) == sorted(f"{name}.npy" for name in (*NAMES, NPZ_DIGEST))
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    arrays = load(out)
    assert list(arrays) == list(NAMES)
    for name in NAMES:
        np.testing.assert_array_equal(arrays[name], real_arrays[name])


def test_prepare_refuses_altered_copy(tmp_path: Path, real_arrays: dict[str, np.ndarray]) -> None:
    arrays = dict(real_arrays)
    arrays["x_train"] = real_arrays["x_train"].copy()
    arrays["x_train"][0, 0, 0] += 1
    altered = tmp_path / "altered.npz"
    np.savez(altered, **arrays)
    out = tmp_path / "out" / "mnist.npz"
    with pytest.raises(ChecksumError) as info:
        prepare(altered, out)
    assert "x_train" in str(info.value) and str(altered) in str(info.value)
    assert EXPECTED_SHA256["x_train"] in str(info.value)
    assert not out.exists() and leftovers(tmp_path) == []


def test_prepare_uses_cached_npz(
    tmp_path: Path, real_arrays: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "data"
    cache.mkdir()
    (cache / "mnist.npz").symlink_to(MNIST_NPZ)
    out = tmp_path / "out.npz"
    # The only mirror is unreachable: success shows that nothing was downloaded.
    with caplog.at_level(logging.INFO, logger="equivdyn.data.mnist"):
        prepare(None, out, cache_dir=cache, mirrors=(UNREACHABLE,))
    assert "cached copy" in caplog.text and "downloading" not in caplog.text
    np.testing.assert_array_equal(load(out)["y_test"], real_arrays["y_test"])
    assert not (cache / "mnist").exists()


def test_prepare_offline_without_data(tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache"
    out = tmp_path / "out.npz"
    with pytest.raises(DownloadError) as info:
        prepare(None, out, cache_dir=cache, mirrors=(UNREACHABLE,), timeout=5)
    message = str(info.value)
    assert "data.mnist" in message and "data/mnist.npz" in message
    assert UNREACHABLE + FILES["x_train"] in message and "refused" in message.lower()
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no file, no empty download folder


# ----------------------------------------------------------------------------- download


def test_download_from_local_mirror(tmp_path: Path, synthetic_dir: Path) -> None:
    requests: list[str] = []
    cache = tmp_path / "cache"
    out = tmp_path / "out.npz"
    with serve(synthetic_dir, requests) as url:
        mirrors = (UNREACHABLE, url)
        # The files arrive through the second mirror, then fail verification: they are
        # synthetic, and downloaded content is checked like any other.
        with pytest.raises(ChecksumError) as info:
            prepare(None, out, cache_dir=cache, mirrors=mirrors, timeout=5)
        assert "x_train" in str(info.value) and str(cache / "mnist") in str(info.value)
        assert not out.exists()
        for name in NAMES:
            assert (cache / "mnist" / FILES[name]).read_bytes() == (synthetic_dir / FILES[name]).read_bytes()
        assert sorted(requests) == sorted(f"/{f}" for f in FILES.values())
        assert leftovers(tmp_path) == []
        # Files already present are not downloaded again.
        requests.clear()
        assert download(cache / "mnist", mirrors=mirrors, timeout=5) == cache / "mnist"
        assert requests == []


def test_download_missing_file_lists_reasons(tmp_path: Path, synthetic_dir: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    for name in ("x_train", "y_train", "x_test"):
        (served / FILES[name]).symlink_to(synthetic_dir / FILES[name])
    dest = tmp_path / "dest"
    with serve(served) as url, pytest.raises(DownloadError) as info:
        download(dest, mirrors=(UNREACHABLE, url), timeout=5)
    message = str(info.value)
    assert FILES["y_test"] in message and "data.mnist" in message
    assert f"{UNREACHABLE}{FILES['y_test']} (Connection refused)" in message
    assert f"{url}{FILES['y_test']} (HTTP 404" in message
    # The mirror that delivered the earlier files is tried first.
    assert [a[0] for a in info.value.attempts] == [url + FILES["y_test"], UNREACHABLE + FILES["y_test"]]
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES[n] for n in ("x_train", "y_train", "x_test"))


def test_download_skips_bad_mirror(tmp_path: Path, synthetic_dir: Path) -> None:
    bad = tmp_path / "bad"  # a mirror that answers every file with an error page
    bad.mkdir()
    for filename in FILES.values():
        (bad / filename).write_bytes(b"<html><body>moved</body></html>\n")
    short = tmp_path / "short"  # a mirror with a valid IDX file of the wrong shape (synthetic)
    write_idx(short / FILES["x_train"], np.zeros((3, 28, 28), dtype=np.uint8))
    bad_requests: list[str] = []
    good_requests: list[str] = []
    dest = tmp_path / "dest"
    with (
        serve(bad, bad_requests) as bad_url,
        serve(short) as short_url,
        serve(synthetic_dir, good_requests) as good_url,
    ):
        with pytest.raises(DownloadError) as info:
            download(dest, mirrors=(bad_url, short_url), timeout=5)
        assert "not a valid IDX file" in str(info.value) and "shape (3, 28, 28)" in str(info.value)
        assert not dest.exists() or list(dest.iterdir()) == []
        bad_requests.clear()
        download(dest, mirrors=(bad_url, good_url), timeout=5)
    for name in NAMES:
        assert (dest / FILES[name]).read_bytes() == (synthetic_dir / FILES[name]).read_bytes()
    # After the good mirror delivered the first file, it is tried first for the others.
    assert bad_requests == [f"/{FILES['x_train']}"]
    assert len(good_requests) == 4


def test_download_timeout(tmp_path: Path) -> None:
    # A server that accepts connections (in the kernel's backlog) but never answers.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(DownloadError, match=r"timed out after 0\.3 s"):
            download(tmp_path / "dest", mirrors=(url,), timeout=0.3)


def test_download_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ParameterError):
        download(None)  # type: ignore[arg-type]
    with pytest.raises(DownloadError, match="no mirror given"):
        download(tmp_path / "dest", mirrors=())
    with pytest.raises(DownloadError, match="not-a-url"):
        download(tmp_path / "dest", mirrors=("not-a-url/",))
    assert mnist.OFFLINE_HINT in str(DownloadError("d", "f", []))
