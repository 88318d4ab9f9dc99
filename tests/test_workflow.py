"""End-to-end tests of the Snakemake workflow: figures, content-addressed reruns, errors.

Each test works on a scratch copy of the workflow (see conftest.copy_workflow) and asserts
on the jobs Snakemake plans (`-n`), then runs them.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from equivdyn.store import read_trajectory, summarize

from .conftest import ROOT, copy_workflow, run_snakemake, snakemake_exe, venv_exe

pytestmark = pytest.mark.slow

TARGET_RULES = {"all", "fig2", "fig3", "figS_fcn_seeds", "fig5"}
FIG2 = "results/figures/fig2_omd_ogd_bm"


def planned_jobs(workdir: Path, *args: str) -> collections.Counter[str]:
    """Jobs (rule -> count) that `snakemake -n` plans, target rules left out."""
    out = run_snakemake(workdir, *args, "-n", "--quiet", "rules").stdout
    if "Nothing to be done" in out:
        return collections.Counter()
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    jobs = collections.Counter()
    for line in table.splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if match and match.group(1) not in TARGET_RULES:
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def write_config(workdir: Path, name: str, **e1_train: object) -> str:
    config = yaml.safe_load((workdir / "tests/tiny.yaml").read_text())
    config["e1"]["train"].update(e1_train)
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def test_fig2_default_config_reproduces_the_paper_claim(workflow_dir: Path) -> None:
    run_snakemake(workflow_dir, "fig2")
    for ext in ("pdf", "png", "json"):
        assert (workflow_dir / f"{FIG2}.{ext}").stat().st_size > 0
    numbers = json.loads((workflow_dir / f"{FIG2}.json").read_text())
    assert set(numbers["spectra"]) == {"omd", "ogd", "bm"}
    assert all(len(z) == 2 for spectrum in numbers["spectra"].values() for z in spectrum)
    d = numbers["distances"]
    assert set(d) == {"omd|ogd", "ogd|bm", "omd|bm"}
    # The paper's claim: OMD and OGD are close, both far from BM (at least 20x).
    assert 20 * d["omd|ogd"] <= min(d["ogd|bm"], d["omd|bm"])
    assert numbers["controls"]["omd|ogd"]["p_value"] > numbers["controls"]["omd|bm"]["p_value"]
    for control in numbers["controls"].values():
        assert 0 < control["p_value"] <= 1
    # Every result file is valid and carries its own key as its name.
    for path in (workflow_dir / "results").glob("*/e1/*.h5"):
        assert summarize(path)["key"] == path.stem
    index = (workflow_dir / "results/index.tsv").read_text()
    for path in (workflow_dir / "results").glob("*/e1/*"):
        assert f"\t{path.relative_to(workflow_dir)}\t" in index

    assert planned_jobs(workflow_dir, "fig2") == collections.Counter()
    # Touching results changes only their mtime: nothing reruns.
    time.sleep(1.1)
    for path in (workflow_dir / "results").rglob("*"):
        if path.is_file():
            path.touch()
    assert planned_jobs(workflow_dir, "fig2") == collections.Counter()

    report = workflow_dir / "report.html"
    run_snakemake(workflow_dir, "fig2", "--report", str(report))
    html = report.read_text(errors="replace")
    assert "fig2_omd_ogd_bm.png" in html
    assert "are conjugate" in html  # the caption from workflow/report/fig2.rst


def test_loss_change_reruns_e1_and_revert_reuses_results(workflow_dir: Path) -> None:
    run_snakemake(workflow_dir, "all", "--configfile", "tests/tiny.yaml")
    quadratic = write_config(workflow_dir, "quadratic.yaml", loss="quadratic")
    assert planned_jobs(workflow_dir, "all", "--configfile", quadratic) == collections.Counter(
        {"train": 3, "fit": 3, "compare": 1, "plot_fig2": 1, "index": 1}
    )
    run_snakemake(workflow_dir, "all", "--configfile", quadratic)
    assert json.loads((workflow_dir / f"{FIG2}.json").read_text())["loss"] == "quadratic"
    # Reverting points the plan back at results that exist: no training, fitting or comparing.
    assert planned_jobs(workflow_dir, "all", "--configfile", "tests/tiny.yaml") == collections.Counter(
        {"plot_fig2": 1, "index": 1}
    )
    # A Koopman parameter reruns fits onwards, never training.
    (workflow_dir / "delays.yaml").write_text(
        (workflow_dir / "tests/tiny.yaml").read_text().replace("n_delays: 4", "n_delays: 3")
    )
    assert planned_jobs(workflow_dir, "all", "--configfile", "delays.yaml") == collections.Counter(
        {"fit": 3, "compare": 1, "plot_fig2": 1, "index": 1}
    )


def test_lint_reports_no_problems(workflow_dir: Path) -> None:
    proc = run_snakemake(workflow_dir, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout
    assert "Congratulations" in proc.stdout, proc.stdout


def test_rule_files_are_snakefmt_clean() -> None:
    proc = subprocess.run(
        [venv_exe("snakefmt"), "--check", "Snakefile", "rules"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_second_checkout_reuses_the_between_workflow_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    first, second = copy_workflow(tmp_path / "first"), copy_workflow(tmp_path / "second")
    args = ("all", "--cache", "--configfile", "tests/tiny.yaml")
    run_snakemake(first, *args, env=env)
    assert len(list((first / "logs/train/e1").glob("*.log"))) == 3
    out = run_snakemake(second, *args, env=env).stdout
    # No training or fitting job ran in the second checkout: their results came from the
    # cache (Snakemake links them in and leaves the jobs' logs empty).
    for stage in ("train", "fit"):
        results = sorted((second / "results" / stage / "e1").glob("*.h5"))
        assert len(results) == 3
        for path in results:
            assert f"output file results/{stage}/e1/{path.name} from cache" in out
            assert (second / "logs" / stage / "e1" / f"{path.stem}.log").read_text() == ""
    for path in (first / "results/train/e1").glob("*.h5"):
        twin = second / "results/train/e1" / path.name
        assert read_trajectory(twin).observables["state"].tobytes() == read_trajectory(path).observables["state"].tobytes()
    assert json.loads((second / f"{FIG2}.json").read_text())["distances"] == json.loads(
        (first / f"{FIG2}.json").read_text()
    )["distances"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"n_steps": -5}, "n_steps"),
        ({"loss": "cosine"}, "loss"),
        ({"eta": "fast"}, "eta"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_stops_before_any_job_and_names_the_field(
    workflow_dir: Path, override: dict, field: str
) -> None:
    name = write_config(workflow_dir, "bad.yaml", **override)
    proc = run_snakemake(workflow_dir, "all", "--configfile", name, check=False)
    assert proc.returncode != 0
    assert field in proc.stdout
    assert not (workflow_dir / "results").exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"widths": [5, "wide"]}, "widths"),
        ({"train": {"activation": "tanh"}}, "activation"),
        ({"train": {"lr": -0.1}}, "lr"),
        ({"reference_width": 64}, "reference_width"),
    ],
)
def test_bad_e2_config_names_the_field(workflow_dir: Path, override: dict, field: str) -> None:
    config = yaml.safe_load((workflow_dir / "tests/tiny.yaml").read_text())
    for key, value in override.items():
        if isinstance(value, dict):
            config["e2"][key].update(value)
        else:
            config["e2"][key] = value
    (workflow_dir / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workflow_dir, "all", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert field in proc.stdout
    assert not (workflow_dir / "results").exists()


def test_delays_longer_than_the_trajectory_are_refused(workflow_dir: Path) -> None:
    (workflow_dir / "bad.yaml").write_text(
        (workflow_dir / "tests/tiny.yaml").read_text().replace("n_delays: 4", "n_delays: 39")
    )
    proc = run_snakemake(workflow_dir, "all", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "e1.koopman.n_delays=39" in proc.stdout
    assert not (workflow_dir / "results").exists()


def _training_pids(workdir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(workdir) and any(part.endswith(b"equivdyn") for part in cmdline[:2]) and b"train" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_killed_training_job_reruns_to_a_complete_valid_result(workflow_dir: Path) -> None:
    # A large E1 grid makes the trajectory write take seconds, so the kill lands mid-write.
    name = write_config(workflow_dir, "big.yaml", dim=3, grid_size=12, n_steps=4000)
    out_dir = workflow_dir / "results/train/e1"
    snake = subprocess.Popen(
        [snakemake_exe(), "--cores", "1", "all", "--until", "train", "--configfile", name],
        cwd=workflow_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and snake.poll() is None:
        parts = list(out_dir.glob(".*.part")) if out_dir.exists() else []
        pids = _training_pids(workflow_dir)
        if parts and pids:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    snake.wait(timeout=120)
    assert killed, "the training job finished before it could be killed"
    assert snake.returncode != 0
    assert not list(out_dir.glob("*.h5")), "a killed job left a result behind"

    run_snakemake(workflow_dir, "all", "--until", "train", "--configfile", name)
    assert len(list(out_dir.glob("*.h5"))) == 3
    for path in out_dir.glob("*.h5"):
        traj = read_trajectory(path)
        assert traj.key == path.stem
        assert traj.observables["state"].shape == (12**3, 4000, 3)


def write_e2_config(workdir: Path, name: str, **e2: object) -> str:
    config = yaml.safe_load((workdir / "tests/tiny.yaml").read_text())
    config["e2"].update(e2)
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def test_e2_figures_and_adding_a_width_trains_only_that_width(workflow_dir: Path) -> None:
    run_snakemake(workflow_dir, "fig3", "figS_fcn_seeds", "--configfile", "tests/tiny.yaml")
    numbers = json.loads((workflow_dir / "results/figures/fig3_fcn_width.json").read_text())
    assert numbers["widths"] == [5, 10] and numbers["seeds"] == [0, 1]
    assert set(numbers["distances"]) == {"5|10"} and len(numbers["distances"]["5|10"]) == 2
    assert len(numbers["between_seeds"]["10"]) == 1
    assert 0 < numbers["permutation_tests"]["5|10"]["p_value"] <= 1
    assert len(numbers["spectra"]["h5"]["s0"]) == 4  # rank 4 in tests/tiny.yaml
    appendix = json.loads((workflow_dir / "results/figures/figS_fcn_seeds.json").read_text())
    assert appendix["between_seeds"] == numbers["between_seeds"]
    for path in (workflow_dir / "results/train/e2").glob("*.h5"):
        traj = read_trajectory(path)
        assert traj.observables["output_weights"].shape[:2] == (3, 60)
        assert traj.params["inputs"]["mnist"] == path_key_of_mnist(workflow_dir)

    wider = write_e2_config(workflow_dir, "wider.yaml", widths=[5, 10, 20])
    # Only the new width trains and fits (2 seeds); comparison, figures and index follow.
    assert planned_jobs(workflow_dir, "fig3", "figS_fcn_seeds", "--configfile", wider) == collections.Counter(
        {"train": 2, "fit": 2, "compare": 1, "plot_fig3": 1, "plot_figS_fcn_seeds": 1, "index": 1}
    )


def path_key_of_mnist(workdir: Path) -> str:
    (npz,) = (workdir / "results/data/mnist").glob("*.npz")
    return npz.stem


def test_corrupted_mnist_stops_before_training(workflow_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    with np.load(workflow_dir.parent / "shared/data/mnist.npz") as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["x_train"][0, 0, 0] ^= 1
    bad = tmp_path / "mnist_bad.npz"
    np.savez(bad, **arrays)
    config = yaml.safe_load((workflow_dir / "tests/tiny.yaml").read_text())
    config["data"]["mnist"] = str(bad)
    (workflow_dir / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workflow_dir, "fig3", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    log = (workflow_dir / "logs/data/mnist.log").read_text()
    assert "array x_train has SHA-256" in log and "Traceback" not in log
    assert not (workflow_dir / "results/train/e2").exists()
    assert not list((workflow_dir / "results/data").rglob("*.npz"))


def test_missing_mnist_file_is_named(workflow_dir: Path) -> None:
    config = yaml.safe_load((workflow_dir / "tests/tiny.yaml").read_text())
    config["data"]["mnist"] = "no/such/mnist.npz"
    (workflow_dir / "missing.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workflow_dir, "fig3", "--configfile", "missing.yaml", check=False)
    assert proc.returncode != 0
    assert "no/such/mnist.npz" in proc.stdout
    assert not (workflow_dir / "results").exists()


def test_e4_figure_and_koopman_change_reruns_no_training(workflow_dir: Path) -> None:
    run_snakemake(workflow_dir, "fig5", "--configfile", "tests/tiny.yaml")
    numbers = json.loads((workflow_dir / "results/figures/fig5_grokking.json").read_text())
    assert numbers["seeds"] == [0, 1]
    assert len(numbers["distances"]["grokking|constrained"]) == 2
    assert {k: len(v) for k, v in numbers["within"].items()} == {"grokking": 1, "constrained": 1}
    assert 0 < numbers["permutation_test"]["p_value"] <= 1
    for setup in ("grokking", "constrained"):
        run = numbers["long_runs"][setup]
        assert run["steps"][-1] == 200 and len(run["steps"]) == len(run["test_accuracy"])
    for path in (workflow_dir / "results/train/e4").glob("*.h5"):
        assert read_trajectory(path).observables["mlp_out"].shape == (3, 30, 16 * 32)

    config = yaml.safe_load((workflow_dir / "tests/tiny.yaml").read_text())
    config["e4"]["koopman"]["n_delays"] = 5
    (workflow_dir / "delays.yaml").write_text(yaml.safe_dump(config))
    assert planned_jobs(workflow_dir, "fig5", "--configfile", "delays.yaml") == collections.Counter(
        {"fit": 4, "compare": 1, "plot_fig5": 1, "index": 1}
    )
