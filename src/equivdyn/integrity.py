"""Check stored results and remove damaged ones: ``equivdyn verify``.

Every result equivdyn writes verifies itself when it is read: HDF5 files (trajectories,
spectra) carry a SHA-256 per dataset and one over all attributes (:mod:`equivdyn.store`),
prepared data ``.npz`` files a digest of their arrays (:mod:`equivdyn.data._common`), JSON
results (comparisons, distances, figure numbers) a digest field
(:func:`equivdyn._io.write_json_atomic`).  :func:`verify` reads files completely, so every
checksum is checked; with ``remove=True`` the damaged ones are deleted, so that the next
``snakemake`` run rebuilds exactly those and what depends on them.

A result that is a link into Snakemake's between-workflow cache is checked through the
link; when it is damaged, the cache entry is damaged for every checkout that uses it, so
removing it removes the link and the entry.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._io import read_json_result
from .errors import EquivdynError, InvalidFileError

#: Suffixes of the files that carry checksums; other files (figures, logs, tables) are skipped.
CHECKED_SUFFIXES = (".h5", ".json", ".npz")


@dataclass(frozen=True)
class Finding:
    """One damaged file: its path, the cache entry behind it (if a link) and the problem."""

    path: Path
    problem: str
    target: Path | None = None


def verify_file(path: str | os.PathLike[str]) -> None:
    """Read ``path`` completely, checking every checksum; raise :class:`InvalidFileError` if damaged."""
    p = Path(path)
    suffix = p.suffix
    if suffix == ".h5":
        from .store import summarize

        summarize(p)
    elif suffix == ".json":
        read_json_result(p)
    elif suffix == ".npz":
        from .data._common import NPZ_DIGEST, load_npz

        try:
            with zipfile.ZipFile(p) as archive:
                names = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
        except (OSError, zipfile.BadZipFile) as exc:
            raise InvalidFileError(p, f"not a readable .npz file (truncated or corrupt?): {exc}") from None
        load_npz(p, [n for n in names if n != NPZ_DIGEST], lambda *_: None, sealed=True)
    else:
        raise InvalidFileError(p, f"equivdyn writes no checksum into {suffix or 'suffix-less'} files")


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for root in paths:
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(filenames):
                    p = Path(dirpath) / name
                    if p.suffix in CHECKED_SUFFIXES and not name.startswith("."):
                        yield p
        else:
            yield root


def verify(paths: Iterable[str | os.PathLike[str]], *, remove: bool = False) -> tuple[int, list[Finding]]:
    """Verify every result under ``paths`` (files or folders); returns the number of files
    checked and the damaged ones.  With ``remove``, each damaged file (and, for a link into
    the cache, the entry it points to) is deleted."""
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists() and not root.is_symlink():
            raise InvalidFileError(root, "does not exist")
    checked, damaged = 0, []
    for p in _files(roots):
        checked += 1
        target = p.resolve() if p.is_symlink() else None
        try:
            verify_file(p)
        except EquivdynError as exc:
            problem = exc.problem if isinstance(exc, InvalidFileError) else str(exc)
            damaged.append(Finding(p, problem, target))
            if remove:
                p.unlink()
                if target is not None and target.exists():
                    target.unlink()
    return checked, damaged
