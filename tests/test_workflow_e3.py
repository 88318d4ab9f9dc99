"""End-to-end tests of experiment E3 in the workflow: Fig. 4, its per-epoch appendix
figure, what a change reruns, and config errors named at planning.

Each test works on a scratch copy of the workflow (see conftest.copy_workflow).  In
tests/tiny.yaml LeNet trains on real MNIST and ResNet-20 on the synthetic CIFAR-10
stand-in, 2 epochs of 6 steps each, cut into 3 windows of 4 steps.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from equivdyn.data import cifar10
from equivdyn.store import read_spectra, read_trajectory

from .conftest import TINY, assert_verdicts, planned_jobs, run_snakemake, write_tiny_config

pytestmark = pytest.mark.slow

TARGETS = ("fig4", "figS_cnn_epochs")
FIG4 = "results/figures/fig4_cnn_early"
FIGS = "results/figures/figS_cnn_epochs"
WINDOWS = [[1, 4], [5, 8], [9, 12]]
EPOCHS = [[1, 6], [7, 12]]
N_INITS = {"lenet": 3, "resnet20": 2}


def test_e3_figures_and_koopman_changes_rerun_no_training(workflow_dir: Path) -> None:
    run_snakemake(workflow_dir, *TARGETS, "--configfile", TINY)

    numbers = json.loads((workflow_dir / f"{FIG4}.json").read_text())
    assert numbers["networks"] == ["lenet", "resnet20"]
    assert numbers["synthetic_data"] == {"lenet": False, "resnet20": True}
    for network in ("lenet", "resnet20"):
        panel = numbers[network]
        assert panel["seeds"] == [0, 1]
        assert panel["window_steps"] == WINDOWS
        mean = np.array(panel["distances"])
        assert mean.shape == (3, 3)
        assert np.allclose(mean, mean.T) and np.all(np.diag(mean) == 0) and np.all(mean[~np.eye(3, dtype=bool)] > 0)
        per_seed = np.array(panel["per_seed"])
        assert per_seed.shape == (2, 3, 3)
        assert np.allclose(per_seed.mean(axis=0), mean)
        assert len(panel["to_last"]["mean"]) == 3 and panel["to_last"]["mean"][-1] == 0
        assert len(panel["to_last"]["sd"]) == 3
        summary = panel["early_vs_late"]
        assert summary["late_windows"] == [1, 2]
        assert summary["first_to_last"] == pytest.approx(mean[0, 2])
        assert summary["median_consecutive_late"] == pytest.approx(mean[1, 2])
        assert isinstance(summary["early_distinct"], bool)
        assert panel["train_loss"]["steps"] == list(range(1, 13))
        # The calibrated verdict of the first window against the last, across the 2 seeds.
        assert_verdicts(panel["verdicts"], numbers["title"], {"window_00|window_02": 2})
        assert "windows at steps 1-4 vs 9-12" in panel["verdict_text"]["window_00|window_02"]
    assert (workflow_dir / f"{FIG4}.png").stat().st_size > 0
    assert (workflow_dir / f"{FIG4}.pdf").stat().st_size > 0

    appendix = json.loads((workflow_dir / f"{FIGS}.json").read_text())
    assert appendix["synthetic_data"] == numbers["synthetic_data"]
    for network in ("lenet", "resnet20"):
        assert appendix[network]["epoch_steps"] == EPOCHS
        assert np.array(appendix[network]["distances"]).shape == (2, 2)
        assert np.array(appendix[network]["per_seed"]).shape == (2, 2, 2)
        assert_verdicts(appendix[network]["verdicts"], appendix["title"], {"epoch_00|epoch_01": 2})
    assert (workflow_dir / f"{FIGS}.png").stat().st_size > 0

    # Every result carries its key; the trajectories hold what the config asked for.
    for path in (workflow_dir / "results/train/e3").glob("*.h5"):
        traj = read_trajectory(path)
        network = traj.params["params"]["model"]
        assert traj.key == path.stem
        assert traj.observables["final_layer"].shape[:2] == (N_INITS[network], 12)
        assert list(traj.steps) == list(range(1, 13))
        assert traj.metrics["test_accuracy"].shape == (N_INITS[network], 2)
        data_key = traj.params["inputs"]["data"]
        assert (data_key == cifar10.SYNTHETIC_KEY) == (network == "resnet20")
        assert (workflow_dir / "results/data" / ("cifar10" if network == "resnet20" else "mnist")
                / f"{data_key}.npz").exists()
    assert cifar10.load(workflow_dir / f"results/data/cifar10/{cifar10.SYNTHETIC_KEY}.npz")["synthetic"] is True
    fits = sorted((workflow_dir / "results/fit/e3").glob("*.h5"))
    assert len(fits) == 4
    names = set(read_spectra(fits[0]).spectra)
    assert names == {"window_00", "window_01", "window_02", "epoch_00", "epoch_01"}
    index = (workflow_dir / "results/index.tsv").read_text()
    for path in (workflow_dir / "results").glob("*/e3/*"):
        assert f"\t{path.relative_to(workflow_dir)}\t" in index
    assert f"\tresults/data/cifar10/{cifar10.SYNTHETIC_KEY}.npz\t" in index
    # The distances files hold the verdicts the figures show; their trajectory inputs are named traj:<name>.
    for path in (workflow_dir / "results/distances/e3").glob("*.json"):
        result = json.loads(path.read_text())
        network = next(iter(result["groups"]["window"]["per_input"])).rsplit("_s", 1)[0]
        assert set(result["verdicts"]) == {"window_00|window_02", "epoch_00|epoch_01"}
        assert result["verdicts"]["window_00|window_02"] == numbers[network]["verdicts"]["window_00|window_02"]
        assert {n for n in result["spec"]["inputs"] if n.startswith("traj:")} == {f"traj:{network}_s0", f"traj:{network}_s1"}
    assert planned_jobs(workflow_dir, *TARGETS, "--configfile", TINY) == collections.Counter()

    # A Koopman parameter refits every (network, seed), never training.
    delays = write_tiny_config(workflow_dir, "delays.yaml", {"e3.koopman.n_delays": 2})
    assert planned_jobs(workflow_dir, *TARGETS, "--configfile", delays) == collections.Counter(
        {"fit": 4, "distances": 2, "plot": 2, "index": 1}
    )
    # Windows of one network refit that network's seeds only.
    windows = write_tiny_config(workflow_dir, "windows.yaml", {"e3.lenet.windows": {"length": 6, "count": 2}})
    assert planned_jobs(workflow_dir, *TARGETS, "--configfile", windows) == collections.Counter(
        {"fit": 2, "distances": 1, "plot": 2, "index": 1}
    )
    # A training parameter of one network retrains that network only.
    lr = write_tiny_config(workflow_dir, "lr.yaml", {"e3.resnet20.train.lr": 0.05})
    assert planned_jobs(workflow_dir, *TARGETS, "--configfile", lr) == collections.Counter(
        {"train": 2, "fit": 2, "distances": 1, "plot": 2, "index": 1}
    )

    # Leaving a network out drops its panels and computes nothing new.
    lenet = write_tiny_config(workflow_dir, "lenet.yaml", {"e3.networks": ["lenet"]})
    assert planned_jobs(workflow_dir, *TARGETS, "--configfile", lenet) == collections.Counter(
        {"plot": 2, "index": 1}
    )
    run_snakemake(workflow_dir, *TARGETS, "--configfile", lenet)
    numbers = json.loads((workflow_dir / f"{FIG4}.json").read_text())
    assert numbers["networks"] == ["lenet"] and "resnet20" not in numbers
    assert numbers["synthetic_data"] == {"lenet": False}
    assert json.loads((workflow_dir / f"{FIGS}.json").read_text())["networks"] == ["lenet"]
    # Reverting points the plan back at the results that exist: only figures and index.
    assert planned_jobs(workflow_dir, *TARGETS, "--configfile", TINY) == collections.Counter(
        {"plot": 2, "index": 1}
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"e3.networks": ["lenet", "vgg"]}, "networks"),
        ({"e3.lenet.windows.count": 4}, "e3.lenet.windows"),
        ({"e3.resnet20.windows.length": 7}, "e3.resnet20.windows"),
        ({"e3.lenet.train.augment": True}, "e3.lenet.train.augment"),
        ({"e3.lenet.train.lr": -0.01}, "lr"),
        ({"e3.resnet20.train.colour": "red"}, "colour"),
        ({"e3.koopman.n_delays": 3}, "e3.koopman.n_delays=3"),
        ({"e3.lenet.train.train_subset": 70000}, "e3.lenet.train.train_subset=70000"),
        ({"e3.resnet20.train.train_subset": 600}, "e3.resnet20.train.train_subset=600"),
        ({"e3.resnet20.train.test_subset": 300}, "e3.resnet20.train.test_subset=300"),
        ({"e3.resnet20.train.batch_size": 200}, "e3.resnet20.train.batch_size=200"),
        ({"data.cifar10": ""}, "cifar10"),
    ],
)
def test_bad_e3_config_is_named_at_planning(workflow_dir: Path, override: dict, message: str) -> None:
    name = write_tiny_config(workflow_dir, "bad.yaml", override)
    proc = run_snakemake(workflow_dir, *TARGETS, "--configfile", name, "-n", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-3000:]
    assert not (workflow_dir / "results").exists()


def test_missing_cifar10_file_is_named(workflow_dir: Path) -> None:
    missing = {"data.cifar10": "no/such/cifar-10-python.tar.gz"}
    name = write_tiny_config(workflow_dir, "missing.yaml", missing)
    proc = run_snakemake(workflow_dir, "fig4", "--configfile", name, check=False)
    assert proc.returncode != 0
    assert "no/such/cifar-10-python.tar.gz" in proc.stdout
    assert not (workflow_dir / "results").exists()
    # Without ResNet-20 nothing needs CIFAR-10.
    name = write_tiny_config(workflow_dir, "lenet.yaml", {**missing, "e3.networks": ["lenet"]})
    jobs = planned_jobs(workflow_dir, "fig4", "--configfile", name)
    assert "data_cifar10" not in jobs and jobs["train"] == 2
