"""A newcomer's first run without the datasets: `snakemake all` on a machine that cannot
download MNIST or CIFAR-10 builds every figure that needs neither, and ends with one clear
message per missing dataset in the terminal (what is missing, which figures it stops, where
to put a copy, how to name it in the config, the option that drops the panels needing it).
Nothing half-made is left: no empty folder, no partial file. The same for `snakemake fig3`.

Downloads fail here on purpose, whatever the machine's network: the jobs' HTTP(S) proxy is
a closed local port. The configuration is tests/tiny.yaml without its data paths.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import (
    copy_workflow,
    inspect_results,
    plan_of,
    run_snakemake,
    tiny_config,
    write_tiny_config,
)

pytestmark = pytest.mark.slow

NO_DATA = {"data.mnist": None, "data.cifar10": None}
#: Figure targets that need a dataset, by the message's name of it.
NEEDS = {"MNIST": {"fig3", "figS_fcn_seeds", "fig4", "figS_cnn_epochs"}, "CIFAR-10": {"fig4", "figS_cnn_epochs"}}


def offline_env() -> dict[str, str]:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    return {**env, "http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed}


def missing_message(out: str, dataset: str) -> str:
    """The block the workflow prints for a missing ``dataset``; asserts there is exactly one."""
    head = f"*** {dataset} is missing"
    assert out.count(head) == 1, out[-6000:]
    return out[out.index(head) :].split("\n\n")[0]


def empty_folders(workdir: Path) -> list[str]:
    """Empty folders outside Snakemake's own bookkeeping (.snakemake/)."""
    return sorted(
        str(Path(d).relative_to(workdir))
        for d, subdirs, files in os.walk(workdir)
        if not subdirs and not files and ".snakemake" not in Path(d).relative_to(workdir).parts
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str], str]:
    workdir = copy_workflow(tmp_path_factory.mktemp("offline") / "wf")
    config = write_tiny_config(workdir, "offline.yaml", NO_DATA)
    proc = run_snakemake(workdir, "all", "--configfile", config, check=False, env=offline_env())
    return workdir, proc, config


def test_all_builds_the_figures_that_need_no_data(offline) -> None:
    workdir, proc, _ = offline
    assert proc.returncode != 0, proc.stdout[-3000:]
    figures = plan_of(tiny_config(NO_DATA)).figures.values()
    needing = set().union(*NEEDS.values())
    built = {fig.target for fig in figures if all((workdir / f).exists() for f in fig.files())}
    assert {"fig2", "fig5"} <= built
    assert built == {fig.target for fig in figures} - needing, proc.stdout[-3000:]
    for fig in figures:
        if fig.target in needing:
            assert not any((workdir / f).exists() for f in fig.files()), fig.target
    assert (workdir / "results/index.tsv").exists()
    inspect_results(workdir)  # every result that is there is whole and verifies


def test_the_terminal_names_each_missing_dataset_with_its_remedy(offline) -> None:
    _, proc, _ = offline
    out = proc.stdout
    mnist = missing_message(out, "MNIST")
    for text in ("could not download MNIST", "data.mnist", "data/mnist.npz", "`e3: {networks: [resnet20]}`"):
        assert text in mnist, mnist
    cifar = missing_message(out, "CIFAR-10")
    for text in ("could not download CIFAR-10", "data.cifar10", "data/cifar-10-python.tar.gz", "`e3: {networks: [lenet]}`"):
        assert text in cifar, cifar
    for dataset, block in (("MNIST", mnist), ("CIFAR-10", cifar)):
        named = block.split("needed by ")[1].split(" (log:")[0].split(", ")
        assert set(named) == NEEDS[dataset], block
    # the messages close the run: nothing but Snakemake's own closing lines after them
    assert out.rindex("*** ") > out.rindex("Error in rule"), out[-3000:]


def test_nothing_half_made_is_left(offline) -> None:
    workdir, _, _ = offline
    assert not (workdir / "data").exists()  # no download folder left empty
    assert empty_folders(workdir) == []
    assert not list((workdir / "results").rglob("*.tmp*")), "a temporary file was left"


def test_a_single_target_without_mnist(offline) -> None:
    workdir, _, config = offline
    before = sorted(p for p in (workdir / "results").rglob("*") if p.is_file())
    proc = run_snakemake(workdir, "fig3", "--configfile", config, check=False, env=offline_env())
    assert proc.returncode != 0
    block = missing_message(proc.stdout, "MNIST")
    assert "fig3" in block and "data/mnist.npz" in block
    assert "*** CIFAR-10 is missing" not in proc.stdout
    assert sorted(p for p in (workdir / "results").rglob("*") if p.is_file()) == before
    assert not (workdir / "data").exists()
    assert empty_folders(workdir) == []


def test_the_report_holds_what_was_built(offline) -> None:
    workdir, _, config = offline
    proc = run_snakemake(workdir, "all", "--configfile", config, "--report", "report.html")
    assert "Figures not built, left out of the report" in proc.stdout
    page = (workdir / "report.html").read_text()
    assert "fig2_omd_ogd_bm.png" in page and "fig5_grokking.png" in page
    assert "fig3_fcn_width.png" not in page
