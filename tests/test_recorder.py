"""Tests of recording one's own training runs: equivdyn.Recorder and equivdyn.perturbed_copies.

Every model here is a tiny multilayer perceptron (4 -> 8 -> 3) trained on SYNTHETIC data:
random inputs and random class labels from a seeded NumPy generator, so each recording
takes milliseconds and is reproducible bit for bit.  Nothing here needs a data set or a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import equivdyn
from equivdyn.errors import EquivdynError, InvalidFileError, ParameterError
from equivdyn.integrity import verify
from equivdyn.recorder import OWN_RUN, Recorder, perturbed_copies
from equivdyn.store import read_trajectory, summarize

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- helpers


def tiny_model(seed: int = 0, out: int = 3) -> nn.Module:
    """A 4 -> 8 -> ``out`` perceptron whose parameters come from a generator seeded with ``seed``."""
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(4, 8), act=nn.Tanh(), fc2=nn.Linear(8, out)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    return model


def synthetic_data(seed: int = 0, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """SYNTHETIC inputs [n, 4] and labels in {0, 1, 2} from a seeded NumPy generator."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((n, 4)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, size=n).astype(np.int64))
    return x, y


def train_step(models: list[nn.Module], data: tuple[torch.Tensor, torch.Tensor], lr: float) -> list[float]:
    """One full-batch gradient step of every model (plain SGD by hand); the losses before the step."""
    x, y = data
    losses = []
    for model in models:
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        losses.append(loss.item())
    return losses


def record(
    path: Path,
    *,
    seed: int = 0,
    data_seed: int = 0,
    n_models: int = 3,
    n_steps: int = 6,
    lr: float = 0.1,
    observables: Any = ("fc2",),
    **options: Any,
) -> tuple[list[nn.Module], list[list[float]]]:
    """Record ``n_steps`` steps of ``n_models`` perturbed copies to ``path``; the models and losses."""
    models = perturbed_copies(tiny_model(seed), n=n_models, scale=1e-2, seed=seed)
    data = synthetic_data(data_seed)
    losses = []
    with Recorder(path, models, observables=observables, **options) as rec:
        for _ in range(n_steps):
            losses.append(train_step(models, data, lr))
            rec.snapshot(loss=losses[-1])
    return models, losses


def flat(model: nn.Module, module: str) -> torch.Tensor:
    """A module's weight then bias, flattened and concatenated."""
    mod = dict(model.named_modules())[module]
    return torch.cat([mod.weight.detach().flatten(), mod.bias.detach().flatten()])


def digests(path: Path) -> dict[str, str]:
    """The ``sha256`` attribute of every dataset in ``path``, by dataset name."""
    found: dict[str, str] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: found.__setitem__(name, obj.attrs["sha256"]) if isinstance(obj, h5py.Dataset) else None)
    return found


def squared_norm(model: nn.Module) -> torch.Tensor:
    """A callable observable: the squared norm of all parameters, as one value."""
    return sum(p.detach().pow(2).sum() for p in model.parameters()).reshape(1)


# ----------------------------------------------------------------------------- 1. contract


