"""Experiments: each a package that describes itself, and the registry the workflow loops over.

An experiment is an :class:`Experiment` object registered under its name, which is also
its section of ``config.yaml``.  It owns

* ``plan(plan, section)``: the jobs it needs (training, fits, comparisons) and its
  figures, added to a :class:`equivdyn.plan.Plan`;
* ``train(params, inputs)``: the trajectory of one training job (every job kind the
  experiment plans, e.g. E4's long runs, goes through this one signature);
* ``draw(figure, inputs, prefix)``: one of its figures, from the files of each input role;
* its figures' captions, as text files in its package.

The built-in experiments are the paper's four and ``custom``, your own runs (:data:`BUILTIN`).  Others register
themselves with :func:`register` in a module that the configuration's ``plugins`` list
(or the environment variable :data:`PLUGINS_ENV`) names.  Importing this package, or an
experiment's package, never imports torch: trainers are imported when a job trains.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ParameterError
from ..params import Data, Section, config_schema

if TYPE_CHECKING:
    from ..plan import Plan
    from ..store import Trajectory

#: The paper's experiments, each the package ``equivdyn.experiments.<name>``.
BUILTIN = ("e1", "e2", "e4", "e3", "custom")
#: Environment variable listing plugin modules (comma-separated) to import before a job runs.
PLUGINS_ENV = "EQUIVDYN_PLUGINS"

_REGISTRY: dict[str, Experiment] = {}


class Experiment:
    """Base of an experiment: subclasses set the attributes and implement the three methods."""

    #: Name, also the experiment's section of the configuration.
    name: str = ""
    #: Version of the trainer's results; bump it when a code change alters them.
    train_version: int = 1
    #: Intra-op threads a training job uses.
    train_threads: int = 1
    #: Devices its trainer runs on (a configuration's ``device`` setting picks one).
    devices: tuple[str, ...] = ("cpu",)
    #: Module (``package.module:function``) of the drawing function of each figure stem.
    figures: Mapping[str, str] = {}
    #: Its section of the configuration (:class:`equivdyn.params.Section`): every key, its
    #: default and its constraints; the workflow's schema is generated from it.
    settings: type[Section] | None = None

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        """Add this experiment's jobs and figures for its config ``section`` to ``plan``."""
        raise NotImplementedError

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        """Train one planned job on ``device`` (one of :attr:`devices`) and return its
        trajectory (``params`` as planned)."""
        raise NotImplementedError

    def draw(self, figure: str, inputs: Mapping[str, list[Path]], prefix: Path) -> None:
        """Draw figure ``figure`` (a stem of :attr:`figures`) from its input files, by role."""
        if figure not in self.figures:
            raise ParameterError(f"figure: {self.name} draws no figure {figure!r}; it draws {', '.join(self.figures)}")
        module, function = self.figures[figure].split(":")
        getattr(importlib.import_module(module), function)(inputs, prefix)

    def text(self, name: str, values: Mapping[str, object] | None = None) -> str:
        """A text file (e.g. a caption) of this experiment's package, placeholders filled."""
        from ..plan import read_text

        return read_text(type(self).__module__, name, values)


def register(experiment: Experiment) -> Experiment:
    """Register ``experiment`` under its name (a plugin module calls this when imported)."""
    if not experiment.name.isidentifier():
        raise ParameterError(f"experiment name {experiment.name!r}: must be a Python identifier")
    known = _REGISTRY.get(experiment.name)
    if known is not None and type(known) is not type(experiment):
        raise ParameterError(f"experiment {experiment.name!r} is registered twice ({type(known)} and {type(experiment)})")
    _REGISTRY[experiment.name] = experiment
    return experiment


def load_plugins(modules: Iterable[str]) -> None:
    """Import each plugin module (they register their experiments when imported)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ParameterError(f"plugins: cannot import the experiment module {module!r}: {exc}") from None


def plugin_sections(config: dict[str, Any]) -> dict[str, Any]:
    """Remove the sections of registered plugin experiments from ``config`` and return them
    filled in and checked by their settings (:meth:`equivdyn.params.Section.resolve`): the
    workflow's schema covers the built-in experiments.  A plugin without settings gets its
    section as given."""
    out = {}
    for e in registered():
        if e.name not in BUILTIN and e.name in config:
            given = config.pop(e.name)
            out[e.name] = given if e.settings is None else e.settings.resolve(given, e.name)
    return out


#: The configuration's ``plugins`` key.
PLUGINS_SCHEMA: dict[str, Any] = {
    "description": (
        "Python modules that register further experiments (equivdyn.experiments.register) when imported; each "
        "such experiment's section of this config is checked by the experiment itself. See the README, "
        '"How to add an experiment".'
    ),
    "type": "array",
    "items": {"type": "string"},
    "default": [],
}


def workflow_schema() -> dict[str, Any]:
    """The JSON schema of the workflow's configuration: ``plugins``, every built-in
    experiment's section (from its settings) and ``data``."""
    sections: dict[str, type[Section]] = {}
    for name in BUILTIN:
        settings = get(name).settings
        assert settings is not None, name
        sections[name] = settings
    return config_schema({**sections, "data": Data}, extra={"plugins": PLUGINS_SCHEMA})


def _load() -> None:
    for name in BUILTIN:
        if name not in _REGISTRY:
            importlib.import_module(f"{__name__}.{name}")
    load_plugins(m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m)


def registered() -> list[Experiment]:
    """Every registered experiment: the built-in ones, then the plugins."""
    _load()
    return list(_REGISTRY.values())


def get(name: str) -> Experiment:
    """The registered experiment ``name``; the error lists the known ones."""
    _load()
    if name not in _REGISTRY:
        raise ParameterError(f"experiment: unknown experiment {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
