"""The figures of E1, E2, E4 and the custom section, drawn from real results of tests/tiny.yaml
(every stage run in-process, no Snakemake): readable at the report's size, Fig. 2's panel (d)
a real zoom on λ = 1, Fig. 3 naming its weights, and every figure showing the distances,
p-values and verdicts it claims inside its axes.  The E3 figures are checked in
test_e3_figures.py, on hand-made inputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from equivdyn.figures import plot
from equivdyn.figures._common import (
    ZOOM_MIN_HALF_WIDTH,
    format_distance,
    format_p,
    mean_sd_text,
    verdict_cells,
    verdict_text,
    zoom_window,
)
from equivdyn.stages import compare, fit, train
from equivdyn.store import Trajectory, write_trajectory

from .conftest import plan_of, tiny_config
from .figure_checks import assert_shown, capture, check_readable

#: E4's training takes most of the time: shorter runs than tests/tiny.yaml's, enough for the figure.
SHORTER_E4 = {"e4.train.n_steps": 16, "e4.long.n_steps": 20, "e4.long.n_points": 8, "e4.koopman.n_delays": 3}


def make(plan: Any, key: str, root: Path, data: Mapping[str, Path], made: dict[str, Path]) -> Path:
    """The file of job ``key`` of ``plan``, made (with what it needs) under ``root`` unless
    ``made`` has it; data jobs are the prepared files ``data`` (dataset name -> path)."""
    if key in made:
        return made[key]
    job = plan.jobs[key]
    spec = job.spec
    if spec["stage"] == "data":
        out = data[Path(job.path).parent.name]
    elif spec["stage"] == "source":  # a file the configuration names, relative to the plan's folder
        out = root / job.path
    else:
        inputs = {name: make(plan, k, root, data, made) for name, k in spec["inputs"].items()}
        out = root / job.path
        out.parent.mkdir(parents=True, exist_ok=True)
        if spec["stage"] == "train":
            train(spec, inputs, out)
        elif spec["stage"] == "fit":
            fit(spec, inputs["trajectory"], out)
        elif spec["stage"] == "compare":
            compare(spec, inputs, out)
        else:  # pragma: no cover - a stage these figures do not read
            raise AssertionError(spec["stage"])
    made[key] = out
    return out


def draw(plan: Any, figure: str, root: Path, data: Mapping[str, Path], made: dict[str, Path],
         monkeypatch: pytest.MonkeyPatch) -> tuple[Figure, dict[str, Any]]:
    """Draw ``figure`` of ``plan`` from results made under ``root``; the figure and its JSON."""
    inputs = {role: [make(plan, k, root, data, made) for k in keys] for role, keys in plan.figures[figure].inputs.items()}
    prefix = root / "figures" / figure
    prefix.parent.mkdir(exist_ok=True)
    with capture(monkeypatch, figure) as saved:
        plot(figure, inputs, prefix)
    (fig,) = saved
    assert prefix.with_name(f"{figure}.png").stat().st_size > 0
    return fig, json.loads(prefix.with_name(f"{figure}.json").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, prepared_mnist: Path) -> Iterator[dict[str, tuple[Figure, dict]]]:
    """Fig. 2, 3, 5 and the E2 appendix figure of tests/tiny.yaml, by name."""
    plan = plan_of(tiny_config(SHORTER_E4))
    root = tmp_path_factory.mktemp("figures")
    made: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield {
            figure: draw(plan, figure, root, {"mnist": prepared_mnist}, made, monkeypatch)
            for figure in ("fig2_omd_ogd_bm", "fig3_fcn_width", "figS_fcn_seeds", "fig5_grokking")
        }


@pytest.mark.parametrize("figure", ["fig2_omd_ogd_bm", "fig3_fcn_width", "figS_fcn_seeds", "fig5_grokking"])
def test_figures_are_readable_at_the_report_size(tiny: dict[str, tuple[Figure, dict]], figure: str) -> None:
    check_readable(tiny[figure][0])


def _panel(fig: Figure, label: str) -> Any:
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(label)]
    return ax


def test_fig2_zooms_on_one_and_shows_its_numbers(tiny: dict[str, tuple[Figure, dict]]) -> None:
    fig, numbers = tiny["fig2_omd_ogd_bm"]
    zoom = _panel(fig, "(d)")
    (x0, x1), (y0, y1) = zoom.get_xlim(), zoom.get_ylim()
    # A zoom, not a strip: small and square, around λ = 1, on the real axis.
    assert x0 < 1 < x1 and y0 < 0 < y1
    assert x1 - x0 <= 0.25 and x1 - x0 == pytest.approx(y1 - y0)
    assert zoom.get_aspect() == 1.0
    for name, distance in numbers["distances"].items():
        assert_shown(fig, format_distance(distance), format_p(numbers["controls"][name]["p_value"]))
    assert_shown(fig, *(verdict_text(v, "grid rows", prefix=False) for v in numbers["verdicts"].values()))


def test_fig3_names_its_weights_and_shows_its_numbers(tiny: dict[str, tuple[Figure, dict]]) -> None:
    fig, numbers = tiny["fig3_fcn_width"]
    narrow, wide = numbers["widths"][0], numbers["reference_width"]
    for label, width in (("(b)", narrow), ("(c)", wide)):
        title = _panel(fig, label).get_title()
        assert f"h = {width}" in title and "output-layer weights" in title and "class 0" in title, title
    # (d): one panel per width, the same view of λ = 1 in each.
    spectra = [ax for ax in fig.axes if ax.get_title() in {f"h = {w}" for w in numbers["widths"]}]
    assert [ax.get_title() for ax in spectra] == [f"h = {w}" for w in numbers["widths"]]
    assert len({(ax.get_xlim(), ax.get_ylim()) for ax in spectra}) == 1
    for name, distances in numbers["distances"].items():
        assert_shown(fig, mean_sd_text(distances), format_p(numbers["permutation_tests"][name]["p_value"]),
                     verdict_text(numbers["verdicts"][name], prefix=False))
    assert_shown(fig, mean_sd_text(numbers["between_seeds"][str(wide)]))


def test_e2_appendix_and_fig5_show_their_numbers(tiny: dict[str, tuple[Figure, dict]]) -> None:
    fig, numbers = tiny["figS_fcn_seeds"]
    ((name, across),) = numbers["distances"].items()
    assert_shown(fig, mean_sd_text(across), mean_sd_text(numbers["between_seeds"][str(numbers["reference_width"])]),
                 verdict_text(numbers["verdicts"][name], prefix=False))
    fig, numbers = tiny["fig5_grokking"]
    ((name, distances),) = numbers["distances"].items()
    within = numbers["within"]["grokking"] + numbers["within"]["constrained"]
    assert_shown(fig, mean_sd_text(distances), mean_sd_text(within), format_p(numbers["permutation_test"]["p_value"]),
                 verdict_text(numbers["verdicts"][name], prefix=False))


def test_custom_figure_shows_each_verdicts_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SYNTHETIC runs: four random walks per setup; setup b drifts, so the setups differ.
    rng = np.random.default_rng(0)
    for setup, drift in (("a", 0.0), ("b", 0.5)):
        for i in range(4):
            data = np.cumsum(rng.standard_normal((2, 20, 3)) + drift, axis=1)
            write_trajectory(tmp_path / setup / f"s{i}.h5", Trajectory("test", np.arange(20), {"w": data}))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the section's file patterns are relative to the workflow's folder
    try:
        plan = plan_of({"custom": {"setups": {"a": {"files": ["a/*.h5"]}, "b": {"files": ["b/*.h5"]}}}})
        fig, numbers = draw(plan, "custom_verdicts", tmp_path, {}, {}, monkeypatch)
    finally:
        os.chdir(cwd)
    check_readable(fig)
    for c in numbers["comparisons"]:
        assert_shown(fig, *verdict_cells(f"{c['a']} vs {c['b']}", c["verdict"]))


def test_zoom_window_holds_the_eigenvalues_near_one_and_no_others() -> None:
    z = np.array([0.95, 0.99 + 0.02j, 0.99 - 0.02j, 0.3, -0.5 + 0.5j])
    (x0, x1), (y0, y1) = zoom_window(z, radius=0.1)
    assert x0 < 0.95 and x1 > 1 and y0 < -0.02 and y1 > 0.02 and x0 > 0.3
    assert x1 - x0 == pytest.approx(y1 - y0) and y0 == -y1  # square, centred on the real axis
    assert x1 - x0 < 0.1
    # Nothing near 1: the smallest view around 1; every eigenvalue: all of them.
    (x0, x1), _ = zoom_window(np.array([0.2, -0.4]), radius=0.1)
    assert (x0, x1) == pytest.approx((1 - ZOOM_MIN_HALF_WIDTH, 1 + ZOOM_MIN_HALF_WIDTH))
    (x0, x1), _ = zoom_window(z, radius=None)
    assert x0 < -0.5 and x1 > 1