def test_file_contract_shapes_steps_values_metrics(tmp_path: Path) -> None:
    """M=3 copies, T=5 steps with explicit snapshot(loss=...): observables [M, T+1, D] at steps
    0..T (D=24 for a parameter, 27 for a module: weight then bias, equal to the final models
    exactly), a callable observable, the loss [M, T] at steps 1..T equal to what was given,
    params under params["run"], experiment "own"; summarize() agrees."""
    path = tmp_path / "run.h5"
    m, t = 3, 5
    observables = {"fc2.weight": "fc2.weight", "fc2": "fc2", "norm": squared_norm}
    models, losses = record(path, n_models=m, n_steps=t, observables=observables, params={"lr": 0.1, "seed": 0})
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, np.arange(t + 1))
    assert traj.observables["fc2.weight"].shape == (m, t + 1, 24)
    assert traj.observables["fc2"].shape == (m, t + 1, 27)
    assert traj.observables["norm"].shape == (m, t + 1, 1)
    for i, model in enumerate(models):
        final = flat(model, "fc2").numpy()
        assert np.array_equal(traj.observables["fc2"][i, -1], final)
        assert np.array_equal(traj.observables["fc2.weight"][i, -1], model.fc2.weight.detach().flatten().numpy())
        assert np.array_equal(traj.observables["norm"][i, -1], squared_norm(model).numpy())
    # a snapshot is taken after the step: step 0 is the initial state, which training changed
    assert not np.array_equal(traj.observables["fc2"][:, 0], traj.observables["fc2"][:, -1])
    assert traj.observables["fc2"].dtype == np.float32
    assert traj.metrics["loss"].shape == (m, t)
    np.testing.assert_array_equal(traj.metric_steps["loss"], np.arange(1, t + 1))
    np.testing.assert_array_equal(traj.metrics["loss"], np.array(losses).T)
    assert traj.experiment == OWN_RUN == "own"
    assert traj.params["run"] == {"lr": 0.1, "seed": 0}
    assert traj.params["recorder"]["n_models"] == m
    assert traj.params["recorder"]["observables"] == ["fc2.weight", "fc2", "norm"]
    summary = summarize(path)
    assert summary["experiment"] == "own"
    assert summary["observables"]["fc2"] == [m, t + 1, 27]
    assert summary["steps"] == {"count": t + 1, "first": 0, "last": t}


def test_initial_false_records_steps_one_to_t(tmp_path: Path) -> None:
    """With initial=False the file holds steps 1..T only, and the loss shares those steps."""
    path = tmp_path / "run.h5"
    _, losses = record(path, n_steps=4, initial=False)
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, [1, 2, 3, 4])
    assert traj.observables["fc2"].shape == (3, 4, 27)
    assert "loss" not in traj.metric_steps  # recorded at /steps: no own steps needed
    np.testing.assert_array_equal(traj.metrics["loss"], np.array(losses).T)


def test_every_records_every_kth_step(tmp_path: Path) -> None:
    """every=3 over 10 steps records steps 0, 3, 6, 9; the loss only at the recorded steps 3, 6, 9."""
    path = tmp_path / "run.h5"
    _, losses = record(path, n_steps=10, every=3)
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, [0, 3, 6, 9])
    assert traj.observables["fc2"].shape == (3, 4, 27)
    np.testing.assert_array_equal(traj.metric_steps["loss"], [3, 6, 9])
    np.testing.assert_array_equal(traj.metrics["loss"], np.array(losses)[[2, 5, 8]].T)


def test_key_is_content_derived(tmp_path: Path) -> None:
    """Two identical recordings get the same key; other data (another seed) gets another key."""
    record(tmp_path / "a.h5", seed=0)
    record(tmp_path / "b.h5", seed=0)
    record(tmp_path / "c.h5", seed=1)
    key_a, key_b, key_c = (read_trajectory(tmp_path / f"{n}.h5").key for n in "abc")
    assert key_a and key_a == key_b
    assert key_c != key_a


# ----------------------------------------------------------------------------- 2. attach


def test_attach_records_after_each_optimizer_step(tmp_path: Path) -> None:
    """attach(optimizer) snapshots after every optimizer.step() with no snapshot() call; close
    removes the hook, so stepping afterwards neither raises nor records."""
    path = tmp_path / "run.h5"
    models = perturbed_copies(tiny_model(0), n=2, scale=1e-2, seed=0)
    optimizer = torch.optim.SGD([p for m in models for p in m.parameters()], lr=0.1)
    x, y = synthetic_data(0)

    def step() -> None:
        optimizer.zero_grad()
        sum(nn.functional.cross_entropy(m(x), y) for m in models).backward()
        optimizer.step()

    with Recorder(path, models, observables=["fc2"]) as rec:
        assert rec.attach(optimizer) is rec
        for _ in range(4):
            step()
        assert rec.step == 4
    final = [flat(m, "fc2").numpy().copy() for m in models]
    step()  # after close: the hook is gone
    assert rec.step == 4
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, np.arange(5))
    for i in range(2):
        assert np.array_equal(traj.observables["fc2"][i, -1], final[i])


