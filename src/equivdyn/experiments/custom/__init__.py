"""Your own training runs in the workflow: the ``custom`` section (``snakemake custom``).

Each setup is a list of trajectory files (one per seed; globs allowed) or a command that
trains one seed and writes its file.  Per seed, one training job brings the run into
``results/train/custom/``: a file setup's job copies the file after checking it (its key
is the SHA-256 of the file's bytes, so the same content has the same key wherever it
lies, and a changed file reruns what depends on it); a command setup's job runs the
command (its key covers the command, the seed and the content of the files it
``depends`` on).  One comparison job gives the calibrated verdict of every requested pair
of setups, and the figure ``custom_verdicts`` draws the principal spectra of both
setups of each pair with its verdict.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import EquivdynError, ParameterError
from ...plan import Plan, traj_input, verdict
from ...stages import pair_name
from ...store import Trajectory
from .. import Experiment, register
from .settings import CustomSettings, resolve_setups

#: Lines of a failed command's output repeated in the error.
_TAIL_LINES = 20


def setup_files(setup: str, patterns: list[str]) -> list[Path]:
    """The files of a file setup: each pattern's matches, sorted, in the order of the patterns."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if set("*?[") & set(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise ParameterError(f"custom.setups.{setup}.files: no file matches {pattern!r}")
        for m in matches:
            if "{" in m or "}" in m:
                raise ParameterError(
                    f"custom.setups.{setup}.files: {m!r}: a path with '{{' or '}}' cannot be an input "
                    "(Snakemake reads braces as wildcards); rename or link the file"
                )
        found.extend(Path(m) for m in matches)
    if len(set(found)) != len(found):
        raise ParameterError(f"custom.setups.{setup}.files: a file is named twice")
    if len(found) < 2:
        raise ParameterError(
            f"custom.setups.{setup}.files: {len(found)} file; the verdict needs at least 2 seeds per setup "
            "(4 to reach p < 0.05)"
        )
    return found


def _digest(path: Path) -> str:
    from ...data._common import file_digest

    return file_digest(path, "sha256")


def run_name(setup: str, index: int) -> str:
    """Name of a setup's ``index``-th run (seed) in the comparison's inputs."""
    return f"{setup}_{index}"


class Custom(Experiment):
    name = "custom"
    train_version = 1
    figures = {"custom_verdicts": f"{__name__}.fig:draw"}
    settings = CustomSettings

    def plan(self, plan: Plan, section: Mapping[str, Any]) -> None:
        setups = resolve_setups(section.get("setups", {}), "custom.setups")
        if not setups:
            return  # no runs of your own in this configuration
        pairs = section["pairs"]
        if pairs is None:
            pairs = [list(p) for p in itertools.combinations(setups, 2)]
        for i, (a, b) in enumerate(pairs):
            for name in (a, b):
                if name not in setups:
                    raise ParameterError(f"custom.pairs[{i}]: unknown setup {name!r}; the setups are {', '.join(setups)}")
            if a == b:
                raise ParameterError(f"custom.pairs[{i}]: compares {a!r} with itself")
            if [a, b] in pairs[:i] or [b, a] in pairs[:i]:
                raise ParameterError(f"custom.pairs[{i}]: {a!r} and {b!r} are compared twice")
        runs: dict[str, list[str]] = {}
        described: dict[str, str] = {}
        for name, setup in setups.items():
            if setup["files"] is not None:
                files = setup_files(name, setup["files"])
                runs[name] = []
                for path in files:
                    digest = _digest(path)
                    source = plan.source(self.name, path, digest)
                    runs[name].append(plan.train(self, {"source": "file", "sha256": digest}, {"source": source}))
                described[name] = f"{len(files)} files ({', '.join(map(str, files))})"
            else:
                depends = {}
                for dep in setup["depends"]:
                    if not Path(dep).is_file():
                        raise ParameterError(f"custom.setups.{name}.depends: {dep!r} is not a file")
                    depends[dep] = _digest(Path(dep))
                runs[name] = [
                    plan.train(self, {"source": "command", "command": setup["command"], "seed": s, "depends": depends})
                    for s in setup["seeds"]
                ]
                described[name] = f"`{setup['command']}` with seeds {', '.join(map(str, setup['seeds']))}"
        names = {setup: [run_name(setup, i) for i in range(len(keys))] for setup, keys in runs.items()}
        used = sorted({s for pair in pairs for s in pair})
        compare = plan.add(
            "compare",
            self.name,
            {
                "pairs": [],
                "n_shuffles": 1,
                "seed": section["seed"],
                "verdicts": [
                    verdict(pair_name(a, b), names[a], names[b], section["observable"], split=None) for a, b in pairs
                ],
                "questions": [{"verdict": pair_name(a, b), "a": a, "b": b} for a, b in pairs],
            },
            {traj_input(n): key for s in used for n, key in zip(names[s], runs[s])},
            ext="json",
        )
        plan.figure(
            self,
            "custom",
            "custom_verdicts",
            {"compare": [compare]},
            caption="custom.rst",
            json_caption="custom_json.rst",
            category="Your own runs",
            values={"setups": "; ".join(f"**{n}**: {d}" for n, d in described.items() if n in used)},
        )

    def train(self, params: Mapping[str, Any], inputs: Mapping[str, Path], device: str = "cpu") -> Trajectory:
        from ...store import read_trajectory

        if params["source"] == "file":
            source = Path(inputs["source"])
            if _digest(source) != params["sha256"]:
                raise EquivdynError(
                    f"{source}: its content changed after the workflow planned it; rerun snakemake to plan it again"
                )
            return _adopt(read_trajectory(source), {**params, "path": str(source)})
        with tempfile.TemporaryDirectory(prefix="equivdyn-custom-") as tmp:
            out = Path(tmp) / "run.h5"
            command = params["command"].replace("{seed}", str(params["seed"])).replace("{out}", shlex.quote(str(out)))
            print(f"running: {command}", flush=True)
            proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            sys.stdout.write(proc.stdout)
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.splitlines()[-_TAIL_LINES:])
                raise EquivdynError(f"custom command exited with status {proc.returncode}: {command}\n{tail}")
            if not out.is_file():
                raise EquivdynError(f"custom command wrote no file at its {{out}} ({out}): {command}")
            return _adopt(read_trajectory(out), dict(params))


def _adopt(traj: Trajectory, origin: dict[str, Any]) -> Trajectory:
    """A recorded run as a result of experiment ``custom``: ``origin`` (the job's parameters and
    where the run came from) and the recorded file's own parameters and key."""
    recorded = {"experiment": traj.experiment, "key": traj.key, "params": traj.params}
    return dataclasses.replace(traj, experiment=Custom.name, params={**origin, "recorded": recorded}, key="", attrs={})


EXPERIMENT = register(Custom())
