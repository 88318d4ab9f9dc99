"""Compare Koopman eigenvalue sets: Wasserstein distance and randomisation tests.

Two training dynamics are (topologically) conjugate when their Koopman spectra
coincide, so the distance between two eigenvalue sets measures how far two
dynamics are from being equivalent.

Array convention: an eigenvalue set is a 1-D complex array ``[n]`` (points in the
complex plane).  :func:`as_eigenvalues` also accepts a real 1-D array ``[n]`` or a
real ``[n, 2]`` array of ``(re, im)`` rows.  Trajectories elsewhere in equivdyn are
``[M, T, D]`` arrays (``M`` initialisations, ``T`` snapshots, ``D`` observables);
one eigenvalue set is obtained per initialisation group (e.g. per seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from equivdyn.errors import ParameterError, check_int, is_number

__all__ = [
    "PermutationResult",
    "RandomizationResult",
    "as_eigenvalues",
    "bootstrap_ci",
    "distance_matrix",
    "optimal_matching",
    "permutation_test",
    "randomization_test",
    "wasserstein",
]

#: Relative tolerance used to count floating-point ties of a null statistic with
#: the observed statistic (see :func:`randomization_test`).
TIE_RTOL = 1e-12

#: Upper bound on the number of float64 entries held at once by batched computations.
_BATCH_ENTRIES = 2_000_000

#: Largest common size ``lcm(n, m)`` to which two sets of unequal size are replicated.
MAX_BALANCED_SIZE = 2000


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def as_eigenvalues(x: ArrayLike, name: str = "eigenvalues") -> NDArray[np.complex128]:
    """Validate an eigenvalue set and return it as a complex128 1-D array.

    Parameters
    ----------
    x : array_like, complex [n], real [n] or real [n, 2]
        Eigenvalues as complex numbers, real numbers, or ``(re, im)`` rows.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray, complex128 [n]
        The eigenvalues.

    Raises
    ------
    ValueError
        If the set is empty, not numeric, has a wrong shape (anything but ``[n]`` or a
        real ``[n, 2]``) or contains NaN/inf.
    """
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        values = arr.astype(np.complex128)
    elif arr.ndim == 2 and arr.shape[1] == 2 and not np.iscomplexobj(arr):
        values = arr[:, 0].astype(np.float64) + 1j * arr[:, 1].astype(np.float64)
    else:
        raise ValueError(
            f"{name} must be a 1-D array [n] (complex or real) or a real [n, 2] array of (re, im) rows, "
            f"got shape {arr.shape} and dtype {arr.dtype}"
        )
    if values.size == 0:
        raise ValueError(f"{name} is empty; an eigenvalue set needs at least one eigenvalue")
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} contains NaN or inf values; the first one is at index {i} ({values[i]})")
    return values


def _pair(
    a: ArrayLike, b: ArrayLike, name_a: str = "a", name_b: str = "b", balance: bool = False
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Validate two eigenvalue sets; equal sizes unless ``balance`` (see :func:`balanced`)."""
    av = as_eigenvalues(a, name_a)
    bv = as_eigenvalues(b, name_b)
    if av.size == bv.size:
        return av, bv
    if not balance:
        raise ValueError(
            f"{name_a} and {name_b} have different sizes ({av.size} and {bv.size}); "
            f"a one-to-one matching needs sets of equal size"
        )
    return balanced(av, bv, name_a, name_b)