# ----------------------------------------------------------------------------- 3. perturbed_copies


def test_perturbed_copies_factors_and_identity() -> None:
    """Copy 0 equals the original exactly (a distinct object); copies 1..n-1 are the original
    times factors within [1 - scale, 1 + scale] elementwise (checked in float64), and differ
    from it and from each other; the original is not modified."""
    model = tiny_model(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scale = 1e-2
    copies = perturbed_copies(model, n=4, scale=scale, seed=7)
    assert len(copies) == 4
    assert all(c is not model for c in copies)
    for k, v in copies[0].state_dict().items():
        assert torch.equal(v, before[k])
    for c in copies[1:]:
        for (name, p), q in zip(c.named_parameters(), model.parameters()):
            ratio = p.detach().double() / q.detach().double()
            deviation = (ratio - 1.0).abs().max().item()
            assert deviation <= scale * (1 + 1e-4) + 1e-6, name  # float32 rounding of the product
            assert deviation > scale / 10, name  # every parameter was perturbed
    assert not torch.equal(copies[1].fc1.weight, copies[2].fc1.weight)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_perturbed_copies_seeded_and_leaves_global_rng() -> None:
    """The same seed gives bit-identical copies, another seed other copies, and the global
    torch RNG state is the same before and after; n=1 gives just the unchanged copy."""
    model = tiny_model(0)
    state = torch.get_rng_state()
    a = perturbed_copies(model, n=3, scale=1e-3, seed=5)
    b = perturbed_copies(model, n=3, scale=1e-3, seed=5)
    c = perturbed_copies(model, n=3, scale=1e-3, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    for ma, mb in zip(a, b):
        for pa, pb in zip(ma.parameters(), mb.parameters()):
            assert torch.equal(pa, pb)
    assert not torch.equal(a[1].fc2.weight, c[1].fc2.weight)
    (only,) = perturbed_copies(model, n=1, scale=0.5, seed=0)
    assert only is not model
    assert all(torch.equal(p, q) for p, q in zip(only.parameters(), model.parameters()))


def test_perturbed_copies_large_seeds_differ() -> None:
    """Seeds 0 and 2**32 give different copies (every seed >= 0 is accepted, so every seed
    should count)."""
    model = tiny_model(0)
    a = perturbed_copies(model, n=2, scale=1e-2, seed=0)
    b = perturbed_copies(model, n=2, scale=1e-2, seed=2**32)
    assert not torch.equal(a[1].fc2.weight, b[1].fc2.weight)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"n": 0}, r"\bn\b"),
        ({"n": 2.5}, r"\bn\b"),
        ({"scale": -1}, "scale"),
        ({"scale": "big"}, "scale"),
        ({"seed": -1}, "seed"),
        ({"model": "not a model"}, "model"),
    ],
)
def test_perturbed_copies_bad_arguments(kwargs: dict[str, Any], named: str) -> None:
    """A bad n, scale, seed or model raises ParameterError naming the argument."""
    args = {"model": tiny_model(0), "n": 2, "scale": 1e-3, "seed": 0, **kwargs}
    with pytest.raises(ParameterError, match=named):
        perturbed_copies(**args)


# ----------------------------------------------------------------------------- 4. reproducibility


def test_same_seeded_training_records_identical_files(tmp_path: Path) -> None:
    """Recording the same seeded training twice gives bit-identical observables and metrics
    and equal checksums of every dataset."""
    record(tmp_path / "a.h5", observables=["fc2", "fc1.weight"], n_steps=5)
    record(tmp_path / "b.h5", observables=["fc2", "fc1.weight"], n_steps=5)
    a, b = read_trajectory(tmp_path / "a.h5"), read_trajectory(tmp_path / "b.h5")
    for name in ("fc2", "fc1.weight"):
        assert np.array_equal(a.observables[name], b.observables[name])
    assert np.array_equal(a.metrics["loss"], b.metrics["loss"])
    assert digests(tmp_path / "a.h5") == digests(tmp_path / "b.h5")


# ----------------------------------------------------------------------------- 5. projection


