"""The workflow through a real Slurm: profiles/slurm and Snakemake's Slurm executor plugin.

``tests/slurm/local_cluster.sh`` starts a one-node Slurm on this machine (installing its
Debian packages when missing; the ``slurm`` fixture, which stops it at the end of the
session and checks that no daemon is left).  These tests build tests/tiny.yaml through
it and check that

* every job of `snakemake all` is submitted with sbatch and recorded by the scheduler, and
  the results equal a local build's (same keys, identical arrays);
* a second invocation plans nothing, and a Koopman-only change resubmits no training;
* a job cancelled with scancel is reported as such, and a rerun completes;
* the between-workflow cache is neither read nor filled by jobs that run through Slurm
  (Snakemake's executor does not pass ``--cache`` to them), so nothing of a Slurm build
  is ever taken for a cached result;
* with ``device: cuda``, training jobs ask Slurm for a GPU (and other jobs do not), and a
  job that finds no GPU fails with a message that names the setting.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import (
    SLURM,
    TINY,
    BuiltWorkflow,
    copy_workflow,
    inspect_results,
    jobs_from_output,
    plan_of,
    run_snakemake,
    tiny_config,
    venv_exe,
    write_tiny_config,
)
from .test_determinism import hdf5_content

pytestmark = pytest.mark.slow


def slurm_jobids(out: str) -> list[str]:
    """The Slurm job ids of the jobs Snakemake submitted, from its output."""
    return re.findall(r"has been submitted with SLURM jobid (\d+)", out)


def scontrol(jobid: str, env: dict[str, str]) -> dict[str, str]:
    """`scontrol show job` of ``jobid`` as a dict (finished jobs are kept for an hour)."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", jobid],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def recorded_jobs(env: dict[str, str]) -> dict[str, str]:
    """Job id -> final state of every job the scheduler recorded as finished (its job completion log)."""
    log = Path(env["SLURM_CONF"]).with_name("jobcomp.log")
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"JobId=(\d+) .*?JobState=(\w+)", log.read_text() if log.exists() else "")
    }


