"""Exception types raised by equivdyn.

Every error that a user can cause (a bad file, a bad parameter) is an
:class:`EquivdynError`, so the command line can print one readable line
instead of a traceback.
"""

from __future__ import annotations


class EquivdynError(Exception):
    """Base class of all errors that equivdyn raises on purpose."""


class InvalidFileError(EquivdynError, ValueError):
    """An HDF5 file is missing, unreadable, truncated or not in the expected format.

    The message always names the file.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ParameterError(EquivdynError, ValueError):
    """A parameter (from a config, a spec or a call) has a bad value; the message names it."""


def check_int(value: object, name: str, minimum: int) -> int:
    """Return ``value`` as ``int`` if it is an integer ``>= minimum``; else raise :class:`ParameterError`.

    ``bool`` is refused although it subclasses ``int``: ``True`` is never a count.
    """
    if isinstance(value, bool) or not (isinstance(value, int) or hasattr(value, "__index__")):
        raise ParameterError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value.__index__())  # type: ignore[union-attr]
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}")
    return value


def is_number(value: object) -> bool:
    """True for real numbers (Python or NumPy), False for ``bool`` and everything else."""
    import numpy as np

    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; else raise :class:`ParameterError` naming ``name``."""
    if value not in choices:
        raise ParameterError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")
    return str(value)