def test_projection_stores_matrix_and_projected_values(tmp_path: Path) -> None:
    """project=5: the 27-value module "fc2" is stored as [M, T+1, 5], its float64 matrix under
    /extras/projection:fc2, and the last snapshot equals the final weights @ matrix (float32
    rounding); the 3-value "fc2.bias" is not projected."""
    path = tmp_path / "run.h5"
    models, _ = record(path, observables=["fc2", "fc2.bias"], n_steps=4, project=5, projection_seed=2)
    traj = read_trajectory(path)
    assert traj.observables["fc2"].shape == (3, 5, 5)
    assert traj.observables["fc2.bias"].shape == (3, 5, 3)
    assert traj.params["recorder"]["projected"] == ["fc2"]
    assert traj.params["recorder"]["projection_seed"] == 2
    with h5py.File(path, "r") as h5:
        assert sorted(h5["extras"]) == ["projection:fc2"]
        matrix = h5["extras/projection:fc2"][()]
    assert matrix.shape == (27, 5) and matrix.dtype == np.float64
    for i, model in enumerate(models):
        expected = flat(model, "fc2").double().numpy() @ matrix
        np.testing.assert_allclose(traj.observables["fc2"][i, -1], expected, rtol=1e-5, atol=1e-6)
        assert np.array_equal(traj.observables["fc2.bias"][i, -1], model.fc2.bias.detach().numpy())


def projection_matrix(path: Path, name: str = "fc2") -> np.ndarray:
    """The projection matrix stored in ``path`` for observable ``name``."""
    with h5py.File(path, "r") as h5:
        return h5[f"extras/projection:{name}"][()]


def test_projection_matrix_same_for_same_seed(tmp_path: Path) -> None:
    """The same projection_seed gives the same matrix, even for other models and training data."""
    record(tmp_path / "a.h5", n_steps=2, project=5, projection_seed=1)
    record(tmp_path / "b.h5", n_steps=2, project=5, projection_seed=1, seed=4, data_seed=4)
    assert np.array_equal(projection_matrix(tmp_path / "a.h5"), projection_matrix(tmp_path / "b.h5"))


def test_projection_seed_changes_matrix(tmp_path: Path) -> None:
    """Another projection_seed gives another projection matrix (projection_seed is documented
    to seed the matrix)."""
    record(tmp_path / "a.h5", n_steps=1, project=5, projection_seed=1)
    record(tmp_path / "c.h5", n_steps=1, project=5, projection_seed=2)
    assert not np.allclose(projection_matrix(tmp_path / "a.h5"), projection_matrix(tmp_path / "c.h5"))


# ----------------------------------------------------------------------------- 6. streaming


def test_bounded_buffer_and_streaming_to_disk(tmp_path: Path) -> None:
    """buffer=4 and 50 snapshots: no series ever holds more than 4 pending snapshots, and the
    dataset on disk grows while recording (before close); the file holds all 51 steps."""
    path = tmp_path / "run.h5"
    models = perturbed_copies(tiny_model(0), n=2, scale=1e-2, seed=0)
    data = synthetic_data(0)
    on_disk = []
    with Recorder(path, models, observables=["fc2", "fc1.weight"], buffer=4) as rec:
        for _ in range(50):
            rec.snapshot(loss=train_step(models, data, 0.05))
            series = [*rec.writer.observables.values(), *rec.writer.metrics.values()]
            assert max(len(s.pending) for s in series) <= 4
            on_disk.append(rec.writer.observables["fc2"].ds.shape[1])
    assert on_disk == sorted(on_disk)
    assert len(set(on_disk)) >= 10  # written slab by slab, not all at close
    assert on_disk[-1] >= 51 - 4
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, np.arange(51))
    assert traj.observables["fc1.weight"].shape == (2, 51, 32)
    assert traj.metrics["loss"].shape == (2, 50)


# ----------------------------------------------------------------------------- 7. atomicity


