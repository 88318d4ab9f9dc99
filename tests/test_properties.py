"""Property tests (Hypothesis) of the distance, the tests built on it, and the Koopman fit.

These complement the example tests and the few property tests in test_conjugacy.py
(symmetry, zero on identical sets, invariance to the order within each set) and
test_koopman.py (DMD on full-state snapshot pairs recovers a stable spectrum): here the
properties that hold for sets of unequal size, under isometries and conjugation, against
POT on sets with ties, and for the whole estimator (every SVD route, delays from a scalar
observable, PCA, order of initialisations, exact scale invariance).

Every test is derandomised (the examples are a fixed function of the test), so CI runs
always see the same cases.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from equivdyn.conjugacy import permutation_test, randomization_test, wasserstein
from equivdyn.koopman import SVD_METHODS, KoopmanEstimator, delay_embed, pca_project

from .test_koopman import full_spectrum, linear_system, match_error, simulate

#: Shared settings: few examples, no deadline (the first call pays for imports), and
#: examples drawn deterministically, so a CI run can not fail on a case no other run saw.
PROPERTY = settings(max_examples=30, deadline=None, derandomize=True)
SLOW_PROPERTY = settings(max_examples=15, deadline=None, derandomize=True)

# ----------------------------------------------------------------------------- strategies

coordinates = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
#: Coordinates on a coarse grid: ties between distances and repeated points are frequent.
grid_coordinates = st.integers(-3, 3).map(lambda k: k / 2)


def eigenvalue_sets(min_size: int = 1, max_size: int = 8, elements: st.SearchStrategy[float] = coordinates
                    ) -> st.SearchStrategy[NDArray[np.complex128]]:
    """Complex sets drawn as ``(re, im)`` rows."""
    return st.integers(min_size, max_size).flatmap(
        lambda n: arrays(np.float64, (n, 2), elements=elements).map(lambda a: a[:, 0] + 1j * a[:, 1])
    )


def pot_wasserstein(a: NDArray[np.complex128], b: NDArray[np.complex128]) -> float:
    """1-Wasserstein distance of the uniform measures on ``a`` and ``b`` from POT's exact solver.

    The cost matrix is computed directly: ``ot.dist``'s expansion ``|a|^2 + |b|^2 - 2 a.b``
    loses about 1e-8 to cancellation (3e-8 between two equal points).
    """
    cost = np.abs(a[:, np.newaxis] - b[np.newaxis, :])
    return float(ot.emd2(np.full(a.size, 1.0 / a.size), np.full(b.size, 1.0 / b.size), cost))


def close(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


# ----------------------------------------------------------------------------- wasserstein


@PROPERTY
@given(a=eigenvalue_sets(), b=eigenvalue_sets(), c=eigenvalue_sets())
def test_triangle_inequality_for_any_sizes(a: NDArray[np.complex128], b: NDArray[np.complex128],
                                           c: NDArray[np.complex128]) -> None:
    assert wasserstein(a, c) <= wasserstein(a, b) + wasserstein(b, c) + 1e-12


@PROPERTY
@given(a=eigenvalue_sets(), b=eigenvalue_sets())
def test_symmetric_and_zero_on_identical_sets_of_unequal_size(a: NDArray[np.complex128],
                                                              b: NDArray[np.complex128]) -> None:
    assert close(wasserstein(a, b), wasserstein(b, a))
    assert wasserstein(b, b) == 0.0
    assert wasserstein(a, b) >= 0.0


@PROPERTY
@given(a=eigenvalue_sets(), b=eigenvalue_sets(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_the_order_of_either_set_of_unequal_size(a: NDArray[np.complex128], b: NDArray[np.complex128],
                                                              seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = wasserstein(a, b)
    assert close(wasserstein(a[rng.permutation(a.size)], b), d)
    assert close(wasserstein(a, b[rng.permutation(b.size)]), d)


@PROPERTY
@given(a=eigenvalue_sets(), b=eigenvalue_sets())
def test_invariant_under_conjugating_both_sets(a: NDArray[np.complex128], b: NDArray[np.complex128]) -> None:
    # Conjugation is a reflection of the plane: every pairwise distance is kept exactly.
    assert wasserstein(a.conj(), b.conj()) == wasserstein(a, b)


@PROPERTY
@given(a=eigenvalue_sets(), b=eigenvalue_sets(), shift=st.complex_numbers(max_magnitude=3.0),
       angle=st.floats(-np.pi, np.pi), scale=st.floats(0.1, 10.0))
def test_isometries_keep_and_scaling_scales_the_distance(a: NDArray[np.complex128], b: NDArray[np.complex128],
                                                         shift: complex, angle: float, scale: float) -> None:
    d = wasserstein(a, b)
    rotation = np.exp(1j * angle)
    assert math.isclose(wasserstein(rotation * a + shift, rotation * b + shift), d, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(wasserstein(scale * a, scale * b), scale * d, rel_tol=1e-9, abs_tol=1e-12)


def equal_size_pairs(elements: st.SearchStrategy[float] = coordinates
                     ) -> st.SearchStrategy[tuple[NDArray[np.complex128], NDArray[np.complex128]]]:
    return st.integers(1, 10).flatmap(
        lambda n: st.tuples(eigenvalue_sets(n, n, elements), eigenvalue_sets(n, n, elements))
    )


@PROPERTY
@given(pair=equal_size_pairs())
def test_equals_pot_on_equal_size_sets(pair: tuple[NDArray[np.complex128], NDArray[np.complex128]]) -> None:
    a, b = pair
    assert close(wasserstein(a, b), pot_wasserstein(a, b))


@PROPERTY
@given(pair=equal_size_pairs(grid_coordinates))
def test_equals_pot_on_sets_with_ties_and_repeated_points(
        pair: tuple[NDArray[np.complex128], NDArray[np.complex128]]) -> None:
    a, b = pair
    assert close(wasserstein(a, b), pot_wasserstein(a, b))


@PROPERTY
@given(a=eigenvalue_sets(max_size=6), b=eigenvalue_sets(max_size=6), k=st.integers(1, 4), j=st.integers(1, 4))
def test_unequal_sizes_agree_with_replication(a: NDArray[np.complex128], b: NDArray[np.complex128], k: int,
                                              j: int) -> None:
    """A set stands for the uniform measure on its points: replicating points changes nothing."""
    d = wasserstein(a, b)
    assert close(wasserstein(np.repeat(a, k), b), d)
    assert close(wasserstein(a, np.tile(b, j)), d)
    assert close(wasserstein(np.repeat(a, k), np.tile(b, j)), d)
    size = math.lcm(a.size, b.size)
    assert close(wasserstein(np.repeat(a, size // a.size), np.repeat(b, size // b.size)), d)
    assert close(d, pot_wasserstein(a, b))


# ----------------------------------------------------------------------------- randomisation and permutation tests


@PROPERTY
@given(a=eigenvalue_sets(max_size=6), b=eigenvalue_sets(max_size=6), n_shuffles=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1))
def test_randomization_p_value_and_reproducibility(a: NDArray[np.complex128], b: NDArray[np.complex128],
                                                   n_shuffles: int, seed: int) -> None:
    first = randomization_test(a, b, n_shuffles=n_shuffles, seed=seed)
    again = randomization_test(a, b, n_shuffles=n_shuffles, seed=seed)
    assert 0.0 < first.p_value <= 1.0
    assert first.p_value >= 1.0 / (1 + n_shuffles)
    count = first.p_value * (1 + n_shuffles)
    assert count == pytest.approx(round(count), abs=1e-9)  # (1 + #ties) / (1 + n_shuffles)
    assert close(first.observed, wasserstein(a, b))
    assert np.all(first.null <= first.observed * (1 + 1e-9) + 1e-12)  # a swap never beats the matching
    assert again.p_value == first.p_value
    assert again.observed == first.observed
    assert again.null.tobytes() == first.null.tobytes()
    assert again.matching.tobytes() == first.matching.tobytes()


@PROPERTY
@given(a=eigenvalue_sets(max_size=5), n_shuffles=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_randomization_of_a_set_with_itself_has_p_one(a: NDArray[np.complex128], n_shuffles: int, seed: int) -> None:
    result = randomization_test(a, a.copy(), n_shuffles=n_shuffles, seed=seed)
    assert result.observed == 0.0
    assert result.p_value == 1.0


@st.composite
def seed_groups(draw: st.DrawFn) -> tuple[list[NDArray[np.complex128]], list[NDArray[np.complex128]], bool]:
    """Two groups of eigenvalue sets of one common size; equal group lengths when paired."""
    size = draw(st.integers(1, 5))
    paired = draw(st.booleans())
    n_a = draw(st.integers(2, 4))
    n_b = n_a if paired else draw(st.integers(2, 4))
    group_a = [draw(eigenvalue_sets(size, size)) for _ in range(n_a)]
    group_b = [draw(eigenvalue_sets(size, size)) for _ in range(n_b)]
    return group_a, group_b, paired


@PROPERTY
@given(groups=seed_groups(), n_permutations=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_permutation_p_value_and_reproducibility(
    groups: tuple[list[NDArray[np.complex128]], list[NDArray[np.complex128]], bool], n_permutations: int, seed: int
) -> None:
    group_a, group_b, paired = groups
    first = permutation_test(group_a, group_b, n_permutations=n_permutations, seed=seed, paired=paired)
    again = permutation_test(group_a, group_b, n_permutations=n_permutations, seed=seed, paired=paired)
    assert 0.0 < first.p_value <= 1.0
    assert first.p_value >= 1.0 / (1 + n_permutations)
    assert np.isfinite(first.statistic) and np.isfinite(first.effect_size)
    assert again.p_value == first.p_value
    assert again.statistic == first.statistic
    assert again.null.tobytes() == first.null.tobytes()
    # the statistic is mean between minus mean within, of distances the test reports
    assert math.isclose(first.statistic, first.between.mean() - first.within.mean(), rel_tol=1e-9, abs_tol=1e-12)
    if paired:
        for s, d in enumerate(first.between):
            assert close(d, wasserstein(group_a[s], group_b[s]))


# ----------------------------------------------------------------------------- delay_embed and pca_project


@st.composite
def trajectories(draw: st.DrawFn, max_m: int = 3, max_t: int = 9, max_d: int = 3) -> NDArray[np.float64]:
    shape = (draw(st.integers(1, max_m)), draw(st.integers(2, max_t)), draw(st.integers(1, max_d)))
    return draw(arrays(np.float64, shape, elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)))


@PROPERTY
@given(data=trajectories(), frac=st.floats(0.0, 1.0))
def test_delay_embed_shape_and_hankel_structure(data: NDArray[np.float64], frac: float) -> None:
    m, t, d = data.shape
    n = int(frac * (t - 2))
    embedded = delay_embed(data, n)
    assert embedded.shape == (m, t - n, (n + 1) * d)
    for lag in range(n + 1):  # block ``lag`` of row ``s`` is the snapshot ``s + lag``
        assert np.array_equal(embedded[:, :, lag * d:(lag + 1) * d], data[:, lag:lag + t - n])
    # Hankel: a row shifted by one step is the next row shifted by one block
    assert np.array_equal(embedded[:, 1:, :-d], embedded[:, :-1, d:])
    # one trajectory [T, D] embeds as the same trajectory inside [1, T, D]
    assert np.array_equal(delay_embed(data[0], n), embedded[0])
    assert np.array_equal(delay_embed(data, 0), data)


@PROPERTY
@given(data=trajectories(max_t=8, max_d=4), shift=arrays(np.float64, 4, elements=st.floats(-50, 50)),
       frac=st.floats(0.0, 1.0))
def test_pca_project_uses_one_centring_and_ignores_a_common_shift(data: NDArray[np.float64],
                                                                   shift: NDArray[np.float64], frac: float) -> None:
    m, t, d = data.shape
    rng = np.random.default_rng(0)
    data = data + 1e-3 * rng.standard_normal(data.shape)  # no exactly degenerate directions
    k = 1 + int(frac * (min(m * t, d) - 1))
    projected, components, mean = pca_project(data, k)
    assert projected.shape == (m, t, k) and components.shape == (k, d) and mean.shape == (d,)
    np.testing.assert_allclose(mean, data.reshape(-1, d).mean(axis=0), rtol=1e-12, atol=1e-9)
    # the projection is the fitted centring applied to the same data
    np.testing.assert_allclose(projected, (data - mean) @ components.T, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(projected.reshape(-1, k).mean(axis=0), 0.0, atol=1e-8 * (1 + np.abs(data).max()))
    np.testing.assert_allclose(components @ components.T, np.eye(k), atol=1e-9)
    # a single trajectory gives the same as a batch of one
    k1 = min(k, t, d)
    p1, c1, m1 = pca_project(data[0], k1)
    p2, c2, m2 = pca_project(data[:1], k1)
    assert np.array_equal(p1, p2[0]) and np.array_equal(c1, c2) and np.array_equal(m1, m2)
    # translating every snapshot moves the mean only (leading components that are well separated)
    s = np.linalg.svd(data.reshape(-1, d) - mean, compute_uv=False)
    gaps = np.abs(np.diff(s[: k + 1])) if k < s.size else np.abs(np.diff(s[:k]))
    assume(s[0] > 1e-6 and (gaps.size == 0 or gaps.min() > 1e-3 * s[0]) and s[k - 1] > 1e-3 * s[0])
    moved, moved_components, moved_mean = pca_project(data + shift[:d], k)
    np.testing.assert_allclose(moved_mean, mean + shift[:d], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(moved_components, components, atol=1e-6)
    np.testing.assert_allclose(moved, projected, rtol=1e-6, atol=1e-6 * (1 + np.abs(data).max()))


# ----------------------------------------------------------------------------- the estimator


@st.composite
def stable_spectra(draw: st.DrawFn, max_pairs: int = 3, max_real: int = 2) -> list[complex]:
    """Conjugate pairs and real eigenvalues inside the unit disc, pairwise at least 0.05 apart."""
    n_pairs = draw(st.integers(1, max_pairs))
    n_real = draw(st.integers(0, max_real))
    modulus = st.floats(0.3, 0.97)
    eigs = [draw(modulus) * np.exp(1j * draw(st.floats(0.2, np.pi - 0.2))) for _ in range(n_pairs)]
    eigs += [complex(draw(modulus) * draw(st.sampled_from([-1.0, 1.0]))) for _ in range(n_real)]
    full = full_spectrum(eigs)
    gaps = np.abs(full[:, None] - full[None, :]) + np.eye(full.size)
    assume(gaps.min() > 0.05)
    return eigs


@SLOW_PROPERTY
@given(eigs=stable_spectra(), seed=st.integers(0, 2**32 - 1), svd=st.sampled_from(SVD_METHODS),
       n_features=st.sampled_from([None, 40, 400]))
def test_estimator_recovers_a_stable_spectrum_through_every_svd_route(eigs: list[complex], seed: int, svd: str,
                                                                      n_features: int | None) -> None:
    """Random stable system, random well-conditioned basis, several initial conditions; the
    state is observed directly or through an injective linear map into many observables
    (which sends the automatic route to the Gram matrix)."""
    rng = np.random.default_rng(seed)
    a = linear_system(eigs, rng)
    d = a.shape[0]
    traj = simulate(a, n_init=d + 2, n_steps=6, rng=rng)
    if n_features is not None:
        lift, _ = np.linalg.qr(rng.standard_normal((n_features, d)))  # orthonormal columns
        traj = traj @ lift.T
    spec = KoopmanEstimator(svd=svd).fit(traj)
    assert spec.rank == d
    tolerance = 1e-6 if spec.params["svd"] == "direct" else 1e-4  # the Gram route squares the condition number
    assert match_error(spec.eigenvalues, full_spectrum(eigs)) < tolerance
    assert spec.residuals.max() < tolerance


@SLOW_PROPERTY
@given(eigs=stable_spectra(max_pairs=2, max_real=1), seed=st.integers(0, 2**32 - 1))
def test_delays_recover_the_spectrum_from_one_scalar_observable(eigs: list[complex], seed: int) -> None:
    """A generic scalar observable of a d-dimensional linear system, embedded with d - 1
    delays, carries the whole spectrum (Hankel DMD)."""
    rng = np.random.default_rng(seed)
    a = linear_system(eigs, rng)
    d = a.shape[0]
    traj = simulate(a, n_init=d + 2, n_steps=3 * d, rng=rng)
    observable = traj @ rng.standard_normal(d)[:, None]  # [M, T, 1]
    spec = KoopmanEstimator(n_delays=d - 1).fit(observable)
    assert spec.rank == d
    assert match_error(spec.eigenvalues, full_spectrum(eigs)) < 1e-5


@st.composite
def fits(draw: st.DrawFn, pca: bool = True) -> tuple[NDArray[np.float64], KoopmanEstimator]:
    """Random real trajectories and an estimator (delays, optionally PCA) that fits them."""
    m, t, d = draw(st.integers(2, 4)), draw(st.integers(6, 12)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((m, t, d)).cumsum(axis=1)  # random walks: a realistic, non-linear-ish input
    n_components = draw(st.sampled_from([None, *range(1, min(d, m * t) + 1)])) if pca else None
    n_delays = draw(st.integers(0, min(3, t - 3)))
    return data, KoopmanEstimator(n_delays=n_delays, n_components=n_components, svd="direct")


@PROPERTY
@given(case=fits(), seed=st.integers(0, 2**32 - 1))
def test_fit_is_invariant_to_the_order_of_initialisations(case: tuple[NDArray[np.float64], KoopmanEstimator],
                                                          seed: int) -> None:
    data, estimator = case
    order = np.random.default_rng(seed).permutation(data.shape[0])
    first = estimator.fit(data)
    shuffled = estimator.fit(data[order])
    assert shuffled.rank == first.rank
    scale = max(1.0, float(np.abs(first.eigenvalues).max()))
    assert match_error(shuffled.eigenvalues, first.eigenvalues) < 1e-7 * scale
    np.testing.assert_allclose(shuffled.singular_values, first.singular_values, rtol=1e-9,
                               atol=1e-9 * first.singular_values[0])


@PROPERTY
@given(case=fits())
def test_eigenvalues_of_real_data_are_closed_under_conjugation(
        case: tuple[NDArray[np.float64], KoopmanEstimator]) -> None:
    data, estimator = case
    eig = estimator.fit(data).eigenvalues
    # the reduced operator is real, so LAPACK returns exact conjugate pairs
    assert np.array_equal(np.sort_complex(eig), np.sort_complex(eig.conj()))
    # and the spectral order lists the member with the negative angle first
    for i in np.flatnonzero(eig.imag > 0):
        assert np.flatnonzero(eig == eig[i].conj())[0] < i


@PROPERTY
@given(case=fits(pca=False), exponent=st.integers(-900, 900))
def test_fit_is_exactly_invariant_to_a_power_of_two_scale(case: tuple[NDArray[np.float64], KoopmanEstimator],
                                                          exponent: int) -> None:
    """Multiplying the data by 2**k is exact, and DMD normalises its snapshot matrices the
    same way, so eigenvalues and residuals are bit-identical, however large or small."""
    data, estimator = case  # without PCA: its SVD is not normalised, so equal up to rounding only
    first = estimator.fit(data)
    scaled = estimator.fit(np.ldexp(data, exponent))
    assert scaled.eigenvalues.tobytes() == first.eigenvalues.tobytes()
    assert scaled.residuals.tobytes() == first.residuals.tobytes()
    assert np.array_equal(scaled.singular_values, np.ldexp(first.singular_values, exponent))
