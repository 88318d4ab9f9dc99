"""One home for every default: each experiment's settings dataclasses.

The workflow's schema (which fills a configuration's missing keys) is generated from them
(`equivdyn schema`), the trainers take their defaults from them, and `config.yaml` states
only what differs from them.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from equivdyn.experiments import BUILTIN, get, workflow_schema
from equivdyn.experiments.e1 import trainer as e1
from equivdyn.experiments.e2 import trainer as e2
from equivdyn.experiments.e3 import trainer as e3
from equivdyn.experiments.e4 import trainer as e4

from .conftest import ROOT, filled_config, venv_exe

SCHEMA_FILE = ROOT / "workflow/schemas/config.schema.json"


def test_the_committed_schema_is_the_generated_one() -> None:
    generated = subprocess.run([venv_exe("equivdyn"), "schema"], capture_output=True, text=True, check=True).stdout
    assert SCHEMA_FILE.read_text() == generated, "run `equivdyn schema --out workflow/schemas/config.schema.json`"
    assert json.loads(generated) == workflow_schema()


def test_every_builtin_experiment_has_its_section() -> None:
    sections = set(workflow_schema()["properties"])
    assert sections == {"plugins", "data", *BUILTIN}
    for name in BUILTIN:
        assert get(name).settings is not None


#: (config section, the trainer's defaults, parameters the plan sets per job)
CASES = [
    (("e1", "train"), e1.DEFAULTS, {"method"}),
    (("e2", "train"), e2.DEFAULTS, {"width", "seed"}),
    (("e3", "lenet", "train"), e3.defaults_for("lenet"), {"model", "seed"}),
    (("e3", "resnet20", "train"), e3.defaults_for("resnet20"), {"model", "seed"}),
    (("e4", "train"), e4.DEFAULTS, {"setup", "seed"}),
]


def section_of(config: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for name in path:
        config = config[name]
    return config


@pytest.mark.parametrize(("path", "defaults", "planned"), CASES, ids=[".".join(c[0]) for c in CASES])
def test_an_empty_config_gets_the_trainers_defaults(path: tuple[str, ...], defaults: dict[str, Any], planned: set[str]) -> None:
    stated = section_of(filled_config({}), path)
    assert stated == {k: v for k, v in defaults.items() if k not in planned}


def test_the_long_runs_get_the_trainers_defaults() -> None:
    config = filled_config({})["e4"]
    model = {k: v for k, v in config["train"].items() if k in e4.LONG_DEFAULTS}
    assert {**model, **config["long"]} == {k: v for k, v in e4.LONG_DEFAULTS.items() if k != "setup"}


def test_a_partial_network_section_keeps_that_networks_defaults() -> None:
    """ResNet-20 and LeNet have their own defaults: giving one key of ResNet-20's keeps the rest its own."""
    train = filled_config({"e3": {"resnet20": {"train": {"n_epochs": 1}}}})["e3"]["resnet20"]["train"]
    resnet = {k: v for k, v in e3.defaults_for("resnet20").items() if k not in ("model", "seed")}
    assert train == {**resnet, "n_epochs": 1}
    assert train["lr"] != e3.defaults_for("lenet")["lr"]


def test_config_yaml_states_only_what_differs_from_the_defaults() -> None:
    """`config.yaml` is the laptop-scale override of the defaults, not a second copy of them."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    defaults = filled_config({})

    def walk(given: Any, default: Any, where: str) -> None:
        if isinstance(given, dict):
            for key, value in given.items():
                walk(value, default[key], f"{where}.{key}")
        else:
            assert given != default, f"config.yaml restates the default of {where.lstrip('.')}: {given!r}"

    walk(config, defaults, "")


@pytest.mark.parametrize("config_file", ["config.yaml", "tests/tiny.yaml", "profiles/paper/paper.yaml"])
def test_the_settings_fill_a_config_as_the_schema_does(config_file: str) -> None:
    """Section.resolve (which fills and checks a plugin's section) agrees with the generated schema."""
    config = yaml.safe_load((ROOT / config_file).read_text())
    by_schema = filled_config(config)
    for name in BUILTIN:
        settings = get(name).settings
        assert settings is not None
        assert settings.resolve(config.get(name, {}), name) == by_schema[name], name


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"seeds": [0, 0]}, "e2.seeds: items must be distinct"),
        ({"train": {"lr": -1}}, "e2.train.lr: must be > 0"),
        ({"train": {"n_inits": True}}, "e2.train.n_inits: must be an integer"),
        ({"koopman": {"rank": None}}, "e2.koopman.rank: must be an integer"),
        ({"train": {"optimizer": "lbfgs"}}, "e2.train.optimizer: unknown value 'lbfgs'"),
        ({"trian": {}}, "e2: unknown key(s) trian"),
    ],
)
def test_the_settings_name_a_bad_key(section: dict[str, Any], message: str) -> None:
    from equivdyn.errors import ParameterError

    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get("e2").settings.resolve(section, "e2")  # type: ignore[union-attr]