def test_exception_inside_with_leaves_no_file(tmp_path: Path) -> None:
    """An exception inside the with block propagates and leaves neither the file nor a .part."""
    folder = tmp_path / "out"
    models = perturbed_copies(tiny_model(0), n=2, scale=1e-2, seed=0)
    with pytest.raises(RuntimeError, match="boom"), Recorder(folder / "run.h5", models) as rec:
        rec.snapshot(loss=train_step(models, synthetic_data(0), 0.1))
        raise RuntimeError("boom")
    assert list(folder.iterdir()) == []


def test_unfinished_recording_is_a_hidden_invalid_part_file(tmp_path: Path) -> None:
    """Before close() the target path does not exist; the only file is a hidden
    .<name>.*.part that does not read as a trajectory; close() renames it onto the path."""
    folder = tmp_path / "out"
    path = folder / "run.h5"
    models = perturbed_copies(tiny_model(0), n=2, scale=1e-2, seed=0)
    rec = Recorder(path, models, buffer=2)
    for _ in range(5):
        rec.snapshot(loss=train_step(models, synthetic_data(0), 0.1))
    rec.writer.h5.flush()
    assert not path.exists()
    (part,) = list(folder.iterdir())
    assert part.name.startswith(".run.h5.") and part.name.endswith(".part")
    with pytest.raises(InvalidFileError) as info:
        read_trajectory(part)
    assert str(part) in str(info.value)
    assert verify([folder]) == (0, [])  # hidden files are not results
    rec.close()
    assert [p.name for p in folder.iterdir()] == ["run.h5"]
    assert read_trajectory(path).steps.size == 6


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from collections import OrderedDict
    import torch
    from torch import nn
    import equivdyn

    model = nn.Sequential(OrderedDict(fc1=nn.Linear(4, 8), act=nn.Tanh(), fc2=nn.Linear(8, 3)))
    models = equivdyn.perturbed_copies(model, n=2, scale=1e-2, seed=0)
    rec = equivdyn.Recorder(sys.argv[1], models, buffer=2)
    for _ in range(5):
        with torch.no_grad():
            for m in models:
                m.fc2.weight.mul_(0.99)
        rec.snapshot(loss=[1.0, 2.0])
    rec.writer.h5.flush()
    print("recorded", flush=True)
    os._exit(1)
    """
)


def test_killed_process_leaves_no_valid_file(tmp_path: Path) -> None:
    """A process that dies mid-recording (os._exit after a few snapshots) leaves no file at
    the target path, and whatever .part it leaves does not read as a valid trajectory."""
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "run.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-c", CRASH_SCRIPT, str(path)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stderr
    assert "recorded" in done.stdout, done.stderr
    assert not path.exists()
    left = list(folder.iterdir())
    assert all(p.name.startswith(".run.h5.") and p.name.endswith(".part") for p in left)
    for p in left:
        with pytest.raises(InvalidFileError):
            read_trajectory(p)


def test_finished_file_read_only_verified_and_tamper_evident(tmp_path: Path) -> None:
    """The finished file has no write bits and verify() finds it undamaged; a copy with one
    value of an observable dataset changed makes read_trajectory raise InvalidFileError
    naming that dataset, and verify() reports the copy damaged."""
    path = tmp_path / "run.h5"
    record(path, observables=["fc2", "fc1.weight"], n_steps=3)
    assert path.stat().st_mode & 0o222 == 0
    assert verify([path]) == (1, [])
    bad = tmp_path / "bad.h5"
    shutil.copyfile(path, bad)
    bad.chmod(0o644)
    with h5py.File(bad, "r+") as h5:
        ds = h5["observables/fc2"]
        ds[1, 2, 5] = ds[1, 2, 5] + 1.0
    with pytest.raises(InvalidFileError, match="/observables/fc2") as info:
        read_trajectory(bad)
    assert "checksum mismatch" in str(info.value)
    checked, damaged = verify([bad])
    assert checked == 1 and len(damaged) == 1 and "/observables/fc2" in damaged[0].problem


# ----------------------------------------------------------------------------- 8. bad input


def test_unknown_observable_is_named(tmp_path: Path) -> None:
    """An observable the model does not have raises ParameterError naming it; nothing is written."""
    with pytest.raises(ParameterError, match=r"fc9\.weight"):
        Recorder(tmp_path / "run.h5", [tiny_model(0)], observables=["fc9.weight"])
    assert list(tmp_path.iterdir()) == []


def test_metrics_need_no_declaration_but_a_valid_name(tmp_path: Path) -> None:
    """A metric first given later is recorded at its own steps; a bad metric name raises
    ParameterError naming it, and no file is left."""
    models = perturbed_copies(tiny_model(0), n=2, scale=1e-2, seed=0)
    with Recorder(tmp_path / "run.h5", models) as rec:
        rec.snapshot()
        rec.snapshot(accuracy=[0.5, 0.25])
    traj = read_trajectory(tmp_path / "run.h5")
    assert traj.metrics["accuracy"].tolist() == [[0.5], [0.25]] and traj.metric_steps["accuracy"].tolist() == [2]
    (tmp_path / "run.h5").chmod(0o644)
    (tmp_path / "run.h5").unlink()
    with pytest.raises(ParameterError, match="a/b"), Recorder(tmp_path / "run.h5", models) as rec:
        rec.snapshot(**{"a/b": [0.5, 0.5]})
    assert list(tmp_path.iterdir()) == []


def test_wrong_number_of_metric_values(tmp_path: Path) -> None:
    """A metric with other than one value per model raises ParameterError naming the metric."""
    models = perturbed_copies(tiny_model(0), n=3, scale=1e-2, seed=0)
    with pytest.raises(ParameterError, match="loss.*expected 3"), Recorder(tmp_path / "run.h5", models) as rec:
        rec.snapshot(loss=[1.0, 2.0])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("option", "value"), [("every", 0), ("buffer", 0), ("project", 0), ("every", 1.5)])
def test_bad_recorder_option_is_named(tmp_path: Path, option: str, value: Any) -> None:
    """every=0 (and other bad counts) raise ParameterError naming the option; nothing is written."""
    with pytest.raises(ParameterError, match=option):
        Recorder(tmp_path / "run.h5", [tiny_model(0)], **{option: value})
    assert list(tmp_path.iterdir()) == []


def test_models_of_different_shapes(tmp_path: Path) -> None:
    """Models whose observable differs in size raise ParameterError naming the observable."""
    with pytest.raises(ParameterError, match="fc2"):
        Recorder(tmp_path / "run.h5", [tiny_model(0), tiny_model(0, out=4)], observables=["fc2"])
    assert list(tmp_path.iterdir()) == []


def test_no_models_or_not_modules(tmp_path: Path) -> None:
    """An empty model list or a non-module raises ParameterError naming models."""
    for models in ([], [tiny_model(0), "x"]):
        with pytest.raises(ParameterError, match="models"):
            Recorder(tmp_path / "run.h5", models)
    assert list(tmp_path.iterdir()) == []


def test_zero_snapshots_leaves_no_file(tmp_path: Path) -> None:
    """initial=False and no snapshot: closing raises an error saying no snapshot was recorded,
    and no file (nor .part) is left."""
    path = tmp_path / "run.h5"
    with pytest.raises((ValueError, EquivdynError), match="no snapshot"), Recorder(path, [tiny_model(0)], initial=False):
        pass
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- 9. compare_runs


def test_compare_runs_reads_recorder_files(tmp_path: Path) -> None:
    """compare_runs accepts the recorder's files directly (2 seeds per setup); it returns a
    Verdict (its outcome is not asserted: too little data to mean anything)."""
    files: dict[str, list[Path]] = {"a": [], "b": []}
    for setup, lr in (("a", 0.1), ("b", 0.3)):
        for seed in (0, 1):
            path = tmp_path / f"{setup}_s{seed}.h5"
            record(path, seed=seed, n_models=3, n_steps=20, lr=lr)
            files[setup].append(path)
    verdict = equivdyn.compare_runs(files["a"], files["b"])
    assert isinstance(verdict, equivdyn.Verdict)
    assert verdict.n_seeds == (2, 2)
    assert 0.0 <= verdict.p_value <= 1.0
