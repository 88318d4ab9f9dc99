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
