"""Framework callbacks: real Lightning and transformers training of tiny models on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as lp
import numpy as np
import pytest
import torch
import transformers

from equivdyn import read_trajectory
from equivdyn.callbacks.hf import RecordDynamicsCallback
from equivdyn.callbacks.lightning import RecordDynamics

# ---------------------------------------------------------------------------- helpers


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random points in R^4 labelled by the sign of a fixed linear function."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 1.5]) > 0).long()
    return x, y


def _no_part_files(folder: Path) -> bool:
    return not [name for name in os.listdir(folder) if name.endswith(".part")]


def test_callbacks_package_imports_no_framework() -> None:
    code = "import sys, equivdyn.callbacks; print('lightning' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# ---------------------------------------------------------------------------- Lightning


class TinyModule(lp.LightningModule):
    """Linear(4, 8) - Tanh - Linear(8, 2), SGD; remembers every batch's loss."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.fc2 = torch.nn.Linear(8, 2)
        self.fail_at = fail_at
        self.batch_losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.fail_at is not None and len(self.batch_losses) == self.fail_at:
            raise RuntimeError("training broke")
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.batch_losses.append(float(loss.detach()))
        return {"loss": loss}

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path: Path, callback: RecordDynamics, module: TinyModule, n: int = 64, **trainer_kw: Any) -> lp.Trainer:
    torch.manual_seed(0)
    x, y = _data(n)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=False)
    trainer = lp.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
        **trainer_kw,
    )
    trainer.fit(module, loader)
    return trainer


def test_lightning_records_every_optimiser_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = TinyModule()
    path = tmp_path / "rec" / "run.h5"
    trainer = _fit(tmp_path, RecordDynamics(path, ["fc2.weight", "fc2"], params={"lr": 0.1}), module)
    n_steps = trainer.global_step
    assert n_steps == 8  # 64 points / 16 per batch * 2 epochs
    traj = read_trajectory(path)
    assert traj.observables["fc2.weight"].shape == (1, n_steps + 1, 16)
    assert traj.observables["fc2"].shape == (1, n_steps + 1, 18)
    np.testing.assert_array_equal(traj.steps, np.arange(n_steps + 1))
    final = module.fc2.weight.detach().numpy().reshape(-1)
    np.testing.assert_array_equal(traj.observables["fc2.weight"][0, -1], final)
    both = np.concatenate([final, module.fc2.bias.detach().numpy()])
    np.testing.assert_array_equal(traj.observables["fc2"][0, -1], both)
    assert not np.array_equal(traj.observables["fc2.weight"][0, 0], final)  # it trained
    assert traj.metrics["loss"].shape == (1, n_steps)
    np.testing.assert_array_equal(traj.metric_steps["loss"], np.arange(1, n_steps + 1))
    np.testing.assert_allclose(traj.metrics["loss"][0], module.batch_losses, rtol=1e-6)
    assert traj.params["run"] == {"lr": 0.1}
    assert _no_part_files(path.parent)


def test_lightning_accumulation_counts_optimiser_steps_not_batches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = TinyModule()
    path = tmp_path / "acc.h5"
    # 80 points = 5 batches per epoch; accumulating 2 steps after batches 2, 4 and 5
    trainer = _fit(tmp_path, RecordDynamics(path, ["fc2.weight"]), module, n=80, accumulate_grad_batches=2)
    n_steps = trainer.global_step
    assert n_steps == 6 and len(module.batch_losses) == 10
    traj = read_trajectory(path)
    assert traj.observables["fc2.weight"].shape == (1, n_steps + 1, 16)
    np.testing.assert_array_equal(traj.steps, np.arange(n_steps + 1))
    np.testing.assert_array_equal(traj.observables["fc2.weight"][0, -1], module.fc2.weight.detach().numpy().reshape(-1))
    b = module.batch_losses
    expected = [np.mean(b[0:2]), np.mean(b[2:4]), b[4], np.mean(b[5:7]), np.mean(b[7:9]), b[9]]
    np.testing.assert_allclose(traj.metrics["loss"][0], expected, rtol=1e-6)


def test_lightning_every_second_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = TinyModule()
    path = tmp_path / "every.h5"
    _fit(tmp_path, RecordDynamics(path, ["fc1.weight"], every=2, project=5), module)
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.steps, [0, 2, 4, 6, 8])
    assert traj.observables["fc1.weight"].shape == (1, 5, 5)
    np.testing.assert_array_equal(traj.metric_steps["loss"], [2, 4, 6, 8])


