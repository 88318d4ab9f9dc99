"""What the dataset modules share: their errors, downloads, and ``.npz`` reading and writing.

Each dataset module (:mod:`~equivdyn.data.mnist`, :mod:`~equivdyn.data.cifar10`)
subclasses :class:`ChecksumError` and :class:`DownloadError` to name its dataset and
to say how to supply the data offline, and passes its own checks to :func:`fetch_first`
and :func:`load_npz`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import struct
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from .._io import array_digest, atomic_path, record_digest
from ..errors import EquivdynError, InvalidFileError, ParameterError

#: Bytes read at a time from a download or a file being hashed.
CHUNK = 1 << 20
_USER_AGENT = "equivdyn (dataset download; https://pypi.org/project/equivdyn/)"
#: First bytes of a zip archive (an .npz; the second form is an empty archive) and of an .npy file.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
# What np.load and reading an array from an NpzFile raise on a truncated or corrupt file.
_NPZ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    NotImplementedError,
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
)


class ChecksumError(EquivdynError):
    """Some content differs from the canonical dataset.

    Subclasses set :attr:`dataset`, :attr:`algorithm` and :attr:`subject`.

    Parameters
    ----------
    source : object
        The file or folder the content came from.
    item : str
        Name of the array or file whose checksum differs (e.g. ``"x_train"``).
    expected, actual : str
        Expected and actual checksum (hex).
    note : str, optional
        Extra detail (e.g. a dtype or shape that differs from the expected one).
    """

    dataset: ClassVar[str] = "dataset"
    algorithm: ClassVar[str] = "SHA-256"
    subject: ClassVar[str] = "array"

    def __init__(self, source: object, item: str, expected: str, actual: str, note: str = "") -> None:
        self.source = str(source)
        self.item = item
        self.expected = expected
        self.actual = actual
        self.note = note
        detail = f" ({note})" if note else ""
        super().__init__(
            f"{self.source}: {self.subject} {item} has {self.algorithm} {actual}, expected {expected}{detail}; "
            f"this is not the canonical {self.dataset} (a corrupt or altered copy): replace or delete it"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.item, self.expected, self.actual, self.note))


class DownloadError(EquivdynError):
    """No URL could deliver a file of the dataset.

    Subclasses set :attr:`dataset` and :attr:`hint` (how to supply the data offline).

    Parameters
    ----------
    dest : object
        The folder the file was to be downloaded into.
    filename : str
        The file that could not be downloaded.
    attempts : sequence of (str, str)
        Each URL tried and a short reason why it failed.
    """

    dataset: ClassVar[str] = "dataset"
    hint: ClassVar[str] = ""

    def __init__(self, dest: object, filename: str, attempts: Sequence[tuple[str, str]]) -> None:
        self.dest = str(dest)
        self.filename = filename
        self.attempts = [(str(url), str(reason)) for url, reason in attempts]
        tried = "; ".join(f"{url} ({reason})" for url, reason in self.attempts) or "no mirror given"
        super().__init__(
            f"could not download {self.dataset} file {filename} into {self.dest}: tried {tried}. "
            f"This machine may have no internet access. {self.hint}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.dest, self.filename, self.attempts))


def as_path(value: str | os.PathLike[str], name: str) -> Path:
    """``value`` as a :class:`~pathlib.Path`; :class:`ParameterError` naming ``name`` unless it is a path."""
    if not isinstance(value, (str, os.PathLike)):
        raise ParameterError(f"{name} must be a path, got {value!r} of type {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise ParameterError(f"{name} must be a path, got an empty string")
    return Path(value)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes (``algorithm`` as :func:`hashlib.new` names it)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- .npz files


#: Entry of a prepared ``.npz`` holding the digest of its arrays (see :func:`write_npz`).
NPZ_DIGEST = "sha256"


def _npz_digest(arrays: Mapping[str, np.ndarray]) -> str:
    return record_digest({name: array_digest(arr) for name, arr in arrays.items()})


def load_npz(
    path: Path, names: Sequence[str], check: Callable[[Path, str, np.ndarray], None], *, sealed: bool = False
) -> dict[str, np.ndarray]:
    """Read the arrays ``names`` of an ``.npz`` file (no pickles), each passed to ``check``.

    ``sealed``: the file is one :func:`write_npz` wrote, and its digest must match.

    Raises
    ------
    InvalidFileError
        The file is missing, unreadable, truncated, a single ``.npy`` array, lacks an
        array, holds pickled objects, or ``check`` refuses an array.
    """
    if not path.is_file():
        raise InvalidFileError(path, "file does not exist" if not path.exists() else "not a file")
    # Open the file here, so that it is closed whatever np.load raises.
    try:
        with open(path, "rb") as handle:
            arrays = _read_npz(path, handle, (*names, NPZ_DIGEST) if sealed else names, check)
    except OSError as exc:
        raise InvalidFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if sealed:
        stored = str(arrays.pop(NPZ_DIGEST))
        if stored != _npz_digest(arrays):
            raise InvalidFileError(path, "checksum mismatch (its arrays were changed after it was written)")
    return arrays


def _read_npz(
    path: Path, handle: BinaryIO, names: Sequence[str], check: Callable[[Path, str, np.ndarray], None]
) -> dict[str, np.ndarray]:
    # np.load takes any other file for a pickle and suggests loading it unsafely; say what it is.
    magic = handle.read(len(_NPY_MAGIC))
    handle.seek(0)
    if not magic:
        raise InvalidFileError(path, "file is empty (an interrupted write?)")
    if not magic.startswith(_ZIP_MAGIC) and magic != _NPY_MAGIC:
        raise InvalidFileError(path, f"not an .npz file: it starts with {magic!r}, not with a zip archive's signature")
    try:
        loaded = np.load(handle, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise InvalidFileError(
            path, f"not a readable .npz file (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InvalidFileError(path, f"is a single .npy array, expected an .npz with {', '.join(names)}")
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        missing = [name for name in names if name not in loaded.files]
        if missing == [NPZ_DIGEST]:
            raise InvalidFileError(
                path, f"has no checksum entry {NPZ_DIGEST!r} (prepared by an older equivdyn?); "
                "`equivdyn verify --remove` deletes it so that the workflow prepares it again"
            )
        if missing:
            raise InvalidFileError(
                path, f"missing array(s) {', '.join(missing)}; the file holds {sorted(loaded.files)}"
            )
        for name in names:
            try:
                array = loaded[name]
            except _NPZ_ERRORS as exc:
                if isinstance(exc, ValueError) and "pickle" in str(exc).lower():
                    problem = f"array {name} holds Python objects (pickled data), which are refused"
                else:
                    problem = f"cannot read array {name} (truncated or corrupt?): {type(exc).__name__}: {exc}"
                raise InvalidFileError(path, problem) from exc
            if name != NPZ_DIGEST:
                check(path, name, array)
            elif array.dtype.kind != "U" or array.ndim != 0:
                raise InvalidFileError(path, f"entry {NPZ_DIGEST} is not a checksum (dtype {array.dtype}, shape {array.shape})")
            arrays[name] = array
    return arrays


def write_npz(out: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the arrays, in order, plus their digest (entry :data:`NPZ_DIGEST`), as an
    uncompressed ``.npz``, atomically, under exactly ``out``."""
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        # Through a handle: np.savez would append ".npz" to the temporary name.
        np.savez(handle, **arrays, **{NPZ_DIGEST: np.array(_npz_digest(arrays))})


