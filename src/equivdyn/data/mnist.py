"""MNIST: read a local copy or download it, verify its content, write it as one ``.npz``.

The data stage (:func:`prepare`) accepts MNIST in either of the two forms in which it
circulates:

* an ``.npz`` file holding the uint8 arrays ``x_train`` (60000×28×28), ``y_train``
  (60000), ``x_test`` (10000×28×28) and ``y_test`` (10000);
* a folder holding the four IDX files of the original distribution (:data:`FILES`),
  gzip-compressed or not.

Without a local copy it downloads the IDX files from the first of :data:`MIRRORS` that
delivers them.  Whatever the source, the content is then checked against the SHA-256
of each array's raw bytes (:data:`SHA256`), so a mirror need not be trusted and an
altered copy never reaches training.  The result is written atomically as an
uncompressed ``.npz`` that :func:`load` reads back quickly, without hashing again.

Every failure raises an :class:`~equivdyn.errors.EquivdynError` whose message names
the file and the problem: :class:`~equivdyn.errors.InvalidFileError` for an unreadable
or malformed file, :class:`ChecksumError` for wrong content and :class:`DownloadError`
when no mirror could deliver.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._io import atomic_path, content_key
from ..errors import InvalidFileError, ParameterError
from . import _common
from ._common import as_path as _as_path

log = logging.getLogger(__name__)

#: SHA-256 of the raw bytes (C order) of each canonical MNIST array.
SHA256: dict[str, str] = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

#: Shape of each array; every array is uint8.
SHAPES: dict[str, tuple[int, ...]] = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}

#: Names of the arrays, in the order in which they are read, hashed and written.
NAMES: tuple[str, ...] = tuple(SHAPES)

#: The data stage's spec: the workflow plans the dataset under it, so its content key
#: names the prepared file like any other result's.
DATASET_SPEC: dict[str, Any] = {"stage": "data", "experiment": "mnist", "params": {"sha256": SHA256}, "inputs": {}}
#: Content key of the dataset; part of the key of every result computed from it.
DATASET_KEY: str = content_key(DATASET_SPEC)

#: File name of each array in the original distribution (IDX format, gzip-compressed).
FILES: dict[str, str] = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

#: Public base URLs of the IDX files, tried in order.  The content is verified by
#: :data:`SHA256` after the download, so no mirror has to be trusted.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: How to supply the data on a machine that cannot download it.
OFFLINE_HINT = (
    "To supply the data offline, set data.mnist in the config to a local copy (an .npz "
    "with x_train, y_train, x_test, y_test as uint8, or a folder with the four IDX files), "
    "or copy mnist.npz to data/mnist.npz. Fig. 3 and its appendix figure need MNIST; "
    "without it, `e3: {networks: [resnet20]}` in the config drops the LeNet panels of Fig. 4"
)

_IDX_UINT8 = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = _common.CHUNK


class ChecksumError(_common.ChecksumError):
    """An array's content differs from canonical MNIST: the SHA-256 of its raw bytes (C order).

    The arguments are those of :class:`equivdyn.data._common.ChecksumError`, ``item``
    being the array's name (also :attr:`array`).
    """

    dataset = "MNIST"
    algorithm = "SHA-256"
    subject = "array"

    @property
    def array(self) -> str:
        """Name of the array whose content differs."""
        return self.item


class DownloadError(_common.DownloadError):
    """No mirror could deliver an MNIST file (arguments as :class:`equivdyn.data._common.DownloadError`)."""

    dataset = "MNIST"
    hint = OFFLINE_HINT


# ----------------------------------------------------------------------------- IDX files


def _is_gzip(path: Path) -> bool:
    """Whether ``path`` is gzip-compressed, by its name or by its first two bytes."""
    if path.name.endswith(".gz"):
        return True
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _parse_idx(path: Path, handle: BinaryIO) -> np.ndarray:
    """Read an IDX stream: magic, dimensions, then exactly the payload."""
    magic = handle.read(4)
    if len(magic) < 4:
        raise InvalidFileError(path, f"not an IDX file: {len(magic)} bytes, shorter than the 4-byte magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise InvalidFileError(
            path, f"not an IDX file: magic number {magic.hex()} does not start with two zero bytes"
        )
    if magic[2] != _IDX_UINT8:
        raise InvalidFileError(
            path, f"unsupported IDX data type 0x{magic[2]:02x}; only 0x08 (unsigned byte) is supported"
        )
    ndim = magic[3]
    if ndim == 0:
        raise InvalidFileError(path, "IDX header gives 0 dimensions")
    header = handle.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise InvalidFileError(path, f"truncated IDX header: expected {ndim} dimensions of 4 bytes each")
    dims = struct.unpack(f">{ndim}I", header)
    expected = 1
    for d in dims:
        expected *= d
    # Read in chunks, stopping one chunk past the expected size, so that a header with
    # absurd dimensions cannot make us allocate more than the file holds.
    buf = bytearray()
    while len(buf) <= expected:
        chunk = handle.read(min(_CHUNK, expected + 1 - len(buf)))
        if not chunk:
            break
        buf += chunk
    shape = "x".join(str(d) for d in dims)
    if len(buf) < expected:
        raise InvalidFileError(
            path, f"truncated IDX file: header gives {shape} = {expected} bytes, payload has {len(buf)}"
        )
    if len(buf) > expected:
        raise InvalidFileError(path, f"IDX file has data after the {expected}-byte payload of shape {shape}")
    return np.frombuffer(buf, dtype=np.uint8).reshape(dims)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a uint8 array from an IDX file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; gzip-compressed if its name ends in ``.gz`` or its first bytes are the
        gzip magic number, else raw.

    Returns
    -------
    numpy.ndarray
        A writable uint8 array of the shape given in the file's header.

    Raises
    ------
    InvalidFileError
        The file is missing or unreadable, is not an IDX file of unsigned bytes, or its
        payload does not have exactly the length that its header gives (a truncated or
        corrupt gzip stream included).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(path, "file does not exist" if not path.exists() else "not a file")
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as handle:
                return _parse_idx(path, handle)  # type: ignore[arg-type]
        with open(path, "rb") as handle:
            return _parse_idx(path, handle)
    except InvalidFileError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidFileError(path, f"cannot read IDX file: {type(exc).__name__}: {exc}") from exc


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array to an IDX file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file; gzip-compressed when its name ends in ``.gz``.  The gzip header holds
        no time stamp, so equal arrays give equal files.
    array : numpy.ndarray
        A uint8 array of 1 to 255 dimensions, each smaller than 2**32.

    Raises
    ------
    ParameterError
        ``array`` is not a uint8 array or its shape cannot be written as IDX.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise ParameterError(f"write_idx: array must be a numpy uint8 array, got {dtype}")
    if not 1 <= array.ndim <= 255 or any(d >= 2**32 for d in array.shape):
        raise ParameterError(f"write_idx: cannot write an array of shape {array.shape} as IDX")
    path = Path(path)
    header = bytes([0, 0, _IDX_UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = memoryview(np.ascontiguousarray(array)).cast("B")
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as handle:
                handle.write(header)
                handle.write(payload)
        else:
            raw.write(header)
            raw.write(payload)


# ----------------------------------------------------------------------------- sources


def _check_array(path: object, name: str, array: np.ndarray) -> None:
    """Raise :class:`InvalidFileError` unless ``array`` has the dtype and shape of MNIST's ``name``."""
    if array.dtype != np.uint8:
        raise InvalidFileError(path, f"array {name} has dtype {array.dtype}, expected uint8")
    if array.shape != SHAPES[name]:
        raise InvalidFileError(path, f"array {name} has shape {array.shape}, expected {SHAPES[name]}")