def minutes(limit: str) -> int:
    """Minutes of a Slurm time limit (``[D-]HH:MM:SS``)."""
    days, _, clock = limit.rpartition("-")
    h, m, sec = (int(x) for x in clock.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (sec > 0)


def rule_of(job: dict[str, str]) -> str:
    """The Snakemake rule of a Slurm job (the plugin puts it into the job's comment)."""
    return re.match(r"rule_([a-z0-9_]+?)(_wildcards_|$)", job["Comment"]).group(1)


def run_slurm(workdir: Path, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_snakemake(workdir, *SLURM, *args, env=env, check=check)


@pytest.fixture(scope="module")
def slurm_built(slurm: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> BuiltWorkflow:
    """tests/tiny.yaml built by `snakemake all --cache --profile profiles/slurm` with a fresh cache."""
    base = tmp_path_factory.mktemp("slurm_built")
    cache = base / "cache"
    cache.mkdir()
    built = BuiltWorkflow(copy_workflow(base / "wf"), cache, "")
    env = {**built.env(), "SLURM_CONF": slurm["SLURM_CONF"]}
    out = run_slurm(built.dir, "all", "--cache", "--configfile", TINY, env=env).stdout
    return dataclasses.replace(built, output=out)


def test_every_job_goes_through_sbatch(slurm: dict[str, str], slurm_built: BuiltWorkflow) -> None:
    out = slurm_built.output
    planned = jobs_from_output(out)
    jobids = slurm_jobids(out)
    assert len(jobids) == sum(planned.values()), out[-3000:]
    recorded = recorded_jobs(slurm)
    assert {jobid: recorded.get(jobid) for jobid in jobids} == dict.fromkeys(jobids, "COMPLETED")
    jobs = [scontrol(jobid, slurm) for jobid in jobids]
    submitted = collections.Counter(rule_of(job) for job in jobs)
    assert submitted == planned
    # Each job asked for what the plan says it needs, and none for a GPU.
    plan = plan_of(tiny_config())
    checked = 0
    for job in jobs:
        assert "TresPerJob" not in job, job
        key = re.search(r"[0-9a-f]{16}", job["Comment"])
        if key and key.group(0) in plan.jobs:
            planned_job = plan.jobs[key.group(0)]
            assert minutes(job["TimeLimit"]) == planned_job.runtime, job
            assert job["MinMemoryNode"] == f"{planned_job.mem_mb}M", job
            assert int(job["NumCPUs"]) == planned_job.threads, job
            checked += 1
    assert checked == sum(n for rule, n in planned.items() if rule in ("train", "fit", "compare", "distances"))


def result_files(workdir: Path) -> dict[Path, Path]:
    """Every result under results/ but the figures, by its path there (its key)."""
    root = workdir / "results"
    return {p.relative_to(root): p for p in root.rglob("*") if p.is_file() and "figures" not in p.parts}


def test_results_equal_a_local_build(slurm_built: BuiltWorkflow, tiny_built: BuiltWorkflow) -> None:
    """Same keys and identical content as the session's local build (HDF5: every dataset
    and attribute but the write time and the digest over it; JSON: every field)."""
    slurm_results, local_results = result_files(slurm_built.dir), result_files(tiny_built.dir)
    assert sorted(slurm_results) == sorted(local_results)
    for name, path in slurm_results.items():
        local = local_results[name]
        if path.suffix == ".h5":
            assert hdf5_content(path) == hdf5_content(local), name
        elif path.suffix == ".json":
            assert json.loads(path.read_text()) == json.loads(local.read_text()), name
        elif path.suffix == ".npz":
            with np.load(path) as a, np.load(local) as b:
                assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), name
        else:
            assert path.read_bytes() == local.read_bytes(), name
    inspect_results(slurm_built.dir)


def test_a_second_invocation_plans_nothing(slurm: dict[str, str], slurm_built: BuiltWorkflow) -> None:
    env = {**slurm_built.env(), "SLURM_CONF": slurm["SLURM_CONF"]}
    out = run_slurm(slurm_built.dir, "all", "--cache", "--configfile", TINY, "-n", env=env).stdout
    assert jobs_from_output(out) == {}


def test_a_koopman_change_resubmits_no_training(slurm: dict[str, str], slurm_built: BuiltWorkflow) -> None:
    env = {**slurm_built.env(), "SLURM_CONF": slurm["SLURM_CONF"]}
    config = write_tiny_config(slurm_built.dir, "koopman.yaml", {"e1.koopman.n_delays": 3})
    out = run_slurm(slurm_built.dir, "fig2", "--cache", "--configfile", config, env=env).stdout
    rules = collections.Counter(rule_of(scontrol(jobid, slurm)) for jobid in slurm_jobids(out))
    assert rules["fit"] == 3 and rules["train"] == 0, out[-3000:]


def test_jobs_through_slurm_neither_read_nor_fill_the_cache(slurm_built: BuiltWorkflow) -> None:
    """Snakemake fetches and stores cached results only for jobs it runs itself (its local
    executor); the Slurm executor does not pass --cache to the jobs it submits.  So a
    Slurm build, even with --cache, leaves the cache empty and its results are files of
    its own, computed on the cluster (the README says so)."""
    assert list(slurm_built.cache.iterdir()) == []
    results = [p for p in (slurm_built.dir / "results").rglob("*.h5")]
    assert results and not any(p.is_symlink() for p in results)


def _long_run(config: dict) -> str:
    """Path of the E4 long run of the grokking setup in ``config``'s plan."""
    [path] = [
        job.path
        for job in plan_of(config).jobs.values()
        if job.spec["stage"] == "train"
        and job.spec["params"].get("kind") == "long"
        and job.spec["params"]["setup"] == "grokking"
    ]
    return path


def test_a_cancelled_job_is_reported_and_a_rerun_completes(slurm: dict[str, str], tmp_path: Path) -> None:
    wf = copy_workflow(tmp_path / "wf")
    config = write_tiny_config(wf, "long.yaml")
    target = _long_run(tiny_config())
    proc = subprocess.Popen(
        [venv_exe("snakemake"), "--cores", "2", *SLURM, target, "--configfile", config],
        cwd=wf,
        env=slurm,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Cancel the training job once it runs.
    deadline, cancelled = time.monotonic() + 120, None
    while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i %T %k"],
            env=slurm,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        ).stdout
        for line in queue.splitlines():
            jobid, state, comment = line.split(maxsplit=2)
            if state == "RUNNING" and comment.startswith("rule_train"):
                time.sleep(2)
                subprocess.run(["scancel", jobid], env=slurm, check=True)
                cancelled = jobid
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=300)
    assert cancelled is not None, f"the training job never ran:\n{out[-3000:]}"
    assert proc.returncode != 0
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in out, out[-3000:]
    assert "Error in rule train" in out
    assert not (wf / target).exists()  # nothing half-written where the result belongs
    assert recorded_jobs(slurm)[cancelled] == "CANCELLED"
    out = run_slurm(wf, target, "--configfile", config, env=slurm).stdout
    [jobid] = slurm_jobids(out)
    assert recorded_jobs(slurm)[jobid] == "COMPLETED"
    assert (wf / target).is_file()
    inspect_results(wf)


def test_cuda_training_jobs_ask_slurm_for_a_gpu(slurm: dict[str, str], tmp_path: Path) -> None:
    wf = copy_workflow(tmp_path / "wf")
    # one LeNet seed: a data job, then one training job on CUDA
    overrides = {"e3.device": "cuda", "e3.networks": ["lenet"], "e3.seeds": [0]}
    config = write_tiny_config(wf, "cuda.yaml", overrides)
    proc = run_slurm(wf, "fig4", "--configfile", config, env=slurm, check=False)
    out = proc.stdout
    assert proc.returncode != 0  # this machine has no GPU: the training job fails
    jobs = {rule_of(job): job for job in (scontrol(jobid, slurm) for jobid in slurm_jobids(out))}
    assert {"data_mnist", "train"} <= set(jobs), out[-3000:]
    assert jobs["train"]["TresPerJob"] == "gres:gpu:1", jobs["train"]
    for rule, job in jobs.items():
        assert rule == "train" or "TresPerJob" not in job, job
    assert recorded_jobs(slurm)[jobs["train"]["JobId"]] == "FAILED"
    # The training job failed on the node, saying why and what to do; Snakemake names its log.
    [log] = (wf / "logs/train/e3").glob("*.log")
    text = log.read_text()
    assert "e3.device=cuda: this machine" in text and "has no CUDA device" in text, text[-2000:]
    assert "set the experiment's device to cpu" in text
    assert "Error in rule train" in out and str(log.relative_to(wf)) in out
    assert not list((wf / "results/train").rglob("*.h5"))
