"""The ``custom`` section of ``config.yaml``: your own runs, compared like the paper's.

Torch-free: the plan and the schema import it.  ``setups`` maps each setup's name to a
:class:`Setup`; the JSON schema lets any name through and checks each entry against the
setup's schema, and :meth:`CustomSettings.resolve` fills in and checks each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import ParameterError
from ...params import Section, param


@dataclass(frozen=True)
class Setup(Section):
    """One setup of your own: the trajectory files of its seeds, or a command that writes one."""

    DESCRIPTION = (
        "One setup: either `files` (its trajectory files, one per seed) or `command` (a command that "
        "writes one seed's trajectory file), not both."
    )

    files: list[str] | None = param(
        None,
        "Trajectory files of this setup, one per seed, e.g. [\"runs/sgd/*.h5\"]: paths or glob patterns "
        "(relative to the workflow's folder), each pattern's matches sorted. Their content, not their "
        "path, is part of every downstream key.",
        minItems=1,
        items={"minLength": 1},
    )
    command: str | None = param(
        None,
        "A shell command that trains one seed and writes its trajectory file (e.g. with equivdyn.Recorder); "
        "{seed} is replaced by the seed and {out} by the file to write. It runs in the workflow's folder.",
        minLength=1,
    )
    seeds: list[int] = param(
        [0, 1, 2, 3],
        "Seeds the command is run with, one trajectory file each (4 per setup are needed to reach p < 0.05).",
        minItems=2,
        uniqueItems=True,
        items={"minimum": 0},
    )
    depends: list[str] = param(
        [],
        "Files the command reads (its script, its data): their content is part of the key, so a change "
        "reruns the command; the key never covers code the command reads that is not listed.",
        items={"minLength": 1},
    )


@dataclass(frozen=True)
class CustomSettings(Section):
    """Your own setups, and which of them to compare."""

    DESCRIPTION = (
        "Your own training runs, compared with the calibrated verdict (`snakemake custom`): named setups, each "
        "its trajectory files per seed or a command that writes them, and the pairs to compare."
    )

    pairs: list[list[str]] | None = param(
        None,
        "Pairs of setups to compare, e.g. [[sgd, adam]]; null compares every pair.",
        items={"minItems": 2, "maxItems": 2},
    )
    observable: str | None = param(
        None, "Observable to compare; null = the files' only observable.", minLength=1
    )
    seed: int = param(0, "Seed of the verdicts' random relabellings (used beyond 8 seeds per setup).", minimum=0)

    @classmethod
    def schema(cls) -> dict[str, Any]:
        out = super().schema()
        out["properties"]["setups"] = {
            "description": "The setups, by name (a name is a letter followed by letters, digits, '_', '.' or '-').",
            "type": "object",
            "default": {},
            "propertyNames": {"pattern": SETUP_NAME},
            "additionalProperties": Setup.schema(),
        }
        return out

    @classmethod
    def resolve(cls, given: Any, where: str, *, prefix: bool = True) -> dict[str, Any]:
        if not isinstance(given, dict):
            raise ParameterError(f"{where}: must be a mapping of keys to values, got {given!r}")
        rest = {k: v for k, v in given.items() if k != "setups"}
        out = super().resolve(rest, where, prefix=prefix)
        out["setups"] = resolve_setups(given.get("setups", {}), f"{where}.setups")
        return out


#: What a setup's name may be (it names files and figure panels).
SETUP_NAME = r"^[A-Za-z][A-Za-z0-9_.\-]*$"


def resolve_setups(given: Any, where: str) -> dict[str, dict[str, Any]]:
    """Each setup filled in and checked (:class:`Setup`), by name."""
    import re

    if not isinstance(given, dict) or len(given) == 1:
        raise ParameterError(f"{where}: name at least two setups (name: {{files: [...]}} or {{command: ...}}), got {given!r}")
    out = {}
    for name, setup in given.items():
        if not (isinstance(name, str) and re.match(SETUP_NAME, name)):
            raise ParameterError(f"{where}: setup name {name!r} must be a letter followed by letters, digits, '_', '.' or '-'")
        resolved = Setup.resolve(setup if setup is not None else {}, f"{where}.{name}")
        if (resolved["files"] is None) == (resolved["command"] is None):
            raise ParameterError(f"{where}.{name}: give either files or command (exactly one)")
        if resolved["command"] is not None and "{out}" not in resolved["command"]:
            raise ParameterError(f"{where}.{name}.command: must contain {{out}}, the file the command writes")
        out[name] = resolved
    return out
