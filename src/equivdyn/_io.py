"""Small I/O helpers shared by every stage: atomic writes and content keys."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import EquivdynError, InvalidFileError

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


def record_digest(record: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record``."""
    return hashlib.sha256(canonical_json(record).encode("ascii")).hexdigest()


def content_key(record: Any) -> str:
    """Short SHA-256 of the canonical JSON of ``record`` (the content address of a result)."""
    return record_digest(record)[:KEY_LENGTH]


def array_hasher(dtype: Any, shape: tuple[int, ...]) -> Any:
    """A SHA-256 object primed with ``dtype`` and ``shape``; feed it the array's bytes in C
    order (whole or in consecutive slices) to get :func:`array_digest`."""
    import numpy as np

    return hashlib.sha256(f"{np.dtype(dtype).str}|{tuple(shape)}|".encode("ascii"))


def array_digest(array: Any) -> str:
    """SHA-256 (hex) of an array's dtype, shape and bytes (C order): equal digests, equal arrays."""
    import numpy as np

    arr = np.ascontiguousarray(array)
    digest = array_hasher(arr.dtype, arr.shape)
    digest.update(memoryview(arr).cast("B") if arr.size else b"")
    return digest.hexdigest()


#: Name of the field that holds a JSON result's digest (see :func:`write_json_atomic`).
JSON_DIGEST_FIELD = "sha256"

#: JSON deeper than this is refused before it is used (a result is at most a few levels deep).
MAX_JSON_DEPTH = 64


def json_depth_ok(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON ``obj`` nests at most ``limit`` levels (checked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


def seal_json(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` plus the SHA-256 of its canonical JSON under :data:`JSON_DIGEST_FIELD`."""
    if JSON_DIGEST_FIELD in obj:
        raise ValueError(f"a JSON result may not have its own {JSON_DIGEST_FIELD!r} field")
    return {**obj, JSON_DIGEST_FIELD: record_digest(obj)}


def unseal_json(obj: Any) -> tuple[dict[str, Any] | None, str]:
    """The JSON result without its digest field, or ``None`` and why it does not verify."""
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    stored = obj.get(JSON_DIGEST_FIELD)
    if not isinstance(stored, str):
        return None, f"no {JSON_DIGEST_FIELD!r} checksum field (written by an older equivdyn, or not a result)"
    body = {k: v for k, v in obj.items() if k != JSON_DIGEST_FIELD}
    try:
        actual = record_digest(body)
    except ValueError as exc:
        return None, f"cannot be checked: {exc}"
    if actual != stored:
        return None, f"checksum mismatch (the content was changed after it was written): stored {stored[:16]}..., content {actual[:16]}..."
    return body, ""


class CloseOrDiscard:
    """Mixin of a recording: as a context manager it calls ``close()`` when the block ends
    normally and ``discard()`` when it raises, so a failed run leaves nothing that reads as complete."""

    def close(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


#: Errors of a write that failed for want of room or a working disk.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name starts with ``.`` and ends with ``.part`` so that no workflow
    pattern matches it.  A crash or an exception inside the block removes the
    temporary file and leaves any previous ``path`` untouched, so a reader never
    sees a half-written result.  An ``OSError`` while writing (e.g. a full disk) becomes
    an :class:`~equivdyn.errors.EquivdynError` naming ``path``.  The result is read-only.
    """
    target = Path(path)
    tmp = temporary_beside(target)
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as exc:  # disk full, quota, I/O error: one line naming the file
            if exc.errno not in _WRITE_ERRNOS:
                raise  # not a failed write (e.g. a download's network error): the caller's to handle
            raise EquivdynError(f"{target}: writing failed ({exc.strerror or exc}); nothing was written") from None
        publish(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def temporary_beside(target: Path) -> Path:
    """A new empty temporary file beside ``target`` (its folder made if needed), named
    ``.<name>.<random>.part`` so that no workflow pattern matches it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(tmp_name)


def publish(tmp: Path, target: Path) -> None:
    """Make the finished, synced temporary file ``tmp`` the result ``target``: read-only for
    everyone (a result is never changed in place; a rerun replaces it), renamed atomically."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o444 & ~umask)
    os.replace(tmp, target)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """Write the JSON object ``obj``, sealed with its digest (:func:`seal_json`), to ``path`` atomically.

    :func:`read_json_result` checks the digest when it reads the file.
    """
    write_text_atomic(path, json.dumps(seal_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json_result(path: str | Path) -> dict[str, Any]:
    """Read a JSON result file and check its digest (see :func:`write_json_atomic`);
    any problem raises :class:`InvalidFileError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise InvalidFileError(p, "file does not exist")
    if p.is_dir():
        raise InvalidFileError(p, "is a directory, not a JSON file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidFileError(p, f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise InvalidFileError(p, "file is empty (an interrupted write?)")
    try:
        parsed = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidFileError(p, "not valid JSON: the file is not UTF-8 text (a binary file?)") from None
    except json.JSONDecodeError as exc:
        raise InvalidFileError(p, f"not valid JSON (truncated or not a result?): {exc}") from None
    except RecursionError:
        raise InvalidFileError(p, f"JSON nested deeper than {MAX_JSON_DEPTH} levels (not a result)") from None
    if not json_depth_ok(parsed):
        raise InvalidFileError(p, f"JSON nested deeper than {MAX_JSON_DEPTH} levels (not a result)")
    body, problem = unseal_json(parsed)
    if body is None:
        raise InvalidFileError(p, problem)
    return body
