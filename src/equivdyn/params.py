"""Configuration sections as frozen dataclasses: the one home of every default.

Each experiment describes its section of ``config.yaml`` as a :class:`Section` dataclass
whose fields are made by :func:`param` (a default, a description and JSON-schema
constraints) or :func:`sub` (a nested section).  From these the workflow's JSON schema is
generated (:func:`config_schema`, ``equivdyn schema``; a test checks that the committed
``workflow/schemas/config.schema.json`` is what they generate), and the trainers take their
defaults from them (:meth:`Section.defaults`), so a default is written once.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from .errors import ParameterError, is_number

#: JSON-schema type of each Python type a field may have.
_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def param(default: Any, description: str, **schema: Any) -> Any:
    """A field of a :class:`Section`: its ``default``, what it means, and JSON-schema
    constraints (``minimum``, ``enum``, ``items``, ...) beyond its type."""
    meta = {"description": description, "schema": schema}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def sub(section: type[Section]) -> Any:
    """A field holding a nested section (its description is the section's)."""
    return dataclasses.field(default_factory=section, metadata={"description": None, "schema": {}})


class Section:
    """Base of a configuration section: a frozen dataclass of :func:`param` and :func:`sub`
    fields.  ``DESCRIPTION`` says what the section is."""

    DESCRIPTION: ClassVar[str | None] = None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every key's default, nested sections as dicts."""
        return dataclasses.asdict(cls())  # type: ignore[call-overload]

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The JSON schema of the section: every key typed, described and defaulted; unknown keys are errors."""
        hints = typing.get_type_hints(cls)
        properties = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            hint = hints[f.name]
            if isinstance(hint, type) and issubclass(hint, Section):
                properties[f.name] = hint.schema()
                continue
            prop: dict[str, Any] = {"description": f.metadata["description"], **_json_type(hint, f.name)}
            for key, value in f.metadata["schema"].items():
                prop[key] = {**prop[key], **value} if isinstance(prop.get(key), dict) else value
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            prop["default"] = default
            properties[f.name] = prop
        out: dict[str, Any] = {}
        if cls.DESCRIPTION:
            out["description"] = cls.DESCRIPTION
        out.update({"type": "object", "additionalProperties": False, "default": {}, "properties": properties})
        return out


    @classmethod
    def with_defaults(cls, name: str, doc: str, description: str | None = None, **defaults: Any) -> type[Section]:
        """A subclass called ``name`` whose fields ``defaults`` have other defaults (same
        meaning and constraints), e.g. one network's training section from another's."""
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(defaults) - set(fields))
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        new = [
            (key, hints[key], param(value, fields[key].metadata["description"], **fields[key].metadata["schema"]))
            for key, value in defaults.items()
        ]
        made = dataclasses.make_dataclass(name, new, bases=(cls,), frozen=True, namespace={"__doc__": doc})
        made.__module__ = cls.__module__
        if description is not None:
            made.DESCRIPTION = description
        return made

    @classmethod
    def resolve(cls, given: Any, where: str, *, prefix: bool = True) -> dict[str, Any]:
        """A configuration section as the workflow's schema would fill it: ``given`` over the
        defaults, nested sections too, every value checked against its field's type and
        constraints; numbers come back as plain ``int``/``float``, sequences as lists.  A
        :class:`~equivdyn.errors.ParameterError` names the unknown or bad key: ``where`` is
        the section's place (e.g. ``toy``), which prefixes the keys' names when ``prefix``."""
        if not isinstance(given, Mapping):
            raise ParameterError(f"{where}: must be a mapping of keys to values, got {given!r}")
        unknown = unknown_keys(given, cls)
        if unknown:
            raise ParameterError(f"{where}: unknown key(s) {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        defaults = cls()
        out = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            hint, name = hints[f.name], f"{where}.{f.name}" if prefix else f.name
            if isinstance(hint, type) and issubclass(hint, Section):
                out[f.name] = hint.resolve(given.get(f.name, {}), name)
            else:
                value = given.get(f.name, getattr(defaults, f.name))
                out[f.name] = _check(value, hint, f.metadata["schema"], name)
        return out

    @classmethod
    def check(cls, params: Mapping[str, Any], what: str) -> dict[str, Any]:
        """A trainer's parameters of this (flat) section: :meth:`resolve` with the keys
        named as they are (``what`` names the section in the message about unknown keys),
        so a trainer accepts exactly what the workflow's schema does."""
        return cls.resolve(params, what, prefix=False)


def _check(value: Any, hint: Any, constraints: Mapping[str, Any], name: str) -> Any:
    """``value`` as a field of type ``hint`` with JSON-schema ``constraints``, or a ParameterError naming ``name``."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        if value is None:
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        if not isinstance(value, (list, tuple)):
            raise ParameterError(f"{name}: must be a list, got {value!r}")
        low, high = constraints.get("minItems", 0), constraints.get("maxItems", math.inf)
        if not low <= len(value) <= high:
            size = f"{low}" if low == high else f"{low} to {high}"
            raise ParameterError(f"{name}: must have {size} items, got {value!r}")
        (item,) = typing.get_args(hint)
        out = [_check(v, item, constraints.get("items", {}), f"{name}[{i}]") for i, v in enumerate(value)]
        if constraints.get("uniqueItems") and len(set(map(repr, out))) != len(out):
            raise ParameterError(f"{name}: items must be distinct, got {value!r}")
        return out
    if hint is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ParameterError(f"{name}: must be true or false, got {value!r}")
        return bool(value)
    if hint is str:
        if not isinstance(value, str) or len(value) < constraints.get("minLength", 0):
            raise ParameterError(f"{name}: must be a non-empty string, got {value!r}")
        if "enum" in constraints and value not in constraints["enum"]:
            raise ParameterError(f"{name}: unknown value {value!r}; choose one of {', '.join(constraints['enum'])}")
        return value
    if hint is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ParameterError(f"{name}: must be an integer, got {value!r} of type {type(value).__name__}")
        number: int | float = int(value)
    else:  # float
        if not (is_number(value) and math.isfinite(float(value))):
            raise ParameterError(f"{name}: must be a finite number, got {value!r}")
        number = float(value)
    for key, test, word in _BOUNDS:
        if key in constraints and not test(number, constraints[key]):
            raise ParameterError(f"{name}: must be {word} {constraints[key]}, got {value!r}")
    return number


#: JSON-schema bounds: (keyword, test of a value against the bound, words for the message).
_BOUNDS = (
    ("minimum", lambda x, b: x >= b, ">="),
    ("maximum", lambda x, b: x <= b, "<="),
    ("exclusiveMinimum", lambda x, b: x > b, ">"),
    ("exclusiveMaximum", lambda x, b: x < b, "<"),
)


def _json_type(hint: Any, name: str) -> dict[str, Any]:
    """``type`` (and ``items``) of a field of Python type ``hint``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        found = _json_type(inner, name)
        return {**found, "type": [found["type"], "null"]}
    if typing.get_origin(hint) is list:
        return {"type": "array", "items": _json_type(args[0], name)}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    raise TypeError(f"{name}: no JSON-schema type for {hint!r}")


def config_schema(sections: Mapping[str, type[Section]], extra: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The schema of a whole configuration: ``extra`` top-level keys, then one section per name."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": (
            "Configuration of the equivdyn workflow, generated by `equivdyn schema` from the experiments' "
            "configuration dataclasses (do not edit by hand). Every key has a type, a range and a default; "
            "unknown keys are errors, so a typo fails at once instead of being ignored."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": {**(extra or {}), **{name: section.schema() for name, section in sections.items()}},
    }


def unknown_keys(given: Iterable[str], section: type[Section]) -> list[str]:
    """Keys of ``given`` that ``section`` does not have."""
    names = {f.name for f in dataclasses.fields(section)}  # type: ignore[arg-type]
    return sorted(str(k) for k in given if k not in names)


def check_job(params: Mapping[str, Any], job: type[Section], section: type[Section], what: str) -> dict[str, Any]:
    """The checked parameters of one training job: the keys the plan sets per job
    (``job``: seed, width, ...) and the config section's (``section``), each over its defaults."""
    names = {f.name for f in dataclasses.fields(job)}  # type: ignore[arg-type]
    own = job.check({k: v for k, v in params.items() if k in names}, what)
    return {**own, **section.check({k: v for k, v in params.items() if k not in names}, what)}


# ---------------------------------------------------------------- sections several experiments share

#: Where an experiment's training jobs run (its ``device`` key).
DEVICES = ("cpu", "cuda", "auto")


def device_param() -> Any:
    """The ``device`` key of an experiment that trains with torch."""
    return param(
        "cpu",
        "Where training jobs run: cpu (repeat runs are bit-identical); cuda (each training job asks the scheduler for "
        "a GPU and fails with a clear message where torch sees none; CUDA results differ from CPU ones in the last "
        "bits, so they have their own keys); auto (cuda if the machine that plans the workflow has a CUDA device, "
        "else cpu; on a cluster, whose login node often has no GPU, say cuda).",
        enum=list(DEVICES),
    )



@dataclasses.dataclass(frozen=True)
class SeededJob(Section):
    """What every seeded training job has beside its config section: the seed."""

    seed: int = param(0, "Seed of initialisation 0 (the others are its perturbed copies).", minimum=0, maximum=2**63 - 1)


@dataclasses.dataclass(frozen=True)
class Koopman(Section):
    """Koopman fit by DMD on time-delay embedded snapshots (each experiment sets its own defaults)."""

    DESCRIPTION = "Koopman fit by DMD on time-delay embedded snapshots."

    n_delays: int = param(0, "Lagged copies added to each snapshot (the embedding stacks n_delays + 1 copies).", minimum=0)
    rank: int | None = param(
        None, "DMD rank (leading eigenvalues kept); null keeps every mode the data supports.", minimum=1
    )
    n_components: int | None = param(
        None,
        "Project the observables on this many principal components before embedding; null = no projection.",
        minimum=1,
    )


@dataclasses.dataclass(frozen=True)
class Control(Section):
    """The paper's randomisation control between matched spectra."""

    DESCRIPTION = "Distances between spectra and the paper's randomisation control."

    n_shuffles: int = param(
        1000, "Shuffles of matched eigenvalue pairs in the randomisation control.", minimum=1, maximum=1_000_000
    )
    seed: int = param(0, "Seed of the randomisation control, the permutation test and the verdicts.", minimum=0)


@dataclasses.dataclass(frozen=True)
class Comparison(Section):
    """The randomisation control and the label-permutation test across seeds."""

    DESCRIPTION = "Distances between spectra, the paper's randomisation control and the permutation test across seeds."

    n_shuffles: int = param(
        1000, "Shuffles of matched eigenvalue pairs in the randomisation control.", minimum=1, maximum=1_000_000
    )
    n_permutations: int = param(10_000, "Label permutations in the test across seeds.", minimum=1, maximum=10_000_000)
    seed: int = param(0, "Seed of the randomisation control, the permutation test and the verdicts.", minimum=0)


@dataclasses.dataclass(frozen=True)
class Data(Section):
    """Where the datasets come from."""

    DESCRIPTION = "Local copies of datasets."

    mnist: str | None = param(
        None,
        "MNIST: an .npz with uint8 x_train, y_train, x_test, y_test, or a folder with the four IDX files; "
        "null = data/mnist.npz if present, else download with checksum verification.",
        minLength=1,
    )
    cifar10: str | None = param(
        None,
        "CIFAR-10: the python archive cifar-10-python.tar.gz (or its extracted folder cifar-10-batches-py); "
        "null = data/cifar-10-python.tar.gz if present, else download with checksum verification; "
        '"synthetic" = a small random stand-in in the same format (every figure drawn from it says so).',
        minLength=1,
    )
