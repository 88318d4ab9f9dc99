"""The workflow's stages as plain functions: spec in, atomically written file out.

A *spec* is a JSON-ready record ``{"stage", "experiment", "version", "params",
"inputs"}`` holding every parameter that determines a result and the content keys of
the results it reads.  Its content key (:func:`equivdyn._io.content_key`) names the
output file; each stage stores the spec and the key inside what it writes, and checks
the keys of what it reads, so a result can always be traced to what made it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._io import content_key, write_json_atomic
from .errors import EquivdynError, ParameterError
from .store import Trajectory, read_spectra, read_trajectory, write_spectra, write_trajectory

log = logging.getLogger(__name__)

#: Implementation version of every stage.  A code change that alters a stage's results
#: bumps its number; the workflow's plan puts it into every spec, so all keys downstream
#: change and the affected results are recomputed.
STAGE_VERSIONS: dict[str, int] = {"train_e1": 1, "fit": 1, "compare": 1}

#: Experiments and the modules that produce their trajectories (imported on demand, so
#: that planning and fitting never pay for torch).
TRAINERS = {"e1": "equivdyn.experiments.e1"}


def _check_spec(spec: Mapping[str, Any], stage: str, version_name: str | None = None) -> None:
    """Check that ``spec`` is a spec for ``stage`` of this equivdyn's version of it."""
    if spec.get("stage") != stage:
        raise ParameterError(f"stage: this is the {stage!r} command, but the spec is for stage {spec.get('stage')!r}")
    expected = STAGE_VERSIONS[version_name or stage]
    if spec.get("version") != expected:
        raise ParameterError(
            f"version: the spec for stage {stage!r} was planned for version {spec.get('version')!r}, "
            f"but this equivdyn implements version {expected}; re-plan the workflow"
        )
    for name in ("params", "inputs"):
        if not isinstance(spec.get(name), dict):
            raise ParameterError(f"{name}: the spec needs a JSON object {name!r}, got {spec.get(name)!r}")


def _spec_input(spec: Mapping[str, Any], name: str) -> str:
    key = spec["inputs"].get(name)
    if not isinstance(key, str):
        raise ParameterError(f"inputs.{name}: the spec names no {name!r} input key")
    return key


def _check_input_key(path: Path, found: str, expected: str) -> None:
    if found != expected:
        raise EquivdynError(f"{path}: holds the result with key {found!r}, but the spec expects {expected!r}")


def check_finite(traj: Trajectory, source: str) -> None:
    """Raise if any observable of ``traj`` holds NaN or inf (a diverged run)."""
    for name, arr in traj.observables.items():
        bad = ~np.isfinite(arr)
        if bad.any():
            m, t, _ = np.argwhere(bad)[0]
            raise EquivdynError(
                f"{source}: observable {name!r} is not finite (first at initialisation {m}, step "
                f"{int(traj.steps[t])}): the training diverged; lower the learning rate or check the data"
            )


def train(spec: Mapping[str, Any], out: str | os.PathLike[str]) -> Trajectory:
    """Produce the trajectory file of one experiment variant (and seed)."""
    experiment = spec["experiment"]
    if experiment not in TRAINERS:
        raise ParameterError(f"experiment: unknown experiment {experiment!r}; known: {', '.join(TRAINERS)}")
    module = importlib.import_module(TRAINERS[experiment])
    _check_spec(spec, "train", f"train_{experiment}")
    traj = module.simulate(dict(spec["params"]))
    traj = dataclasses.replace(traj, params=dict(spec), key=content_key(spec))
    check_finite(traj, f"training {experiment} ({content_key(spec)})")
    write_trajectory(out, traj)
    log.info("wrote trajectory %s (%s)", out, traj.key)
    return traj


def fit(spec: Mapping[str, Any], trajectory: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Fit the Koopman spectrum of one trajectory file and write the spectrum file."""
    from .koopman import KoopmanEstimator

    _check_spec(spec, "fit")
    expected_key = _spec_input(spec, "trajectory")
    params = dict(spec["params"])
    observable = params.pop("observable", None)
    try:
        estimator = KoopmanEstimator(**params)
    except TypeError as exc:
        raise ParameterError(f"params: {exc}") from None
    path = Path(trajectory)
    traj = read_trajectory(path)
    _check_input_key(path, traj.key, expected_key)
    check_finite(traj, str(path))
    if observable not in traj.observables:
        raise ParameterError(
            f"observable: {path} has no observable {observable!r} (it has {', '.join(traj.observables)})"
        )
    try:
        spectrum = estimator.fit(traj.observables[observable])
    except ValueError as exc:
        raise ParameterError(f"fitting {path}: {exc}") from None
    write_spectra(
        out,
        {"all": spectrum},
        experiment=spec["experiment"],
        key=content_key(spec),
        params=dict(spec),
        inputs=[traj.key],
    )
    log.info("wrote spectrum %s: %d eigenvalues", out, spectrum.eigenvalues.size)


def compare(spec: Mapping[str, Any], inputs: Mapping[str, Path], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Distances and randomisation controls between named spectra; writes JSON.

    ``spec["params"]`` holds ``pairs`` (list of [name, name]), ``n_shuffles`` and ``seed``.
    """
    from .conjugacy import randomization_test

    _check_spec(spec, "compare")
    params = spec["params"]
    missing = sorted(set(spec["inputs"]) - set(inputs))
    if missing:
        raise ParameterError(f"compare: no --input given for {', '.join(missing)}")
    eigenvalues = {}
    for name, path in inputs.items():
        data = read_spectra(path)
        _check_input_key(path, data.key, spec["inputs"].get(name, data.key))
        eigenvalues[name] = data.spectra["all"].eigenvalues
    pairs = {}
    for a, b in params["pairs"]:
        if a not in eigenvalues or b not in eigenvalues:
            raise ParameterError(f"pairs: {a}|{b} names a spectrum that is not an input")
        try:
            result = randomization_test(
                eigenvalues[a], eigenvalues[b], n_shuffles=params["n_shuffles"], seed=params["seed"]
            )
        except ValueError as exc:
            raise EquivdynError(f"comparing {inputs[a]} with {inputs[b]}: {exc}") from None
        pairs[f"{a}|{b}"] = {
            "distance": float(result.observed),
            "p_value": float(result.p_value),
            "null_mean": float(np.mean(result.null)),
            "n_shuffles": int(result.n_shuffles),
        }
    result = {"key": content_key(spec), "spec": dict(spec), "pairs": pairs}
    write_json_atomic(out, result)
    return result
