"""The workflow's stages as plain functions: spec in, atomically written file out.

A *spec* is a JSON-ready record ``{"stage", "experiment", "version", "params",
"inputs"}`` holding every parameter that determines a result and the content keys of
the results it reads.  Its content key (:func:`equivdyn._io.content_key`) names the
output file; each stage stores the spec and the key inside what it writes, and checks
the keys of what it reads, so a result can always be traced to what made it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._io import content_key, write_json_atomic
from .errors import EquivdynError, ParameterError, check_int
from .store import SpectrumFile, Trajectory, read_spectra, read_trajectory, write_spectra, write_trajectory

log = logging.getLogger(__name__)

#: Implementation version of every stage but training (each experiment versions its own
#: trainer: :attr:`equivdyn.experiments.Experiment.train_version`).  A code change that
#: alters a stage's results bumps its number; the plan puts it into every spec, so all
#: keys downstream change and the affected results are recomputed.
STAGE_VERSIONS: dict[str, int] = {
    # 2: files carry checksums (store format 2); every key changed so results are rebuilt
    "fit": 2,
    # 7: the verdict caps the distance between two modes (VERDICT_DEFAULTS["mismatch_cost"])
    "compare": 7,
    "distances": 7,
}


def _check_spec(spec: Mapping[str, Any], stage: str, version: int | None = None) -> None:
    """Check that ``spec`` is a spec for ``stage`` of this equivdyn's ``version`` of it
    (:data:`STAGE_VERSIONS` by default)."""
    if spec.get("stage") != stage:
        raise ParameterError(f"stage: this is the {stage!r} command, but the spec is for stage {spec.get('stage')!r}")
    expected = STAGE_VERSIONS[stage] if version is None else version
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


def _check_named_inputs(spec: Mapping[str, Any], inputs: Mapping[str, Path]) -> None:
    if set(inputs) != set(spec["inputs"]):
        raise ParameterError(
            f"inputs: the spec names inputs {sorted(spec['inputs'])}, but --input gave {sorted(inputs)}"
        )


def _read_spectrum_inputs(spec: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, SpectrumFile]:
    """Read the spectrum file of every named input that is not a trajectory input, checking
    it holds the key the spec expects."""
    _check_named_inputs(spec, inputs)
    files = {}
    for name, path in inputs.items():
        if is_trajectory_input(name):
            continue
        files[name] = read_spectra(path)
        _check_input_key(path, files[name].key, spec["inputs"][name])
    return files


#: Names of the trajectory inputs of the compare and distances stages start with this
#: prefix (``traj:omd``, ``traj:h5_s0``); every other named input is a spectrum file.
#: The colon cannot occur in the plan's spectrum names, so the two never collide.
TRAJECTORY_INPUT_PREFIX = "traj:"

#: Significance level of the verdicts the stages compute.
VERDICT_ALPHA = 0.05


def pair_name(a: str, b: str) -> str:
    """Name of the comparison of inputs ``a`` and ``b`` in a compare result's ``pairs``
    (and of the plan's verdicts between two setups)."""
    return f"{a}|{b}"


def is_trajectory_input(name: str) -> bool:
    """Whether the named input ``name`` of a compare or distances spec is a trajectory file."""
    return name.startswith(TRAJECTORY_INPUT_PREFIX)


def _check_trajectory_inputs(spec: Mapping[str, Any], inputs: Mapping[str, Path]) -> dict[str, Path]:
    """The trajectory inputs, by name, each checked to hold the key the spec expects.

    Only the files' headers and metrics are read here; the observables are read by the
    verdicts that use them.
    """
    _check_named_inputs(spec, inputs)
    paths = {}
    for name, path in inputs.items():
        if is_trajectory_input(name):
            _check_input_key(path, read_trajectory(path, observables=False).key, spec["inputs"][name])
            paths[name] = path
    return paths


#: Fields of a verdict in the params of each stage (see :func:`compare` and :func:`distances`).
_VERDICT_FIELDS = {
    "compare": ("name", "a", "b", "observable", "split"),
    "distances": ("name", "a", "b", "observable", "segment_a", "segment_b"),
}


def _verdict_specs(params: Mapping[str, Any], stage: str, trajectories: Mapping[str, Path]) -> list[dict[str, Any]]:
    """The checked ``verdicts`` of a stage's params (optional: none when absent)."""
    verdicts = params.get("verdicts", [])
    fields = _VERDICT_FIELDS[stage]
    if not isinstance(verdicts, list):
        raise ParameterError(f"verdicts: must be a list, got {verdicts!r}")
    names: set[str] = set()
    for v in verdicts:
        if not (isinstance(v, dict) and set(v) == set(fields)):
            raise ParameterError(f"verdicts: each verdict must be an object with the fields {', '.join(fields)}; got {v!r}")
        name = v["name"]
        if not isinstance(name, str) or not name or name in names:
            raise ParameterError(f"verdicts: names must be distinct non-empty strings; got {name!r}")
        names.add(name)
        if v["observable"] is not None and not isinstance(v["observable"], str):
            raise ParameterError(f"verdicts.{name}.observable: must be a string or null, got {v['observable']!r}")
        for side in ("a", "b"):
            runs = v[side]
            if not (isinstance(runs, list) and runs and all(isinstance(r, str) for r in runs)):
                raise ParameterError(f"verdicts.{name}.{side}: must be a non-empty list of input names, got {runs!r}")
            for run in runs:
                if run not in trajectories:
                    raise ParameterError(
                        f"verdicts.{name}.{side}: {run!r} is not a trajectory input "
                        f"(those are named {TRAJECTORY_INPUT_PREFIX}<name>: {', '.join(sorted(trajectories)) or 'none'})"
                    )
    return verdicts


def _observable(traj: Trajectory, observable: str, path: Path) -> np.ndarray:
    if observable not in traj.observables:
        raise ParameterError(f"observable: {path} has no observable {observable!r} (it has {', '.join(traj.observables)})")
    return traj.observables[observable]


def _split_runs(path: Path, observable: str, split: object, where: str) -> list[np.ndarray]:
    """The initialisations of one trajectory file cut into ``split`` consecutive equal groups."""
    k = check_int(split, f"{where}.split", 2)
    data = _observable(read_trajectory(path), observable, path)
    m = data.shape[0]
    if m % k:
        raise ParameterError(f"{where}.split: {path} holds {m} initialisations, which cannot be cut into {k} equal groups")
    return list(data.reshape(k, m // k, *data.shape[1:]))


def _verdict(a: list[Any], b: list[Any], observable: str, seed: int, name: str) -> dict[str, Any]:
    """The calibrated verdict (:func:`equivdyn.verdict.compare_runs`) as a JSON-ready dict.

    ``a`` and ``b`` hold one run per seed: a trajectory file or an ``[M, T, D]`` array.
    """
    from .verdict import compare_runs

    try:
        verdict = compare_runs(a, b, alpha=VERDICT_ALPHA, seed=seed, observable=observable)
    except EquivdynError as exc:
        raise EquivdynError(f"verdict {name}: {exc}") from None
    return verdict.to_dict()


def train(spec: Mapping[str, Any], inputs: Mapping[str, Path], out: str | os.PathLike[str]) -> Trajectory:
    """Produce the trajectory file of one experiment variant (and seed).

    ``inputs`` maps the names in ``spec["inputs"]`` (e.g. a dataset) to files.
    """
    from .experiments import get

    experiment = get(spec["experiment"])
    _check_spec(spec, "train", experiment.train_version)
    _check_named_inputs(spec, inputs)
    params = dict(spec["params"])
    # A CUDA job's spec names its device (see equivdyn.plan.Plan.train); a CPU job's does not.
    device = params.pop("device", "cpu")
    if device not in experiment.devices:
        raise ParameterError(f"params.device={device!r}: {experiment.name} trains on {', '.join(experiment.devices)}")
    used = "cpu" if device == "cpu" else cuda_device(f"{experiment.name}.device={device}")
    traj = experiment.train(params, dict(inputs), device=device)
    # the spec (what the key is of) and the trainer's checked parameters, defaults and
    # setup-dependent values filled in (e.g. E4's weight decay); the device it ran on
    traj = dataclasses.replace(
        traj, params={**spec, "resolved": traj.params}, key=content_key(spec), attrs={**traj.attrs, "device": used}
    )
    check_finite(traj, f"training {experiment.name} ({content_key(spec)})")
    write_trajectory(out, traj)
    log.info("wrote trajectory %s (%s)", out, traj.key)
    return traj


def cuda_device(field: str) -> str:
    """The CUDA device a job asked for (``field`` names the setting), described; a clear
    error where torch sees none."""
    import torch

    if not torch.cuda.is_available():
        raise EquivdynError(
            f"{field}: this machine ({platform.node()}) has no CUDA device that torch {torch.__version__} can use "
            f"(CUDA build: {torch.version.cuda or 'none, a CPU-only build'}); run the job where a GPU is (a Slurm "
            "profile asks for one: check that the partition has GPUs), or set the experiment's device to cpu"
        )
    return f"cuda ({torch.cuda.get_device_name(0)})"


#: Groups of segment spectra that :func:`fit` can write, and :func:`distances` compare.
SEGMENT_GROUPS = ("window", "epoch")


def segment_names(group: str, count: int) -> list[str]:
    """``window_00``, ``window_01``, …: two digits, more when ``count`` needs them, so names sort in order."""
    width = max(2, len(str(count - 1)))
    return [f"{group}_{i:0{width}d}" for i in range(count)]


def _window_segments(windows: object, traj: Trajectory, path: Path) -> dict[str, tuple[int, int]]:
    """Index ranges [start, stop) of ``count`` consecutive windows of ``length`` snapshots from the first."""
    if not (isinstance(windows, dict) and set(windows) == {"length", "count"}):
        raise ParameterError(f"windows: must be {{'length': L, 'count': K}}, got {windows!r}")
    length = check_int(windows["length"], "windows.length", 1)
    count = check_int(windows["count"], "windows.count", 1)
    n_steps = traj.steps.size
    if length * count > n_steps:
        raise ParameterError(
            f"windows: {count} windows of {length} steps need {length * count} steps, but {path} records {n_steps}"
        )
    names = segment_names("window", count)
    return {name: (i * length, (i + 1) * length) for i, name in enumerate(names)}


def _epoch_segments(traj: Trajectory, path: Path) -> dict[str, tuple[int, int]]:
    """Index ranges [start, stop) of the epochs: epoch e holds the steps in (ends[e-1], ends[e]]."""
    ends = traj.metric_steps.get("test_accuracy")
    if ends is None or np.asarray(ends).size == 0:
        raise ParameterError(
            f"epochs: {path} has no epoch boundaries (no metric 'test_accuracy' recorded at the end of each epoch)"
        )
    bounds = np.searchsorted(traj.steps, np.concatenate([[traj.steps[0] - 1], ends]), side="right")
    segments = {}
    for e, name in enumerate(segment_names("epoch", len(ends))):
        if bounds[e + 1] <= bounds[e]:
            raise ParameterError(f"epochs: epoch {e} of {path} (steps up to {int(ends[e])}) holds no recorded step")
        segments[name] = (int(bounds[e]), int(bounds[e + 1]))
    return segments


def fit(spec: Mapping[str, Any], trajectory: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Fit the Koopman spectra of one trajectory file and write the spectrum file.

    ``spec["params"]`` holds ``observable`` and the :class:`~equivdyn.koopman.KoopmanEstimator`
    parameters; without segments one spectrum ``"all"`` is fitted on the whole
    trajectory.  Segments, either or both:

    * ``windows: {"length": L, "count": K}``: spectra ``window_00`` … of the snapshots
      ``[i·L, (i+1)·L)``, i < K, from the first;
    * ``epochs: true``: spectra ``epoch_00`` … of each epoch, delimited by the steps of
      the metric ``test_accuracy`` (recorded at the end of every epoch).

    Each segment's spectrum holds ``segment_steps``: its first and last step (inclusive).
    """
    from .koopman import KoopmanEstimator

    _check_spec(spec, "fit")
    expected_key = _spec_input(spec, "trajectory")
    params = dict(spec["params"])
    observable = params.pop("observable", None)
    windows = params.pop("windows", None)
    epochs = params.pop("epochs", False)
    if not isinstance(epochs, bool):
        raise ParameterError(f"epochs: must be true or false, got {epochs!r}")
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
    data = traj.observables[observable]
    segments: dict[str, tuple[int, int]] = {}
    if windows is not None:
        segments.update(_window_segments(windows, traj, path))
    if epochs:
        segments.update(_epoch_segments(traj, path))
    spectra = {}
    for name, (start, stop) in (segments or {"all": (0, data.shape[1])}).items():
        try:
            spectrum = estimator.fit(data[:, start:stop])
        except ValueError as exc:
            where = f" {name} (steps {traj.steps[start]}-{traj.steps[stop - 1]})" if segments else ""
            raise ParameterError(f"fitting {path}{where}: {exc}") from None
        if segments:
            steps = [int(traj.steps[start]), int(traj.steps[stop - 1])]
            spectrum = dataclasses.replace(spectrum, params={**spectrum.params, "segment_steps": steps})
        spectra[name] = spectrum
    write_spectra(
        out,
        spectra,
        experiment=spec["experiment"],
        key=content_key(spec),
        params=dict(spec),
        inputs=[traj.key],
    )
    log.info("wrote spectra %s: %s", out, ", ".join(f"{n} ({s.eigenvalues.size})" for n, s in spectra.items()))


def compare(spec: Mapping[str, Any], inputs: Mapping[str, Path], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Distances, the paper's controls and the calibrated verdicts between named inputs.

    ``spec["params"]`` holds

    * ``pairs``: list of ``[name, name]``; each gets its Wasserstein distance and the
      matched-pair randomisation control (``n_shuffles``, ``seed``);
    * ``permutation_tests`` (optional): list of ``{"name", "group_a", "group_b", "paired"}``
      with lists of spectrum names (one per seed); each gets the label-permutation test
      (``n_permutations``) and a bootstrap interval of the mean between-group distance;
    * ``verdicts`` (optional): list of ``{"name", "a", "b", "observable", "split"}``; each
      gets the calibrated verdict (:func:`equivdyn.verdict.compare_runs`, alpha
      :data:`VERDICT_ALPHA`, ``seed``) on the trajectories of the inputs named in ``a`` and
      ``b`` (one per seed; named ``traj:<name>``, see :data:`TRAJECTORY_INPUT_PREFIX`).
      With ``split: k`` each side is a single trajectory file whose initialisations are cut
      into ``k`` consecutive equal groups, used as ``k`` pseudo-seeds.

    The pairs and the permutation tests compare the ``all`` spectra of the spectrum
    inputs; they are kept to reproduce the paper.  Writes the results as JSON to ``out``
    (the verdicts as :meth:`equivdyn.verdict.Verdict.to_dict` under ``verdicts``) and
    returns them.
    """
    from .conjugacy import bootstrap_ci, permutation_test, randomization_test

    _check_spec(spec, "compare")
    params = spec["params"]
    missing = [f for f in ("pairs", "n_shuffles", "seed") if f not in params]
    if missing:
        raise ParameterError(
            f"params: the comparison spec lacks {', '.join(map(repr, missing))} (specs are made by the workflow's "
            "plan; to compare your own files: equivdyn compare A.h5 ... --vs B.h5 ...)"
        )
    eigenvalues = {name: data.spectra["all"].eigenvalues for name, data in _read_spectrum_inputs(spec, inputs).items()}
    trajectories = _check_trajectory_inputs(spec, inputs)
    verdict_specs = _verdict_specs(params, "compare", trajectories)

    def lookup(name: str, field: str) -> Any:
        if name not in eigenvalues:
            raise ParameterError(f"{field}: {name!r} names a spectrum that is not an input")
        return eigenvalues[name]

    pairs = {}
    for a, b in params["pairs"]:
        try:
            result = randomization_test(
                lookup(a, "pairs"), lookup(b, "pairs"), n_shuffles=params["n_shuffles"], seed=params["seed"]
            )
        except ValueError as exc:
            raise EquivdynError(f"comparing {inputs[a]} with {inputs[b]}: {exc}") from None
        pairs[pair_name(a, b)] = {
            "distance": float(result.observed),
            "p_value": float(result.p_value),
            "null_mean": float(np.mean(result.null)),
            "n_shuffles": int(result.n_shuffles),
        }
    tests = {}
    for test in params.get("permutation_tests", []):
        group_a = [lookup(n, "permutation_tests") for n in test["group_a"]]
        group_b = [lookup(n, "permutation_tests") for n in test["group_b"]]
        try:
            res = permutation_test(
                group_a, group_b, n_permutations=params["n_permutations"], seed=params["seed"], paired=test["paired"]
            )
            low, high = bootstrap_ci(res.between, seed=params["seed"])
        except ValueError as exc:
            raise EquivdynError(f"permutation test {test['name']}: {exc}") from None
        tests[test["name"]] = {
            "statistic": float(res.statistic),
            "p_value": float(res.p_value),
            "effect_size": float(res.effect_size),
            "between": [float(v) for v in res.between],
            "within": [float(v) for v in res.within],
            "between_mean": float(np.mean(res.between)),
            "between_ci95": [float(low), float(high)],
            "within_mean": float(np.mean(res.within)),
            "n_permutations": int(res.n_permutations),
            "paired": bool(test["paired"]),
        }
    verdicts = {}
    for v in verdict_specs:
        where = f"verdicts.{v['name']}"
        if v["split"] is None:
            # Paths: compare_runs reads each seed's observable itself.
            sides = [[trajectories[n] for n in v[side]] for side in ("a", "b")]
        else:
            for side in ("a", "b"):
                if len(v[side]) != 1:
                    raise ParameterError(f"{where}.{side}: with split, each side is a single trajectory, got {v[side]}")
            sides = [_split_runs(trajectories[v[side][0]], v["observable"], v["split"], where) for side in ("a", "b")]
        verdicts[v["name"]] = _verdict(*sides, v["observable"], params["seed"], v["name"])
    result = {
        "key": content_key(spec),
        "spec": dict(spec),
        "pairs": pairs,
        "permutation_tests": tests,
        "verdicts": verdicts,
    }
    write_json_atomic(out, result)
    return result


def distances(spec: Mapping[str, Any], inputs: Mapping[str, Path], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Wasserstein distances between the segment spectra of each input, per group.

    ``spec["params"]["groups"]`` lists groups of :data:`SEGMENT_GROUPS`.  Each input is
    a spectrum file of :func:`fit` (one per seed).  For every group, every input gets
    the symmetric [K, K] matrix of distances between its K spectra of that group (in
    name order, i.e. in time); all inputs must hold the same segments.  Writes, as JSON,
    ``{"key", "spec", "groups": {group: {"names", "steps", "per_input", "mean", "sd"}}, "verdicts"}``
    where ``steps`` holds each segment's ``[first, last]`` step, ``per_input`` each
    input's matrix, and ``mean`` and ``sd`` (ddof 1; ``null`` for a single input) their
    elementwise mean and standard deviation; returns the same.

    ``spec["params"]["verdicts"]`` (optional) lists ``{"name", "a", "b", "observable",
    "segment_a", "segment_b"}``: each gets the calibrated verdict
    (:func:`equivdyn.verdict.compare_runs`, alpha :data:`VERDICT_ALPHA`, seed
    ``spec["params"]["seed"]``) between segment ``segment_a`` of the trajectories named in
    ``a`` (one per seed, named ``traj:<name>``) and segment ``segment_b`` of those named
    in ``b``; a segment is one of the spectra's segments (e.g. ``window_00``), cut from
    each trajectory by its first and last step.  The result holds them under
    ``"verdicts": {name: Verdict.to_dict()}`` (empty without verdicts).
    """
    from .conjugacy import distance_matrix

    _check_spec(spec, "distances")
    groups = spec["params"].get("groups")
    if (
        not isinstance(groups, list)
        or not groups
        or len(set(map(str, groups))) != len(groups)
        or not set(groups) <= set(SEGMENT_GROUPS)
    ):
        raise ParameterError(
            f"groups: must be a non-empty list of distinct groups from {list(SEGMENT_GROUPS)}, got {groups!r}"
        )
    files = _read_spectrum_inputs(spec, inputs)
    trajectories = _check_trajectory_inputs(spec, inputs)
    verdict_specs = _verdict_specs(spec["params"], "distances", trajectories)
    if not files:
        raise ParameterError("inputs: the spec names no spectrum input")
    result_groups: dict[str, Any] = {}
    for group in groups:
        reference: tuple[str, list[str], list[list[int]]] | None = None
        matrices: dict[str, np.ndarray] = {}
        for name, data in files.items():
            path = inputs[name]
            names = sorted(n for n in data.spectra if n.startswith(f"{group}_"))
            if not names:
                raise EquivdynError(f"{path}: holds no {group} spectra (it has {', '.join(sorted(data.spectra))})")
            steps = [data.spectra[n].params.get("segment_steps") for n in names]
            if not all(isinstance(v, list) and len(v) == 2 and all(isinstance(i, int) for i in v) for v in steps):
                raise EquivdynError(f"{path}: the {group} spectra lack their segment_steps [first, last]")
            if reference is None:
                reference = (str(path), names, steps)
            elif (names, steps) != reference[1:]:
                raise EquivdynError(
                    f"{path} and {reference[0]} hold different {group} segments: "
                    f"{list(zip(names, steps))} against {list(zip(*reference[1:]))}"
                )
            try:
                matrices[name] = distance_matrix([data.spectra[n].eigenvalues for n in names])
            except ValueError as exc:
                raise EquivdynError(f"{path}: distances between its {group} spectra: {exc}") from None
        assert reference is not None  # there is at least one input
        stack = np.stack(list(matrices.values()))
        result_groups[group] = {
            "names": reference[1],
            "steps": reference[2],
            "per_input": {name: matrix.tolist() for name, matrix in matrices.items()},
            "mean": stack.mean(axis=0).tolist(),
            "sd": stack.std(axis=0, ddof=1).tolist() if len(stack) > 1 else None,
        }
    verdicts = {}
    if verdict_specs:
        seed = spec["params"].get("seed")
        if seed is None:
            raise ParameterError("seed: the verdicts need a seed in the params")
        segments = {
            name: steps for group in result_groups.values() for name, steps in zip(group["names"], group["steps"])
        }
        runs = _segment_runs(verdict_specs, trajectories, segments)
        verdicts = {
            v["name"]: _verdict(
                [runs[n, v["segment_a"], v["observable"]] for n in v["a"]],
                [runs[n, v["segment_b"], v["observable"]] for n in v["b"]],
                v["observable"],
                seed,
                v["name"],
            )
            for v in verdict_specs
        }
    result = {"key": content_key(spec), "spec": dict(spec), "groups": result_groups, "verdicts": verdicts}
    write_json_atomic(out, result)
    return result


def _segment_runs(
    verdicts: list[dict[str, Any]], trajectories: Mapping[str, Path], segments: Mapping[str, list[int]]
) -> dict[tuple[str, str, str], np.ndarray]:
    """Each (trajectory input, segment, observable) that a verdict uses: the observable's
    snapshots whose steps lie in the segment's ``[first, last]``.  Each file is read once."""
    wanted: dict[str, set[tuple[str, str]]] = {}  # input -> {(segment, observable)}
    for v in verdicts:
        for side in ("a", "b"):
            segment = v[f"segment_{side}"]
            if segment not in segments:
                raise ParameterError(
                    f"verdicts.{v['name']}.segment_{side}: {segment!r} is not a segment of the spectra "
                    f"(they hold {', '.join(segments)})"
                )
            for name in v[side]:
                wanted.setdefault(name, set()).add((segment, v["observable"]))
    runs = {}
    for name, pieces in wanted.items():
        path = trajectories[name]
        traj = read_trajectory(path)
        for segment, observable in sorted(pieces):
            first, last = segments[segment]
            keep = (traj.steps >= first) & (traj.steps <= last)
            if not keep.any():
                raise EquivdynError(f"{path}: records no step of {segment} (steps {first}-{last})")
            runs[name, segment, observable] = _observable(traj, observable, path)[:, keep].copy()
        del traj  # keep only the segments
    return runs


def prepare_data(dataset: str, source: str | None, out: str | os.PathLike[str]) -> None:
    """The data stage: verify a dataset (local copy or download) and write it to ``out``."""
    if dataset == "mnist":
        from .data import mnist

        mnist.prepare(source, out)
    elif dataset == "cifar10":
        from .data import cifar10

        cifar10.prepare(source, out)
    else:
        raise ParameterError(f"dataset: unknown dataset {dataset!r}; known: mnist, cifar10")
