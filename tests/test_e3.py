"""Tests of E3 (CNN training: LeNet-5 on MNIST, ResNet-20 on CIFAR-10).

Most tests train on SYNTHETIC images (seeded random uint8 arrays, or the synthetic
CIFAR-10 stand-in) at tiny sizes; one trains LeNet-5 on the real MNIST file in
../shared/data, prepared through the MNIST data stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from equivdyn.data import cifar10, mnist
from equivdyn.errors import ParameterError
from equivdyn.experiments.e3 import trainer as e3
from equivdyn.models import build_model, final_layer


TINY: dict[str, Any] = {"model": "lenet", "n_inits": 3, "batch_size": 20, "n_epochs": 2, "lr": 0.05}


def synthetic_images(shape: tuple[int, ...], n_train: int = 120, n_test: int = 40, seed: int = 0) -> dict[str, Any]:
    """SYNTHETIC data: random uint8 images [N, C, H, W] and random labels."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def lenet_data(**kwargs: Any) -> dict[str, Any]:
    return synthetic_images((1, 28, 28), **kwargs)


def same_bits(a: e3.Trajectory, b: e3.Trajectory) -> bool:
    return a.observables["final_layer"].tobytes() == b.observables["final_layer"].tobytes() and all(
        a.metrics[name].tobytes() == b.metrics[name].tobytes() for name in a.metrics
    )


@pytest.fixture(scope="module")
def cifar_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cifar10.prepare("synthetic", tmp_path_factory.mktemp("cifar") / "cifar10-synthetic.npz")


# ----------------------------------------------------------------------------- records


def test_trajectory_shapes_steps_and_metric_steps() -> None:
    traj = e3.train(lenet_data(), TINY)
    assert traj.experiment == "e3"
    # 120 images // batch 20 = 6 steps per epoch, 2 epochs.
    assert traj.steps.dtype == np.int64 and traj.steps.tolist() == list(range(1, 13))
    assert traj.observables["final_layer"].shape == (3, 12, 10 * 84 + 10)
    assert traj.observables["final_layer"].dtype == np.float64
    assert traj.metrics["train_loss"].shape == (3, 12)
    for name in ("test_loss", "test_accuracy"):
        assert traj.metrics[name].shape == (3, 2)
        assert traj.metric_steps[name].tolist() == [6, 12]
    assert np.all((traj.metrics["test_accuracy"] >= 0) & (traj.metrics["test_accuracy"] <= 1))
    assert traj.params == e3.check_params(TINY)
    # drop_last: 130 images give the same 6 steps per epoch.
    assert e3.train(lenet_data(n_train=130), {**TINY, "n_inits": 1}).steps.size == 12


def test_observable_is_weight_then_bias_of_the_final_layer_after_each_step() -> None:
    params = {**TINY, "n_inits": 2, "n_epochs": 1}
    cfg = e3.E3Config.from_params(params)
    models = e3.init_models(cfg)
    layer = final_layer(models[1])
    start = torch.cat([layer.weight.reshape(-1), layer.bias]).detach().double().numpy()
    traj = e3.train(lenet_data(), params)
    first = traj.observables["final_layer"][1, 0]
    assert first.shape == start.shape and not np.array_equal(first, start)  # a step has happened
    assert np.abs(first - start).max() < 0.05  # one small step


def test_repeat_runs_are_bit_identical() -> None:
    data = lenet_data(seed=1)
    assert same_bits(e3.train(data, {**TINY, "seed": 3}), e3.train(data, {**TINY, "seed": 3}))
    assert not same_bits(e3.train(data, {**TINY, "seed": 3}), e3.train(data, {**TINY, "seed": 4}))


def test_resnet_repeat_runs_with_augmentation_are_bit_identical() -> None:
    data = synthetic_images((3, 32, 32), n_train=32, n_test=16, seed=2)
    params = {"model": "resnet20", "n_inits": 2, "batch_size": 16, "n_epochs": 2, "augment": True, "lr": 0.1,
              "weight_decay": 1e-4}  # fmt: skip
    a, b = e3.train(data, params), e3.train(data, params)
    assert same_bits(a, b)
    assert a.observables["final_layer"].shape == (2, 4, 650)


def test_training_restores_torch_state_and_leaves_the_global_rng_alone() -> None:
    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state()
    e3.train(lenet_data(), {**TINY, "n_inits": 2, "n_epochs": 1}, threads=1)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)


# ----------------------------------------------------------------------------- initialisations


