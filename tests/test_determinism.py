"""Determinism: the same spec gives bit-identical results, run after run.

Every experiment trains twice from one spec through :func:`equivdyn.stages.train` into two
files, which must hold the same content key and bit-identical datasets (observables,
metrics, their steps) and attributes (except the creation time).  Fitting is then run
twice on each file, and the spectra must again be bit-identical.  Sizes are tiny (those
of tests/tiny.yaml), so the whole file runs in seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from equivdyn._io import content_key
from equivdyn.data import mnist
from equivdyn.experiments import get as get_experiment, registered
from equivdyn.stages import STAGE_VERSIONS, fit, train
from equivdyn.store import read_spectra, read_trajectory


#: Attributes that may differ between two runs of one spec: when the file was written, and
#: the file's digest, which covers that time (every dataset's own checksum is compared).
VOLATILE_ATTRS = {"created", "digest"}

E4_TINY = {"p": 13, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32}

#: name -> (experiment, training params, input names, fit params or None)
CASES: dict[str, tuple[str, dict[str, Any], tuple[str, ...], dict[str, Any] | None]] = {
    **{
        f"e1-{m}": ("e1", {"method": m, "loss": "tan", "n_steps": 40, "grid_size": 3}, (),
                    {"observable": "state", "n_delays": 4, "rank": None})
        for m in ("omd", "ogd", "bm")
    },
    "e2": ("e2", {"width": 5, "seed": 1, "n_inits": 3, "n_steps": 60}, ("mnist",),
           {"observable": "output_weights", "n_delays": 8, "rank": 4}),
    **{
        f"e4-{setup}": ("e4", {**E4_TINY, "setup": setup, "seed": 1, "n_inits": 3, "n_steps": 30}, (),
                        {"observable": "mlp_out", "n_components": 4, "n_delays": 6, "rank": 4})
        for setup in ("grokking", "constrained")
    },
    "e4-long": ("e4", {**E4_TINY, "setup": "grokking", "n_steps": 60, "n_points": 10, "kind": "long"}, (), None),
    "e3-lenet": ("e3", {"model": "lenet", "seed": 1, "n_inits": 2, "batch_size": 60, "n_epochs": 2,
                        "train_subset": 120, "test_subset": 100}, ("data",),
                 {"observable": "final_layer", "n_components": 3, "n_delays": 1, "rank": 2}),
}


#: A command that records a tiny run of seed argv[1] to argv[2] with equivdyn.Recorder (SYNTHETIC data).
_RECORD_TINY = (
    "import sys, torch, equivdyn; torch.manual_seed(int(sys.argv[1])); torch.set_num_threads(1); "
    "m = torch.nn.Linear(3, 2); o = torch.optim.SGD(m.parameters(), lr=0.1); x = torch.randn(8, 3); "
    "rec = equivdyn.Recorder(sys.argv[2], m); "
    "[(o.zero_grad(), m(x).square().mean().backward(), o.step(), rec.snapshot(loss=0.0)) for _ in range(5)]; "
    "rec.close()"
)
CASES["custom-command"] = (
    "custom", {"source": "command", "command": f"{sys.executable} -c '{_RECORD_TINY}' {{seed}} {{out}}",
               "seed": 3, "depends": {}}, (), None,
)


def train_spec(experiment: str, params: dict[str, Any], input_names: tuple[str, ...]) -> dict[str, Any]:
    version = get_experiment(experiment).train_version
    inputs = {name: mnist.DATASET_KEY for name in input_names}
    return {"stage": "train", "experiment": experiment, "version": version, "params": params, "inputs": inputs}


def hdf5_content(path: Path) -> dict[str, Any]:
    """Every dataset (dtype, shape, bytes) and every attribute of an HDF5 file, by name."""
    content: dict[str, Any] = {}

    def attrs(name: str, obj: h5py.HLObject) -> None:
        for key, value in obj.attrs.items():
            if key not in VOLATILE_ATTRS:
                content[f"{name}@{key}"] = value.tobytes() if isinstance(value, np.ndarray) else value

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            content[name] = (data.dtype.str, data.shape, data.tobytes())
        attrs(name, obj)

    with h5py.File(path, "r") as h5:
        attrs("/", h5)
        h5.visititems(visit)
    return content


def assert_same_content(a: Path, b: Path) -> None:
    first, second = hdf5_content(a), hdf5_content(b)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == [], f"{a.name} and {b.name} differ in {different}"


def test_every_experiment_has_a_case() -> None:
    assert {e.name for e in registered()} <= {experiment for experiment, *_ in CASES.values()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_spec_gives_bit_identical_results(case: str, tmp_path: Path, prepared_mnist: Path) -> None:
    experiment, params, input_names, fit_params = CASES[case]
    spec = train_spec(experiment, params, input_names)
    inputs = {name: prepared_mnist for name in input_names}
    files = [tmp_path / "a" / "train.h5", tmp_path / "b" / "train.h5"]
    for path in files:
        train(spec, inputs, path)

    first, second = (read_trajectory(path) for path in files)
    assert first.key == second.key == content_key(spec)
    assert first.params == second.params
    resolved = first.params.pop("resolved")
    assert first.params == spec
    # the trainer's parameters: the spec's, with every default (and E4's setup values) filled in
    assert set(resolved) >= set(params) and all(v is not None for k, v in resolved.items() if k in ("weight_decay", "alpha"))
    for name in ("observables", "metrics", "metric_steps"):
        blocks_a, blocks_b = getattr(first, name), getattr(second, name)
        assert sorted(blocks_a) == sorted(blocks_b)
        for block in blocks_a:
            assert blocks_a[block].dtype == blocks_b[block].dtype
            assert blocks_a[block].tobytes() == blocks_b[block].tobytes(), f"{name}/{block} differs"
    assert first.steps.tobytes() == second.steps.tobytes()
    assert all(np.isfinite(v).all() for v in first.observables.values())
    assert_same_content(*files)

    if fit_params is None:
        return
    fspec = {
        "stage": "fit",
        "experiment": experiment,
        "version": STAGE_VERSIONS["fit"],
        "params": fit_params,
        "inputs": {"trajectory": content_key(spec)},
    }
    outputs = [tmp_path / "a" / "fit1.h5", tmp_path / "a" / "fit2.h5", tmp_path / "b" / "fit.h5"]
    for source, out in zip([files[0], files[0], files[1]], outputs, strict=True):
        fit(fspec, source, out)
    spectra = [read_spectra(out) for out in outputs]
    assert len({s.key for s in spectra}) == 1 and spectra[0].key == content_key(fspec)
    reference = spectra[0].spectra["all"]
    assert reference.eigenvalues.size >= 1
    for other in spectra[1:]:
        spectrum = other.spectra["all"]
        assert spectrum.eigenvalues.tobytes() == reference.eigenvalues.tobytes()
        assert spectrum.residuals.tobytes() == reference.residuals.tobytes()
        assert spectrum.singular_values.tobytes() == reference.singular_values.tobytes()
    for out in outputs[1:]:
        assert_same_content(outputs[0], out)
