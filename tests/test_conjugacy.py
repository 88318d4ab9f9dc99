"""Tests of equivdyn.conjugacy: Wasserstein distance and randomisation tests."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import ot
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from equivdyn.conjugacy import (
    PermutationResult,
    RandomizationResult,
    as_eigenvalues,
    distance_matrix,
    bootstrap_ci,
    optimal_matching,
    permutation_test,
    randomization_test,
    wasserstein,
)
from equivdyn.errors import ParameterError


def random_set(rng: np.random.Generator, n: int, centre: complex = 0j, scale: float = 0.3) -> NDArray[np.complex128]:
    """``n`` random points around ``centre`` in the complex plane."""
    return centre + scale * (rng.standard_normal(n) + 1j * rng.standard_normal(n))


def pot_wasserstein(a: NDArray[np.complex128], b: NDArray[np.complex128]) -> float:
    """Reference 1-Wasserstein distance from POT on (re, im) coordinates."""
    a2 = np.column_stack([a.real, a.imag])
    b2 = np.column_stack([b.real, b.imag])
    cost = ot.dist(a2, b2, metric="euclidean")
    return float(ot.emd2(np.ones(len(a)) / len(a), np.ones(len(b)) / len(b), cost))


# ---------------------------------------------------------------------------
# as_eigenvalues / optimal_matching / wasserstein
# ---------------------------------------------------------------------------


def test_as_eigenvalues_formats() -> None:
    z = np.array([1 + 2j, -0.5 + 0j])
    np.testing.assert_array_equal(as_eigenvalues(z), z)
    np.testing.assert_array_equal(as_eigenvalues(np.array([[1.0, 2.0], [-0.5, 0.0]])), z)
    np.testing.assert_array_equal(as_eigenvalues([0.5, 2.0]), np.array([0.5 + 0j, 2.0 + 0j]))
    assert as_eigenvalues([1, 2]).dtype == np.complex128
    with pytest.raises(ValueError, match=r"x is empty"):
        as_eigenvalues([], "x")
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        as_eigenvalues(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(\)"):
        as_eigenvalues(1.0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        as_eigenvalues(np.zeros((2, 2), dtype=complex))
    with pytest.raises(ValueError, match=r"NaN or inf.*index 1"):
        as_eigenvalues([1.0, np.nan])
    with pytest.raises(ValueError, match="numeric"):
        as_eigenvalues(["a", "b"])


def test_optimal_matching_simple() -> None:
    a = np.array([0.0, 1.0, 2.0j])
    b = np.array([2.1j, 0.1, 1.1])
    cols, costs = optimal_matching(a, b)
    np.testing.assert_array_equal(cols, [1, 2, 0])
    np.testing.assert_allclose(costs, [0.1, 0.1, 0.1])
    assert wasserstein(a, b) == pytest.approx(0.1)


@pytest.mark.parametrize("n", [1, 2, 5, 17, 40])
def test_wasserstein_matches_pot(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    for _ in range(5):
        a = random_set(rng, n)
        b = random_set(rng, n, centre=0.3 + 0.1j)
        assert wasserstein(a, b) == pytest.approx(pot_wasserstein(a, b), rel=1e-9, abs=1e-12)


def test_wasserstein_basic_properties() -> None:
    rng = np.random.default_rng(101)
    a = random_set(rng, 12)
    b = random_set(rng, 12, centre=0.5)
    assert wasserstein(a, a) == 0.0
    assert wasserstein(a, b) == pytest.approx(wasserstein(b, a), rel=1e-12)
    assert wasserstein(a[rng.permutation(12)], b[rng.permutation(12)]) == pytest.approx(wasserstein(a, b), rel=1e-12)
    # real [n, 2] input gives the same result
    assert wasserstein(np.column_stack([a.real, a.imag]), b) == pytest.approx(wasserstein(a, b), rel=1e-12)


def test_wasserstein_triangle_inequality() -> None:
    rng = np.random.default_rng(102)
    for _ in range(30):
        n = int(rng.integers(1, 10))
        a, b, c = (random_set(rng, n, centre=complex(*rng.uniform(-1, 1, 2))) for _ in range(3))
        assert wasserstein(a, c) <= wasserstein(a, b) + wasserstein(b, c) + 1e-12


def test_wasserstein_errors() -> None:
    with pytest.raises(ValueError, match="a is empty"):
        wasserstein([], [])
    with pytest.raises(ValueError, match=r"b contains NaN or inf"):
        wasserstein([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ValueError, match=r"a contains NaN or inf.*index 0"):
        wasserstein([np.inf + 0j, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"sizes 997 and 991 .* exceeds"):
        wasserstein(np.arange(997.0), np.arange(991.0))
    with pytest.raises(ValueError, match=r"different sizes \(1 and 2\).*equal size"):
        optimal_matching([1.0], [1.0, 2.0])


def test_wasserstein_unequal_sizes_matches_pot() -> None:
    rng = np.random.default_rng(105)
    for n, m in [(10, 6), (3, 7), (1, 4), (12, 8)]:
        a, b = random_set(rng, n), random_set(rng, m, centre=0.3 + 0.1j)
        assert wasserstein(a, b) == pytest.approx(pot_wasserstein(a, b), rel=1e-10, abs=1e-12)
        assert wasserstein(a, b) == pytest.approx(wasserstein(b, a), rel=1e-12)
    # Duplicating every point of a set does not change the measure it stands for.
    a = random_set(rng, 5)
    assert wasserstein(a, np.repeat(a, 2)) == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------------------
# randomization_test
# ---------------------------------------------------------------------------


def test_randomization_identical_sets() -> None:
    rng = np.random.default_rng(200)
    a = random_set(rng, 10)
    res = randomization_test(a, a.copy(), n_shuffles=200, seed=1)
    assert isinstance(res, RandomizationResult)
    assert res.observed == 0.0
    assert res.p_value == 1.0
    assert res.null.shape == (200,)
    np.testing.assert_array_equal(res.null, 0.0)


def test_randomization_separated_sets_small_p() -> None:
    rng = np.random.default_rng(201)
    a = random_set(rng, 10, centre=1.0, scale=0.05)
    b = random_set(rng, 10, centre=0.2, scale=0.05)
    res = randomization_test(a, b, n_shuffles=999, seed=3)
    assert res.observed == pytest.approx(wasserstein(a, b))
    assert res.p_value < 0.05


def test_randomization_perturbed_sets_large_p() -> None:
    rng = np.random.default_rng(202)
    a = random_set(rng, 10, scale=0.5)
    b = a + 1e-3 * (rng.standard_normal(10) + 1j * rng.standard_normal(10))
    res = randomization_test(a, b, n_shuffles=999, seed=4)
    assert res.p_value > 0.5


def test_randomization_null_bounded_and_deterministic() -> None:
    rng = np.random.default_rng(203)
    a = random_set(rng, 8)
    b = random_set(rng, 8, centre=0.2)
    first = randomization_test(a, b, n_shuffles=300, seed=7)
    second = randomization_test(a, b, n_shuffles=300, seed=7)
    np.testing.assert_array_equal(first.null, second.null)
    assert first.p_value == second.p_value
    assert np.all(first.null <= first.observed + 1e-12 * max(1.0, first.observed))
    cols, _ = optimal_matching(a, b)
    np.testing.assert_array_equal(first.matching, cols)
    other = randomization_test(a, b, n_shuffles=300, seed=8)
    assert not np.array_equal(first.null, other.null)


def test_randomization_uses_its_own_arguments() -> None:
    # a vs b are far apart, a vs c are near-identical: each call must use its own pair
    rng = np.random.default_rng(204)
    a = random_set(rng, 10, centre=0.9, scale=0.05)
    b = random_set(rng, 10, centre=0.1, scale=0.05)
    c = a + 1e-4 * rng.standard_normal(10)
    ab = randomization_test(a, b, n_shuffles=499, seed=5)
    ac = randomization_test(a, c, n_shuffles=499, seed=5)
    bb = randomization_test(b, b, n_shuffles=499, seed=5)
    assert ab.observed == pytest.approx(wasserstein(a, b))
    assert ac.observed == pytest.approx(wasserstein(a, c))
    assert ab.p_value < 0.05 < ac.p_value
    assert bb.observed == 0.0 and bb.p_value == 1.0


def test_randomization_unequal_sizes() -> None:
    rng = np.random.default_rng(106)
    a = random_set(rng, 10, centre=0.9)
    res = randomization_test(a, a[:6], n_shuffles=200, seed=1)
    assert res.observed == pytest.approx(wasserstein(a, a[:6]))
    assert (res.null <= res.observed + 1e-12).all()
    far = randomization_test(a, random_set(rng, 6, centre=-0.5, scale=0.05), n_shuffles=999, seed=1)
    assert far.p_value < 0.05


def test_randomization_errors() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        randomization_test(np.arange(997.0), np.arange(991.0))
    with pytest.raises(ParameterError, match="n_shuffles must be >= 1"):
        randomization_test([1.0], [2.0], n_shuffles=0)
    with pytest.raises(ParameterError, match="seed must be an integer"):
        randomization_test([1.0], [2.0], seed=1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# permutation_test
# ---------------------------------------------------------------------------


def draw_group(
    rng: np.random.Generator, spectrum: NDArray[np.complex128], n_seeds: int, noise: float
) -> list[NDArray[np.complex128]]:
    """``n_seeds`` noisy copies of ``spectrum`` (one eigenvalue set per seed)."""
    n = spectrum.size
    return [spectrum + noise * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) for _ in range(n_seeds)]


SPEC_A = np.array([0.95 * np.exp(0.3j), 0.95 * np.exp(-0.3j), 0.7, 0.4, -0.2])
SPEC_B = np.array([0.8 * np.exp(0.9j), 0.8 * np.exp(-0.9j), 0.5, 0.1, -0.6])


@pytest.mark.parametrize("paired", [True, False])
def test_permutation_different_spectra_small_p(paired: bool) -> None:
    # 8 seeds: with n paired seeds only 2**(n-1) relabellings are distinct, so the
    # smallest attainable p-value is about 2**-(n-1); 8 seeds leave room below 0.05
    rng = np.random.default_rng(300)
    group_a = draw_group(rng, SPEC_A, 8, 0.03)
    group_b = draw_group(rng, SPEC_B, 8, 0.03)
    res = permutation_test(group_a, group_b, n_permutations=2000, seed=1, paired=paired)
    assert isinstance(res, PermutationResult)
    assert res.statistic > 0
    assert res.p_value < 0.05
    assert res.effect_size > 1.0
    # 2**8 = 256 paired swap patterns are enumerated exactly; unpaired, C(16, 8) > 2000 are sampled
    assert res.exact == paired
    assert res.null.shape == ((256,) if paired else (2000,))
    assert res.between.shape == ((8,) if paired else (64,))
    assert res.within.shape == (56,)


@pytest.mark.parametrize("paired", [True, False])
def test_permutation_same_distribution_not_small_p(paired: bool) -> None:
    # A fixed seeded draw (rng seed 301): both groups come from the same distribution,
    # so the null hypothesis is true; for this particular draw the p-value is far from
    # small.  (Under the null, p < 0.05 would occur for about 5 % of seeds.)
    rng = np.random.default_rng(301)
    group_a = draw_group(rng, SPEC_A, 6, 0.05)
    group_b = draw_group(rng, SPEC_A, 6, 0.05)
    res = permutation_test(group_a, group_b, n_permutations=2000, seed=2, paired=paired)
    assert res.p_value > 0.05


def test_permutation_statistic_and_distances_by_hand() -> None:
    rng = np.random.default_rng(302)
    group_a = draw_group(rng, SPEC_A, 3, 0.05)
    group_b = draw_group(rng, SPEC_B, 4, 0.05)
    res = permutation_test(group_a, group_b, n_permutations=100, seed=0, paired=False)
    between = [wasserstein(x, y) for x in group_a for y in group_b]
    within = [wasserstein(group_a[i], group_a[j]) for i in range(3) for j in range(i + 1, 3)]
    within += [wasserstein(group_b[i], group_b[j]) for i in range(4) for j in range(i + 1, 4)]
    np.testing.assert_allclose(res.between, between)
    np.testing.assert_allclose(res.within, within)
    assert res.statistic == pytest.approx(np.mean(between) - np.mean(within))
    b, w = np.asarray(between), np.asarray(within)
    pooled = np.sqrt(((b.size - 1) * b.var(ddof=1) + (w.size - 1) * w.var(ddof=1)) / (b.size + w.size - 2))
    assert res.effect_size == pytest.approx((b.mean() - w.mean()) / pooled)

    paired = permutation_test(group_a, group_b[:3], n_permutations=100, seed=0, paired=True)
    np.testing.assert_allclose(paired.between, [wasserstein(group_a[s], group_b[s]) for s in range(3)])


def test_permutation_null_matches_direct_recomputation() -> None:
    # the null is a statistic of relabelled sets: check it for the unpaired mode by brute force
    rng = np.random.default_rng(303)
    group_a = draw_group(rng, SPEC_A, 3, 0.1)
    group_b = draw_group(rng, SPEC_B, 3, 0.1)
    res = permutation_test(group_a, group_b, n_permutations=50, seed=9, paired=False)
    all_sets = group_a + group_b
    possible = []
    for idx in combinations(range(6), 3):
        ga = [all_sets[i] for i in idx]
        gb = [all_sets[i] for i in range(6) if i not in idx]
        between = np.mean([wasserstein(x, y) for x in ga for y in gb])
        within = np.mean([wasserstein(g[i], g[j]) for g in (ga, gb) for i in range(3) for j in range(i + 1, 3)])
        possible.append(between - within)
    possible_arr = np.asarray(possible)
    for value in res.null:
        assert np.min(np.abs(possible_arr - value)) < 1e-12


def test_permutation_identical_groups() -> None:
    rng = np.random.default_rng(304)
    base = random_set(rng, 6)
    res = permutation_test([base, base, base], [base, base, base], n_permutations=100, seed=0)
    assert res.statistic == 0.0
    assert res.p_value == 1.0
    assert res.effect_size == 0.0


def test_permutation_deterministic() -> None:
    rng = np.random.default_rng(305)
    ga = draw_group(rng, SPEC_A, 4, 0.1)
    gb = draw_group(rng, SPEC_B, 4, 0.1)
    r1 = permutation_test(ga, gb, n_permutations=300, seed=11)
    r2 = permutation_test(ga, gb, n_permutations=300, seed=11)
    np.testing.assert_array_equal(r1.null, r2.null)
    assert r1.p_value == r2.p_value


def test_permutation_errors() -> None:
    rng = np.random.default_rng(306)
    ga = draw_group(rng, SPEC_A, 3, 0.1)
    gb = draw_group(rng, SPEC_B, 3, 0.1)
    with pytest.raises(ValueError, match="group_a needs at least 2 eigenvalue sets"):
        permutation_test(ga[:1], gb)
    with pytest.raises(ValueError, match="group_b needs at least 2 eigenvalue sets"):
        permutation_test(ga, gb[:1], paired=False)
    with pytest.raises(ValueError, match=r"paired=True.*3 sets in group_a and 2 in group_b"):
        permutation_test(ga, gb[:2])
    with pytest.raises(ValueError, match=r"same size.*group_b\[1\]: 4"):
        permutation_test(ga, [gb[0], gb[1][:4], gb[2]])
    with pytest.raises(ValueError, match=r"group_a\[2\] contains NaN"):
        permutation_test([ga[0], ga[1], np.full(5, np.nan)], gb)
    with pytest.raises(ParameterError, match="n_permutations must be >= 1"):
        permutation_test(ga, gb, n_permutations=0)


# ---------------------------------------------------------------------------
# bootstrap_ci
# ---------------------------------------------------------------------------


def test_bootstrap_ci_contains_mean_and_narrows() -> None:
    rng = np.random.default_rng(400)
    small = rng.normal(2.0, 1.0, 10)
    large = rng.normal(2.0, 1.0, 400)
    lo_s, hi_s = bootstrap_ci(small, n_boot=4000, seed=1)
    lo_l, hi_l = bootstrap_ci(large, n_boot=4000, seed=1)
    assert lo_s <= small.mean() <= hi_s
    assert lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    lo_90, hi_90 = bootstrap_ci(small, n_boot=4000, level=0.9, seed=1)
    assert lo_s <= lo_90 <= hi_90 <= hi_s
    assert bootstrap_ci(small, n_boot=500, seed=3) == bootstrap_ci(small, n_boot=500, seed=3)
    assert bootstrap_ci([1.5], n_boot=10) == (1.5, 1.5)


def test_bootstrap_ci_errors() -> None:
    with pytest.raises(ValueError, match="values is empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match=r"NaN or inf.*index 1"):
        bootstrap_ci([1.0, np.nan])
    for level in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ParameterError, match="level must be a number in"):
            bootstrap_ci([1.0, 2.0], level=level)
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(np.ones((2, 2)))


# ---------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------

coordinates = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def set_pairs(draw: st.DrawFn) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Two eigenvalue sets of the same random size (as (re, im) rows converted to complex)."""
    n = draw(st.integers(1, 12))
    a = draw(arrays(np.float64, (n, 2), elements=coordinates))
    b = draw(arrays(np.float64, (n, 2), elements=coordinates))
    return a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(pair=set_pairs())
