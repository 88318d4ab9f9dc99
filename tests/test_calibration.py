"""The known-answer calibration suite (SYNTHETIC data) and the quick calibration of the verdict.

The quick calibration runs a fixed-seed subset of the full suite
(``benchmarks/calibration.py``) and asserts the verdict's bounds on it: at most 5 % of
conjugate pairs rejected, at least 90 % of non-conjugate pairs detected.
"""

from __future__ import annotations

import numpy as np
import pytest

from equivdyn import calibration
from equivdyn.errors import ParameterError


def test_pairs_are_reproducible_and_independent() -> None:
    a1, b1 = calibration.generate_pair("warp_moderate", n_seeds=3, seed=7, index=2)
    a2, b2 = calibration.generate_pair("warp_moderate", n_seeds=3, seed=7, index=2)
    for x, y in zip(a1 + b1, a2 + b2):
        np.testing.assert_array_equal(x, y)
    a3, _ = calibration.generate_pair("warp_moderate", n_seeds=3, seed=7, index=3)
    assert not np.allclose(a1[0], a3[0])
    assert all(x.shape == (10, 100, 3) for x in a1 + b1)


@pytest.mark.parametrize("name", list(calibration.FAMILIES))
def test_every_family_gives_finite_trajectories(name: str) -> None:
    a, b = calibration.generate_pair(name, n_seeds=2, n_inits=4, n_steps=30)
    assert len(a) == len(b) == 2
    assert all(np.isfinite(x).all() and x.shape[:2] == (4, 30) for x in a + b)


def test_latent_map_has_the_principal_eigenvalues_at_its_fixed_point() -> None:
    rng = np.random.default_rng(0)
    system = calibration._system(calibration.BASE_MODULI, calibration.BASE_ANGLES, rng)
    truth = calibration.principal_eigenvalues(calibration.BASE_MODULI, calibration.BASE_ANGLES)
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(system.jacobian)), np.sort_complex(truth), atol=1e-12)
    # the quadratic term vanishes to first order at 0: the Jacobian of the map is J there
    eps = 1e-6
    jac = np.stack([(system.run(eps * e[None], 2)[0, 1] - system.run(-eps * e[None], 2)[0, 1]) / (2 * eps) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(jac, system.jacobian, atol=1e-8)


def test_warp_is_a_diffeomorphism() -> None:
    rng = np.random.default_rng(1)
    warp = calibration._tanh_warp(3, 0.5, rng)
    points = rng.standard_normal((200, 3))
    eps = 1e-6
    for z in points:
        jac = np.stack([(warp(z + eps * e) - warp(z - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
        assert np.linalg.det(jac) > 0


def test_paired_seeds_share_their_initial_conditions() -> None:
    """paired=True: seed s of side b starts where seed s of side a starts (the `same` family
    observes both through the identity, so the runs are equal); unpaired, they differ."""
    a, b = calibration.generate_pair("same", n_seeds=3, paired=True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    a, b = calibration.generate_pair("same", n_seeds=3)
    assert not any(np.allclose(x, y) for x, y in zip(a, b))
    with pytest.raises(ParameterError, match="paired"):
        calibration.generate_pair("extra_mode", n_seeds=2, paired=True)


def test_unknown_family_or_knob_is_named() -> None:
    with pytest.raises(ParameterError, match="unknown family 'nope'"):
        calibration.generate_pair("nope")
    with pytest.raises(ParameterError, match="unknown knob"):
        calibration.generate_pair("omd_ogd", delta=0.1)


def test_wilson_interval_known_values() -> None:
    low, high = calibration.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = calibration.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = calibration.wilson_interval(2, 100)
    assert low < 0.02 < high < 0.08


#: Quick calibration: conjugate families (type-I error) and non-conjugate ones (power).
QUICK_CONJUGATE = ("same", "linear", "warp_strong", "translation", "lift", "noise", "partial", "converged", "omd_ogd")
QUICK_NON_CONJUGATE = ("shift", "shift_warp", "extra_mode", "omd_bm")
QUICK_PAIRS = 10


def test_quick_calibration_of_the_verdict() -> None:
    """Fixed-seed subset of the suite; asserts the bounds the full suite is measured against."""
    type_one = [calibration.run_cell(f, "verdict", n_pairs=QUICK_PAIRS, n_seeds=8) for f in QUICK_CONJUGATE]
    power = [calibration.run_cell(f, "verdict", n_pairs=QUICK_PAIRS, n_seeds=8) for f in QUICK_NON_CONJUGATE]
    assert all(c.errors == 0 for c in type_one + power)
    rejected = sum(c.rejections for c in type_one)
    assert rejected <= 0.05 * QUICK_PAIRS * len(QUICK_CONJUGATE), {c.family: c.rejections for c in type_one}
    for cell in type_one:
        assert cell.rejections <= 1, (cell.family, cell.rejections)
    for cell in power:
        assert cell.rate >= 0.9, (cell.family, cell.rate)


def test_baseline_randomisation_control_misses_a_shift() -> None:
    """The paper's control, measured: it rarely notices a 5 % shift that the verdict always finds."""
    baseline = calibration.run_cell("shift", "randomization", n_pairs=QUICK_PAIRS, n_seeds=2)
    verdict = calibration.run_cell("shift", "verdict", n_pairs=QUICK_PAIRS, n_seeds=8)
    assert baseline.rate <= 0.3 and verdict.rate == 1.0
