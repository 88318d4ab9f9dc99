"""What each planned job asks a scheduler for (threads, memory, time limit, GPU), and the
``device`` setting: where training runs, which results it keys apart, and what a trajectory
records about it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from equivdyn import stages
from equivdyn.errors import EquivdynError, ParameterError
from equivdyn.plan import MIN_RUNTIME, RUNTIME_MARGIN, runtime_minutes
from equivdyn.store import read_trajectory

from .conftest import ROOT, filled_config, plan_of, tiny_config

PAPER = ROOT / "profiles/paper/paper.yaml"


def train_jobs(plan, experiment: str) -> dict:
    return {k: j for k, j in plan.jobs.items() if j.spec["stage"] == "train" and j.spec["experiment"] == experiment}


def test_time_limits_follow_the_estimate_with_a_margin_and_a_floor() -> None:
    assert runtime_minutes(0) == MIN_RUNTIME
    assert runtime_minutes(60 * MIN_RUNTIME / RUNTIME_MARGIN) == MIN_RUNTIME
    assert runtime_minutes(3600) == 60 * RUNTIME_MARGIN
    assert runtime_minutes(3601) == 60 * RUNTIME_MARGIN + 1


def test_resources_grow_with_the_work_the_plan_gives_a_job() -> None:
    """At paper scale the long and large jobs ask for more time than the floor, and the
    larger of two jobs of a kind never asks for less."""
    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    paper = yaml.safe_load(PAPER.read_text())
    for section, values in paper.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    plan = plan_of(config)
    e3 = {j.spec["params"]["model"]: j.runtime for j in train_jobs(plan, "e3").values()}
    assert e3["resnet20"] > e3["lenet"] >= MIN_RUNTIME
    e4 = {j.spec["params"]["kind"]: j.runtime for j in train_jobs(plan, "e4").values()}
    assert e4["long"] > MIN_RUNTIME
    widths = sorted((j.spec["params"]["width"], j.runtime) for j in train_jobs(plan, "e2").values())
    assert [r for _, r in widths] == sorted(r for _, r in widths)
    # threads: E4's fast trainer runs on 2; every other job on 1
    assert {j.threads for j in train_jobs(plan, "e4").values()} == {2}
    assert {j.threads for j in plan.jobs.values() if j.spec["experiment"] != "e4" or j.spec["stage"] != "train"} == {1}
    # no job asks for a GPU unless an experiment's device is cuda
    assert {j.gpus for j in plan.jobs.values()} == {0}


@pytest.mark.parametrize("experiment", ["e2", "e3", "e4"])
def test_cuda_jobs_ask_for_a_gpu_and_have_their_own_keys(experiment: str) -> None:
    cpu = plan_of(tiny_config())
    cuda = plan_of(tiny_config({f"{experiment}.device": "cuda"}))
    cpu_train, cuda_train = train_jobs(cpu, experiment), train_jobs(cuda, experiment)
    assert len(cpu_train) == len(cuda_train) > 0
    assert not set(cpu_train) & set(cuda_train)  # CUDA results differ in the last bits: own keys
    for job in cuda_train.values():
        assert job.spec["params"]["device"] == "cuda" and job.gpus == 1
    for job in cpu_train.values():
        assert "device" not in job.spec["params"] and job.gpus == 0  # CPU keys as before devices existed
    # only training asks for a GPU; the other experiments' jobs keep their keys
    assert {k for k, j in cuda.jobs.items() if j.gpus} == set(cuda_train)
    others = {k for k, j in cpu.jobs.items() if j.spec["experiment"] not in (experiment, "data")}
    assert others <= set(cuda.jobs)


def test_auto_is_resolved_where_the_workflow_is_planned() -> None:
    auto = plan_of(tiny_config({"e2.device": "auto"}))
    expected = plan_of(tiny_config({"e2.device": "cuda" if torch.cuda.is_available() else "cpu"}))
    assert set(auto.jobs) == set(expected.jobs)


def test_a_device_the_schema_does_not_know_is_refused() -> None:
    with pytest.raises(Exception, match="device"):
        filled_config(tiny_config({"e2.device": "tpu"}))


def e4_tiny_spec(device: str | None) -> dict:
    plan = plan_of(tiny_config({"e4.device": "cuda"} if device == "cuda" else None))
    [job] = [j for j in train_jobs(plan, "e4").values() if j.spec["params"]["kind"] == "long"][:1]
    return job.spec


def test_a_cuda_job_without_a_gpu_fails_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run.h5"
    with pytest.raises(EquivdynError, match=r"e4\.device=cuda: this machine \(.*\) has no CUDA device .*set the experiment's device to cpu"):
        stages.train(e4_tiny_spec("cuda"), {}, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_trajectory_records_the_device_it_was_trained_on(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    stages.train(e4_tiny_spec(None), {}, out)
    assert read_trajectory(out).attrs["device"] == "cpu"


def test_an_experiment_that_trains_on_the_cpu_only_refuses_another_device(tmp_path: Path) -> None:
    plan = plan_of(tiny_config())
    spec = next(iter(train_jobs(plan, "e1").values())).spec
    spec = json.loads(json.dumps(spec))
    spec["params"]["device"] = "cuda"
    with pytest.raises(ParameterError, match=r"params.device='cuda': e1 trains on cpu"):
        stages.train(spec, {}, tmp_path / "run.h5")