def test_lightning_exception_leaves_no_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = tmp_path / "rec"
    path = folder / "broken.h5"
    callback = RecordDynamics(path, ["fc2.weight"])
    with pytest.raises(RuntimeError, match="training broke"):
        _fit(tmp_path, callback, TinyModule(fail_at=5))
    assert callback.recorder is None
    assert not path.exists()
    assert _no_part_files(folder)


# ---------------------------------------------------------------------------- transformers


class TinyHFModel(torch.nn.Module):
    """Linear(4, 8) - Tanh - Linear(8, 2) whose forward returns ``{"loss", "logits"}``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.fc2 = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.fc2(torch.tanh(self.fc1(x)))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class PointsDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The points of :func:`_data` as dicts ``{"x", "labels"}``."""

    def __init__(self, n: int) -> None:
        self.x, self.y = _data(n)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def _hf_train(tmp_path: Path, callback: RecordDynamicsCallback, **args_kw: Any) -> tuple[TinyHFModel, transformers.Trainer]:
    torch.manual_seed(0)
    model = TinyHFModel()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        logging_steps=2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        **args_kw,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=PointsDataset(64), callbacks=[callback])
    trainer.train()
    return model, trainer


def test_hf_records_every_optimiser_step_and_logged_loss(tmp_path: Path) -> None:
    path = tmp_path / "hf.h5"
    model, trainer = _hf_train(tmp_path, RecordDynamicsCallback(path, ["fc2.weight"], params={"lr": 5e-5}), max_steps=6)
    assert trainer.state.global_step == 6
    traj = read_trajectory(path)
    assert traj.observables["fc2.weight"].shape == (1, 7, 16)
    np.testing.assert_array_equal(traj.steps, np.arange(7))
    final = model.fc2.weight.detach().numpy().reshape(-1)
    np.testing.assert_array_equal(traj.observables["fc2.weight"][0, -1], final)
    assert not np.array_equal(traj.observables["fc2.weight"][0, 0], final)  # it trained
    np.testing.assert_array_equal(traj.metric_steps["loss"], [2, 4, 6])
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    np.testing.assert_array_equal(traj.metrics["loss"][0], logged)
    assert traj.params["run"] == {"lr": 5e-5}
    assert _no_part_files(tmp_path)


def test_hf_gradient_accumulation_counts_optimiser_steps(tmp_path: Path) -> None:
    path = tmp_path / "hf_acc.h5"
    _, trainer = _hf_train(tmp_path, RecordDynamicsCallback(path, ["fc1"]), max_steps=3, gradient_accumulation_steps=2)
    assert trainer.state.global_step == 3
    traj = read_trajectory(path)
    assert traj.observables["fc1"].shape == (1, 4, 40)
    np.testing.assert_array_equal(traj.steps, np.arange(4))
    np.testing.assert_array_equal(traj.metric_steps["loss"], [2])


def test_hf_loss_logged_twice_at_one_step_is_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "twice.h5"
    callback = RecordDynamicsCallback(path, ["fc2.weight"])
    state = transformers.TrainerState()
    control = transformers.TrainerControl()
    callback.on_train_begin(None, state, control, model=TinyHFModel())
    callback.on_step_end(None, state, control)
    callback.on_log(None, state, control, logs={"loss": 1.0})
    callback.on_log(None, state, control, logs={"loss": 2.0})
    callback.on_log(None, state, control, logs={"eval_loss": 3.0})
    callback.on_train_end(None, state, control)
    traj = read_trajectory(path)
    np.testing.assert_array_equal(traj.metrics["loss"], [[1.0]])
    np.testing.assert_array_equal(traj.metric_steps["loss"], [1])


def test_hf_only_the_main_process_records(tmp_path: Path) -> None:
    path = tmp_path / "rank1.h5"
    callback = RecordDynamicsCallback(path, ["fc2.weight"])
    state = transformers.TrainerState(is_world_process_zero=False)
    control = transformers.TrainerControl()
    callback.on_train_begin(None, state, control, model=TinyHFModel())
    callback.on_step_end(None, state, control)
    callback.on_log(None, state, control, logs={"loss": 1.0})
    callback.on_train_end(None, state, control)
    assert not path.exists() and _no_part_files(tmp_path)


def test_hf_failed_run_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "failed.h5"
    callback = RecordDynamicsCallback(path, ["fc2.weight"])
    state = transformers.TrainerState()
    control = transformers.TrainerControl()
    callback.on_train_begin(None, state, control, model=TinyHFModel())
    callback.on_step_end(None, state, control)
    callback.discard()  # what a caller does when trainer.train() raised
    assert not path.exists() and _no_part_files(tmp_path)
