"""CIFAR-10: read a local copy or download it, verify its checksums, write it as one ``.npz``.

The data stage (:func:`prepare`) reads CIFAR-10 in the form in which its authors
distribute it, the "python version" (:data:`ARCHIVE`): a gzip-compressed tar archive
holding the folder :data:`FOLDER` with five training batches, a test batch and
``batches.meta``, each a Python pickle of a dict whose ``b"data"`` is a uint8 array
[N, 3072] (1024 red, then green, then blue values of a 32×32 image, rows first) and
whose ``b"labels"`` is a list of N class indices.  The source may be the archive or the
folder extracted from it; without one, the archive is downloaded from :data:`MIRRORS`.

The archive and each file in it are checked against their published MD5 (:data:`MD5`)
*before* anything is unpickled, and the unpickler accepts only the few globals that a
batch holds (a numpy array), so a file that is not the expected one cannot run code.
Nothing is extracted to disk: the members are read from the archive by their known
names, so a path in the archive can never escape a folder.

The result, written atomically as an uncompressed ``.npz``, holds uint8 ``x_train``
[50000, 32, 32, 3] (height, width, channel), ``y_train`` [50000], ``x_test``
[10000, 32, 32, 3], ``y_test`` [10000], and a 0-d bool ``synthetic``.  For tests,
:func:`write_synthetic_archive` writes a small seeded stand-in in the same file format
(``source="synthetic"``); its ``.npz`` says ``synthetic=True``.

Errors: :class:`~equivdyn.errors.InvalidFileError` for an unreadable, truncated or
malformed file, :class:`ChecksumError` for wrong content and :class:`DownloadError`
when the archive could not be downloaded; each names the file.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import logging
import os
import pickle
import tarfile
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._io import atomic_path, content_key
from ..errors import InvalidFileError, ParameterError, check_int
from . import _common

log = logging.getLogger(__name__)

#: File name of the archive ("CIFAR-10 python version").
ARCHIVE = "cifar-10-python.tar.gz"
#: Folder inside the archive that holds the batches.
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
#: The files read from :data:`FOLDER`, in order.
MEMBERS: tuple[str, ...] = (*TRAIN_BATCHES, TEST_BATCH, META)

#: Published MD5 of the archive and of each file in it.
MD5: dict[str, str] = {
    ARCHIVE: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

#: Shape of each array of the canonical dataset; every array is uint8.
SHAPES: dict[str, tuple[int, ...]] = {
    "x_train": (50000, 32, 32, 3),
    "y_train": (50000,),
    "x_test": (10000, 32, 32, 3),
    "y_test": (10000,),
}
#: Names of the image and label arrays, in the order in which they are written.
NAMES: tuple[str, ...] = tuple(SHAPES)
#: Class names, in label order (as in ``batches.meta``).
LABEL_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
N_CLASSES = len(LABEL_NAMES)

#: Base URL of the archive: the dataset's home page.
MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)

#: The data stage's spec: the workflow plans the dataset under it, so its content key
#: names the prepared file like any other result's.
DATASET_SPEC: dict[str, Any] = {"stage": "data", "experiment": "cifar10", "params": {"md5": MD5}, "inputs": {}}
#: Content key of the dataset; part of the key of every result computed from it.
DATASET_KEY: str = content_key(DATASET_SPEC)

#: Version of :func:`write_synthetic_archive`'s generator: bumped when its output changes.
SYNTHETIC_VERSION = 1
#: Sizes and seed of the synthetic stand-in that ``prepare("synthetic", ...)`` writes.
SYNTHETIC_SIZES: dict[str, int] = {"n_train": 512, "n_test": 256, "seed": 0}
#: The data stage's spec of that stand-in, and its content key.
SYNTHETIC_SPEC: dict[str, Any] = {
    "stage": "data",
    "experiment": "cifar10",
    "params": {"synthetic": {"generator": SYNTHETIC_VERSION, **SYNTHETIC_SIZES}},
    "inputs": {},
}
SYNTHETIC_KEY: str = content_key(SYNTHETIC_SPEC)

#: How to supply the data on a machine that cannot download it.
OFFLINE_HINT = (
    f"To supply the data offline, set data.cifar10 in the config to a local copy ({ARCHIVE}, or the "
    f"{FOLDER} folder extracted from it), or copy {ARCHIVE} to data/{ARCHIVE}. Without it, "
    "`e3: {networks: [lenet]}` in the config drops the ResNet-20 panels of Fig. 4 "
    "(`data: {cifar10: synthetic}` tries them on a small random stand-in)"
)

_IMAGE_SIZE = 32
_PIXELS = 3 * _IMAGE_SIZE * _IMAGE_SIZE
# The largest file in the archive is a 31 MB training batch: refuse anything much larger
# before reading it into memory.
_MAX_MEMBER_BYTES = 64 << 20
# What unpickling malformed bytes can raise.
_PICKLE_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
)
_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, OSError, EOFError, zlib.error)


class ChecksumError(_common.ChecksumError):
    """A file differs from the canonical CIFAR-10: its MD5 is not the published one.

    The arguments are those of :class:`equivdyn.data._common.ChecksumError`, ``item``
    being :data:`ARCHIVE` or a name in :data:`MEMBERS`.
    """

    dataset = "CIFAR-10"
    algorithm = "MD5"
    subject = "file"


class DownloadError(_common.DownloadError):
    """The CIFAR-10 archive could not be downloaded (arguments as :class:`equivdyn.data._common.DownloadError`)."""

    dataset = "CIFAR-10"
    hint = OFFLINE_HINT


def dataset_spec(source: object) -> dict[str, Any]:
    """:data:`SYNTHETIC_SPEC` when ``source == "synthetic"``, else :data:`DATASET_SPEC`."""
    return SYNTHETIC_SPEC if source == "synthetic" else DATASET_SPEC


def dataset_key(source: object) -> str:
    """:data:`SYNTHETIC_KEY` when ``source == "synthetic"``, else :data:`DATASET_KEY`."""
    return SYNTHETIC_KEY if source == "synthetic" else DATASET_KEY


def n_train(source: object) -> int:
    """Number of training images that :func:`prepare` writes for ``source``."""
    return SYNTHETIC_SIZES["n_train"] if source == "synthetic" else SHAPES["y_train"][0]


# ----------------------------------------------------------------------------- batches


def _array_reconstructor() -> Any:
    # The function numpy pickles arrays with, found without importing the deprecated
    # numpy.core (the name under which the original files, written by numpy 1, refer to it).
    return np.zeros(1).__reduce__()[0]


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a CIFAR-10 batch: a numpy array."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _array_reconstructor(),
        ("numpy._core.multiarray", "_reconstruct"): _array_reconstructor(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Protocol-2 pickles written by Python 3 spell bytes as codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def _unpickle(raw: bytes, where: str) -> dict[bytes, Any]:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _PICKLE_ERRORS as exc:
        raise InvalidFileError(where, f"not a CIFAR-10 pickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidFileError(where, f"holds a {type(obj).__name__}, expected a dict")
    return obj


def _parse_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 32, 32, 3] and labels [N], both uint8, of one pickled batch."""
    batch = _unpickle(raw, where)
    missing = [key.decode() for key in (b"data", b"labels") if key not in batch]
    if missing:
        raise InvalidFileError(where, f"batch lacks {', '.join(missing)}")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        got = f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        raise InvalidFileError(where, f"data must be a uint8 array [N, {_PIXELS}], got {got}")
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidFileError(where, f"labels are not integers: {exc}") from None
    if labels.shape != (data.shape[0],):
        raise InvalidFileError(where, f"{labels.size} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise InvalidFileError(where, f"labels must be 0 … {N_CLASSES - 1}, found {labels.min()} … {labels.max()}")
    # Channel planes, rows first → height, width, channel.
    images = data.reshape(-1, 3, _IMAGE_SIZE, _IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.uint8)


def _parse(members: Mapping[str, bytes], source: Path) -> dict[str, np.ndarray]:
    """The four arrays from the (verified) bytes of every file in :data:`MEMBERS`."""
    meta = _unpickle(members[META], f"{source}/{META}")
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != N_CLASSES:
        raise InvalidFileError(f"{source}/{META}", f"expected {N_CLASSES} label_names, got {names!r:.80}")
    train = [_parse_batch(members[name], f"{source}/{name}") for name in TRAIN_BATCHES]
    x_test, y_test = _parse_batch(members[TEST_BATCH], f"{source}/{TEST_BATCH}")
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def _check_checksums(checksums: Mapping[str, str]) -> None:
    missing = [name for name in (ARCHIVE, *MEMBERS) if not isinstance(checksums.get(name), str)]
    if missing:
        raise ParameterError(f"checksums: no MD5 given for {', '.join(missing)}")


def _verify(source: Path, name: str, raw: bytes, checksums: Mapping[str, str]) -> None:
    actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if actual != checksums[name]:
        raise ChecksumError(source, name, checksums[name], actual)


def _verify_archive(path: Path, checksums: Mapping[str, str]) -> None:
    actual = _common.file_digest(path, "md5")
    if actual != checksums[ARCHIVE]:
        raise ChecksumError(path, ARCHIVE, checksums[ARCHIVE], actual)


def _read_members(path: Path) -> dict[str, bytes]:
    """The bytes of every file in :data:`MEMBERS` from the archive, without extracting anything."""
    members: dict[str, bytes] = {}
    try:
        with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
            for name in MEMBERS:
                try:
                    info = tar.getmember(f"{FOLDER}/{name}")
                except KeyError:
                    raise InvalidFileError(path, f"the archive lacks {FOLDER}/{name}") from None
                if not info.isfile():
                    raise InvalidFileError(path, f"{FOLDER}/{name} in the archive is not a regular file")
                if info.size > _MAX_MEMBER_BYTES:
                    raise InvalidFileError(path, f"{FOLDER}/{name} is {info.size} bytes, too large for CIFAR-10")
                handle = tar.extractfile(info)
                assert handle is not None  # a regular file always has one
                members[name] = handle.read()
            # Read to the end of the gzip stream, whose trailer checks the length and CRC of
            # everything: a file cut short after the last member is truncated all the same.
            while stream.read(_common.CHUNK):
                pass
    except _ARCHIVE_ERRORS as exc:
        raise InvalidFileError(
            path, f"not a readable {ARCHIVE} archive (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None
    return members


def read_archive(path: str | os.PathLike[str], checksums: Mapping[str, str] = MD5) -> dict[str, np.ndarray]:
    """Read CIFAR-10 from its archive, verifying every checksum before unpickling.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.tar.gz`` archive (:data:`ARCHIVE` or the same format).
    checksums : mapping of str to str
        Expected MD5 of :data:`ARCHIVE` and of each name in :data:`MEMBERS`; the
        published ones (:data:`MD5`) unless testing with a stand-in.

    Returns
    -------
    dict of str to numpy.ndarray
        uint8 ``x_train`` [N, 32, 32, 3], ``y_train`` [N], ``x_test`` [n, 32, 32, 3],
        ``y_test`` [n].

    Raises
    ------
    InvalidFileError
        The archive is missing, truncated or corrupt, lacks a file, or a file is not a
        CIFAR-10 batch.
    ChecksumError
        The archive or a file in it has another MD5 than ``checksums`` gives.
    """
    path = _common.as_path(path, "CIFAR-10 archive")
    _check_checksums(checksums)
    if not path.is_file():
        raise InvalidFileError(path, "file does not exist" if not path.exists() else "not a file")
    # Structure first, so that a truncated archive is reported as such; then content.
    members = _read_members(path)
    _verify_archive(path, checksums)
    for name, raw in members.items():
        _verify(path, name, raw, checksums)
    return _parse(members, path)


def read_folder(path: str | os.PathLike[str], checksums: Mapping[str, str] = MD5) -> dict[str, np.ndarray]:
    """Read CIFAR-10 from the folder :data:`FOLDER` extracted from the archive.

    Parameters
    ----------
    path : str or os.PathLike
        The folder holding the files of :data:`MEMBERS`, or a folder holding it.
    checksums : mapping of str to str
        As for :func:`read_archive` (the archive's own is not used).

    Returns
    -------
    dict of str to numpy.ndarray
        As :func:`read_archive`.

    Raises
    ------
    InvalidFileError
        A file is missing, unreadable or not a CIFAR-10 batch.
    ChecksumError
        A file has another MD5 than ``checksums`` gives.
    """
    path = _common.as_path(path, "CIFAR-10 folder")
    _check_checksums(checksums)
    if not (path / TRAIN_BATCHES[0]).exists() and (path / FOLDER).is_dir():
        path = path / FOLDER
    members: dict[str, bytes] = {}
    for name in MEMBERS:
        file = path / name
        if not file.is_file():
            raise InvalidFileError(path, f"missing {name}" if not file.exists() else f"{name} is not a file")
        if file.stat().st_size > _MAX_MEMBER_BYTES:
            raise InvalidFileError(file, f"{file.stat().st_size} bytes, too large for CIFAR-10")
        try:
            members[name] = file.read_bytes()
        except OSError as exc:
            raise InvalidFileError(file, f"cannot read: {exc.strerror or exc}") from None
        _verify(path, name, members[name], checksums)
    return _parse(members, path)


# ----------------------------------------------------------------------------- synthetic stand-in


def _pickled_batch(images: np.ndarray, labels: np.ndarray, label: str, first: int) -> bytes:
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), _PIXELS)
    batch = {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"synthetic_{first + i:05d}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def _synthetic_images(rng: np.random.Generator, templates: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, N_CLASSES, n).astype(np.uint8)
    noise = rng.normal(0.0, 40.0, (n, _IMAGE_SIZE, _IMAGE_SIZE, 3))
    images = np.clip(templates[labels] + noise, 0, 255).round().astype(np.uint8)
    return images, labels


def write_synthetic_archive(
    path: str | os.PathLike[str], n_train: int = 512, n_test: int = 256, seed: int = 0
) -> Path:
    """Write a small SYNTHETIC stand-in for the CIFAR-10 archive, in its file format.

    Each class has a blocky colour pattern (4×4 blocks of 8×8 pixels, drawn once from
    ``seed``); an image is its class's pattern plus Gaussian noise (sd 40), so that a
    network can learn something.  The training images are split over the five batches
    as evenly as possible.  The archive is byte-for-byte the same for the same
    arguments (no time stamps), so its MD5 is too.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.tar.gz`` to write, atomically.
    n_train, n_test : int
        Number of training images (at least 5, one per batch) and of test images.
    seed : int
        Seed of the patterns, labels and noise.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = _common.as_path(path, "synthetic archive")
    n_train = check_int(n_train, "n_train", len(TRAIN_BATCHES))
    n_test = check_int(n_test, "n_test", 1)
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    blocks = rng.uniform(30.0, 225.0, (N_CLASSES, 4, 4, 3))
    templates = blocks.repeat(8, axis=1).repeat(8, axis=2)
    x_train, y_train = _synthetic_images(rng, templates, n_train)
    x_test, y_test = _synthetic_images(rng, templates, n_test)
    files: dict[str, bytes] = {}
    bounds = np.linspace(0, n_train, len(TRAIN_BATCHES) + 1).round().astype(int)
    for i, name in enumerate(TRAIN_BATCHES):
        lo, hi = bounds[i], bounds[i + 1]
        files[name] = _pickled_batch(x_train[lo:hi], y_train[lo:hi], f"training batch {i + 1} of 5", lo)
    files[TEST_BATCH] = _pickled_batch(x_test, y_test, "testing batch 1 of 1", 0)
    meta = {
        b"num_cases_per_batch": int(bounds[1]),
        b"label_names": [name.encode() for name in LABEL_NAMES],
        b"num_vis": _PIXELS,
    }
    files[META] = pickle.dumps(meta, protocol=2)
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        folder = tarfile.TarInfo(FOLDER)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, content in files.items():
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return path


def _archive_checksums(path: Path) -> dict[str, str]:
    """MD5 of an archive and of each file in it, as found (used only for the synthetic stand-in)."""
    sums = {ARCHIVE: _common.file_digest(path, "md5")}
    for name, raw in _read_members(path).items():
        sums[name] = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    return sums


# ----------------------------------------------------------------------------- download


def download(
    dest: str | os.PathLike[str],
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30.0,
    checksums: Mapping[str, str] = MD5,
) -> Path:
    """Download :data:`ARCHIVE` into a folder, unless it is there already.

    The download is streamed to a temporary file and renamed into place only if its
    MD5 is ``checksums[ARCHIVE]``, so an interrupted or wrong download (an error page,
    a changed file) leaves nothing behind.

    Parameters
    ----------
    dest : str or os.PathLike
        The folder; created if missing.
    mirrors : sequence of str
        Base URLs, tried in order; the archive's URL is a base URL followed by
        :data:`ARCHIVE`.
    timeout : float
        Seconds to wait for a server to connect or send data.
    checksums : mapping of str to str
        Expected MD5s (see :func:`read_archive`).

    Returns
    -------
    pathlib.Path
        The archive, ``dest / ARCHIVE``.

    Raises
    ------
    DownloadError
        No mirror delivered the archive; the message lists each URL tried with the
        reason it failed and says how to supply the data offline.
    """
    dest = _common.as_path(dest, "download folder")
    _check_checksums(checksums)
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    _common.check_download_folder(dest, "CIFAR-10")
    target = dest / ARCHIVE
    if target.is_file():
        log.info("CIFAR-10: %s already present, not downloaded", target)
        return target

    def check(tmp: Path) -> None:
        actual = _common.file_digest(tmp, "md5")
        if actual != checksums[ARCHIVE]:
            raise _common.BadDownload(f"MD5 {actual}, expected {checksums[ARCHIVE]}: not the CIFAR-10 archive")

    bases = [m if m.endswith("/") else m + "/" for m in mirrors]
    _common.fetch_first(dest, ARCHIVE, bases, check=check, error=DownloadError, timeout=timeout, log=log)
    return target


# ----------------------------------------------------------------------------- the stage


def _read_source(path: Path, checksums: Mapping[str, str]) -> dict[str, np.ndarray]:
    if not path.exists():
        raise InvalidFileError(path, "CIFAR-10 source does not exist")
    if path.is_dir():
        return read_folder(path, checksums)
    return read_archive(path, checksums)


def prepare(
    source: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] = "data",
    *,
    checksums: Mapping[str, str] = MD5,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30.0,
) -> Path:
    """The data stage of CIFAR-10: read a copy (or download one), verify it, write ``out``.

    Parameters
    ----------
    source : str, os.PathLike, "synthetic" or None
        The archive, the folder extracted from it (see :func:`read_folder`), or
        ``"synthetic"`` for the stand-in of :func:`write_synthetic_archive` with
        :data:`SYNTHETIC_SIZES`, written to a temporary folder and read back through
        the same reader; since the published MD5s cannot match it, it is verified
        against the MD5s of the archive just written.  ``None`` uses
        ``cache_dir/cifar-10-python.tar.gz``, downloading it there first if missing.
    out : str or os.PathLike
        The ``.npz`` to write (uncompressed): uint8 ``x_train``, ``y_train``,
        ``x_test``, ``y_test`` and the 0-d bool ``synthetic``, true unless the data
        were verified against the published checksums.  Written atomically, and only
        after verification.
    cache_dir : str or os.PathLike
        Folder searched for, and receiving, the archive when ``source`` is ``None``.
    checksums : mapping of str to str
        Expected MD5s (see :func:`read_archive`); tests give those of a stand-in.
    mirrors, timeout
        For the download (see :func:`download`).

    Returns
    -------
    pathlib.Path
        ``out``, once written.

    Raises
    ------
    InvalidFileError
        The archive or folder is missing, truncated, or not in CIFAR-10's format.
    ChecksumError
        A file has another MD5 than expected; nothing is written.
    DownloadError
        The archive had to be downloaded and no mirror delivered it.
    """
    out = _common.as_path(out, "output path")
    if source == "synthetic":
        with tempfile.TemporaryDirectory(prefix="cifar10-synthetic-") as tmp:
            archive = write_synthetic_archive(Path(tmp) / ARCHIVE, **SYNTHETIC_SIZES)
            checksums = _archive_checksums(archive)
            arrays = read_archive(archive, checksums)
        log.info("CIFAR-10: wrote and read a SYNTHETIC stand-in (key %s)", SYNTHETIC_KEY)
    else:
        if source is not None:
            path = _common.as_path(source, "CIFAR-10 source (data.cifar10)")
            log.info("CIFAR-10: reading the configured copy %s", path)
        elif (_common.as_path(cache_dir, "cache_dir") / ARCHIVE).is_file():
            path = Path(cache_dir) / ARCHIVE
            log.info("CIFAR-10: reading the cached copy %s", path)
        else:
            log.info("CIFAR-10: no local copy in %s; downloading", cache_dir)
            path = download(cache_dir, mirrors=mirrors, timeout=timeout, checksums=checksums)
        arrays = _read_source(path, checksums)
        log.info("CIFAR-10: checksums of %s match", path)
    synthetic = dict(checksums) != MD5
    if not synthetic:
        for name in NAMES:
            _check_array(out, name, arrays[name], canonical=True)
    _common.write_npz(out, {**arrays, "synthetic": np.array(synthetic)})
    log.info("CIFAR-10: wrote %s", out)
    return out


def _check_array(path: object, name: str, array: np.ndarray, canonical: bool = False) -> None:
    """Raise :class:`InvalidFileError` unless ``array`` fits the array ``name``."""
    if name == "synthetic":
        if array.dtype != np.bool_ or array.shape != ():
            raise InvalidFileError(path, f"array synthetic must be a 0-d bool, got {array.dtype} {array.shape}")
        return
    if array.dtype != np.uint8:
        raise InvalidFileError(path, f"array {name} has dtype {array.dtype}, expected uint8")
    expected = SHAPES[name]
    if canonical:
        ok = array.shape == expected
    else:
        ok = array.ndim == len(expected) and array.shape[1:] == expected[1:] and array.shape[0] > 0
    if not ok:
        wanted = expected if canonical else ("N", *expected[1:])
        raise InvalidFileError(path, f"array {name} has shape {array.shape}, expected {wanted}")


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The arrays of an ``.npz`` written by :func:`prepare` (``path``), dtypes and shapes checked.

    Returns
    -------
    dict
        uint8 ``x_train`` [N, 32, 32, 3], ``y_train`` [N], ``x_test`` [n, 32, 32, 3],
        ``y_test`` [n], and ``synthetic`` as a Python bool; the canonical data
        (``synthetic`` false) must have the shapes of :data:`SHAPES`.

    Raises
    ------
    InvalidFileError
        The file is missing, unreadable, truncated, holds pickled objects, or an array
        is missing or has the wrong dtype or shape.
    """
    path = _common.as_path(path, "CIFAR-10 file")
    arrays: dict[str, Any] = _common.load_npz(path, (*NAMES, "synthetic"), _check_array, sealed=True)
    arrays["synthetic"] = bool(arrays["synthetic"])
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"x_{split}"]), len(arrays[f"y_{split}"])
        if n_images != n_labels:
            raise InvalidFileError(path, f"{n_images} images but {n_labels} labels in {split}")
        if not arrays["synthetic"]:
            _check_array(path, f"x_{split}", arrays[f"x_{split}"], canonical=True)
    return arrays


__all__ = [
    "ARCHIVE",
    "DATASET_KEY",
    "DATASET_SPEC",
    "FOLDER",
    "LABEL_NAMES",
    "MD5",
    "MEMBERS",
    "MIRRORS",
    "NAMES",
    "SHAPES",
    "SYNTHETIC_KEY",
    "SYNTHETIC_SPEC",
    "SYNTHETIC_SIZES",
    "ChecksumError",
    "DownloadError",
    "dataset_key",
    "download",
    "load",
    "n_train",
    "prepare",
    "read_archive",
    "read_folder",
    "write_synthetic_archive",
]
