"""Small I/O helpers shared by every stage: atomic writes and content keys."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Length (hex digits) of the content keys used in result paths.
KEY_LENGTH = 16


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` to JSON with sorted keys and no insignificant white space.

    The same JSON value always gives the same string, whatever the order of dict keys,
    so the string can be hashed.  Types are kept apart: ``1``, ``1.0`` and ``True`` give
    different strings (and keys), because a parameter's type can change a result.
    Floats keep their shortest round-trip representation; NaN and infinity are refused
    because they have no JSON spelling.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_key(record: Any) -> str:
    """Short SHA-256 of the canonical JSON of ``record`` (the content address of a result)."""
    return hashlib.sha256(canonical_json(record).encode("ascii")).hexdigest()[:KEY_LENGTH]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name starts with ``.`` and ends with ``.part`` so that no workflow
    pattern matches it.  A crash or an exception inside the block removes the
    temporary file and leaves any previous ``path`` untouched, so a reader never
    sees a half-written result.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file private (0600); give the result the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
