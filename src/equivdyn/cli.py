"""The ``equivdyn`` command line: the stages the workflow runs, and ``inspect``.

Each stage takes a *spec*: the JSON record of every parameter that determines its
output, exactly as the workflow's plan made it.  The content key of a result is the
SHA-256 of the spec's canonical JSON, so a stage can check that it writes what the
plan asked for.  Heavy libraries (torch, matplotlib) are imported only by the
subcommands that need them, so fitting and comparing start fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._io import MAX_JSON_DEPTH, content_key, json_depth_ok, write_json_atomic, write_text_atomic
from .errors import EquivdynError, InvalidFileError, ParameterError

log = logging.getLogger("equivdyn")

#: Subcommands the workflow's jobs run (their damaged inputs are results to remove).
_STAGES = ("train", "fit", "compare", "distances", "plot")
#: Subcommands whose results come from NumPy/SciPy linear algebra (pinned to one BLAS thread).
_NUMERICAL = ("fit", "compare", "distances", "plot", "verdict")


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


def cmd_fit(args: argparse.Namespace) -> None:
    from .stages import fit

    fit(_spec(args.spec), args.input, args.out)


def cmd_compare(args: argparse.Namespace) -> None:
    from .stages import compare

    compare(_spec(args.spec), _named_paths(args.input, "--input"), args.out)


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


def cmd_verdict(args: argparse.Namespace) -> None:
    from .verdict import compare_runs

    verdict = compare_runs(
        [str(p) for p in args.a], [str(p) for p in args.vs], alpha=args.alpha, seed=args.seed, observable=args.observable
    )
    if args.out is not None:
        write_json_atomic(args.out, verdict.to_dict())
    print(verdict.summary())


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
    plan = _loads(args.plan, "--plan")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equivdyn", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="simulate or train one experiment variant; write its trajectory file")
    p.add_argument("--spec", required=True, help="JSON record of the training parameters")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a named input (dataset)")
    p.add_argument("--out", required=True, type=Path, help="trajectory file to write (.h5)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("data", help="verify a dataset (local copy or download) and write it for training")
    p.add_argument("dataset", help="dataset name: mnist or cifar10")
    p.add_argument(
        "--source",
        default=None,
        help="local copy (file or folder), or 'synthetic' (cifar10, tests only); omit to use data/ or download",
    )
    p.add_argument("--out", required=True, type=Path, help=".npz file to write")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("fit", help="fit Koopman spectra to a trajectory file")
    p.add_argument("--spec", required=True, help="JSON record of the fit parameters and input key")
    p.add_argument("--input", required=True, type=Path, help="trajectory file (.h5)")
    p.add_argument("--out", required=True, type=Path, help="spectrum file to write (.h5)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("compare", help="distances and conjugacy tests between spectra")
    p.add_argument("--spec", required=True, help="JSON record of the comparison")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a named spectrum file")
    p.add_argument("--out", required=True, type=Path, help="JSON file to write")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("distances", help="distances between the spectra of windows (or epochs) of each input")
    p.add_argument("--spec", required=True, help="JSON record of the groups and input keys")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a named spectrum file")
    p.add_argument("--out", required=True, type=Path, help="JSON file to write")
    p.set_defaults(func=cmd_distances)

    p = sub.add_parser("plot", help="draw a figure and write the numbers behind it")
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

    p = sub.add_parser(
        "verdict",
        help="calibrated verdict: are the dynamics of setup A (one trajectory file per seed) conjugate to B's?",
    )
    p.add_argument("a", nargs="+", type=Path, metavar="A.h5", help="trajectory files of setup A, one per seed")
    p.add_argument("--vs", nargs="+", required=True, type=Path, metavar="B.h5", help="trajectory files of setup B")
    p.add_argument("--observable", default=None, help="observable to compare (needed when a file holds several)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random relabellings (default 0)")
    p.add_argument("--out", type=Path, default=None, help="also write the whole verdict as JSON")
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("key", help="print the content key of a spec")
    p.add_argument("--spec", required=True)
    p.set_defaults(func=cmd_key)

    p = sub.add_parser(
        "schema",
        help="the JSON schema of config.yaml, generated from the experiments' settings "
        "(workflow/schemas/config.schema.json is its output)",
    )
    p.add_argument("--out", type=Path, default=None, help="write it to this file (default: print it)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("index", help="write the table of result paths, keys and parameters")
    p.add_argument("--plan", required=True, help="JSON object: result path -> spec")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "verify", help="check the checksums of every result (HDF5, JSON, prepared .npz); report or remove damaged ones"
    )
    p.add_argument("paths", nargs="*", type=Path, default=[Path("results")], help="files or folders (default: results)")
    p.add_argument("--remove", action="store_true", help="delete damaged results (and the cache entries they link to)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="validate equivdyn HDF5 files and summarise them")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_inspect)
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