def _idx_file(folder: Path, name: str) -> Path | None:
    """The IDX file of array ``name`` in ``folder`` (gzipped name first), or ``None``."""
    gz = folder / FILES[name]
    for candidate in (gz, gz.with_suffix("")):
        if candidate.is_file():
            return candidate
    return None


def _has_idx_files(folder: Path) -> bool:
    return folder.is_dir() and all(_idx_file(folder, name) is not None for name in NAMES)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read and check the four arrays of an ``.npz`` file (no pickles)."""
    return _common.load_npz(path, NAMES, _check_array)


def load_source(source: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read MNIST from a local copy, checking dtype and shape but not content.

    Parameters
    ----------
    source : str or os.PathLike
        An ``.npz`` file with the uint8 arrays ``x_train``, ``y_train``, ``x_test`` and
        ``y_test``, or a folder holding the four IDX files named in :data:`FILES`
        (or the same names without ``.gz``).

    Returns
    -------
    dict of str to numpy.ndarray
        The four arrays, keyed by name in the order of :data:`SHAPES`.

    Raises
    ------
    ParameterError
        ``source`` is not a path.
    InvalidFileError
        The path is missing; an array or IDX file is missing, unreadable, truncated,
        holds pickled objects or has the wrong dtype or shape.
    """
    path = _as_path(source, "MNIST source")
    if not path.exists():
        raise InvalidFileError(path, "MNIST source does not exist")
    if not path.is_dir():
        return _load_npz(path)
    arrays: dict[str, np.ndarray] = {}
    for name in NAMES:
        idx = _idx_file(path, name)
        if idx is None:
            raise InvalidFileError(
                path, f"missing IDX file {FILES[name]} (or {Path(FILES[name]).stem}) for {name}"
            )
        array = read_idx(idx)
        _check_array(idx, name, array)
        arrays[name] = array
    return arrays


