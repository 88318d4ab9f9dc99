"""Shared fixtures: paths from __file__, a scratch copy of the workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "workflow", "profiles", "envs", "tests/tiny.yaml")


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not its results) into ``dest`` and return it.

    ``shared/`` (real MNIST) is linked beside the copy, as it lies beside the checkout,
    so the configs' relative data paths hold there too.
    """
    shared = dest.parent / "shared"
    if not shared.exists():
        shared.symlink_to(ROOT.parent / "shared")
    for name in WORKFLOW_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    return dest


def venv_exe(name: str) -> str:
    """Path of a console script installed beside the running Python."""
    return str(Path(sys.executable).with_name(name))


def snakemake_exe() -> str:
    return venv_exe("snakemake")


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake in ``workdir``; returns the completed process (stdout+stderr in .stdout)."""
    proc = subprocess.run(
        [snakemake_exe(), "--cores", "2", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    return proc


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")
