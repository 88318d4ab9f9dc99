"""Tests of the calibrated verdict: equivdyn.compare_runs, Verdict and the principal spectrum."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest

import equivdyn
from equivdyn import calibration
from equivdyn._io import read_json_result
from equivdyn.errors import ParameterError
from equivdyn.store import Trajectory, write_trajectory
from equivdyn.verdict import (
    VERDICT_DEFAULTS,
    Verdict,
    choose_settings,
    compare_runs,
    label_test,
    principal_spectrum,
)


def linear_runs(
    eigenvalues: list[complex], n_seeds: int, rng: np.random.Generator, n_obs: int = 6, noise: float = 0.0
) -> list[np.ndarray]:
    """Seeds of a linear map with the given eigenvalues (conjugate pairs added), seen through a random lift."""
    blocks = []
    for lam in eigenvalues:
        if abs(lam.imag) < 1e-12:
            blocks.append(np.array([[lam.real]]))
        else:
            blocks.append(np.array([[lam.real, -lam.imag], [lam.imag, lam.real]]))
    d = sum(b.shape[0] for b in blocks)
    jac = np.zeros((d, d))
    i = 0
    for b in blocks:
        jac[i : i + b.shape[0], i : i + b.shape[0]] = b
        i += b.shape[0]
    lift = rng.standard_normal((n_obs, d))
    runs = []
    for _ in range(n_seeds):
        z = rng.standard_normal((10, d))
        traj = np.empty((10, 60, d))
        for t in range(60):
            traj[:, t] = z
            z = z @ jac.T
        runs.append(traj @ lift.T + noise * rng.standard_normal((10, 60, n_obs)))
    return runs


def test_public_api() -> None:
    assert equivdyn.compare_runs is compare_runs
    assert equivdyn.Verdict is Verdict


def test_principal_spectrum_recovers_known_eigenvalues() -> None:
    rng = np.random.default_rng(0)
    truth = [0.95 + 0j, 0.7 * np.exp(0.4j)]
    (run,) = linear_runs(truth, 1, rng)
    ps = principal_spectrum(run, n_delays=3, rank=10)
    found = ps.modes(2)
    for lam in truth:
        assert np.min(np.abs(found - lam)) < 1e-8
    assert np.all(ps.eigenvalues.imag >= 0)


def test_translation_adds_no_eigenvalue() -> None:
    rng = np.random.default_rng(1)
    (run,) = linear_runs([0.9 + 0j, 0.6 + 0j], 1, rng)
    plain = principal_spectrum(run, n_delays=2, rank=6).modes(2)
    moved = principal_spectrum(run + 100.0, n_delays=2, rank=6).modes(2)
    np.testing.assert_allclose(np.sort_complex(plain), np.sort_complex(moved), atol=1e-7)
    assert np.min(np.abs(moved - 1.0)) > 0.05


def test_product_eigenvalues_are_not_principal() -> None:
    # observe x and x^2 of x -> 0.9 x: the Koopman eigenvalue 0.81 is a product, not principal
    x = np.random.default_rng(2).uniform(0.5, 1.0, size=(10, 1)) * 0.9 ** np.arange(50)[None, :]
    data = np.stack([x, x**2], axis=-1)
    ps = principal_spectrum(data, n_delays=1, rank=2)
    np.testing.assert_allclose(ps.all_eigenvalues, [0.9, 0.81], atol=1e-9)
    np.testing.assert_allclose(ps.eigenvalues, [0.9], atol=1e-9)


def test_rank_is_raised_above_the_noise_threshold_to_find_the_compared_modes() -> None:
    # a slow real mode and a weak fast pair under strong noise: the noise threshold keeps
    # one direction only, so the thresholded fit has a single mode
    (run,) = linear_runs([0.95 + 0j, 0.5 * np.exp(0.6j)], 1, np.random.default_rng(0), noise=0.3)
    plain = principal_spectrum(run, n_delays=10, rank=20)
    assert plain.eigenvalues.size == 1 and not plain.raised_rank
    raised = principal_spectrum(run, n_delays=10, rank=20, min_modes=2)
    assert raised.raised_rank and raised.rank > plain.rank and raised.eigenvalues.size >= 2
    assert abs(raised.eigenvalues[0] - 0.95) < 0.01
    # never above the given rank: rank 1 cannot give two modes, and says so by having one
    capped = principal_spectrum(run, n_delays=10, rank=1, min_modes=2)
    assert capped.rank == 1 and capped.eigenvalues.size == 1


def test_one_noisy_seed_does_not_reduce_every_comparison_to_one_mode() -> None:
    rng = np.random.default_rng(0)
    truth = [0.95 + 0j, 0.5 * np.exp(0.6j)]
    noisy = linear_runs(truth, 1, rng, noise=0.3)
    a = noisy + linear_runs(truth, 3, rng, noise=0.01)
    b = linear_runs(truth, 4, rng, noise=0.01)
    v = compare_runs(a, b, n_delays=10, rank=20)
    assert v.settings["n_modes"] == 2 and v.settings["raised_rank"] == 1
    assert all(len(s) == 2 for s in v.eigenvalues_a + v.eigenvalues_b)


def test_settings_are_chosen_and_given_ones_win() -> None:
    auto = choose_settings(10, 100, 64)
    assert auto["n_components"] == VERDICT_DEFAULTS["max_components"]
    assert (auto["n_delays"] + 1) * auto["n_components"] >= VERDICT_DEFAULTS["embed_dim"]
    assert auto["rank"] == VERDICT_DEFAULTS["max_rank"]
    assert choose_settings(10, 100, 1)["n_delays"] == 25  # capped at a quarter of T
    given = choose_settings(10, 100, 64, n_delays=2, rank=5, n_modes=3)
    assert (given["n_delays"], given["rank"], given["n_modes"]) == (2, 5, 3)


def brute_force_p(dist: np.ndarray, n_a: int) -> float:
    n = dist.shape[0]

    def stat(group: tuple[int, ...]) -> float:
        other = [i for i in range(n) if i not in group]
        cross = np.mean([dist[i, j] for i in group for j in other])
        within = [dist[i, j] for g in (group, other) for i, j in combinations(g, 2)]
        return cross - np.mean(within)

    observed = stat(tuple(range(n_a)))
    null = [stat(g) for g in combinations(range(n), n_a)]
    return float(np.mean(np.asarray(null) >= observed - 1e-12))


@pytest.mark.parametrize("n_a,n_b", [(3, 3), (4, 4), (3, 5)])
def test_label_test_enumerates_exactly(n_a: int, n_b: int) -> None:
    rng = np.random.default_rng(3)
    pts = rng.standard_normal((n_a + n_b, 2))
    pts[:n_a] += 1.0
    dist = np.linalg.norm(pts[:, None] - pts[None, :], axis=-1)
    stat, p, p_min, exact = label_test(dist, n_a, n_b)
    assert exact
    assert p == pytest.approx(brute_force_p(dist, n_a))
    assert p_min == pytest.approx((2 if n_a == n_b else 1) / math.comb(n_a + n_b, n_a))
    assert p >= p_min


def test_shifted_spectra_are_called_non_conjugate() -> None:
    rng = np.random.default_rng(4)
    a = linear_runs([0.9 + 0j, 0.7 * np.exp(0.3j)], 6, rng, noise=1e-3)
    b = linear_runs([0.85 + 0j, 0.65 * np.exp(0.33j)], 6, rng, noise=1e-3)
    v = compare_runs(a, b)
    assert v.non_conjugate and not v.inconclusive
    assert v.p_value == v.p_label < 0.05
    assert v.min_p_value == pytest.approx(2 / math.comb(12, 6))
    assert v.distance > v.settings["tolerance"] > v.within_distance
    assert "NOT CONJUGATE" in v.summary()
    assert v.n_seeds == (6, 6) and len(v.eigenvalues_a) == 6 and len(v.residuals_b[0]) == v.settings["n_modes"]


def test_conjugate_setups_are_not_rejected_and_never_called_equivalent() -> None:
    rng = np.random.default_rng(5)
    a = linear_runs([0.9 + 0j, 0.7 * np.exp(0.3j)], 6, rng, noise=1e-3)
    b = [r @ rng.standard_normal((6, 6)) for r in linear_runs([0.9 + 0j, 0.7 * np.exp(0.3j)], 6, rng, noise=1e-3)]
    v = compare_runs(a, b)
    assert not v.non_conjugate
    text = v.summary()
    assert "No evidence" in text and "not proof of equivalence" in text
    assert "equivalent" not in text.replace("not proof of equivalence", "")


def test_too_few_seeds_is_inconclusive() -> None:
    rng = np.random.default_rng(6)
    a = linear_runs([0.9 + 0j], 3, rng, noise=1e-3)
    b = linear_runs([0.5 + 0j], 3, rng, noise=1e-3)
    v = compare_runs(a, b)
    assert v.inconclusive and not v.non_conjugate
    assert v.min_p_value == pytest.approx(0.1)
    assert "INCONCLUSIVE" in v.summary()


def test_seeds_of_different_shapes_are_compared() -> None:
    # e.g. networks of different widths: 12 and 20 observables, both reduced to 10 components
    rng = np.random.default_rng(8)
    a = linear_runs([0.9 + 0j, 0.7 * np.exp(0.3j)], 4, rng, n_obs=12, noise=1e-3)
    b = linear_runs([0.9 + 0j, 0.7 * np.exp(0.3j)], 4, rng, n_obs=20, noise=1e-3)
    v = compare_runs(a, [r[:, :50] for r in b])
    assert v.settings["n_observables"] == [12, 20] and v.settings["n_components"] == 10
    assert not v.non_conjugate


def test_json_round_trip_and_settings_record() -> None:
    a, b = calibration.generate_pair("linear", n_seeds=4)
    v = compare_runs(a, b, n_delays=5, alpha=0.01)
    data = json.loads(v.to_json())
    assert data["p_value"] == v.p_value and data["alpha"] == 0.01
    assert data["settings"]["n_delays"] == 5 and data["settings"]["given"] == ["n_delays"]
    assert data["summary"] == v.summary()
    assert data["null_hypothesis"].startswith("H0")
    assert len(data["eigenvalues_a"][0][0]) == 2


def write_sides(tmp_path, a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, list[str]]:
    """One trajectory file per seed and side (observable ``w``); returns the paths by side."""
    paths: dict[str, list[str]] = {}
    for side, runs in (("a", a), ("b", b)):
        paths[side] = []
        for s, run in enumerate(runs):
            path = tmp_path / f"{side}{s}.h5"
            write_trajectory(path, Trajectory(experiment="test", steps=np.arange(run.shape[1]), observables={"w": run}))
            paths[side].append(str(path))
    return paths


def test_trajectory_files_are_read(tmp_path) -> None:
    a, b = calibration.generate_pair("shift", n_seeds=4)
    paths = write_sides(tmp_path, a, b)
    from_files = compare_runs(paths["a"], paths["b"], observable="w")
    from_arrays = compare_runs(a, b)
    assert from_files.p_value == from_arrays.p_value
    assert from_files.eigenvalues_a == from_arrays.eigenvalues_a
    with pytest.raises(ParameterError, match="no observable 'x'"):
        compare_runs(paths["a"], paths["b"], observable="x")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": 1.5}, "alpha"),
        ({"tolerance": -1.0}, "tolerance"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match) -> None:
    a, b = calibration.generate_pair("same", n_seeds=2)
    with pytest.raises(ParameterError, match=match):
        compare_runs(a, b, **kwargs)


def test_bad_inputs_name_the_problem() -> None:
    a, b = calibration.generate_pair("same", n_seeds=2)
    with pytest.raises(ParameterError, match="at least 2 seeds"):
        compare_runs(a[:1], b)
    with pytest.raises(ParameterError, match="sequence over seeds"):
        compare_runs(a[0], b)
    bad = a[1].copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(ParameterError, match=r"a\[1\].*initialisation 2, step 3"):
        compare_runs([a[0], bad], b)


def test_cli_compare_on_files(tmp_path, capsys) -> None:
    from equivdyn.cli import main

    files = write_sides(tmp_path, *calibration.generate_pair("shift", n_seeds=4))
    out, plot = tmp_path / "verdict.json", tmp_path / "verdict.png"
    assert main(["compare", *files["a"], "--vs", *files["b"], "--json", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "NOT CONJUGATE" in printed
    result = read_json_result(out)
    assert result["summary"] == printed.strip()
    assert result["non_conjugate"] is True and result["p_value"] < 0.05
    assert result["files_a"] == [str(f) for f in files["a"]]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same verdict from the API
    assert result["p_value"] == compare_runs([str(f) for f in files["a"]], [str(f) for f in files["b"]]).p_value
    assert main(["compare", files["a"][0], "--vs", *files["b"]]) == 2
    assert "at least 2 seeds" in capsys.readouterr().err


def test_differences_within_the_tolerance_are_not_called_non_conjugate() -> None:
    rng = np.random.default_rng(9)
    a = linear_runs([0.9 + 0j, 0.7 * np.exp(0.3j)], 6, rng, noise=1e-4)
    b = linear_runs([0.902 + 0j, 0.7 * np.exp(0.3j)], 6, rng, noise=1e-4)
    v = compare_runs(a, b)
    assert v.p_label < 0.05 and v.statistic < v.settings["tolerance"]
    assert not v.non_conjugate and v.p_value == 1.0
    assert "within the resolution 0.01" in v.summary()
    strict = compare_runs(a, b, tolerance=0.0)
    assert strict.non_conjugate and strict.p_value == strict.p_label
    assert strict.settings["given"] == ["tolerance"]


def test_a_spurious_mode_costs_at_most_the_mismatch_cost() -> None:
    """Spectra of 8 + 8 seeds: side b's slow mode sits 0.006 lower (below the tolerance) and
    two of its seeds have a spurious second mode near -0.9.  Uncapped, the two far modes
    push the excess distance above the tolerance; capped, they cost at most the mismatch cost."""
    rng = np.random.default_rng(12)
    cap = VERDICT_DEFAULTS["mismatch_cost"]
    tol = VERDICT_DEFAULTS["tolerance"]

    def spectrum(slow: float, second: complex) -> np.ndarray:
        return np.array([slow, second]) + 0.002 * (rng.standard_normal(2) + 1j * rng.standard_normal(2))

    a = [spectrum(0.9, 0.6 + 0.2j) for _ in range(8)]
    b = [spectrum(0.894, -0.9 if s in (2, 5) else 0.6 + 0.2j) for s in range(8)]
    uncapped = equivdyn.distance_matrix(a + b)
    capped = equivdyn.distance_matrix(a + b, cap)
    assert np.all(capped <= uncapped + 1e-15) and capped.max() <= cap
    stat_far, p_far, _, _ = label_test(uncapped, 8, 8)
    stat, p, _, _ = label_test(capped, 8, 8)
    assert p_far < 0.05 and stat_far > tol  # the far modes alone would make the verdict reject
    assert stat < tol  # capped, what remains is the 0.006 shift, below the resolution
    assert equivdyn.wasserstein([0.0, 0.5], [0.0, 5.0], cap=0.1) == pytest.approx(0.05)
    assert equivdyn.wasserstein([0.0, 0.5], [0.0, 5.0]) == pytest.approx(2.25)
    with pytest.raises(ParameterError, match="cap must be a number > 0"):
        equivdyn.wasserstein([0.0], [1.0], cap=0.0)