def verify(arrays: Mapping[str, np.ndarray], source: object) -> None:
    """Check that the arrays are canonical MNIST, by the SHA-256 of their raw bytes.

    Parameters
    ----------
    arrays : mapping of str to numpy.ndarray
        ``x_train``, ``y_train``, ``x_test`` and ``y_test``.
    source : object
        Where the arrays came from; named in the error message.

    Raises
    ------
    ChecksumError
        At the first array whose bytes (C order) do not have the expected SHA-256.
    ParameterError
        An array is missing from ``arrays``.
    """
    for name in NAMES:
        if name not in arrays:
            raise ParameterError(f"verify: array {name} is missing (from {source})")
        array = np.asarray(arrays[name])
        if array.dtype.hasobject:
            raise ParameterError(f"verify: array {name} (from {source}) holds Python objects")
        actual = hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()
        if actual != SHA256[name]:
            notes = []
            if array.dtype != np.uint8:
                notes.append(f"dtype {array.dtype}, expected uint8")
            if array.shape != SHAPES[name]:
                notes.append(f"shape {array.shape}, expected {SHAPES[name]}")
            raise ChecksumError(source, name, SHA256[name], actual, "; ".join(notes))
        log.debug("%s: %s checksum ok", source, name)


# ----------------------------------------------------------------------------- download


def _check_download(name: str) -> Callable[[Path], None]:
    """A check that refuses what is not an IDX file of array ``name``'s shape.

    It runs before a downloaded file is cached, so that an error page or a truncated
    file never is; the content itself is checked by :func:`verify`.
    """

    def check(path: Path) -> None:
        try:
            array = read_idx(path)
        except InvalidFileError as exc:
            raise _common.BadDownload(f"not a valid IDX file: {exc.problem}") from exc
        if array.shape != SHAPES[name]:
            raise _common.BadDownload(f"IDX array of shape {array.shape}, expected {SHAPES[name]}")

    return check


