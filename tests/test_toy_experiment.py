"""Adding an experiment is one package plus its tests: a toy experiment defined in
tests/toy_experiment (SYNTHETIC dynamics) runs through the unchanged workflow.

It is registered from the tests (config ``plugins``; the package is found on PYTHONPATH),
not from any workflow file, and goes through plan -> train -> fit -> compare -> figure ->
report with the rerun guarantees of the paper's experiments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, WORKFLOW_FILES, copy_workflow, jobs_from_output, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

TOY = ROOT / "tests/toy_experiment"


def _config(workdir: Path, **toy: object) -> str:
    """The tiny config with the toy experiment added; returns its file name."""
    config = yaml.safe_load((ROOT / "tests/tiny.yaml").read_text())
    config["plugins"] = ["toy_experiment"]
    config["toy"] = {"seeds": [0, 1, 2, 3], **toy}
    name = f"toy-{len(list(workdir.glob('toy-*.yaml')))}.yaml"
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def toy_jobs(workdir: Path, config: str, env: dict[str, str]) -> dict[str, int]:
    """Jobs that `snakemake toy_fig -n` plans (its own target rule left out)."""
    jobs = planned_jobs(workdir, "toy_fig", "--configfile", config, env=env)
    jobs.pop("toy_fig", None)
    return dict(jobs)


@pytest.fixture(scope="module")
def toy_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}


def test_the_toy_experiment_needs_its_package_only() -> None:
    files = sorted(p.name for p in TOY.iterdir() if p.is_file())
    assert files == ["__init__.py", "toy.rst", "toy_json.rst"]
    # No workflow file names it: the workflow loops over the registry.
    for name in WORKFLOW_FILES:
        path = ROOT / name
        for f in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
            if f.suffix in (".smk", ".yaml", ".rst", "") and f.name != "tiny.yaml":
                assert "toy" not in f.read_text(errors="replace"), f


def test_toy_experiment_through_the_workflow_and_report(tmp_path: Path, toy_env: dict[str, str]) -> None:
    workdir = copy_workflow(tmp_path / "wf")
    config = _config(workdir)
    # Its target exists and plans only its own jobs (and the index).
    assert toy_jobs(workdir, config, toy_env) == {
        "train": 8, "fit": 8, "compare": 1, "plot": 1, "index": 1
    }
    out = run_snakemake(workdir, "toy_fig", "--configfile", config, env=toy_env).stdout
    ran = jobs_from_output(out)
    ran.pop("toy_fig", None)
    assert ran == {"train": 8, "fit": 8, "compare": 1, "plot": 1, "index": 1}
    numbers = json.loads((workdir / "results/figures/toy_spectra.json").read_text())
    verdict = numbers["verdicts"]["a|b"]
    assert verdict["n_seeds"] == [4, 4] and not verdict["non_conjugate"]  # same angle: conjugate
    assert "no evidence of a difference" in numbers["title"]
    for row in (workdir / "results/index.tsv").read_text().splitlines()[1:]:
        if "\ttoy\t" in row:
            assert row.split("\t")[3].startswith(("results/train/toy/", "results/fit/toy/", "results/compare/toy/"))

    # Rerun guarantees: nothing to do again; a Koopman change refits, a setup change retrains b only.
    assert toy_jobs(workdir, config, toy_env) == {}
    refit = _config(workdir, rank=1)
    assert toy_jobs(workdir, refit, toy_env) == {
        "fit": 8, "compare": 1, "plot": 1, "index": 1
    }
    other = _config(workdir, angle_b=0.6)
    assert toy_jobs(workdir, other, toy_env) == {
        "train": 4, "fit": 4, "compare": 1, "plot": 1, "index": 1
    }
    out = run_snakemake(workdir, "toy_fig", "--configfile", other, env=toy_env).stdout
    numbers = json.loads((workdir / "results/figures/toy_spectra.json").read_text())
    assert numbers["verdicts"]["a|b"]["non_conjugate"], numbers["title"]  # different angles: not conjugate

    # The report holds the toy figure with its caption.
    run_snakemake(workdir, "toy_fig", "--configfile", other, "--report", "report.html", env=toy_env)
    html = (workdir / "report.html").read_text()
    assert "toy_spectra.png" in html and "Toy: rotations (SYNTHETIC)" in html


def test_a_bad_toy_section_is_named(tmp_path: Path, toy_env: dict[str, str]) -> None:
    """The plugin's section is checked by its settings, as the schema checks the built-in ones."""
    workdir = copy_workflow(tmp_path / "wf")
    for toy, message in (({"rank": 0}, "toy.rank: must be >= 1, got 0"), ({"colour": 1}, "toy: unknown key(s) colour")):
        out = run_snakemake(workdir, "toy_fig", "-n", "--configfile", _config(workdir, **toy), check=False, env=toy_env)
        assert out.returncode != 0 and message in out.stdout, out.stdout[-2000:]


def test_a_plugin_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wf")
    config = _config(workdir)
    out = run_snakemake(workdir, "toy_fig", "-n", "--configfile", config, check=False).stdout
    assert "plugins: cannot import the experiment module 'toy_experiment'" in out, out[-2000:]
