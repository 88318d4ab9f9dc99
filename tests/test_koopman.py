"""Tests of equivdyn.koopman: embedding, snapshot pairs, PCA and DMD."""

from __future__ import annotations

import numpy as np
import pydmd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.stats import ortho_group

from equivdyn.errors import ParameterError
from equivdyn.koopman import (
    SVD_METHODS,
    KoopmanEstimator,
    KoopmanSpectrum,
    delay_embed,
    dmd,
    pca_project,
    snapshot_pairs,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def real_block_matrix(eigenvalues: list[complex]) -> NDArray[np.float64]:
    """Real block-diagonal matrix with the given eigenvalues.

    A complex value ``a + ib`` with ``b != 0`` contributes a 2x2 rotation-scaling block
    (eigenvalues ``a +- ib``); a real value a 1x1 block.
    """
    size = sum(2 if abs(lam.imag) > 0 else 1 for lam in eigenvalues)
    out = np.zeros((size, size))
    i = 0
    for lam in eigenvalues:
        if abs(lam.imag) > 0:
            out[i : i + 2, i : i + 2] = [[lam.real, -lam.imag], [lam.imag, lam.real]]
            i += 2
        else:
            out[i, i] = lam.real
            i += 1
    return out


def full_spectrum(eigenvalues: list[complex]) -> NDArray[np.complex128]:
    """The list with the conjugate of each non-real value added."""
    out: list[complex] = []
    for lam in eigenvalues:
        out.append(complex(lam))
        if abs(lam.imag) > 0:
            out.append(complex(lam).conjugate())
    return np.asarray(out, dtype=np.complex128)


def linear_system(eigenvalues: list[complex], rng: np.random.Generator) -> NDArray[np.float64]:
    """A real matrix with the given spectrum, conjugated by a random well-conditioned basis."""
    block = real_block_matrix(eigenvalues)
    n = block.shape[0]
    q = ortho_group.rvs(n, random_state=rng) if n > 1 else np.ones((1, 1))
    basis = q @ np.diag(rng.uniform(0.7, 1.4, size=n))
    return basis @ block @ np.linalg.inv(basis)


def simulate(a: NDArray[np.float64], n_init: int, n_steps: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Trajectories ``[M, T, D]`` of ``x_{t+1} = A x_t`` from random initial conditions."""
    d = a.shape[0]
    out = np.empty((n_init, n_steps, d))
    out[:, 0] = rng.standard_normal((n_init, d))
    for t in range(1, n_steps):
        out[:, t] = out[:, t - 1] @ a.T
    return out


def match_error(found: NDArray[np.complex128], expected: NDArray[np.complex128]) -> float:
    """Largest distance between two equal-size eigenvalue sets under the optimal matching."""
    assert found.shape == expected.shape
    cost = np.abs(found[:, None] - expected[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


STABLE = [0.9 * np.exp(0.4j), 0.7 * np.exp(2.1j), 0.8 + 0j, -0.5 + 0j, 0.3 + 0j]


# ---------------------------------------------------------------------------
# delay_embed
# ---------------------------------------------------------------------------


def test_delay_embed_block_order_hand_made() -> None:
    traj = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [3.0, 13.0]])  # [T=4, D=2]
    emb = delay_embed(traj, 2)
    expected = np.array(
        [
            [0.0, 10.0, 1.0, 11.0, 2.0, 12.0],
            [1.0, 11.0, 2.0, 12.0, 3.0, 13.0],
        ]
    )
    assert emb.shape == (2, 6)
    np.testing.assert_array_equal(emb, expected)


def test_delay_embed_shapes_3d_and_zero_delays() -> None:
    rng = np.random.default_rng(11)
    traj = rng.standard_normal((3, 9, 4))
    assert delay_embed(traj, 3).shape == (3, 6, 16)
    assert delay_embed(traj, 7).shape == (3, 2, 32)
    np.testing.assert_array_equal(delay_embed(traj, 0), traj)
    np.testing.assert_array_equal(delay_embed(traj[1], 0), traj[1])


def test_delay_embed_matches_naive_loop() -> None:
    rng = np.random.default_rng(12)
    traj = rng.standard_normal((4, 13, 3))
    n_delays = 4
    m, t, d = traj.shape
    naive = np.empty((m, t - n_delays, (n_delays + 1) * d))
    for i in range(m):
        for s in range(t - n_delays):
            naive[i, s] = np.concatenate([traj[i, s + k] for k in range(n_delays + 1)])
    np.testing.assert_array_equal(delay_embed(traj, n_delays), naive)
    np.testing.assert_array_equal(delay_embed(traj[2], n_delays), naive[2])


def test_delay_embed_errors() -> None:
    traj = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match=r"n_delays=4 .*T=5.*at least 2"):
        delay_embed(traj, 4)
    with pytest.raises(ValueError, match="n_delays=5"):
        delay_embed(traj, 5)
    with pytest.raises(ValueError, match="n_delays must be >= 0"):
        delay_embed(traj, -1)
    with pytest.raises(ValueError, match="n_delays must be an integer"):
        delay_embed(traj, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        delay_embed(np.zeros(5), 1)
    bad = np.zeros((3, 6, 2))
    bad[1, 4, 1] = np.nan
    bad[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf.*diverged.*initialisation 1, step 4"):
        delay_embed(bad, 1)
    with pytest.raises(ValueError, match=r"NaN or inf.*step 4, observable 1"):
        delay_embed(bad[1], 1)


# ---------------------------------------------------------------------------
# snapshot_pairs
# ---------------------------------------------------------------------------


def test_snapshot_pairs_never_cross_initialisations() -> None:
    # value = 100 * init + step, so a crossing pair would be (100 m + T - 1, 100 (m + 1))
    n_init, n_steps = 3, 5
    traj = (100.0 * np.arange(n_init)[:, None] + np.arange(n_steps)[None, :])[:, :, None]
    traj = np.concatenate([traj, -traj], axis=2)  # D = 2
    x, y = snapshot_pairs(traj)
    assert x.shape == y.shape == (2, n_init * (n_steps - 1))
    np.testing.assert_array_equal(y - x, np.vstack([np.ones(x.shape[1]), -np.ones(x.shape[1])]))
    expected_x = np.concatenate([100.0 * m + np.arange(n_steps - 1) for m in range(n_init)])
    np.testing.assert_array_equal(x[0], expected_x)
    np.testing.assert_array_equal(y[0], expected_x + 1)


def test_snapshot_pairs_single_trajectory_and_errors() -> None:
    traj = np.arange(12.0).reshape(6, 2)
    x, y = snapshot_pairs(traj)
    np.testing.assert_array_equal(x, traj[:-1].T)
    np.testing.assert_array_equal(y, traj[1:].T)
    with pytest.raises(ValueError, match="at least T=2"):
        snapshot_pairs(np.zeros((2, 1, 3)))


# ---------------------------------------------------------------------------
# pca_project
# ---------------------------------------------------------------------------


def test_pca_project_centring_orthonormality_reconstruction() -> None:
    rng = np.random.default_rng(21)
    traj = rng.standard_normal((3, 7, 5)) @ rng.standard_normal((5, 5)) + 4.0
    proj, comps, mean = pca_project(traj, 3)
    assert proj.shape == (3, 7, 3) and comps.shape == (3, 5) and mean.shape == (5,)
    np.testing.assert_allclose(proj.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(mean, traj.reshape(-1, 5).mean(axis=0))
    # variance is decreasing along the components
    var = proj.reshape(-1, 3).var(axis=0)
    assert np.all(np.diff(var) <= 1e-12)
    # sign convention: the largest-magnitude entry of each component is positive
    assert np.all(comps[np.arange(3), np.argmax(np.abs(comps), axis=1)] > 0)

    full, comps_full, mean_full = pca_project(traj, 5)
    np.testing.assert_allclose(full @ comps_full + mean_full, traj, atol=1e-12)

    single, _, _ = pca_project(traj[0], 2)
    assert single.shape == (7, 2)


def test_pca_project_errors() -> None:
    traj = np.ones((2, 3, 10))
    with pytest.raises(ParameterError, match=r"n_components=7 exceeds min\(M\*T, D\)"):
        pca_project(traj, 7)
    with pytest.raises(ParameterError, match="n_components must be >= 1"):
        pca_project(traj, 0)


# ---------------------------------------------------------------------------
# dmd
# ---------------------------------------------------------------------------


def test_dmd_recovers_linear_spectrum() -> None:
    rng = np.random.default_rng(31)
    a = linear_system(STABLE, rng)
    traj = simulate(a, n_init=6, n_steps=12, rng=rng)
    x, y = snapshot_pairs(traj)
    spec = dmd(x, y)
    assert isinstance(spec, KoopmanSpectrum)
    assert spec.params["rank"] == a.shape[0]
    assert spec.n_snapshots == 6 * 11
    assert match_error(spec.eigenvalues, full_spectrum(STABLE)) < 1e-9
    assert spec.singular_values.shape == (a.shape[0],)
    assert np.all(np.diff(spec.singular_values) <= 0)
    assert spec.residuals.max() < 1e-10
    # modes are unit-norm and satisfy A phi = lambda phi (exact DMD on full-rank data)
    assert spec.modes is not None
    np.testing.assert_allclose(np.linalg.norm(spec.modes, axis=0), 1.0)
    np.testing.assert_allclose(a @ spec.modes, spec.modes * spec.eigenvalues, atol=1e-9)


def test_dmd_sort_order() -> None:
    rng = np.random.default_rng(32)
    a = linear_system(STABLE, rng)
    spec = dmd(*snapshot_pairs(simulate(a, 6, 12, rng)))
    moduli = np.abs(spec.eigenvalues)
    assert np.all(np.diff(moduli) <= 1e-12)
    # conjugate pairs: negative angle first
    pair = spec.eigenvalues[:2]
    np.testing.assert_allclose(pair[0], np.conj(pair[1]))
    assert pair[0].imag < 0 < pair[1].imag
    np.testing.assert_allclose(spec.moduli, moduli)
    assert spec.rank == 7


def test_dmd_with_delays_recovers_spectrum() -> None:
    # observe only the first coordinate of a 5-dimensional linear system
    rng = np.random.default_rng(33)
    eigs = [0.95 * np.exp(0.3j), 0.6 * np.exp(1.7j), 0.8 + 0j]
    a = linear_system(eigs, rng)
    observed = simulate(a, n_init=4, n_steps=25, rng=rng)[:, :, :1]
    est = KoopmanEstimator(n_delays=6, rank=5)
    spec = est.fit(observed)
    assert match_error(spec.eigenvalues, full_spectrum(eigs)) < 1e-7
    assert spec.residuals.max() < 1e-8
    assert spec.params["n_delays"] == 6
    assert spec.params["rank"] == 5 and spec.params["rank_used"] == 5
    assert spec.params["n_initialisations"] == 4
    assert spec.params["n_steps"] == 25
    assert spec.params["n_observables"] == 1
    assert spec.n_snapshots == 4 * (25 - 6 - 1)


def test_svd_routes_agree() -> None:
    rng = np.random.default_rng(34)
    a = linear_system(STABLE, rng)
    x, y = snapshot_pairs(simulate(a, 5, 10, rng))
    direct = dmd(x, y, svd="direct")
    gram = dmd(x, y, svd="gram")
    assert direct.params["svd"] == "direct" and gram.params["svd"] == "gram"
    np.testing.assert_allclose(gram.eigenvalues, direct.eigenvalues, atol=1e-8)
    np.testing.assert_allclose(gram.singular_values, direct.singular_values, rtol=1e-8)
    assert dmd(x, y).params["svd"] == "direct"  # 7 features, 45 snapshots


def test_gram_route_on_tall_matrix() -> None:
    # a 3-pair + 1 real latent system read out through 2000 random observables
    rng = np.random.default_rng(35)
    eigs = [0.97 * np.exp(0.2j), 0.85 * np.exp(1.1j), 0.5 * np.exp(2.5j), 0.9 + 0j]
    a = linear_system(eigs, rng)
    latent = simulate(a, 3, 8, rng)
    readout = rng.standard_normal((a.shape[0], 2000))
    x, y = snapshot_pairs(latent @ readout)
    assert x.shape == (2000, 21)
    auto = dmd(x, y)
    assert auto.params["svd"] == "gram"
    assert auto.params["rank"] == 7
    direct = dmd(x, y, svd="direct")
    assert direct.params["rank"] == 7
    assert match_error(auto.eigenvalues, full_spectrum(eigs)) < 1e-7
    np.testing.assert_allclose(auto.eigenvalues, direct.eigenvalues, atol=1e-7)
    assert auto.residuals.max() < 1e-7
    assert auto.modes is not None and auto.modes.shape == (2000, 7)
    # modes agree up to a phase
    overlap = np.abs(np.sum(np.conj(auto.modes) * direct.modes, axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-7)


def test_pydmd_oracle() -> None:
    rng = np.random.default_rng(36)
    a = linear_system(STABLE, rng)
    traj = simulate(a, 4, 15, rng) + 1e-3 * rng.standard_normal((4, 15, 7))
    x, y = snapshot_pairs(delay_embed(traj, 2))
    rank = 9
    ours = dmd(x, y, rank=rank, svd="direct")
    oracle = pydmd.DMD(svd_rank=rank, exact=True).fit(x, y)
    theirs = np.asarray(oracle.eigs, dtype=np.complex128)
    assert theirs.shape == (rank,)
    assert match_error(ours.eigenvalues, theirs) < 1e-9
    # modes agree up to scaling: match by eigenvalue, then compare normalised directions
    cost = np.abs(ours.eigenvalues[:, None] - theirs[None, :])
    rows, cols = linear_sum_assignment(cost)
    their_modes = np.asarray(oracle.modes)[:, cols]
    their_modes = their_modes / np.linalg.norm(their_modes, axis=0)
    assert ours.modes is not None
    overlap = np.abs(np.sum(np.conj(ours.modes[:, rows]) * their_modes, axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)


def test_residuals_small_for_linear_large_for_nonlinear() -> None:
    rng = np.random.default_rng(37)
    # logistic map in the chaotic regime, observed with delays
    n_init, n_steps = 5, 60
    traj = np.empty((n_init, n_steps, 1))
    traj[:, 0, 0] = rng.uniform(0.1, 0.9, n_init)
    for t in range(1, n_steps):
        traj[:, t] = 3.7 * traj[:, t - 1] * (1.0 - traj[:, t - 1])
    nonlinear = KoopmanEstimator(n_delays=4).fit(traj)
    assert nonlinear.residuals.min() > 1e-3

    a = linear_system([0.9 * np.exp(0.5j), 0.6 + 0j, -0.4 + 0j], rng)
    linear = KoopmanEstimator(n_delays=2).fit(simulate(a, 5, 20, rng)[:, :, :2])
    assert linear.residuals.max() < 1e-10


def test_dmd_errors() -> None:
    rng = np.random.default_rng(38)
    x = rng.standard_normal((4, 10))
    with pytest.raises(ParameterError, match=r"rank=5 exceeds the numerical rank 4"):
        dmd(x, x, rank=5)
    low_rank = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 10))
    with pytest.raises(ParameterError, match=r"rank=3 exceeds the numerical rank 2"):
        dmd(low_rank, low_rank, rank=3)
    assert dmd(low_rank, low_rank).params["rank"] == 2
    with pytest.raises(ValueError, match="same shape"):
        dmd(x, x[:, :-1])
    with pytest.raises(ValueError, match="svd must be one of"):
        dmd(x, x, svd="lapack")
    with pytest.raises(ValueError, match=r"Y contains NaN or inf.*snapshot 3"):
        y = x.copy()
        y[1, 3] = np.inf
        dmd(x, y)
    with pytest.raises(ValueError, match="numerically zero"):
        dmd(np.zeros((3, 4)), np.zeros((3, 4)))


def test_estimator_validation_and_params() -> None:
    for bad in ("svd", "", "GRAM", None):
        with pytest.raises(ParameterError, match="svd must be one of"):
            KoopmanEstimator(svd=bad)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="n_delays"):
        KoopmanEstimator(n_delays=-2)
    with pytest.raises(ParameterError, match="rank"):
        KoopmanEstimator(rank=0)
    with pytest.raises(ParameterError, match="n_components"):
        KoopmanEstimator(n_components=1.0)  # type: ignore[arg-type]
    for method in SVD_METHODS:
        est = KoopmanEstimator(svd=method)
        assert est.get_params() == {
            "n_delays": 0,
            "rank": None,
            "n_components": None,
            "svd": method,
            "keep_modes": False,
        }


def test_estimator_with_pca() -> None:
    # a 4-dimensional linear system embedded in 30 dimensions with an offset.  After
    # centring, the projected dynamics are affine; one delay makes the constant a
    # linear function of the embedded state, so DMD sees a 5-dimensional linear system
    # with the extra eigenvalue 1
    rng = np.random.default_rng(39)
    eigs = [0.9 * np.exp(0.6j), 0.7 * np.exp(1.9j)]
    a = linear_system(eigs, rng)
    latent = simulate(a, 6, 15, rng)
    lift = ortho_group.rvs(30, random_state=rng)[:4]
    traj = latent @ lift + 5.0
    spec = KoopmanEstimator(n_components=4, n_delays=1, keep_modes=True).fit(traj)
    assert spec.params["n_components"] == 4
    assert spec.params["n_observables"] == 30
    assert spec.rank == 5
    assert spec.modes is not None and spec.modes.shape == (8, 5)
    assert match_error(spec.eigenvalues, np.concatenate([full_spectrum(eigs), [1.0]])) < 1e-8
    assert spec.residuals.max() < 1e-9
    assert KoopmanEstimator().fit(traj[0]).params["n_initialisations"] == 1


# ---------------------------------------------------------------------------
# property test
# ---------------------------------------------------------------------------


@st.composite
def stable_spectra(draw: st.DrawFn) -> list[complex]:
    """1-3 conjugate pairs and 0-2 real eigenvalues, moduli in [0.2, 0.98]."""
    n_pairs = draw(st.integers(1, 3))
    n_real = draw(st.integers(0, 2))
    modulus = st.floats(0.2, 0.98)
    eigs: list[complex] = []
    for _ in range(n_pairs):
        eigs.append(draw(modulus) * np.exp(1j * draw(st.floats(0.15, np.pi - 0.15))))
    for _ in range(n_real):
        eigs.append(complex(draw(modulus) * draw(st.sampled_from([-1.0, 1.0]))))
    return eigs


@settings(max_examples=25, deadline=None, derandomize=True)
@given(eigs=stable_spectra(), seed=st.integers(0, 2**32 - 1))
def test_property_dmd_recovers_stable_spectra(eigs: list[complex], seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = linear_system(eigs, rng)
    d = a.shape[0]
    traj = simulate(a, n_init=d + 2, n_steps=4, rng=rng)
    spec = dmd(*snapshot_pairs(traj), svd="direct")
    assert spec.rank == d
    assert match_error(spec.eigenvalues, full_spectrum(eigs)) < 1e-6