# ----------------------------------------------------------------------------- download


class BadDownload(Exception):
    """A response that arrived but is not the expected file; the message says why."""


# What a failed attempt can raise: urllib's errors (HTTPError, URLError and timeouts
# are OSErrors), http.client's (e.g. IncompleteRead), ValueError for a malformed URL,
# InvalidFileError and BadDownload for a response that is not the expected file.
_DOWNLOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    http.client.HTTPException,
    InvalidFileError,
    BadDownload,
)


def _reason(exc: BaseException, timeout: float) -> str:
    """A short reason for a failed download attempt."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, InvalidFileError):
        return f"not a valid file: {exc.problem}"
    if isinstance(exc, BadDownload):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _fetch(url: str, target: Path, timeout: float) -> int:
    """Stream ``url`` into ``target``; return its size, refusing a short response."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    size = 0
    with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
        length = response.headers.get("Content-Length")
        while chunk := response.read(CHUNK):
            out.write(chunk)
            size += len(chunk)
    if length is not None and length.isdigit() and size != int(length):
        raise BadDownload(f"incomplete: got {size} of {length} bytes")
    return size


def fetch_first(
    dest: Path,
    filename: str,
    bases: Sequence[str],
    *,
    check: Callable[[Path], None],
    error: type[DownloadError],
    timeout: float,
    log: logging.Logger,
) -> str:
    """Download ``filename`` into folder ``dest`` from the first base URL that delivers it.

    Each download is streamed to a temporary file and passed to ``check``, which raises
    :class:`BadDownload` (or :class:`InvalidFileError`) for a response that is not the
    expected file (an error page, a truncated file); only a file that passes is renamed
    into place, so a failed attempt leaves nothing behind.

    Parameters
    ----------
    dest : pathlib.Path
        The folder; created if missing (and removed again, with any parent it needed,
        when no base URL delivers).
    filename : str
        The file's name, both in ``dest`` and after each base URL.
    bases : sequence of str
        Base URLs, each ending in ``/``, tried in order.
    check : callable
        Called with the temporary file.
    error : type
        The :class:`DownloadError` subclass raised when no base URL delivers.
    timeout : float
        Seconds to wait for a server to connect or send data.
    log : logging.Logger
        The dataset module's logger.

    Returns
    -------
    str
        The base URL that delivered the file.

    Raises
    ------
    DownloadError
        (``error``) listing each URL tried with the reason it failed.
    """
    attempts: list[tuple[str, str]] = []
    made = [d for d in (dest, *dest.parents) if not d.exists()]  # deepest first
    for base in bases:
        url = base + filename
        log.info("%s: downloading %s", error.dataset, url)
        try:
            with atomic_path(dest / filename) as tmp:
                size = _fetch(url, tmp, timeout)
                check(tmp)
        except _DOWNLOAD_ERRORS as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # an HTTPError holds the open response
            reason = _reason(exc, timeout)
            log.warning("%s: %s failed: %s", error.dataset, url, reason)
            attempts.append((url, reason))
            continue
        log.info("%s: saved %s (%d bytes)", error.dataset, dest / filename, size)
        return base
    for folder in made:  # leave no empty folder behind
        try:
            folder.rmdir()
        except OSError:
            break
    raise error(dest, filename, attempts)


def check_download_folder(dest: Path, dataset: str) -> None:
    """Refuse a download folder that exists but is not a folder."""
    if dest.exists() and not dest.is_dir():
        raise InvalidFileError(dest, f"the {dataset} download folder exists but is not a folder")
