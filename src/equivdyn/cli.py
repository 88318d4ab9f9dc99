"""The ``equivdyn`` command line: compare your own runs, and the stages the workflow runs.

``compare A.h5 ... --vs B.h5 ...`` (the calibrated verdict), ``fit FILE`` (one run's
principal spectrum), ``inspect`` and ``verify`` work on any equivdyn files.  The workflow's
stages (``train``, ``fit --spec``, ``compare --spec``, ...) take a *spec*: the JSON record
of every parameter that determines the output, exactly as the workflow's plan made it; the
content key of a result is the SHA-256 of the spec's canonical JSON, so a stage can check
that it writes what the plan asked for.  Heavy libraries (torch, matplotlib) are imported
only by the subcommands that need them, so fitting and comparing start fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import textwrap
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._io import MAX_JSON_DEPTH, content_key, json_depth_ok, write_json_atomic, write_text_atomic
from .errors import EquivdynError, InvalidFileError, ParameterError

log = logging.getLogger("equivdyn")

#: Subcommands the workflow's jobs run (their damaged inputs are results to remove).
_STAGES = ("train", "fit", "compare", "distances", "plot")
#: Subcommands whose results come from NumPy/SciPy linear algebra (pinned to one BLAS thread).
_NUMERICAL = ("fit", "compare", "distances", "plot")


def _loads(text: str, option: str) -> Any:
    """Parse the JSON of ``option``, refusing NaN and infinities (Python's json reads them; JSON has none)."""

    def refuse(token: str) -> Any:
        raise ParameterError(f"{option} holds {token}, which is not a finite number (JSON has no NaN or infinity)")

    def parse_float(token: str) -> float:
        value = float(token)
        return value if math.isfinite(value) else refuse(token)

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=parse_float)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{option} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ParameterError(f"{option} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not json_depth_ok(value):
        raise ParameterError(f"{option} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _load_file(path: Path, option: str) -> Any:
    """Parse the JSON file named by ``option``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{option} {path}: cannot read it ({exc})") from None
    return _loads(text, f"{option} {path}")


def _spec(text: str) -> dict[str, Any]:
    spec = _loads(text, "--spec")
    if not isinstance(spec, dict):
        raise ParameterError("--spec must be a JSON object")
    for field in ("stage", "experiment", "params"):
        if field not in spec:
            raise ParameterError(f"--spec lacks the field {field!r}")
    return spec


def _named_paths(items: Sequence[str], option: str) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ParameterError(f"{option} expects NAME=PATH, got {item!r}")
        out[name] = Path(path)
    return out


def cmd_train(args: argparse.Namespace) -> None:
    from .stages import train

    train(_spec(args.spec), _named_paths(args.input, "--input"), args.out)


def cmd_data(args: argparse.Namespace) -> None:
    from .stages import prepare_data

    prepare_data(args.dataset, args.source, args.out)


def _given(args: argparse.Namespace, option: str) -> bool:
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    return value not in (None, [], False)


def _workflow_form(args: argparse.Namespace, own: Sequence[str], plumbing: Sequence[str]) -> bool:
    """Whether a two-form subcommand runs as a workflow stage (``--spec``) or on the user's
    files; mixing the options of the two forms is an error naming them."""
    if args.spec is None:
        stray = [o for o in plumbing if _given(args, o)]
        if stray:
            raise ParameterError(f"{', '.join(stray)}: only for the workflow form, which needs --spec")
        return False
    stray = [o for o in own if _given(args, o)]
    if stray:
        raise ParameterError(f"--spec (the workflow form) cannot be combined with {', '.join(stray)}")
    missing = [o for o in plumbing if not _given(args, o)]
    if missing:
        raise ParameterError(f"the workflow form needs {', '.join(missing)}")
    return True


_GLOB_CHARS = frozenset("*?[")


def expand_runs(items: Sequence[str | Path], option: str) -> list[Path]:
    """Trajectory files named by ``items``: files as given, every ``*.h5`` of a folder, and
    the matches of a glob pattern (for patterns the shell did not expand), each sorted."""
    import glob

    out: list[Path] = []
    for item in items:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = sorted(q for q in p.glob("*.h5") if not q.name.startswith("."))
            if not found:
                raise ParameterError(f"{option}: the folder {text} holds no .h5 file")
            out.extend(found)
        elif not p.exists() and _GLOB_CHARS & set(text):
            found = sorted(Path(q) for q in glob.glob(text))
            if not found:
                raise ParameterError(f"{option}: no file matches {text!r}")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise ParameterError(f"{option}: name at least one trajectory file")
    return out


def _estimator_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"n_delays": args.n_delays, "rank": args.rank, "n_components": args.n_components, "n_modes": args.n_modes}


def cmd_fit(args: argparse.Namespace) -> None:
    if _workflow_form(args, ("file", "--json", "--observable"), ("--input", "--out")):
        from .stages import fit

        fit(_spec(args.spec), args.input, args.out)
        return
    from .verdict import fit_run

    if args.file is None:
        raise ParameterError("name a trajectory file: equivdyn fit FILE (see equivdyn fit --help)")
    result = {"file": str(args.file), **fit_run(args.file, observable=args.observable, **_estimator_options(args))}
    if args.json is not None:
        write_json_atomic(args.json, result)
    print(_format_fit(result))


def _format_fit(result: dict[str, Any]) -> str:
    s = result["settings"]
    m, t, d = result["shape"]
    lines = [
        f"{result['file']}: {m} initialisation(s) x {t} snapshots x {d} observables",
        f"  settings  n_delays {s['n_delays']}, rank {s['rank']} (fitted with {s['fit_rank']}"
        f"{', raised above the noise threshold' if s['raised_rank'] else ''}), "
        f"PCA to {s['n_components'] or 'none (few observables)'}; given: {', '.join(s['given']) or 'none'}",
        "  principal modes (best-resolved first; one per conjugate pair):",
    ]
    for (re, im), r, mod, ang in zip(result["modes"], result["residuals"], result["moduli"], result["angles"]):
        lines.append(f"    lambda = {re:+.5f} {im:+.5f}i   |lambda| = {mod:.5f}   angle = {ang:+.4f} rad   residual = {r:.2e}")
    lines.append(f"  ({len(result['all_eigenvalues'])} eigenvalues in the fit; --json writes them all)")
    return "\n".join(lines)


def cmd_compare(args: argparse.Namespace) -> None:
    own = ("a", "--vs", "--json", "--plot", "--observable")
    if _workflow_form(args, own, ("--out",)):
        from .stages import compare

        compare(_spec(args.spec), _named_paths(args.input, "--input"), args.out)
        return
    from .verdict import compare_runs

    if not args.a or not args.vs:
        raise ParameterError("name both setups' files: equivdyn compare A.h5 [A2.h5 ...] --vs B.h5 [B2.h5 ...]")
    a, b = expand_runs(args.a, "A"), expand_runs(args.vs, "--vs")
    verdict = compare_runs(
        [str(p) for p in a],
        [str(p) for p in b],
        alpha=args.alpha,
        seed=args.seed,
        observable=args.observable,
        tolerance=args.tolerance,
        **_estimator_options(args),
    )
    result = {**verdict.to_dict(), "files_a": [str(p) for p in a], "files_b": [str(p) for p in b]}
    if args.json is not None:
        write_json_atomic(args.json, result)
    if args.plot is not None:
        from .figures._common import write_verdict_plot

        write_verdict_plot(args.plot, result, (args.label_a, args.label_b))
    print(verdict.summary())


def cmd_distances(args: argparse.Namespace) -> None:
    from .stages import distances

    distances(_spec(args.spec), _named_paths(args.input, "--input"), args.out)


def _role_paths(items: Sequence[str], option: str) -> dict[str, list[Path]]:
    """``ROLE=PATH`` items, a role given any number of times, as role -> paths."""
    out: dict[str, list[Path]] = {}
    for item in items:
        role, sep, path = item.partition("=")
        if not sep or not role or not path:
            raise ParameterError(f"{option} expects ROLE=PATH, got {item!r}")
        out.setdefault(role, []).append(Path(path))
    return out


def cmd_plot(args: argparse.Namespace) -> None:
    from .figures import plot

    plot(args.figure, _role_paths(args.input, "--input"), args.out_prefix)


def cmd_key(args: argparse.Namespace) -> None:
    print(content_key(_spec(args.spec)))


def cmd_schema(args: argparse.Namespace) -> None:
    from .experiments import workflow_schema

    text = json.dumps(workflow_schema(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.out, text)


def cmd_index(args: argparse.Namespace) -> None:
    plan = _load_file(args.plan, "--plan")
    if not isinstance(plan, dict):
        raise ParameterError(f"--plan {args.plan} must hold a JSON object (result path -> spec)")
    lines = ["key\tstage\texperiment\tpath\tparams"]
    for path, spec in sorted(plan.items()):
        lines.append(
            "\t".join([content_key(spec), spec["stage"], spec["experiment"], path, json.dumps(spec, sort_keys=True)])
        )
    write_text_atomic(args.out, "\n".join(lines) + "\n")


def cmd_verify(args: argparse.Namespace) -> int:
    from .integrity import verify

    checked, damaged = verify(args.paths, remove=args.remove)
    for f in damaged:
        where = f"{f.path} (a link to the cache entry {f.target})" if f.target is not None else str(f.path)
        print(f"DAMAGED {where}: {f.problem}" + (" [removed]" if args.remove else ""), file=sys.stderr)
    print(f"verified {checked} file(s): {len(damaged)} damaged" + (", removed" if args.remove and damaged else ""))
    if damaged and not args.remove:
        print("run `equivdyn verify --remove` on them, then rerun snakemake to rebuild them", file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .store import summarize

    status = 0
    for path in args.files:
        try:
            summary = summarize(path)
        except EquivdynError as exc:
            print(f"INVALID {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(summary, indent=2, sort_keys=True))
        else:
            print(_format_summary(summary))
    return status


def _format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['file']}: valid {summary['format']} (format version {summary['format_version']})",
        f"  experiment  {summary['experiment']}",
        f"  key         {summary['key']}",
        f"  created     {summary['created']}",
        "  versions    " + ", ".join(f"{k} {v}" for k, v in sorted(summary["versions"].items())),
    ]
    if "device" in summary:
        lines.append(f"  device      {summary['device']}")
    if "observables" in summary:
        steps = summary["steps"]
        lines.append(f"  steps       {steps['count']} (from {steps['first']} to {steps['last']})")
        for name, shape in summary["observables"].items():
            lines.append(f"  observable  {name}  [M, T, D] = {shape}")
        for name, shape in summary["metrics"].items():
            lines.append(f"  metric      {name}  {shape}")
        lines.append(f"  finite      {'yes' if summary['finite'] else 'NO: the trajectory holds NaN or inf'}")
    else:
        lines.append("  inputs      " + ", ".join(summary["inputs"]))
        for name, s in summary["spectra"].items():
            lines.append(
                f"  spectrum    {name}: {s['n_eigenvalues']} eigenvalues from {s['n_snapshots']} snapshot pairs, "
                f"max |λ| = {s['max_modulus']:.4f}, max residual = {s['max_residual']:.2e}"
            )
    lines.append("  params      " + json.dumps(summary["params"], sort_keys=True))
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error that names the problem and where help is."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


#: Help of the subcommands the workflow runs (each takes the spec the plan made).
_PLUMBING = "[workflow] "


def _sub(sub: Any, name: str, help: str, example: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(description or help, 88),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _estimator_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("estimator settings (chosen from the data when not given)")
    g.add_argument("--observable", default=None, help="observable to use (needed when a file holds several)")
    g.add_argument("--n-delays", type=int, default=None, help="lagged copies in the time-delay embedding")
    g.add_argument("--rank", type=int, default=None, help="largest DMD rank")
    g.add_argument("--n-components", type=int, default=None, help="PCA coordinates before embedding (0: none)")
    g.add_argument("--n-modes", type=int, default=None, help="principal modes compared per seed")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="equivdyn",
        description=__doc__.split("\n")[0],
        epilog="start here:\n  equivdyn compare runs/sgd/ --vs runs/adam/     (one trajectory file per seed)\n"
        "  equivdyn fit runs/sgd/s0.h5\n  equivdyn inspect runs/sgd/s0.h5\n"
        "Subcommands marked [workflow] are run by the Snakemake workflow with the specs its plan makes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = _sub(
        sub,
        "compare",
        "calibrated verdict: are the training dynamics of setup A conjugate to setup B's?",
        "equivdyn compare runs/sgd/*.h5 --vs runs/adam/*.h5 --json verdict.json --plot verdict.png",
        "Calibrated verdict: are the training dynamics of setup A conjugate to those of setup B? "
        "Give one trajectory file per seed and side (files, folders of .h5 files, or glob patterns); "
        "4 seeds per side are needed to reach p < 0.05. Not rejecting is not proof of equivalence. "
        "With --spec: the workflow's comparison stage [workflow].",
    )
    p.add_argument("a", nargs="*", metavar="A.h5", help="trajectory files of setup A, one per seed (or a folder, or a glob)")
    p.add_argument("--vs", nargs="+", default=None, metavar="B.h5", help="trajectory files of setup B, one per seed")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the whole verdict as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="OUT.png", help="draw both setups' principal spectra")
    p.add_argument("--label-a", default="A", help="name of setup A in the plot (default A)")
    p.add_argument("--label-b", default="B", help="name of setup B in the plot (default B)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--tolerance", type=float, default=None, help="resolution: smaller spectral differences count as none (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random relabellings (default 0)")
    _estimator_arguments(p)
    w = p.add_argument_group("workflow form [workflow]")
    w.add_argument("--spec", default=None, help="JSON record of the comparison")
    w.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a named input file")
    w.add_argument("--out", type=Path, default=None, help="JSON file to write")
    p.set_defaults(func=cmd_compare)

    p = _sub(
        sub,
        "fit",
        "principal Koopman spectrum of one trajectory file, with automatically chosen settings",
        "equivdyn fit runs/sgd/s0.h5 --observable fc2.weight --json s0_spectrum.json",
        "Principal Koopman spectrum of one trajectory file, with the settings the verdict would choose "
        "(overridable). With --spec: the workflow's Koopman fit stage [workflow].",
    )
    p.add_argument("file", nargs="?", type=Path, default=None, metavar="FILE.h5", help="trajectory file")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="write the spectrum and settings as JSON")
    _estimator_arguments(p)
    w = p.add_argument_group("workflow form [workflow]")
    w.add_argument("--spec", default=None, help="JSON record of the fit parameters and input key")
    w.add_argument("--input", type=Path, default=None, help="trajectory file (.h5)")
    w.add_argument("--out", type=Path, default=None, help="spectrum file to write (.h5)")
    p.set_defaults(func=cmd_fit)

    p = _sub(
        sub, "inspect", "validate equivdyn HDF5 files (checksums included) and summarise them", "equivdyn inspect runs/sgd/s0.h5"
    )
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_inspect)

    p = _sub(
        sub,
        "verify",
        "check the checksums of every result (HDF5, JSON, prepared .npz); report or remove damaged ones",
        "equivdyn verify results --remove",
    )
    p.add_argument("paths", nargs="*", type=Path, default=[Path("results")], help="files or folders (default: results)")
    p.add_argument("--remove", action="store_true", help="delete damaged results (and the cache entries they link to)")
    p.set_defaults(func=cmd_verify)

    p = _sub(
        sub,
        "schema",
        "the JSON schema of config.yaml, generated from the experiments' settings",
        "equivdyn schema --out workflow/schemas/config.schema.json",
    )
    p.add_argument("--out", type=Path, default=None, help="write it to this file (default: print it)")
    p.set_defaults(func=cmd_schema)

    p = _sub(
        sub,
        "train",
        _PLUMBING + "simulate or train one experiment variant; write its trajectory file",
        "equivdyn train --spec \"$(awk -F'\\t' '$2 == \"train\" && $3 == \"e1\" {print $5; exit}' "
        "results/index.tsv)\" --out /tmp/e1.h5",
    )
    p.add_argument("--spec", required=True, help="JSON record of the training parameters")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a named input (dataset)")
    p.add_argument("--out", required=True, type=Path, help="trajectory file to write (.h5)")
    p.set_defaults(func=cmd_train)

    p = _sub(
        sub,
        "data",
        _PLUMBING + "verify a dataset (local copy or download) and write it for training",
        "equivdyn data mnist --source=../shared/data/mnist.npz --out /tmp/mnist.npz",
    )
    p.add_argument("dataset", help="dataset name: mnist or cifar10")
    p.add_argument(
        "--source",
        default=None,
        help="local copy (file or folder), or 'synthetic' (cifar10, tests only); omit to use data/ or download",
    )
    p.add_argument("--out", required=True, type=Path, help=".npz file to write")
    p.set_defaults(func=cmd_data)

    p = _sub(
        sub,
        "distances",
        _PLUMBING + "distances between the spectra of windows (or epochs) of each input",
        "equivdyn distances --spec SPEC --input NAME=spectra.h5 --out distances.json",
    )
    p.add_argument("--spec", required=True, help="JSON record of the groups and input keys")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a named spectrum file")
    p.add_argument("--out", required=True, type=Path, help="JSON file to write")
    p.set_defaults(func=cmd_distances)

    p = _sub(
        sub,
        "plot",
        _PLUMBING + "draw a figure and write the numbers behind it",
        "equivdyn plot fig2_omd_ogd_bm --input trajectories=omd.h5 --input spectra=omd_fit.h5 "
        "--input compare=compare.json --out-prefix /tmp/fig2",
    )
    p.add_argument("figure", help="figure name (its file stem), e.g. fig3_fcn_width")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="an input file and its role (trajectories, spectra, compare, ...); a role may repeat",
    )
    p.add_argument("--out-prefix", required=True, type=Path, help="writes PREFIX.pdf, PREFIX.png, PREFIX.json")
    p.set_defaults(func=cmd_plot)

    p = _sub(sub, "key", _PLUMBING + "print the content key of a spec", "equivdyn key --spec '{\"stage\": ...}'")
    p.add_argument("--spec", required=True)
    p.set_defaults(func=cmd_key)

    p = _sub(
        sub,
        "index",
        _PLUMBING + "write the table of result paths, keys and parameters",
        "equivdyn index --plan PLAN.json --out results/index.tsv",
    )
    p.add_argument("--plan", required=True, type=Path, help="JSON file: an object, result path -> spec")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_index)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``equivdyn`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command in _NUMERICAL:
            from threadpoolctl import threadpool_limits

            # One BLAS thread, as in the workflow: a result's bits must not depend on the
            # machine's thread count or on whether the command was run by hand.
            with threadpool_limits(limits=1, user_api="blas"):
                status = args.func(args)
        else:
            status = args.func(args)
    except EquivdynError as exc:
        hint = ""
        if isinstance(exc, InvalidFileError) and args.command in _STAGES and "does not exist" not in exc.problem:
            link = Path(exc.path)
            entry = f"; it links to the cache entry {link.resolve()}, which it removes too" if link.is_symlink() else ""
            hint = f" (if it is a damaged result: `equivdyn verify --remove {exc.path}`{entry}, then rerun)"
        print(f"equivdyn {args.command}: error: {exc}{hint}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