def test_property_symmetry(pair: tuple[NDArray[np.complex128], NDArray[np.complex128]]) -> None:
    a, b = pair
    assert wasserstein(a, b) == pytest.approx(wasserstein(b, a), rel=1e-12, abs=1e-14)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(pair=set_pairs())
def test_property_zero_on_identical(pair: tuple[NDArray[np.complex128], NDArray[np.complex128]]) -> None:
    a, _ = pair
    assert wasserstein(a, a) == 0.0
    assert wasserstein(a, a.copy()) == 0.0


@settings(max_examples=30, deadline=None, derandomize=True)
@given(pair=set_pairs(), seed=st.integers(0, 2**32 - 1))
def test_property_permutation_invariance(
    pair: tuple[NDArray[np.complex128], NDArray[np.complex128]], seed: int
) -> None:
    a, b = pair
    rng = np.random.default_rng(seed)
    pa, pb = rng.permutation(a.size), rng.permutation(b.size)
    assert wasserstein(a[pa], b[pb]) == pytest.approx(wasserstein(a, b), rel=1e-12, abs=1e-14)


def test_distance_matrix_holds_the_pairwise_distances() -> None:
    rng = np.random.default_rng(3)
    sets = [rng.normal(size=n) + 1j * rng.normal(size=n) for n in (4, 4, 2, 6)]
    dist = distance_matrix(sets)
    assert dist.shape == (4, 4)
    assert np.array_equal(dist, dist.T)
    assert np.all(np.diag(dist) == 0.0)
    for i in range(4):
        for j in range(i + 1, 4):
            assert dist[i, j] == wasserstein(sets[i], sets[j])


def test_permutation_few_seeds_is_exact_and_never_below_its_floor() -> None:
    # 2 paired seeds: 4 swap patterns, the observed one and its mirror always count, so p >= 1/2
    rng = np.random.default_rng(7)
    for _ in range(20):
        group_a = draw_group(rng, SPEC_A, 2, 0.03)
        group_b = draw_group(rng, SPEC_B, 2, 0.03)
        res = permutation_test(group_a, group_b, n_permutations=1000, seed=0)
        assert res.exact and res.null.shape == (4,)
        assert res.p_value >= 0.5
    # 5 paired seeds: the floor is 2**-4 = 1/16, so p < 0.05 is impossible
    res = permutation_test(draw_group(rng, SPEC_A, 5, 0.03), draw_group(rng, SPEC_B, 5, 0.03), seed=0)
    assert res.exact and res.p_value >= 1 / 16