def test_init_zero_is_torch_default_and_the_rest_are_small_perturbations() -> None:
    eps = 0.001
    cfg = e3.E3Config.from_params({**TINY, "n_inits": 4, "perturbation": eps, "seed": 7, "dtype": "float64"})
    models = e3.init_models(cfg)
    torch.manual_seed(7)
    reference = build_model("lenet")
    for p, q in zip(models[0].parameters(), reference.parameters()):
        assert p.dtype == torch.float64 and torch.equal(p, q.double())
    for m in range(1, 4):
        for p, p0 in zip(models[m].parameters(), models[0].parameters()):
            relative = (p - p0).abs() / p0.abs()
            assert relative.max() <= eps * (1 + 1e-9)
            assert relative.max() > 0.5 * eps  # every parameter tensor is perturbed, by up to eps
    assert not torch.equal(models[1].fc3.weight, models[2].fc3.weight)
    # float32 initialisations are the float64 ones rounded.
    models32 = e3.init_models(e3.E3Config.from_params({**TINY, "n_inits": 4, "seed": 7}))
    assert torch.equal(models32[2].conv1.weight, models[2].conv1.weight.float())


def test_initialisations_differ_but_stay_close_and_see_the_same_data() -> None:
    data = lenet_data(seed=3)
    traj = e3.train(data, {**TINY, "perturbation": 0.001})
    w = traj.observables["final_layer"]
    assert not np.array_equal(w[0], w[1])
    spread = np.abs(w[1:, 0] - w[0, 0]).max()
    assert 0 < spread < 0.01 * np.abs(w[0, 0]).max()
    # Without perturbation every initialisation is the same network on the same batches:
    # identical trajectories, bit for bit (augmentation draws included, for ResNet-20).
    same = e3.train(data, {**TINY, "perturbation": 0.0}).observables["final_layer"]
    assert all(np.array_equal(same[0], same[m]) for m in (1, 2))
    data3 = synthetic_images((3, 32, 32), n_train=32, n_test=8, seed=4)
    params = {"model": "resnet20", "n_inits": 2, "batch_size": 16, "n_epochs": 1, "augment": True, "perturbation": 0.0}
    same = e3.train(data3, params).observables["final_layer"]
    assert np.array_equal(same[0], same[1])


# ----------------------------------------------------------------------------- data


def test_subsets_are_seeded_and_sized() -> None:
    data = lenet_data(n_train=200, n_test=50)
    cfg = e3.E3Config.from_params({**TINY, "train_subset": 100})
    a, b = e3.subset_indices(cfg, "train", 200), e3.subset_indices(cfg, "train", 200)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 100 and a.max() < 200
    other = e3.subset_indices(e3.E3Config.from_params({**TINY, "train_subset": 100, "seed": 1}), "train", 200)
    assert other.tolist() != a.tolist()
    assert e3.subset_indices(cfg, "test", 50).tolist() == list(range(50))
    traj = e3.train(data, {**TINY, "n_inits": 1, "train_subset": 100, "test_subset": 20, "n_epochs": 1})
    assert traj.steps.size == 5
    with pytest.raises(ParameterError, match="train_subset: 300 images"):
        e3.train(data, {**TINY, "train_subset": 300})
    with pytest.raises(ParameterError, match="test_subset"):
        e3.train(data, {**TINY, "test_subset": 51})
    with pytest.raises(ParameterError, match="batch_size"):
        e3.train(data, {**TINY, "train_subset": 10})


def test_augmentation_crops_the_padded_image_and_flips() -> None:
    data = synthetic_images((3, 32, 32), n_train=40, n_test=4, seed=5)
    cfg = e3.E3Config.from_params({"model": "resnet20", "batch_size": 8, "augment": True, "dtype": "float64"})
    x_epoch, y_epoch = e3._Epochs(data["x_train"], data["y_train"], cfg, torch.device("cpu")).next()
    assert x_epoch.shape == (40, 3, 32, 32) and x_epoch.is_contiguous(memory_format=torch.channels_last)
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in e3.NORMALIZATION[3])
    raw = (x_epoch * std + mean) * 255.0
    padded = np.pad(data["x_train"], ((0, 0), (0, 0), (4, 4), (4, 4))).astype(np.float64)
    flips = 0
    for i in range(40):
        image = raw[i].numpy()
        # Its label says which image it is; find the crop and flip that give it.
        candidates = np.flatnonzero(data["y_train"] == y_epoch[i].item())
        crops = [
            (flip, padded[j, :, top : top + 32, left : left + 32])
            for j in candidates
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
        ]
        found = [flip for flip, crop in crops if np.allclose(image, crop[..., ::-1] if flip else crop)]
        assert found, i
        flips += found[0]
    assert 5 < flips < 35  # about half are flipped


# ----------------------------------------------------------------------------- real data


def test_lenet_loss_falls_on_real_mnist(prepared_mnist: Path) -> None:
    traj = e3.simulate(
        {"model": "lenet", "n_inits": 2, "batch_size": 20, "n_epochs": 3, "train_subset": 300, "test_subset": 200,
         "lr": 0.05},
        {"data": prepared_mnist},
    )  # fmt: skip
    loss = traj.metrics["train_loss"]
    assert loss.shape == (2, 45)
    assert loss[:, :10].mean() > loss[:, -10:].mean() + 0.5
    assert traj.metrics["test_accuracy"][:, -1].min() > 0.4


