"""Self-describing HDF5 files for trajectories and Koopman spectra.

Trajectory file (one per experiment variant × seed, every initialisation inside)::

    /                      attrs: format="equivdyn.trajectory", format_version, experiment,
                                  key, params (JSON), created (UTC), versions (JSON),
                                  device (where it was trained: "cpu", "cuda (<GPU name>)")
    /steps                 int64 [T]          optimiser step of each snapshot
    /observables/<name>    float [M, T, D]    M initialisations, T snapshots, D observables
    /metrics/<name>        float [M, T_name]  with /metrics/<name>_steps int64 [T_name]
                                              when the metric is not recorded at /steps
    /extras/<name>         any                optional: e.g. a recorder's projection matrices

Spectrum file (one per fit; one or more named spectra inside, e.g. one per window)::

    /                      attrs: format="equivdyn.spectrum", format_version, experiment,
                                  key, params (JSON), inputs (JSON list of keys), created, versions
    /spectra/<name>/eigenvalues      complex128 [k]
    /spectra/<name>/singular_values  float64 [r]
    /spectra/<name>/residuals        float64 [k]
    /spectra/<name>/modes            complex128 [n_features, k]   (optional)
                    attrs: params (JSON), n_snapshots

Integrity: every dataset carries the SHA-256 of its dtype, shape and bytes in its
``sha256`` attribute, and the root attribute ``digest`` is the SHA-256 of every
attribute of every object in the file (the datasets' ``sha256`` included), so a changed
byte anywhere, or an added, removed or renamed dataset, is detected.  Every read checks
the root digest before anything else and each dataset's digest when it reads it; a
dataset is read only if its declared size is below the read limit
(:func:`max_read_bytes`) and the file really stores its bytes.

Every write is atomic (temporary file, then rename) and leaves the file read-only;
:class:`TrajectoryWriter` streams a long run to its temporary file in slabs and seals it
(checksums, rename) when it closes.
Every read validates the file and raises :class:`~equivdyn.errors.InvalidFileError`
naming the file, the dataset and the problem, never a bare h5py exception.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._io import (
    CloseOrDiscard,
    array_digest,
    array_hasher,
    atomic_path,
    canonical_json,
    content_key,
    publish,
    record_digest,
    temporary_beside,
)
from .errors import EquivdynError, InvalidFileError, ParameterError
from .koopman import KoopmanSpectrum

FORMAT_TRAJECTORY = "equivdyn.trajectory"
FORMAT_SPECTRUM = "equivdyn.spectrum"
FORMATS = (FORMAT_TRAJECTORY, FORMAT_SPECTRUM)
#: Version of the on-disk layout; bumped whenever a reader of the old layout would misread.
#: Version 2 added the checksums (``sha256`` on every dataset, ``digest`` on the root).
FORMAT_VERSION = 2

#: Attribute of every dataset: SHA-256 of its dtype, shape and bytes.
DATASET_DIGEST = "sha256"
#: Root attribute: SHA-256 of every attribute in the file (see :func:`_attributes`).
FILE_DIGEST = "digest"
#: Environment variable that sets the largest dataset (in bytes) a read accepts.
MAX_READ_ENV = "EQUIVDYN_MAX_READ_BYTES"
#: Deflate cannot compress better than about 1032:1; a compressed dataset that claims
#: more is damaged or was never written.
_MAX_DEFLATE_RATIO = 1100
#: Datasets at least this large are hashed in a second thread while they are read.
_PARALLEL_HASH_BYTES = 16 * 2**20

_STEPS_SUFFIX = "_steps"
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


@dataclass(frozen=True)
class Trajectory:
    """Recorded training run(s) of one experiment variant and seed.

    Attributes
    ----------
    experiment : str
        Experiment name (e.g. ``"e1"``).
    steps : int64 [T]
        Optimiser step of each snapshot.
    observables : dict of str to float [M, T, D]
        Observable blocks, one array per name.
    metrics : dict of str to float [M, T_name]
        Per-initialisation metrics (e.g. training loss).
    metric_steps : dict of str to int64 [T_name]
        Steps of the metrics that are not recorded at ``steps``.
    params : dict
        Every parameter that determined the content.
    key : str
        Content key of ``params`` (see :func:`equivdyn._io.content_key`).
    attrs : dict
        Provenance read back from a file (``created``, ``versions``, ``device``); before
        writing, only ``device`` (where it was trained; ``"cpu"`` when absent) is used.
    """

    experiment: str
    steps: np.ndarray
    observables: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    metric_steps: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_initialisations(self) -> int:
        """Number of initialisations M."""
        return next(iter(self.observables.values())).shape[0]

    def __post_init__(self) -> None:
        _check_trajectory(self)


@dataclass(frozen=True)
class SpectrumFile:
    """The content of a spectrum file: named spectra plus the fit's provenance."""

    experiment: str
    spectra: dict[str, KoopmanSpectrum]
    params: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    """Versions of the packages that can influence a result."""
    found = {}
    for package in ("equivdyn", "numpy", "scipy", "h5py", "torch"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _provenance(fmt: str, experiment: str, key: str, params: Mapping[str, Any], **extra: str) -> dict[str, Any]:
    return {
        **extra,
        "format": fmt,
        "format_version": FORMAT_VERSION,
        "experiment": experiment,
        "key": key,
        "params": canonical_json(dict(params)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": canonical_json(versions()),
    }


def _check_increasing(steps: np.ndarray, name: str) -> None:
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {steps.shape}")
    if not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"{name} must hold integer steps, got dtype {steps.dtype}")
    bad = np.flatnonzero(np.diff(steps) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} must be strictly increasing, but entry {i + 1} ({steps[i + 1]}) follows {steps[i]}")


def _check_trajectory(traj: Trajectory) -> None:
    steps = np.asarray(traj.steps)
    _check_increasing(steps, "steps")
    if not traj.observables:
        raise ValueError("a trajectory needs at least one observable block")
    n_init = None
    for name, arr in traj.observables.items():
        arr = np.asarray(arr)
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValueError(f"observable {name!r} must be a non-empty [M, T, D] array, got shape {arr.shape}")
        if arr.shape[1] != steps.size:
            raise ValueError(
                f"observable {name!r} has {arr.shape[1]} snapshots but steps has {steps.size}"
            )
        if n_init is None:
            n_init = arr.shape[0]
        elif arr.shape[0] != n_init:
            raise ValueError(f"observable {name!r} has {arr.shape[0]} initialisations, expected {n_init}")
    for name, arr in traj.metrics.items():
        arr = np.asarray(arr)
        if name.endswith(_STEPS_SUFFIX):
            raise ValueError(f"metric name {name!r} may not end in {_STEPS_SUFFIX!r}")
        own_steps = traj.metric_steps.get(name, steps)
        if name in traj.metric_steps:
            _check_increasing(np.asarray(own_steps), f"steps of metric {name!r}")
        if arr.ndim != 2 or arr.shape != (n_init, np.asarray(own_steps).size):
            raise ValueError(
                f"metric {name!r} must be [M, T] = [{n_init}, {np.asarray(own_steps).size}], "
                f"got shape {arr.shape}"
            )
    unknown = set(traj.metric_steps) - set(traj.metrics)
    if unknown:
        raise ValueError(f"metric_steps given for unknown metrics {sorted(unknown)}")


def _create(group: h5py.Group, name: str, data: np.ndarray, **options: Any) -> None:
    """Create dataset ``name`` holding ``data`` and its checksum."""
    ds = group.create_dataset(name, data=data, **options)
    ds.attrs[DATASET_DIGEST] = array_digest(data)


def _plain(value: Any) -> Any:
    """An HDF5 attribute value as JSON-ready data."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind != "S" else [v.decode() for v in value.tolist()]
    if isinstance(value, (np.integer, np.bool_)):
        return int(value)
    if isinstance(value, np.floating):
        return repr(float(value))  # NaN has no JSON spelling; repr is exact
    if isinstance(value, float):
        return repr(value)
    return value


def _attributes(h5: h5py.File) -> dict[str, Any]:
    """Every attribute of every object, by object path, plus each object's kind and the
    datasets' shapes and dtypes: what the root digest covers."""
    found: dict[str, Any] = {"/": {"kind": "group", "attrs": {k: _plain(v) for k, v in h5.attrs.items() if k != FILE_DIGEST}}}

    def visit(name: str, obj: Any) -> None:
        entry: dict[str, Any] = {"attrs": {k: _plain(v) for k, v in obj.attrs.items()}}
        if isinstance(obj, h5py.Dataset):
            entry.update(kind="dataset", shape=list(obj.shape), dtype=obj.dtype.str)
        else:
            entry["kind"] = "group"
        found["/" + name] = entry

    h5.visititems(visit)
    return found


def _seal(h5: h5py.File) -> None:
    """Store the root digest (call last, after every dataset and attribute is written)."""
    h5.attrs[FILE_DIGEST] = record_digest(_attributes(h5))


@contextlib.contextmanager
def _hdf5_writer(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """An HDF5 file built in memory, then written to ``path`` atomically by plain file I/O.

    HDF5 handles a failing write (a full disk) badly: errors while flushing on close can
    crash the process.  Building the file in memory leaves only an ordinary write, whose
    failure :func:`~equivdyn._io.atomic_path` reports as one error naming the file.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        yield h5
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def write_trajectory(path: str | os.PathLike[str], traj: Trajectory) -> None:
    """Write ``traj`` to ``path`` atomically (chunked, compressed datasets)."""
    with _hdf5_writer(path) as h5:
        h5.attrs.update(
            _provenance(
                FORMAT_TRAJECTORY, traj.experiment, traj.key, traj.params, device=str(traj.attrs.get("device", "cpu"))
            )
        )
        _create(h5, "steps", np.asarray(traj.steps, dtype=np.int64))
        obs = h5.create_group("observables")
        for name, arr in traj.observables.items():
            arr = np.asarray(arr)
            # One chunk holds a time slab of one initialisation: reading a run is contiguous.
            chunks = (1, min(arr.shape[1], max(1, 2**16 // max(1, arr.shape[2]))), arr.shape[2])
            _create(obs, name, arr, chunks=chunks, **_COMPRESSION)
        met = h5.create_group("metrics")
        for name, arr in traj.metrics.items():
            _create(met, name, np.asarray(arr), chunks=True, **_COMPRESSION)
            if name in traj.metric_steps:
                _create(met, name + _STEPS_SUFFIX, np.asarray(traj.metric_steps[name], dtype=np.int64))
        _seal(h5)


def write_spectra(
    path: str | os.PathLike[str],
    spectra: Mapping[str, KoopmanSpectrum],
    *,
    experiment: str,
    key: str,
    params: Mapping[str, Any],
    inputs: list[str],
) -> None:
    """Write named spectra with their provenance to ``path`` atomically."""
    if not spectra:
        raise ValueError("write_spectra needs at least one spectrum")
    empty = [name for name, spec in spectra.items() if np.asarray(spec.eigenvalues).size == 0]
    if empty:
        raise ValueError(f"spectra {empty} hold no eigenvalue")
    with _hdf5_writer(path) as h5:
        h5.attrs.update(_provenance(FORMAT_SPECTRUM, experiment, key, params))
        h5.attrs["inputs"] = canonical_json(list(inputs))
        group = h5.create_group("spectra")
        for name, spec in spectra.items():
            g = group.create_group(name)
            _create(g, "eigenvalues", np.asarray(spec.eigenvalues, dtype=np.complex128))
            _create(g, "singular_values", np.asarray(spec.singular_values, dtype=np.float64))
            _create(g, "residuals", np.asarray(spec.residuals, dtype=np.float64))
            if spec.modes is not None:
                _create(g, "modes", np.asarray(spec.modes, dtype=np.complex128), **_COMPRESSION)
            g.attrs["params"] = canonical_json(spec.params)
            g.attrs["n_snapshots"] = int(spec.n_snapshots)
        _seal(h5)


# ----------------------------------------------------------------------------- reading


def _open(path: str | os.PathLike[str]) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise InvalidFileError(p, "file does not exist")
    if p.is_dir():
        raise InvalidFileError(p, "is a directory, not an HDF5 file")
    if p.stat().st_size == 0:
        raise InvalidFileError(p, "file is empty (an interrupted write?)")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise InvalidFileError(p, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from None


def _attr_json(h5: h5py.File, path: Path, name: str) -> Any:
    raw = _attr(h5, path, name)
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise InvalidFileError(path, f"attribute {name!r} is not valid JSON") from None


def _attr(h5: h5py.File | h5py.Group, path: Path, name: str) -> Any:
    if name not in h5.attrs:
        raise InvalidFileError(path, f"missing attribute {name!r} on {h5.name}")
    value = h5.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def _check_header(h5: h5py.File, path: Path, expected: str | None) -> str:
    fmt = h5.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt not in FORMATS:
        raise InvalidFileError(path, f"not an equivdyn file (format attribute is {fmt!r})")
    if expected is not None and fmt != expected:
        raise InvalidFileError(path, f"expected a {expected!r} file, found {fmt!r}")
    version = _attr(h5, path, "format_version")
    if not isinstance(version, (int, np.integer)) or isinstance(version, bool):
        raise InvalidFileError(path, f"attribute 'format_version' is not an integer: {version!r}")
    if int(version) != FORMAT_VERSION:
        hint = " (written before files carried checksums; `equivdyn verify --remove` deletes it so the workflow rebuilds it)" if int(version) < FORMAT_VERSION else ""
        raise InvalidFileError(
            path, f"format_version {int(version)} is not supported (this equivdyn reads {FORMAT_VERSION}){hint}"
        )
    return str(fmt)


def max_read_bytes() -> int:
    """Largest dataset a read accepts, in bytes: ``$EQUIVDYN_MAX_READ_BYTES``, else half the
    machine's physical memory (a file that declares more is refused before it is read)."""
    raw = os.environ.get(MAX_READ_ENV)
    if raw is not None:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise ParameterError(f"{MAX_READ_ENV} must be a positive number of bytes, got {raw!r}")
        return value
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):  # pragma: no cover - systems without sysconf
        return 8 * 2**30


def _gb(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def _check_digest(h5: h5py.File, path: Path) -> None:
    """Check the root digest: every attribute, dataset name, shape and dtype as written."""
    stored = h5.attrs.get(FILE_DIGEST)
    if isinstance(stored, bytes):
        stored = stored.decode()
    if not isinstance(stored, str):
        raise InvalidFileError(path, f"missing checksum attribute {FILE_DIGEST!r} on /")
    try:
        actual = record_digest(_attributes(h5))
    except (TypeError, ValueError) as exc:  # an attribute no equivdyn writer makes
        raise InvalidFileError(path, f"an attribute cannot be checked ({exc}): not a file equivdyn wrote") from None
    if actual != stored:
        raise InvalidFileError(
            path, "checksum mismatch in the file's attributes or structure (an attribute, a dataset's name, "
            "shape or checksum was changed after the file was written)"
        )


def _checked_dataset(h5: h5py.File | h5py.Group, path: Path, name: str) -> h5py.Dataset:
    """Dataset ``name`` of ``h5`` after the checks that need no data: it exists, its declared
    size is within :func:`max_read_bytes`, and the file stores (compressed) bytes for it."""
    where = f"{h5.name.rstrip('/')}/{name}"
    if name not in h5 or not isinstance(h5[name], h5py.Dataset):
        raise InvalidFileError(path, f"missing dataset {where}")
    ds = h5[name]
    nbytes = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize)
    limit = max_read_bytes()
    if nbytes > limit:
        raise InvalidFileError(
            path, f"dataset {where} declares {ds.shape} {ds.dtype} = {_gb(nbytes)}, more than the read limit "
            f"{_gb(limit)} (set {MAX_READ_ENV} to read larger datasets)"
        )
    stored = ds.id.get_storage_size()
    least = nbytes if not ds.compression else nbytes // _MAX_DEFLATE_RATIO
    if stored < least:
        raise InvalidFileError(
            path, f"dataset {where} declares {ds.shape} {ds.dtype} = {_gb(nbytes)} but the file stores only "
            f"{stored} bytes of it (damaged, or never written)"
        )
    return ds


def _read_and_hash(ds: h5py.Dataset) -> tuple[np.ndarray, str]:
    """Read ``ds`` and compute :func:`~equivdyn._io.array_digest` of it.

    A large dataset is read one slice of its first axis at a time while a second thread
    hashes the slices already read (hashlib releases the GIL), so on a machine with two
    cores verification adds little to the time the read takes.
    """
    if ds.ndim == 0 or ds.shape[0] < 2 or ds.size * ds.dtype.itemsize < _PARALLEL_HASH_BYTES:
        data = ds[()]
        return data, array_digest(data)
    data = np.empty(ds.shape, dtype=ds.dtype)
    hasher = array_hasher(ds.dtype, ds.shape)
    with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: slices are hashed in order
        for i in range(ds.shape[0]):
            ds.read_direct(data, np.s_[i], np.s_[i])
            pool.submit(hasher.update, memoryview(data[i]).cast("B"))
    return data, hasher.hexdigest()


def _dataset(h5: h5py.File | h5py.Group, path: Path, name: str) -> np.ndarray:
    ds = _checked_dataset(h5, path, name)
    where = f"{h5.name.rstrip('/')}/{name}"
    try:
        data, actual = _read_and_hash(ds)
    except (OSError, RuntimeError, KeyError) as exc:
        raise InvalidFileError(path, f"dataset {where} is unreadable: {exc}") from None
    stored = ds.attrs.get(DATASET_DIGEST)
    if isinstance(stored, bytes):
        stored = stored.decode()
    if stored != actual:
        problem = "has no checksum" if stored is None else "checksum mismatch (its bytes were changed after it was written)"
        raise InvalidFileError(path, f"dataset {where}: {problem}")
    return data


def _group(h5: h5py.File | h5py.Group, path: Path, name: str) -> h5py.Group:
    if name not in h5 or not isinstance(h5[name], h5py.Group):
        raise InvalidFileError(path, f"missing group /{name}")
    return h5[name]


def _read_metrics(h5: h5py.File, p: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    metric_group = _group(h5, p, "metrics")
    metrics, metric_steps = {}, {}
    for name in metric_group:
        if name.endswith(_STEPS_SUFFIX) and name[: -len(_STEPS_SUFFIX)] in metric_group:
            metric_steps[name[: -len(_STEPS_SUFFIX)]] = _dataset(metric_group, p, name)
        else:
            metrics[name] = _dataset(metric_group, p, name)
    return metrics, metric_steps


def read_trajectory(path: str | os.PathLike[str], *, observables: bool = True) -> Trajectory:
    """Read and validate a trajectory file.

    With ``observables=False`` each observable block is replaced by its first
    initialisation's first snapshot repeated by reference (a read-only broadcast view of
    the right shape), so that metrics of files with large observable blocks can be read
    without loading the blocks.  Shapes are still validated.
    """
    p = Path(path)
    with _open(p) as h5:
        try:
            _check_header(h5, p, FORMAT_TRAJECTORY)
            _check_digest(h5, p)
            experiment = str(_attr(h5, p, "experiment"))
            key = str(_attr(h5, p, "key"))
            params = _attr_json(h5, p, "params")
            attrs = {"created": str(_attr(h5, p, "created")), "versions": _attr_json(h5, p, "versions")}
            if "device" in h5.attrs:  # files written before devices were recorded have none
                attrs["device"] = str(_attr(h5, p, "device"))
            steps = _dataset(h5, p, "steps")
            obs_group = _group(h5, p, "observables")
            if observables:
                blocks = {name: _dataset(obs_group, p, name) for name in obs_group}
            else:
                blocks = {}
                for name in obs_group:
                    ds = _checked_dataset(obs_group, p, name)
                    if ds.ndim != 3 or 0 in ds.shape:
                        raise InvalidFileError(p, f"observable {name!r} is not a non-empty [M, T, D] dataset")
                    try:
                        first = ds[0:1, 0:1, :]
                    except (OSError, RuntimeError) as exc:
                        raise InvalidFileError(p, f"dataset {ds.name} is unreadable: {exc}") from None
                    blocks[name] = np.broadcast_to(first, ds.shape)
            metrics, metric_steps = _read_metrics(h5, p)
        except (OSError, RuntimeError, KeyError) as exc:  # low-level HDF5 failures inside a damaged file
            raise InvalidFileError(p, f"corrupt HDF5 content: {exc}") from None
    try:
        return Trajectory(
            experiment=experiment,
            steps=steps,
            observables=blocks,
            metrics=metrics,
            metric_steps=metric_steps,
            params=params,
            key=key,
            attrs=attrs,
        )
    except ValueError as exc:
        raise InvalidFileError(p, f"inconsistent trajectory: {exc}") from None


def read_spectra(path: str | os.PathLike[str]) -> SpectrumFile:
    """Read and validate a spectrum file."""
    p = Path(path)
    with _open(p) as h5:
        try:
            _check_header(h5, p, FORMAT_SPECTRUM)
            _check_digest(h5, p)
            group = _group(h5, p, "spectra")
            if len(group) == 0:
                raise InvalidFileError(p, "group /spectra holds no spectrum")
            spectra = {}
            for name in group:
                g = group[name]
                eig = _dataset(g, p, "eigenvalues")
                res = _dataset(g, p, "residuals")
                if eig.ndim != 1 or eig.size == 0 or res.shape != eig.shape:
                    raise InvalidFileError(p, f"spectrum {name!r}: eigenvalues {eig.shape} and residuals {res.shape} disagree")
                spectra[name] = KoopmanSpectrum(
                    eigenvalues=eig.astype(np.complex128),
                    singular_values=_dataset(g, p, "singular_values"),
                    residuals=res,
                    modes=_dataset(g, p, "modes") if "modes" in g else None,
                    n_snapshots=int(_attr(g, p, "n_snapshots")),
                    params=json.loads(_attr(g, p, "params")),
                )
            return SpectrumFile(
                experiment=str(_attr(h5, p, "experiment")),
                spectra=spectra,
                params=_attr_json(h5, p, "params"),
                key=str(_attr(h5, p, "key")),
                inputs=_attr_json(h5, p, "inputs"),
                attrs={"created": str(_attr(h5, p, "created")), "versions": _attr_json(h5, p, "versions")},
            )
        except (OSError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
            raise InvalidFileError(p, f"corrupt HDF5 content: {exc}") from None


def file_format(path: str | os.PathLike[str]) -> str:
    """Return the equivdyn format of ``path`` (validating only its header)."""
    p = Path(path)
    with _open(p) as h5:
        return _check_header(h5, p, None)


def summarize(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate any equivdyn file fully and return a JSON-ready summary of it."""
    fmt = file_format(path)
    content: Trajectory | SpectrumFile = read_trajectory(path) if fmt == FORMAT_TRAJECTORY else read_spectra(path)
    summary = {
        "file": str(path),
        "format": fmt,
        "format_version": FORMAT_VERSION,
        "experiment": content.experiment,
        "key": content.key,
        "created": content.attrs["created"],
        "versions": content.attrs["versions"],
        **({"device": content.attrs["device"]} if "device" in content.attrs else {}),
        "params": content.params,
    }
    if isinstance(content, Trajectory):
        steps = content.steps
        summary.update(
            steps={"count": int(steps.size), "first": int(steps[0]), "last": int(steps[-1])},
            observables={k: list(v.shape) for k, v in content.observables.items()},
            metrics={k: list(v.shape) for k, v in content.metrics.items()},
            finite=bool(all(np.isfinite(v).all() for v in content.observables.values())),
        )
    else:
        summary.update(
            inputs=content.inputs,
            spectra={
                name: {
                    "n_eigenvalues": int(s.eigenvalues.size),
                    "n_snapshots": s.n_snapshots,
                    "max_modulus": float(np.abs(s.eigenvalues).max()),
                    "max_residual": float(s.residuals.max()),
                }
                for name, s in content.spectra.items()
            },
        )
    return summary


# ----------------------------------------------------------------------------- streaming


class _Series:
    """An HDF5 dataset that grows along its time axis (axis 1 of ``[M, T, ...]``, axis 0 of
    ``[T]``), written a slab of ``buffer`` snapshots at a time: memory stays at one slab."""

    def __init__(self, group: h5py.Group, name: str, head: tuple[int, ...], tail: tuple[int, ...], dtype: Any, buffer: int) -> None:
        self.axis = len(head)
        self.dtype = np.dtype(dtype)
        self.head, self.tail = head, tail
        self.pending: list[np.ndarray] = []
        self.buffer = buffer
        self.length = 0
        chunk_t = max(1, min(buffer, 2**16 // max(1, int(np.prod(tail, dtype=np.int64)))))
        self.ds = group.create_dataset(
            name,
            shape=(*head, 0, *tail),
            maxshape=(*head, None, *tail),
            dtype=self.dtype,
            chunks=(*(1 for _ in head), chunk_t, *tail),
            **_COMPRESSION,
        )

    def append(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=self.dtype)
        self.check(value)
        self.pending.append(value)
        if len(self.pending) >= self.buffer:
            self.flush()

    def check(self, value: np.ndarray) -> None:
        if np.shape(value) != (*self.head, *self.tail):
            raise ParameterError(
                f"{self.ds.name}: expected a snapshot of shape {(*self.head, *self.tail)}, got {np.shape(value)}"
            )

    def flush(self) -> None:
        if not self.pending:
            return
        slab = np.stack(self.pending, axis=self.axis)
        n = slab.shape[self.axis]
        self.ds.resize(self.length + n, axis=self.axis)
        index = (*(slice(None) for _ in self.head), slice(self.length, self.length + n))
        self.ds[index] = slab
        self.length += n
        self.pending = []

    def seal(self, rows: int = 4096) -> None:
        """Write what is pending, then store the dataset's checksum, hashing it in C order
        a slab of ``rows`` snapshots at a time (memory stays bounded)."""
        self.flush()
        ds = self.ds
        hasher = array_hasher(ds.dtype, ds.shape)
        if self.axis == 0:
            for t0 in range(0, self.length, rows):
                hasher.update(memoryview(np.ascontiguousarray(ds[t0 : t0 + rows])).cast("B"))
        else:
            for m in range(ds.shape[0]):
                for t0 in range(0, self.length, rows):
                    hasher.update(memoryview(np.ascontiguousarray(ds[m, t0 : t0 + rows])).cast("B"))
        ds.attrs[DATASET_DIGEST] = hasher.hexdigest()


class TrajectoryWriter(CloseOrDiscard):
    """Write a trajectory file snapshot by snapshot, for runs too long to hold in memory.

    Observables ``[M, D]`` and metrics ``[M]`` are appended per recorded step; they are
    written to a temporary file beside ``path`` in slabs of ``buffer`` snapshots, so
    memory stays at one slab whatever the run's length.  :meth:`close` computes every
    checksum, seals the file and renames it onto ``path`` (read-only); :meth:`discard`
    (or an exception inside a ``with`` block) removes the temporary file.  Until
    :meth:`close` returns, no file at ``path`` exists that reads as complete: the
    temporary file has another name (``.<name>.<random>.part``) and no root checksum.

    The file is what :func:`write_trajectory` writes for the same content, except that
    its key is the content key of its datasets' checksums when none is given, and extra
    arrays (``extras``: e.g. a projection matrix) are stored under ``/extras``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        experiment: str,
        params: Mapping[str, Any],
        observables: Mapping[str, tuple[int, int, Any]],
        extras: Mapping[str, np.ndarray] | None = None,
        buffer: int = 256,
        key: str = "",
        device: str = "cpu",
    ) -> None:
        if not observables:
            raise ValueError("a trajectory needs at least one observable block")
        self.path = Path(path)
        self.experiment, self.params, self.key, self.device = experiment, dict(params), key, device
        n_inits = {m for m, _, _ in observables.values()}
        if len(n_inits) != 1:
            raise ValueError(f"every observable needs the same number of initialisations, got {sorted(n_inits)}")
        self.n_inits = n_inits.pop()
        for name in observables:
            _check_name(name, "observable")
        self.buffer = buffer
        self.tmp = temporary_beside(self.path)
        self._closed = False
        try:
            self.h5 = h5py.File(self.tmp, "w")
            obs = self.h5.create_group("observables")
            self.observables = {
                name: _Series(obs, name, (m,), (d,), dtype, buffer) for name, (m, d, dtype) in observables.items()
            }
            self.h5.create_group("metrics")
            self.metrics: dict[str, _Series] = {}  # made when first appended
            self.metric_steps: dict[str, list[int]] = {}
            self.steps: list[int] = []
            if extras:
                group = self.h5.create_group("extras")
                for name, arr in extras.items():
                    _create(group, name, np.asarray(arr), **_COMPRESSION)
        except BaseException:
            self.discard()
            raise


    def _check_step(self, step: int, seen: list[int], what: str) -> int:
        step = int(step)
        if seen and step <= seen[-1]:
            raise ParameterError(f"{what}: step {step} does not follow step {seen[-1]} (steps must increase)")
        return step

    def append(self, step: int, observables: Mapping[str, np.ndarray]) -> None:
        """Append the snapshot of every observable (``[M, D]`` each) at optimiser step ``step``."""
        step = self._check_step(step, self.steps, "snapshot")
        if set(observables) != set(self.observables):
            raise ParameterError(f"a snapshot needs every observable {sorted(self.observables)}, got {sorted(observables)}")
        for name, value in observables.items():  # every one checked before any is written
            self.observables[name].check(value)
        self._write(lambda: [self.observables[n].append(v) for n, v in observables.items()])
        self.steps.append(step)

    def append_metric(self, name: str, step: int, values: np.ndarray) -> None:
        """Append metric ``name`` (``[M]`` values) at step ``step`` (a new name starts a new metric)."""
        if name not in self.metrics:
            _check_name(name, "metric")
            if name.endswith(_STEPS_SUFFIX):
                raise ParameterError(f"metric name {name!r} may not end in {_STEPS_SUFFIX!r}")
            self._write(lambda: self.metrics.setdefault(
                name, _Series(self.h5["metrics"], name, (self.n_inits,), (), np.float64, self.buffer)
            ))
            self.metric_steps[name] = []
        step = self._check_step(step, self.metric_steps[name], f"metric {name!r}")
        self.metrics[name].check(values)
        self._write(lambda: self.metrics[name].append(values))
        self.metric_steps[name].append(step)

    def _write(self, action: Any) -> None:
        if self._closed:
            raise ParameterError(f"{self.path}: the recording is closed (or was discarded)")
        try:
            action()
        except OSError as exc:
            self.discard()
            raise EquivdynError(f"{self.path}: writing failed ({exc}); nothing was written") from None

    def close(self) -> None:
        """Seal the file (checksums, root digest) and rename it onto ``path``, read-only."""
        if self._closed:
            return
        if not self.steps:
            self.discard()
            raise ParameterError(f"{self.path}: no snapshot was recorded; nothing was written")
        try:
            h5 = self.h5
            _create(h5, "steps", np.asarray(self.steps, dtype=np.int64))
            for series in (*self.observables.values(), *self.metrics.values()):
                series.seal()
            for name, steps in self.metric_steps.items():
                if steps != self.steps:
                    _create(h5["metrics"], name + _STEPS_SUFFIX, np.asarray(steps, dtype=np.int64))
            key = self.key or content_key(
                {name: obj.attrs[DATASET_DIGEST] for name, obj in _datasets(h5)}
            )
            h5.attrs.update(_provenance(FORMAT_TRAJECTORY, self.experiment, key, self.params, device=self.device))
            _seal(h5)
            h5.close()
            with open(self.tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            publish(self.tmp, self.path)
            self._closed = True
        except OSError as exc:
            self.discard()
            raise EquivdynError(f"{self.path}: writing failed ({exc}); nothing was written") from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop the recording: close and remove the temporary file; ``path`` is not touched."""
        self._closed = True
        h5 = getattr(self, "h5", None)
        if h5 is not None:
            with contextlib.suppress(Exception):
                h5.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ParameterError(f"{what} name {name!r}: must be non-empty, without '/', not starting with '.'")


def _datasets(h5: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []
    h5.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)
