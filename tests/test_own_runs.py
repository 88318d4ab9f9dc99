"""Your own runs, end to end: examples/own_runs.py through the three routes a researcher
takes — the Python API (the example itself), the command line (`equivdyn compare`, `equivdyn
fit`) and the workflow (`snakemake custom`) — on real MNIST.

Known answers the example's setups give: a tenfold learning rate (SGD 0.1 vs 0.01) changes
the linearised training dynamics' eigenvalues (about 1 - lr * curvature), so those setups
are not conjugate; two groups of seeds of one setup are.  SGD vs Adam and lr 0.1 vs 0.05
have no known answer here; their verdicts are printed, not asserted.  Training is
bit-identical on the CPU, so the three routes must give the very same verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from equivdyn import compare_runs
from equivdyn._io import read_json_result
from equivdyn.cli import main

from .conftest import ROOT, SHARED_MNIST, copy_workflow, planned_jobs, run_snakemake

EXAMPLE = ROOT / "examples/own_runs.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The example run as a user runs it (the Python API route): its folder of runs and its output."""
    out = tmp_path_factory.mktemp("own") / "runs"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out), "--mnist", str(SHARED_MNIST)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_the_example_records_every_run_and_answers_each_question(runs: tuple[Path, str]) -> None:
    out, printed = runs
    print(printed)
    assert "recorded 30 runs" in printed
    for setup, n in {"sgd_lr0.1": 12, "sgd_lr0.05": 6, "sgd_lr0.01": 6, "adam_lr0.001": 6}.items():
        assert {p.name for p in (out / setup).iterdir()} == {f"s{s}.h5" for s in range(n)}
    answers = dict(block.split(":\n", 1) for block in printed.strip().split("\n\n")[1:])
    assert len(answers) == 4
    slow = next(v for q, v in answers.items() if q.startswith("SGD lr 0.1 vs lr 0.01"))
    same = next(v for q, v in answers.items() if "(same setup)" in q)
    assert "NOT CONJUGATE" in slow
    assert "No evidence of non-conjugacy" in same and "not proof of equivalence" in same
    for answer in answers.values():
        assert "equivalent." not in answer  # never called equivalent


def test_the_command_line_gives_the_api_verdict(runs: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = runs
    a = sorted(str(p) for p in (out / "sgd_lr0.1").glob("s[0-5].h5"))
    api = compare_runs(a, sorted(str(p) for p in (out / "sgd_lr0.01").glob("*.h5")))
    verdict, plot = tmp_path / "v.json", tmp_path / "v.png"
    # a glob the shell did not expand, and a folder
    status = main(["compare", str(out / "sgd_lr0.1" / "s[0-5].h5"), "--vs", str(out / "sgd_lr0.01"),
                   "--json", str(verdict), "--plot", str(plot), "--label-a", "lr 0.1", "--label-b", "lr 0.01"])
    assert status == 0
    printed = capsys.readouterr().out
    assert printed.strip() == api.summary()
    result = read_json_result(verdict)
    assert result["p_value"] == api.p_value and result["non_conjugate"] is True
    assert result["files_a"] == a and len(result["files_b"]) == 6
    assert plot.stat().st_size > 10_000

    fit = tmp_path / "fit.json"
    assert main(["fit", a[0], "--json", str(fit)]) == 0
    text = capsys.readouterr().out
    assert "principal modes" in text and "[M, T, D]" not in text
    spectrum = read_json_result(fit)
    assert spectrum["shape"] == [5, 101, 330] and len(spectrum["modes"]) == spectrum["settings"]["n_modes"] >= 2


def test_bad_command_lines_get_one_line_naming_the_problem(runs: tuple[Path, str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = runs
    cases = [
        (["compare", str(out / "sgd_lr0.1")], "name both setups' files"),
        (["compare", str(out / "nothing*.h5"), "--vs", str(out / "sgd_lr0.01")], "no file matches"),
        (["compare", str(tmp_path), "--vs", str(out / "sgd_lr0.01")], "holds no .h5 file"),
        (["compare", str(out / "sgd_lr0.1"), "--vs", str(out / "sgd_lr0.01"), "--observable", "fc1"], "no observable 'fc1'"),
        (["compare", str(out / "sgd_lr0.1"), "--vs", str(out / "sgd_lr0.01"), "--out", "x.json"], "--out: only for the workflow form"),
        (["fit"], "name a trajectory file"),
        (["fit", str(tmp_path / "missing.h5")], "does not exist"),
        (["compare", "--vs"], "expected at least one argument"),
    ]
    for argv, message in cases:
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's own errors
            status = exc.code
        assert status == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (argv, err)


def custom_jobs(workdir: Path) -> dict[str, int]:
    """Jobs that `snakemake custom -n` plans (its own target rule left out)."""
    jobs = planned_jobs(workdir, "custom", "--configfile", "own.yaml")
    jobs.pop("custom", None)
    return dict(jobs)


@pytest.mark.slow
def test_snakemake_custom_gives_the_same_verdict_and_reruns_what_changed(runs: tuple[Path, str], tmp_path: Path) -> None:
    """`snakemake custom`: one setup from files (a glob), one from the example as a command;
    the command's runs are bit-identical to the API's, so the verdict is the CLI's."""
    out, _ = runs
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "own_runs.py").write_text(EXAMPLE.read_text())
    config = {
        "custom": {
            "setups": {
                "lr0.1": {"files": [str(out / "sgd_lr0.1" / "s[0-3].h5")]},
                "lr0.01": {
                    "command": f"{sys.executable} own_runs.py --setup sgd_lr0.01 --seed {{seed}} --file {{out}} "
                    f"--mnist {SHARED_MNIST}",
                    "depends": ["own_runs.py"],
                },
            }
        }
    }
    (workdir / "own.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert custom_jobs(workdir) == {
        "train": 8, "compare": 1, "plot": 1, "index": 1
    }
    run_snakemake(workdir, "custom", "--configfile", "own.yaml")
    numbers = json.loads((workdir / "results/figures/custom_verdicts.json").read_text())
    (comparison,) = numbers["comparisons"]
    a = sorted(str(p) for p in (out / "sgd_lr0.1").glob("s[0-3].h5"))
    cli = compare_runs(a, sorted(str(p) for p in (out / "sgd_lr0.01").glob("s[0-3].h5")))
    assert (comparison["a"], comparison["b"]) == ("lr0.1", "lr0.01")
    assert comparison["p_value"] == cli.p_value and comparison["verdict"]["distance"] == cli.distance

    # Nothing to do again; touching a file changes no content, so nothing reruns either.
    assert custom_jobs(workdir) == {}
    (out / "sgd_lr0.1" / "s0.h5").touch()
    assert custom_jobs(workdir) == {}
    # A change of the command's script reruns its four runs and what depends on them.
    with open(workdir / "own_runs.py", "a") as handle:
        handle.write("# changed\n")
    assert custom_jobs(workdir) == {
        "train": 4, "compare": 1, "plot": 1, "index": 1
    }


def test_every_subcommand_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    from equivdyn.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"compare", "fit", "inspect", "verify"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "\nexample:\n  equivdyn " + name in text, name
        workflow_only = name in ("train", "data", "distances", "plot", "key", "index")
        assert ("[workflow]" in text) == (workflow_only or name in ("fit", "compare")), name