def test_resnet_runs_on_synthetic_cifar(cifar_npz: Path) -> None:
    params = {"model": "resnet20", "n_inits": 2, "batch_size": 32, "n_epochs": 1, "train_subset": 64,
              "test_subset": 32, "augment": True, "lr": 0.1, "weight_decay": 1e-4}  # fmt: skip
    traj = e3.simulate(params, {"data": cifar_npz})
    assert traj.observables["final_layer"].shape == (2, 2, 650)
    assert np.isfinite(traj.observables["final_layer"]).all() and np.isfinite(traj.metrics["test_loss"]).all()
    assert traj.metric_steps["test_accuracy"].tolist() == [2]


def test_data_must_fit_the_model(cifar_npz: Path, prepared_mnist: Path) -> None:
    with pytest.raises(ParameterError, match="model: 'lenet' takes MNIST"):
        e3.simulate({"model": "lenet"}, {"data": cifar_npz})
    with pytest.raises(ParameterError, match="model: 'resnet20' takes CIFAR-10"):
        e3.simulate({"model": "resnet20"}, {"data": prepared_mnist})
    with pytest.raises(ParameterError, match="model"):
        e3.train(synthetic_images((3, 32, 32)), TINY)
    with pytest.raises(ParameterError, match="inputs"):
        e3.simulate({}, {"mnist": prepared_mnist})


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"model": "vgg"}, "model"),
        ({"seed": -1}, "seed"),
        ({"n_inits": 0}, "n_inits"),
        ({"perturbation": 1.0}, "perturbation"),
        ({"lr": 0}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_epochs": 1.5}, "n_epochs"),
        ({"train_subset": 0}, "train_subset"),
        ({"test_subset": "all"}, "test_subset"),
        ({"augment": 1}, "augment"),
        ({"model": "lenet", "augment": True}, "augment"),
        ({"dtype": "float16"}, "dtype"),
        ({"observable": "conv1"}, "observable"),
        ({"epochs": 2}, "epochs"),
    ],
)
def test_check_params_names_the_bad_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError, match=field):
        e3.check_params(params)


def test_check_params_fills_defaults() -> None:
    assert e3.check_params({}) == e3.DEFAULTS
    checked = e3.check_params({"model": "resnet20", "augment": True, "train_subset": 1000, "lr": 1})
    assert checked["augment"] is True and checked["train_subset"] == 1000 and checked["lr"] == 1.0
    assert isinstance(checked["lr"], float)


# ----------------------------------------------------------------------------- stages


def test_train_fit_and_distances_stages(tmp_path: Path, prepared_mnist: Path) -> None:
    from equivdyn._io import content_key
    from equivdyn.experiments import get as get_experiment
    from equivdyn.stages import STAGE_VERSIONS, distances, fit, train
    from equivdyn.store import read_spectra, read_trajectory

    params = {"model": "lenet", "n_inits": 2, "batch_size": 20, "n_epochs": 2, "train_subset": 120, "test_subset": 40}
    fits = {}
    for seed in (0, 1):
        spec = {
            "stage": "train",
            "experiment": "e3",
            "version": get_experiment("e3").train_version,
            "params": {**params, "seed": seed},
            "inputs": {"data": mnist.DATASET_KEY},
        }
        traj_path = tmp_path / f"traj{seed}.h5"
        train(spec, {"data": prepared_mnist}, traj_path)
        traj = read_trajectory(traj_path)
        assert traj.key == content_key(spec) and traj.metric_steps["test_accuracy"].tolist() == [6, 12]
        fit_spec = {
            "stage": "fit",
            "experiment": "e3",
            "version": STAGE_VERSIONS["fit"],
            "params": {"observable": "final_layer", "n_delays": 1, "rank": 2, "n_components": 3,
                       "windows": {"length": 4, "count": 3}, "epochs": True},  # fmt: skip
            "inputs": {"trajectory": traj.key},
        }
        fits[f"lenet_s{seed}"] = tmp_path / f"spectra{seed}.h5"
        fit(fit_spec, traj_path, fits[f"lenet_s{seed}"])
    spectra = read_spectra(fits["lenet_s0"]).spectra
    assert sorted(spectra) == ["epoch_00", "epoch_01", "window_00", "window_01", "window_02"]
    assert spectra["epoch_01"].params["segment_steps"] == [7, 12]
    spec = {
        "stage": "distances",
        "experiment": "e3",
        "version": STAGE_VERSIONS["distances"],
        "params": {"groups": ["window", "epoch"]},
        "inputs": {name: read_spectra(path).key for name, path in fits.items()},
    }
    result = distances(spec, fits, tmp_path / "distances.json")
    assert np.array(result["groups"]["window"]["mean"]).shape == (3, 3)
    assert result["groups"]["epoch"]["steps"] == [[1, 6], [7, 12]]
