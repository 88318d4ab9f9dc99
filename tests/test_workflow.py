"""End-to-end tests of the Snakemake workflow: what each figure holds, data errors, lint.

The figures of tests/tiny.yaml are read from the shared tiny build (``tiny_built`` in
conftest.py); the workflow's guarantees (what reruns when, the between-workflow cache,
crashes, concurrent runs, bad configs) are in test_guarantees.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from equivdyn.data.mnist import DATASET_KEY as MNIST_KEY
from equivdyn.store import read_trajectory, summarize

from .conftest import (
    ROOT,
    BuiltWorkflow,
    assert_verdicts,
    planned_jobs,
    run_snakemake,
    tiny_config,
    venv_exe,
    write_tiny_config,
)

pytestmark = pytest.mark.slow

FIG2 = "results/figures/fig2_omd_ogd_bm"


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
    assert planned_jobs(workflow_dir, "fig2") == {}


def test_every_result_is_indexed_and_named_by_its_key(tiny_built: BuiltWorkflow) -> None:
    rows = [line.split("\t") for line in (tiny_built.dir / "results/index.tsv").read_text().splitlines()[1:]]
    indexed = {path for _, _, _, path, _ in rows}
    results = {
        str(p.relative_to(tiny_built.dir))
        for stage in ("data", "train", "fit", "compare", "distances")
        for p in (tiny_built.dir / "results" / stage).rglob("*")
        if p.is_file()
    }
    assert results == indexed
    for path in (tiny_built.dir / "results").rglob("*.h5"):
        assert summarize(path)["key"] == path.stem


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


def test_e2_figures_hold_every_width_and_seed(tiny_built: BuiltWorkflow) -> None:
    workdir = tiny_built.dir
    numbers = json.loads((workdir / "results/figures/fig3_fcn_width.json").read_text())
    assert numbers["widths"] == [5, 10] and numbers["seeds"] == [0, 1]
    assert set(numbers["distances"]) == {"5|10"} and len(numbers["distances"]["5|10"]) == 2
    assert len(numbers["between_seeds"]["10"]) == 1
    assert 0 < numbers["permutation_tests"]["5|10"]["p_value"] <= 1
    assert len(numbers["spectra"]["h5"]["s0"]) == 4  # rank 4 in tests/tiny.yaml
    appendix = json.loads((workdir / "results/figures/figS_fcn_seeds.json").read_text())
    assert appendix["between_seeds"] == numbers["between_seeds"]
    (mnist,) = (workdir / "results/data/mnist").glob("*.npz")
    for path in (workdir / "results/train/e2").glob("*.h5"):
        traj = read_trajectory(path)
        assert traj.observables["output_weights"].shape[:2] == (3, 60)
        assert traj.params["inputs"]["mnist"] == mnist.stem


def test_e4_figure_holds_both_setups_and_the_long_runs(tiny_built: BuiltWorkflow) -> None:
    workdir = tiny_built.dir
    numbers = json.loads((workdir / "results/figures/fig5_grokking.json").read_text())
    assert numbers["seeds"] == [0, 1]
    assert len(numbers["distances"]["grokking|constrained"]) == 2
    assert {k: len(v) for k, v in numbers["within"].items()} == {"grokking": 1, "constrained": 1}
    assert 0 < numbers["permutation_test"]["p_value"] <= 1
    for setup in ("grokking", "constrained"):
        run = numbers["long_runs"][setup]
        assert run["steps"][-1] == 200 and len(run["steps"]) == len(run["test_accuracy"])
    kinds = []
    for path in (workdir / "results/train/e4").glob("*.h5"):
        traj = read_trajectory(path)
        kinds.append(traj.params["params"]["kind"])
        if kinds[-1] == "ensemble":
            assert traj.observables["mlp_out"].shape == (3, 30, 16 * 32)
        else:  # a long run: initialisation 0, its parameter norm at the logged steps
            assert traj.observables["param_norm"].shape == (1, traj.steps.size, 1) and traj.steps[-1] == 200
    assert sorted(kinds) == ["ensemble"] * 4 + ["long"] * 2


def test_every_figure_states_its_calibrated_verdicts(tiny_built: BuiltWorkflow) -> None:
    """Each comparison a figure makes carries its verdict in the JSON (in full) and in the title."""
    config = tiny_config()
    figures = tiny_built.dir / "results/figures"

    def numbers(name: str) -> dict:
        return json.loads((figures / f"{name}.json").read_text())

    # E1: one file per method, its grid rows as pseudo-seeds.
    fig2 = numbers("fig2_omd_ogd_bm")
    grid = config["e1"]["train"]["grid_size"]
    assert_verdicts(fig2["verdicts"], fig2["title"], {"omd|ogd": grid, "omd|bm": grid})
    assert f"cut into {grid} consecutive groups" in fig2["verdict_pseudo_seeds"]
    assert "not a calibrated test" in fig2["controls_are"]
    assert "randomisation control" in fig2["title"]
    # E2: widths as setups, the configured seeds as seeds.
    n_e2 = len(config["e2"]["seeds"])
    fig3 = numbers("fig3_fcn_width")
    assert_verdicts(fig3["verdicts"], fig3["title"], {"5|10": n_e2})
    appendix = numbers("figS_fcn_seeds")
    assert_verdicts(appendix["verdicts"], appendix["title"], {"5|10": n_e2})
    assert appendix["verdicts"] == fig3["verdicts"]
    # E4: grokking vs constrained across seeds.
    fig5 = numbers("fig5_grokking")
    assert_verdicts(fig5["verdicts"], fig5["title"], {"grokking|constrained": len(config["e4"]["seeds"])})
    assert "not a calibrated test" in fig5["randomization_control_is"]
    # E3: first vs last window (Fig. 4) and epoch (appendix) of each network across seeds.
    n_e3 = len(config["e3"]["seeds"])
    for name, verdict in (("fig4_cnn_early", "window_00|window_02"), ("figS_cnn_epochs", "epoch_00|epoch_01")):
        e3 = numbers(name)
        for network in config["e3"]["networks"]:
            assert_verdicts(e3[network]["verdicts"], e3["title"], {verdict: n_e3})
    # The comparisons' own results hold the same verdicts.
    for path in (tiny_built.dir / "results/compare").rglob("*.json"):
        result = json.loads(path.read_text())
        experiment = result["spec"]["experiment"]
        figure = {"e1": fig2, "e2": fig3, "e4": fig5}[experiment]
        assert result["verdicts"] == figure["verdicts"], experiment


def test_corrupted_mnist_stops_before_training(workflow_dir: Path, tmp_path: Path) -> None:
    with np.load(workflow_dir.parent / "shared/data/mnist.npz") as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["x_train"][0, 0, 0] ^= 1
    bad = tmp_path / "mnist_bad.npz"
    np.savez(bad, **arrays)
    name = write_tiny_config(workflow_dir, "bad.yaml", {"data.mnist": str(bad)})
    proc = run_snakemake(workflow_dir, "fig3", "--configfile", name, check=False)
    assert proc.returncode != 0
    log = (workflow_dir / "logs/data/mnist.log").read_text()
    assert "array x_train has SHA-256" in log and "Traceback" not in log
    assert not (workflow_dir / "results/train/e2").exists()
    assert not list((workflow_dir / "results/data").rglob("*.npz"))


def test_missing_mnist_file_is_named(workflow_dir: Path) -> None:
    name = write_tiny_config(workflow_dir, "missing.yaml", {"data.mnist": "no/such/mnist.npz"})
    proc = run_snakemake(workflow_dir, "fig3", "--configfile", name, check=False)
    assert proc.returncode != 0
    assert "no/such/mnist.npz" in proc.stdout
    assert not (workflow_dir / "results").exists()


def test_a_data_path_starting_with_a_dash_is_read(workflow_dir: Path) -> None:
    # The probe: such a path passed validation and then broke the data job's command line.
    (workflow_dir / "-mnist.npz").symlink_to(workflow_dir.parent / "shared/data/mnist.npz")
    name = write_tiny_config(workflow_dir, "dash.yaml", {"data.mnist": "-mnist.npz"})
    prepared = f"results/data/mnist/{MNIST_KEY}.npz"
    run_snakemake(workflow_dir, prepared, "--configfile", name)
    assert "reading the configured copy -mnist.npz" in (workflow_dir / "logs/data/mnist.log").read_text()
    assert (workflow_dir / prepared).is_file()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"e1.train.loss": "cosine"}, "['e1']['train']['loss']"),
        ({"e2.reference_width": 64}, "e2.reference_width=64"),
        # The probe: braces gave a Snakemake wildcard error that did not name the field.
        ({"data.mnist": "data/{mnist}.npz"}, "data.mnist='data/{mnist}.npz': a path with '{' or '}'"),
        ({"data.cifar10": "cifar}.tar.gz"}, "data.cifar10='cifar}.tar.gz'"),
    ],
)
def test_a_bad_config_in_a_fresh_checkout_creates_no_results(workflow_dir: Path, override: dict, field: str) -> None:
    """The bad configs of test_guarantees.py run on a built workflow; here on a fresh one."""
    name = write_tiny_config(workflow_dir, "bad.yaml", override)
    proc = run_snakemake(workflow_dir, "all", "--configfile", name, check=False)
    assert proc.returncode != 0
    assert field in proc.stdout
    assert not (workflow_dir / "results").exists()


def test_the_terminal_has_no_huge_lines(tiny_built: BuiltWorkflow) -> None:
    """No job prints a multi-kilobyte command line, parameter or reason: the plan reaches the
    index job in a file and commands are not echoed. Longer lines are Snakemake's own lists
    of a job's input files (`input:`, and the reasons that list changed or missing files)."""
    listing = re.compile(r"\s+(input: |reason: (Missing output files|Input files updated by another job): )")
    long = [line[:200] for line in tiny_built.output.splitlines() if len(line) > 1000 and not listing.match(line)]
    assert long == []
    # a changed plan reruns the index, and says so in one short line
    config = write_tiny_config(tiny_built.dir, "quiet.yaml", {"e1.train.loss": "quadratic"})
    out = run_snakemake(tiny_built.dir, "index", "--configfile", config, "-n").stdout
    (reason,) = [line for line in out.splitlines() if "Params have changed" in line]
    assert len(reason) < 300, reason