def download(
    dest: str | os.PathLike[str],
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30.0,
) -> Path:
    """Download the four MNIST IDX files into a folder.

    Each file is tried at the mirrors in order, starting with the mirror that delivered
    the previous file.  A download is streamed to a temporary file, checked to be an
    IDX file of the expected shape and only then renamed into place, so an interrupted
    or bad download leaves nothing behind.  Files already in ``dest`` are kept.  The
    content is not verified here; :func:`prepare` does that.

    Parameters
    ----------
    dest : str or os.PathLike
        The folder; created if missing.
    mirrors : sequence of str
        Base URLs; a file's URL is the base URL followed by its name in :data:`FILES`.
    timeout : float
        Seconds to wait for a server to connect or send data.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DownloadError
        No mirror delivered one of the files; the message lists each URL tried with
        the reason it failed and says how to supply the data offline.
    """
    dest = _as_path(dest, "download folder")
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    _common.check_download_folder(dest, "MNIST")
    order = [m if m.endswith("/") else m + "/" for m in mirrors]
    for name in NAMES:
        filename = FILES[name]
        present = _idx_file(dest, name)
        if present is not None:
            log.info("MNIST: %s already present, not downloaded", present)
            continue
        base = _common.fetch_first(
            dest, filename, order, check=_check_download(name), error=DownloadError, timeout=timeout, log=log
        )
        order.remove(base)
        order.insert(0, base)
    return dest


# ----------------------------------------------------------------------------- the stage


def prepare(
    source: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] = "data",
    *,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30.0,
) -> Path:
    """The data stage: find MNIST, verify it and write it to ``out``.

    Parameters
    ----------
    source : str, os.PathLike or None
        A local copy (see :func:`load_source`).  ``None`` uses ``cache_dir/mnist.npz`` if
        it exists, else ``cache_dir/mnist/`` if it holds the four IDX files, else
        downloads them there first.
    out : str or os.PathLike
        The ``.npz`` to write (uncompressed; arrays ``x_train``, ``y_train``,
        ``x_test``, ``y_test``).  Written atomically, and only after verification.
    cache_dir : str or os.PathLike
        Folder searched for, and receiving, the data when ``source`` is ``None``.
    mirrors : sequence of str
        Base URLs for the download (see :func:`download`).
    timeout : float
        Seconds to wait for a mirror (see :func:`download`).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InvalidFileError
        The local copy is missing, unreadable or malformed.
    ChecksumError
        The data are not canonical MNIST; ``out`` is not written.
    DownloadError
        The data had to be downloaded and no mirror delivered them.
    """
    out = _as_path(out, "output path")
    if source is not None:
        path = _as_path(source, "MNIST source (data.mnist)")
        log.info("MNIST: reading the configured copy %s", path)
    else:
        cache = _as_path(cache_dir, "cache_dir")
        if (cache / "mnist.npz").is_file():
            path = cache / "mnist.npz"
            log.info("MNIST: reading the cached copy %s", path)
        elif _has_idx_files(cache / "mnist"):
            path = cache / "mnist"
            log.info("MNIST: reading the cached IDX files in %s", path)
        else:
            log.info("MNIST: no local copy in %s; downloading", cache)
            path = download(cache / "mnist", mirrors=mirrors, timeout=timeout)
    arrays = load_source(path)
    verify(arrays, path)
    log.info("MNIST: checksums of %s match (dataset key %s)", path, DATASET_KEY)
    _common.write_npz(out, {name: arrays[name] for name in NAMES})
    log.info("MNIST: wrote %s", out)
    return out


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the ``.npz`` that :func:`prepare` wrote, checking dtype and shape only.

    The content is not checked against MNIST's published hashes again (:func:`prepare`
    did, and the file's path holds :data:`DATASET_KEY`), but against the digest
    :func:`prepare` stored in the file.

    Parameters
    ----------
    path : str or os.PathLike
        The prepared ``.npz``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``x_train``, ``y_train``, ``x_test`` and ``y_test`` as uint8 arrays.

    Raises
    ------
    InvalidFileError
        The file is missing, unreadable, truncated, holds pickled objects, an array
        is missing or has the wrong dtype or shape, or the digest does not match.
    """
    return _common.load_npz(_as_path(path, "MNIST file"), NAMES, _check_array, sealed=True)


__all__ = [
    "DATASET_KEY",
    "FILES",
    "MIRRORS",
    "NAMES",
    "SHA256",
    "SHAPES",
    "ChecksumError",
    "DownloadError",
    "download",
    "load",
    "load_source",
    "prepare",
    "read_idx",
    "verify",
    "write_idx",
]
