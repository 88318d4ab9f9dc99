"""One truth for the trainers' defaults: the workflow schema's defaults are the library's.

The trainers' ``DEFAULTS`` (and E3's per-network and E4's long-run defaults) are where a
default is decided; the schema, which fills a configuration's missing keys, must state the
same values, and every parameter a trainer resolves must be configurable there (except the
ones the workflow's plan sets per job: seeds, widths, networks, setups).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from equivdyn.experiments.e1 import trainer as e1
from equivdyn.experiments.e2 import trainer as e2
from equivdyn.experiments.e3 import trainer as e3
from equivdyn.experiments.e4 import trainer as e4

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())


def block(*path: str) -> dict[str, Any]:
    """Properties of the schema object at ``path`` (following a ``$ref``)."""
    node = SCHEMA
    for name in path:
        node = node["properties"][name]
    if "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node["properties"]


def schema_defaults(*path: str) -> dict[str, Any]:
    """The values a configuration that gives nothing gets at ``path``."""
    node = SCHEMA
    for name in path:
        node = node["properties"][name]
    own = node.get("default", {})
    return {**{k: v["default"] for k, v in block(*path).items() if "default" in v}, **own}


#: (schema path, the library's defaults, parameters the plan sets per job)
CASES = [
    (("e1", "train"), e1.DEFAULTS, set()),
    (("e2", "train"), e2.DEFAULTS, {"width", "seed"}),
    (("e4", "train"), e4.DEFAULTS, {"setup", "seed"}),
    (("e4", "long"), e4.LONG_DEFAULTS, {"setup"}),
]


@pytest.mark.parametrize(("path", "defaults", "planned"), CASES, ids=[".".join(c[0]) for c in CASES])
def test_schema_defaults_are_the_library_defaults(path: tuple[str, ...], defaults: dict[str, Any], planned: set[str]) -> None:
    stated = schema_defaults(*path)
    if path == ("e4", "long"):  # the long run takes the model and optimiser from e4.train
        stated = {**schema_defaults("e4", "train"), **stated}
        stated = {k: v for k, v in stated.items() if k in defaults}
    expected = {k: (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items() if k not in planned}
    assert stated == expected


def test_every_schema_train_key_is_a_parameter_of_its_trainer() -> None:
    for path, defaults, _ in CASES:
        assert set(block(*path)) <= set(defaults), path


@pytest.mark.parametrize("network", ["lenet", "resnet20"])
def test_e3_networks_take_their_own_defaults_from_the_library(network: str) -> None:
    """E3's networks differ in their defaults, so the schema states none for their keys
    (a default there would fill a partial section with the other network's values): the
    plan resolves each key the config leaves out from the library."""
    from equivdyn.experiments.e3 import resolve
    from equivdyn.experiments.e3.config import WINDOW_DEFAULTS

    for part, defaults in (("train", e3.defaults_for(network)), ("windows", WINDOW_DEFAULTS[network])):
        props = block("e3", network, part)
        assert set(props) == set(defaults) - {"model", "seed"}, part
        assert not [k for k, v in props.items() if "default" in v], part
        assert schema_defaults("e3", network, part) == {}, part
    train, windows = resolve({network: {"train": {"n_epochs": 7}, "windows": {"count": 3}}}, network)
    assert train == {**{k: v for k, v in e3.defaults_for(network).items() if k not in ("model", "seed")}, "n_epochs": 7}
    assert windows == {**WINDOW_DEFAULTS[network], "count": 3}