def balanced(
    a: NDArray[np.complex128], b: NDArray[np.complex128], name_a: str = "a", name_b: str = "b"
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Replicate two sets of sizes ``n`` and ``m`` to the common size ``L = lcm(n, m)``.

    Each point of ``a`` is repeated ``L/n`` times and each point of ``b`` ``L/m`` times.
    The uniform measures the sets stand for are unchanged, and between two uniform
    measures on ``L`` points an optimal transport plan can be taken to be a permutation,
    so the exact 1-Wasserstein distance between sets of unequal size is an assignment
    problem on the replicated sets.  (A rank-``k`` fit can return fewer than ``k``
    eigenvalues when the data support fewer, e.g. runs that converge to a fixed point.)

    Raises
    ------
    ValueError
        If ``L`` exceeds :data:`MAX_BALANCED_SIZE`.
    """
    n, m = a.size, b.size
    size = math.lcm(n, m)
    if size > MAX_BALANCED_SIZE:
        raise ValueError(
            f"{name_a} and {name_b} have sizes {n} and {m} whose least common multiple {size} exceeds "
            f"{MAX_BALANCED_SIZE}; sets of such unequal sizes are not supported"
        )
    return np.repeat(a, size // n), np.repeat(b, size // m)


def _matching_cost(
    a: NDArray[np.complex128], b: NDArray[np.complex128], cap: float | None = None
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Hungarian matching on validated sets; returns ``cols`` and the matched distances
    (each at most ``cap`` when given)."""
    cost = np.abs(a[:, np.newaxis] - b[np.newaxis, :])
    if cap is not None:
        cost = np.minimum(cost, cap)
    rows, cols = linear_sum_assignment(cost)
    # rows is 0..n-1 in order for a square cost matrix
    return cols.astype(np.intp), cost[rows, cols]


# ---------------------------------------------------------------------------
# distance
# ---------------------------------------------------------------------------


def optimal_matching(a: ArrayLike, b: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """One-to-one matching of two eigenvalue sets minimising the total distance.

    Solves the assignment problem (Hungarian algorithm,
    :func:`scipy.optimize.linear_sum_assignment`) on the cost matrix
    ``C[i, j] = |a_i - b_j|``.

    Parameters
    ----------
    a : array_like, complex [n] (or real [n], or real [n, 2])
        First eigenvalue set.
    b : array_like, complex [n] (or real [n], or real [n, 2])
        Second eigenvalue set, same size.

    Returns
    -------
    cols : ndarray, int [n]
        ``a[i]`` is matched with ``b[cols[i]]``.
    costs : ndarray, float64 [n]
        ``|a[i] - b[cols[i]]|``.

    Raises
    ------
    ValueError
        On invalid sets or sets of different size.
    """
    av, bv = _pair(a, b)
    return _matching_cost(av, bv)


def wasserstein(a: ArrayLike, b: ArrayLike, cap: float | None = None) -> float:
    """1-Wasserstein distance between two eigenvalue sets with uniform weights.

    With uniform weights ``1/n`` on each point, the optimal transport plan between
    two sets of ``n`` points can be taken to be a permutation, so the distance is the
    mean Euclidean distance ``|a_i - b_j|`` in the complex plane under the optimal
    one-to-one matching (:func:`optimal_matching`).  Sets of unequal size are first
    replicated to a common size (:func:`balanced`), which gives the exact distance.

    Parameters
    ----------
    a : array_like, complex [n] (or real [n], or real [n, 2])
        First eigenvalue set.
    b : array_like, complex [m] (or real [m], or real [m, 2])
        Second eigenvalue set.
    cap : float, optional
        Ground distance ``min(|a_i - b_j|, cap)``: a point farther than ``cap`` from its
        match costs ``cap``, as if it were left unmatched (a partial matching; the
        distance stays a metric, bounded by ``cap``).

    Returns
    -------
    float
        The distance (``0`` for identical sets; symmetric; a metric).

    Raises
    ------
    ValueError
        On invalid sets, or sizes whose least common multiple exceeds
        :data:`MAX_BALANCED_SIZE`.
    """
    if cap is not None and not (is_number(cap) and float(cap) > 0.0):
        raise ParameterError(f"cap must be a number > 0, got {cap!r}")
    av, bv = _pair(a, b, balance=True)
    return float(np.mean(_matching_cost(av, bv, None if cap is None else float(cap))[1]))


def distance_matrix(sets: Sequence[ArrayLike], cap: float | None = None) -> NDArray[np.float64]:
    """Symmetric [n, n] matrix of :func:`wasserstein` distances (ground distance capped at
    ``cap`` when given) between ``n`` eigenvalue sets (zero diagonal)."""
    dist = np.zeros((len(sets), len(sets)), dtype=np.float64)
    for i, j in combinations(range(len(sets)), 2):
        dist[i, j] = dist[j, i] = wasserstein(sets[i], sets[j], cap)
    return dist


# ---------------------------------------------------------------------------
# randomisation test between two sets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomizationResult:
    """Result of :func:`randomization_test`.

    Attributes
    ----------
    observed : float
        Wasserstein distance between the two sets.
    null : float64 [n_shuffles]
        Distances after randomly swapping matched pairs between the sets.
    p_value : float
        ``(1 + #{null >= observed - tol}) / (1 + n_shuffles)``.
    n_shuffles : int
        Number of random swaps.
    seed : int
        Seed of ``np.random.default_rng``.
    matching : int [n]
        Optimal matching of the observed sets: ``a[i]`` with ``b[matching[i]]``.
    """

    observed: float
    null: np.ndarray
    p_value: float
    n_shuffles: int
    seed: int
    matching: np.ndarray


def randomization_test(a: ArrayLike, b: ArrayLike, n_shuffles: int = 1000, seed: int = 0) -> RandomizationResult:
    """Randomisation test of whether two eigenvalue sets differ beyond relabelling.

    The sets are matched optimally (:func:`optimal_matching`).  In each shuffle every
    matched pair ``(a_i, b_cols[i])`` is swapped between the two sets independently
    with probability 1/2, and the Wasserstein distance of the shuffled sets is
    recomputed with a re-optimised matching.

    After a swap the original matching is still available at the same total cost, so
    every null value is at most the observed distance; equality means the observed
    matching is still optimal after the swap.  Ties are therefore frequent, and a
    rounding difference of a few ulps must not turn a tie into a "smaller" value:
    null values ``>= observed - tol`` with ``tol = 1e-12 * max(1, observed)`` count as
    ties.  The p-value ``(1 + #ties) / (1 + n_shuffles)`` is thus (up to the ``+1``
    correction) the fraction of swaps after which the observed matching stays
    optimal.  A small p-value means the two sets are farther apart than a relabelling
    of matched pairs can explain; identical sets give ``observed = 0`` and ``p = 1``.

    Parameters
    ----------
    a : array_like, complex [n] (or real [n], or real [n, 2])
        First eigenvalue set.
    b : array_like, complex [m] (or real [m], or real [m, 2])
        Second eigenvalue set.  Sets of unequal size are replicated to a common size
        first (:func:`balanced`); the swaps then act on the replicated points.
    n_shuffles : int
        Number of random swaps (``>= 1``).
    seed : int
        Seed of ``np.random.default_rng`` (``>= 0``).

    Returns
    -------
    RandomizationResult
        Observed distance, null distances, p-value and the observed matching.

    Raises
    ------
    ValueError
        On invalid sets, sets of different size or bad ``n_shuffles``/``seed``.
    """
    av, bv = _pair(a, b, balance=True)
    n_shuffles = check_int(n_shuffles, "n_shuffles", 1)
    seed = check_int(seed, "seed", 0)
    cols, costs = _matching_cost(av, bv)
    observed = float(np.mean(costs))
    b_matched = bv[cols]

    rng = np.random.default_rng(seed)
    swaps = rng.random((n_shuffles, av.size)) < 0.5
    shuffled_a = np.where(swaps, b_matched[np.newaxis, :], av[np.newaxis, :])
    shuffled_b = np.where(swaps, av[np.newaxis, :], b_matched[np.newaxis, :])
    null = np.empty(n_shuffles, dtype=np.float64)
    n = av.size
    batch = max(1, _BATCH_ENTRIES // (n * n))
    for start in range(0, n_shuffles, batch):
        stop = min(start + batch, n_shuffles)
        cost = np.abs(shuffled_a[start:stop, :, np.newaxis] - shuffled_b[start:stop, np.newaxis, :])
        for k in range(stop - start):
            rows, cc = linear_sum_assignment(cost[k])
            null[start + k] = np.mean(cost[k][rows, cc])

    tol = TIE_RTOL * max(1.0, observed)
    p_value = (1.0 + np.count_nonzero(null >= observed - tol)) / (1.0 + n_shuffles)
    return RandomizationResult(
        observed=observed,
        null=null,
        p_value=float(p_value),
        n_shuffles=n_shuffles,
        seed=seed,
        matching=cols,
    )


# ---------------------------------------------------------------------------
# label-permutation test across seeds
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PermutationResult:
    """Result of :func:`permutation_test`.

    Attributes
    ----------
    statistic : float
        Mean between-group distance minus mean within-group distance.
    null : float64 [n_permutations]
        The statistic under random relabellings.
    p_value : float
        One-sided ``(1 + #{null >= statistic - tol}) / (1 + n_permutations)``.
    effect_size : float
        ``(mean between - mean within) / pooled sd`` of the two distance samples.
    between : float64 [n_between]
        Observed between-group distances (``[n]`` paired, ``[n_a * n_b]`` unpaired,
        in row-major ``(i, j)`` order).
    within : float64 [n_within]
        Observed within-group distances: all pairs ``i < j`` of group a, then of group b.
    n_permutations : int
        Number of relabellings in ``null`` (all of them when ``exact``).
    seed : int
        Seed of ``np.random.default_rng``.
    exact : bool
        True when every distinct relabelling was enumerated (see :func:`permutation_test`).
    """

    statistic: float
    null: np.ndarray
    p_value: float
    effect_size: float
    between: np.ndarray
    within: np.ndarray
    n_permutations: int
    seed: int
    exact: bool = False


def _group(sets: Sequence[ArrayLike], name: str) -> list[NDArray[np.complex128]]:
    """Validate a group of eigenvalue sets (at least two)."""
    if isinstance(sets, np.ndarray) and sets.ndim == 1 and not np.issubdtype(sets.dtype, np.object_):
        raise ValueError(f"{name} must be a sequence of eigenvalue sets, got a single 1-D array of shape {sets.shape}")
    try:
        items = list(sets)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of eigenvalue sets, got {type(sets).__name__}") from exc
    if len(items) < 2:
        raise ValueError(f"{name} needs at least 2 eigenvalue sets (one per seed), got {len(items)}")
    return [as_eigenvalues(item, f"{name}[{i}]") for i, item in enumerate(items)]


def _pooled_effect_size(between: NDArray[np.float64], within: NDArray[np.float64]) -> float:
    """``(mean between - mean within) / pooled sd`` (0 when the pooled sd is 0)."""
    n1, n2 = between.size, within.size
    var1 = between.var(ddof=1) if n1 > 1 else 0.0
    var2 = within.var(ddof=1) if n2 > 1 else 0.0
    dof = n1 + n2 - 2
    pooled = np.sqrt(((n1 - 1) * var1 + (n2 - 1) * var2) / dof) if dof > 0 else 0.0
    if not pooled > 0:
        return 0.0
    return float((between.mean() - within.mean()) / pooled)


def permutation_test(
    group_a: Sequence[ArrayLike],
    group_b: Sequence[ArrayLike],
    n_permutations: int = 10000,
    seed: int = 0,
    paired: bool = True,
) -> PermutationResult:
    """Label-permutation test of whether two groups of eigenvalue sets differ.

    ``group_a`` and ``group_b`` hold one eigenvalue set per seed (e.g. training setup
    A and setup B).  The statistic is the mean between-group distance minus the mean
    within-group distance (Wasserstein distances, :func:`wasserstein`):

    * between: ``wasserstein(group_a[s], group_b[s])`` for each seed ``s`` when
      ``paired`` (the groups must then have equal length), all cross pairs otherwise;
    * within: all pairs of distinct seeds within group a and within group b.

    Null distribution: labels are reassigned at random and the statistic recomputed.
    When ``paired``, the two labels of each seed's pair are swapped independently with
    probability 1/2 (the paired between-distances are unchanged by such a swap, only
    which cross-seed distances count as "within" changes); otherwise all labels are
    permuted keeping the group sizes.  The full pairwise distance matrix of all sets
    is computed once, so each relabelling costs only index arithmetic.

    When there are at most ``n_permutations`` relabellings (``2**n`` paired swap patterns,
    ``C(n_a + n_b, n_a)`` unpaired labellings) every one is enumerated and the p-value is
    exact: ``#{null >= statistic - tol} / #relabellings``; with ``n`` paired seeds it is at
    least ``2**-(n - 1)`` (the observed labelling and its mirror image).  Otherwise
    ``n_permutations`` random relabellings give ``(1 + #{null >= statistic - tol}) /
    (1 + n_permutations)``.  ``tol = 1e-12 * max(1, |statistic|)`` keeps relabellings
    equivalent to the observed one from being lost to rounding.

    The effect size is ``(mean between - mean within) / s_pooled`` with
    ``s_pooled = sqrt(((n_b - 1) s_b^2 + (n_w - 1) s_w^2) / (n_b + n_w - 2))`` the pooled
    standard deviation (``ddof=1``) of the between and within distances (Cohen's d);
    it is defined as 0 when ``s_pooled`` is 0.

    Parameters
    ----------
    group_a : sequence of array_like, each complex [n] (or real [n], or real [n, 2])
        Eigenvalue sets of group a, at least two.
    group_b : sequence of array_like, each complex [n] (or real [n], or real [n, 2])
        Eigenvalue sets of group b, at least two; all sets (both groups) of equal size.
    n_permutations : int
        Number of random relabellings (``>= 1``).
    seed : int
        Seed of ``np.random.default_rng`` (``>= 0``).
    paired : bool
        Pair ``group_a[s]`` with ``group_b[s]`` (see above).

    Returns
    -------
    PermutationResult
        Statistic, null distribution, p-value, effect size and observed distances.

    Raises
    ------
    ValueError
        On fewer than two sets in a group, sets of unequal size, groups of unequal
        length when ``paired``, or bad ``n_permutations``/``seed``.
    """
    sets_a = _group(group_a, "group_a")
    sets_b = _group(group_b, "group_b")
    n_permutations = check_int(n_permutations, "n_permutations", 1)
    seed = check_int(seed, "seed", 0)
    if not isinstance(paired, (bool, np.bool_)):
        raise ParameterError(f"paired must be a bool, got {paired!r}")
    n_a, n_b = len(sets_a), len(sets_b)
    if paired and n_a != n_b:
        raise ValueError(
            f"paired=True needs one set per seed in each group, got {n_a} sets in group_a and {n_b} in group_b"
        )
    all_sets = sets_a + sets_b
    sizes = {s.size for s in all_sets}
    if len(sizes) != 1:
        labels = [f"group_a[{i}]: {s.size}" for i, s in enumerate(sets_a)]
        labels += [f"group_b[{i}]: {s.size}" for i, s in enumerate(sets_b)]
        raise ValueError(
            "all eigenvalue sets must have the same size (unequal sizes are not supported); sizes are "
            + ", ".join(labels)
        )

    n_total = n_a + n_b
    dist = distance_matrix(all_sets)

    n_within = n_a * (n_a - 1) // 2 + n_b * (n_b - 1) // 2
    if paired:
        between = dist[np.arange(n_a), n_a + np.arange(n_a)].copy()
    else:
        between = dist[:n_a, n_a:].ravel().copy()
    between_mean = float(between.mean())
    iu_a = np.triu_indices(n_a, k=1)
    iu_b = np.triu_indices(n_b, k=1)
    within = np.concatenate([dist[:n_a, :n_a][iu_a], dist[n_a:, n_a:][iu_b]])

    def statistics(labels: NDArray[np.float64]) -> NDArray[np.float64]:
        """Statistic for each row of a 0/1 label matrix ``[P, n_total]`` (1 = group a)."""
        other = 1.0 - labels
        d_labels = labels @ dist
        within_a = np.einsum("pi,pi->p", d_labels, labels) / 2.0
        within_b = np.einsum("pi,pi->p", other @ dist, other) / 2.0
        within_mean = (within_a + within_b) / n_within
        if paired:
            return between_mean - within_mean
        cross = np.einsum("pi,pi->p", d_labels, other)
        return cross / (n_a * n_b) - within_mean

    observed_labels = np.concatenate([np.ones(n_a), np.zeros(n_b)])[np.newaxis, :]
    statistic = float(statistics(observed_labels)[0])

    n_distinct = 2**n_a if paired else math.comb(n_total, n_a)
    exact = n_distinct <= n_permutations
    if exact:
        # few relabellings: enumerate every one (the observed labelling included), so the
        # p-value is exact and never below its floor
        if paired:
            swap = ((np.arange(n_distinct)[:, None] >> np.arange(n_a)[None, :]) & 1).astype(bool)
            first = (~swap).astype(np.float64)
            labels = np.concatenate([first, 1.0 - first], axis=1)
        else:
            labels = np.zeros((n_distinct, n_total))
            for row, idx in enumerate(combinations(range(n_total), n_a)):
                labels[row, list(idx)] = 1.0
        null = statistics(labels)
    else:
        rng = np.random.default_rng(seed)
        null = np.empty(n_permutations, dtype=np.float64)
        batch = max(1, _BATCH_ENTRIES // n_total)
        for start in range(0, n_permutations, batch):
            stop = min(start + batch, n_permutations)
            size = stop - start
            if paired:
                swap = rng.random((size, n_a)) < 0.5
                first = (~swap).astype(np.float64)
                labels = np.concatenate([first, 1.0 - first], axis=1)
            else:
                order = rng.permuted(np.tile(np.arange(n_total), (size, 1)), axis=1)
                labels = (order < n_a).astype(np.float64)
            null[start:stop] = statistics(labels)

    tol = TIE_RTOL * max(1.0, abs(statistic))
    n_extreme = np.count_nonzero(null >= statistic - tol)
    p_value = n_extreme / null.size if exact else (1.0 + n_extreme) / (1.0 + n_permutations)
    return PermutationResult(
        statistic=statistic,
        null=null,
        p_value=float(p_value),
        effect_size=_pooled_effect_size(between, within),
        between=between,
        within=within,
        n_permutations=int(null.size),
        seed=seed,
        exact=bool(exact),
    )


# ---------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------


def bootstrap_ci(values: ArrayLike, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for the mean of per-seed values.

    Parameters
    ----------
    values : array_like, float [n]
        One value per seed (e.g. a distance or an effect size), ``n >= 1``.
    n_boot : int
        Number of bootstrap resamples (``>= 1``).
    level : float
        Confidence level in ``(0, 1)``.
    seed : int
        Seed of ``np.random.default_rng`` (``>= 0``).

    Returns
    -------
    low : float
        The ``(1 - level) / 2`` quantile of the bootstrap means.
    high : float
        The ``(1 + level) / 2`` quantile of the bootstrap means.

    Raises
    ------
    ValueError
        On empty, non-1-D, non-real or non-finite ``values``, or bad ``n_boot``,
        ``level`` or ``seed``.
    """
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"values must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"values must be a 1-D array [n], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("values is empty; a bootstrap needs at least one value")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"values contains NaN or inf; the first one is at index {i} ({arr[i]})")
    n_boot = check_int(n_boot, "n_boot", 1)
    seed = check_int(seed, "seed", 0)
    if (
        isinstance(level, bool)
        or not isinstance(level, (int, float, np.floating, np.integer))
        or not 0.0 < float(level) < 1.0
    ):
        raise ParameterError(f"level must be a number in (0, 1), got {level!r}")

    rng = np.random.default_rng(seed)
    n = arr.size
    means = np.empty(n_boot, dtype=np.float64)
    batch = max(1, _BATCH_ENTRIES // n)
    for start in range(0, n_boot, batch):
        stop = min(start + batch, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = (1.0 - float(level)) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
