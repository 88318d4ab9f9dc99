"""Koopman operator approximation by dynamic mode decomposition (DMD).

Array convention (used across equivdyn): trajectories are ``[M, T, D]`` arrays —
``M`` initialisations, ``T`` snapshots in time, ``D`` observables.  Functions that
say so also accept a single trajectory ``[T, D]``.  Snapshot matrices handed to
:func:`dmd` follow the DMD convention instead: columns are snapshots, so ``X`` and
``Y`` are ``[n_features, n_snapshots]``.

The pipeline of :class:`KoopmanEstimator` is

1. optional :func:`pca_project` onto the leading principal components,
2. :func:`delay_embed` (time-delay / Hankel embedding),
3. :func:`snapshot_pairs` (pairs ``(x_t, x_{t+1})`` within each initialisation),
4. :func:`dmd` (exact DMD with residuals per eigenpair).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from equivdyn.errors import ParameterError, check_int

__all__ = [
    "SVD_METHODS",
    "KoopmanEstimator",
    "KoopmanSpectrum",
    "delay_embed",
    "dmd",
    "pca_project",
    "snapshot_pairs",
]

#: Allowed values of the ``svd`` argument of :func:`dmd` and :class:`KoopmanEstimator`.
SVD_METHODS: tuple[str, ...] = ("auto", "direct", "gram")

#: Smallest ``min(X.shape)`` at which the automatic route fits a rank-truncated DMD via a
#: Gram matrix (see :func:`dmd`).
GRAM_MIN_SIZE = 1000

#: Relative tolerance under which two eigenvalue moduli count as tied when sorting.
_SORT_TIE_RTOL = 1e-12


@dataclass(frozen=True)
class KoopmanSpectrum:
    """A fitted finite Koopman approximation (frozen result of :class:`KoopmanEstimator`).

    Attributes
    ----------
    eigenvalues : complex128 [k]
        Koopman eigenvalues, sorted by descending modulus, ties by ascending angle.
    singular_values : float64 [r]
        All singular values of the snapshot matrix X (before truncation), descending.
    residuals : float64 [k]
        Relative residual of each eigenpair (same order as ``eigenvalues``).
    modes : complex128 [n_features, k] or None
        Exact DMD modes in the embedded observable space, if kept.
    n_snapshots : int
        Number of snapshot pairs the operator was fitted on.
    params : dict
        The estimator parameters that produced this spectrum.
    """

    eigenvalues: np.ndarray
    singular_values: np.ndarray
    residuals: np.ndarray
    modes: np.ndarray | None
    n_snapshots: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """Number of eigenvalues, i.e. the truncation rank of the fitted operator."""
        return int(self.eigenvalues.shape[0])

    @property
    def moduli(self) -> NDArray[np.float64]:
        """Moduli ``|lambda|`` of the eigenvalues, float64 ``[k]`` (descending)."""
        return np.abs(self.eigenvalues)

    @property
    def angles(self) -> NDArray[np.float64]:
        """Arguments of the eigenvalues in ``(-pi, pi]``, float64 ``[k]``."""
        return _angles(self.eigenvalues)


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _check_optional_int(value: object, name: str, minimum: int) -> int | None:
    """Like :func:`_check_int` but ``None`` passes through."""
    return None if value is None else check_int(value, name, minimum)


def _check_svd(svd: object) -> str:
    """Validate the ``svd`` route name."""
    if not isinstance(svd, str) or svd not in SVD_METHODS:
        raise ParameterError(f"svd must be one of {SVD_METHODS}, got {svd!r}")
    return svd


def _as_trajectories(trajectories: ArrayLike, name: str = "trajectories") -> tuple[NDArray[Any], bool]:
    """Validate a trajectory array and return it as ``[M, T, D]`` plus a flag for 2-D input.

    Parameters
    ----------
    trajectories : array_like [M, T, D] or [T, D]
        Real or complex numeric data.
    name : str
        Argument name used in error messages.

    Returns
    -------
    data : float64 or complex128 ndarray [M, T, D]
        The data with a leading axis added for 2-D input.
    single : bool
        True when the input was a single ``[T, D]`` trajectory.

    Raises
    ------
    ValueError
        On wrong dimensionality, empty axes, non-numeric data or non-finite values.
    """
    arr = np.asarray(trajectories)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape [M, T, D] or [T, D], got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not have an empty axis, got shape {arr.shape}")
    single = arr.ndim == 2
    data = arr[np.newaxis] if single else arr
    data = data.astype(np.complex128 if np.iscomplexobj(data) else np.float64, copy=False)
    finite = np.isfinite(data)
    if not finite.all():
        m, t, d = (int(i) for i in np.argwhere(~finite)[0])
        where = f"step {t}, observable {d}" if single else f"initialisation {m}, step {t}, observable {d}"
        raise ValueError(
            f"{name} contains NaN or inf values (e.g. a diverged training run); "
            f"the first one is at {where} (value {data[m, t, d]})"
        )
    return data, single


def _as_snapshot_matrix(x: ArrayLike, name: str) -> NDArray[Any]:
    """Validate a ``[n_features, n_snapshots]`` snapshot matrix."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [n_features, n_snapshots], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not have an empty axis, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.complex128 if np.iscomplexobj(arr) else np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        raise ValueError(f"{name} contains NaN or inf values; the first one is at feature {i}, snapshot {j}")
    return arr


def _binary_exponent(*arrays: NDArray[Any]) -> int:
    """The exponent ``e`` with ``2**(e-1) <= max |entry| < 2**e`` (real and imaginary parts; 0 if all are 0)."""
    parts = [p for a in arrays for p in ((a.real, a.imag) if np.iscomplexobj(a) else (a,))]
    largest = max(float(np.max(np.abs(p))) for p in parts)
    return int(np.frexp(largest)[1]) if largest > 0.0 else 0


def _ldexp(a: NDArray[Any], exponent: int) -> NDArray[Any]:
    """``a * 2**exponent``, exact for real and complex arrays (no power of two is formed)."""
    if not np.iscomplexobj(a):
        return np.ldexp(a, exponent)
    out = np.empty_like(a)
    out.real = np.ldexp(a.real, exponent)
    out.imag = np.ldexp(a.imag, exponent)
    return out


def _angles(eigenvalues: NDArray[np.complex128]) -> NDArray[np.float64]:
    """Arguments in ``(-pi, pi]`` (``np.angle`` may return ``-pi`` for ``-1 - 0j``)."""
    ang = np.angle(eigenvalues)
    return np.where(ang <= -np.pi, np.pi, ang)


def _spectral_order(eigenvalues: NDArray[np.complex128]) -> NDArray[np.intp]:
    """Indices sorting by descending modulus; near-equal moduli by ascending angle.

    Two consecutive moduli (in descending order) are tied when they differ by at most
    ``1e-12`` times the larger one; a run of tied moduli is ordered by angle in
    ``(-pi, pi]``, so a conjugate pair always lists the negative angle first.
    """
    moduli = np.abs(eigenvalues)
    angles = _angles(eigenvalues)
    order = np.lexsort((angles, -moduli))
    result: list[int] = []
    group = [int(order[0])] if order.size else []
    for idx in order[1:]:
        prev = group[-1]
        if moduli[prev] - moduli[idx] <= _SORT_TIE_RTOL * moduli[prev]:
            group.append(int(idx))
        else:
            result.extend(sorted(group, key=lambda i: angles[i]))
            group = [int(idx)]
    result.extend(sorted(group, key=lambda i: angles[i]))
    return np.asarray(result, dtype=np.intp)


# ---------------------------------------------------------------------------
# data preparation
# ---------------------------------------------------------------------------


def check_fit_shape(
    n_inits: int,
    n_steps: int,
    n_observables: int,
    *,
    n_delays: int,
    rank: int | None,
    n_components: int | None,
    field: str = "",
    delays_name: str | None = None,
) -> None:
    """Check ``n_delays``, ``n_components`` and ``rank`` against trajectories of shape
    ``[n_inits, n_steps, n_observables]``; raise a :class:`ParameterError` that says what fits.

    The fit projects the trajectories on ``n_components`` principal components (if given),
    embeds each snapshot with ``n_delays`` lagged copies and pairs consecutive embedded
    snapshots; DMD's rank cannot exceed the dimension of an embedded snapshot nor the
    number of pairs.  ``field`` prefixes the parameters' names in messages (e.g.
    ``e1.koopman``), ``delays_name`` replaces that of ``n_delays``.
    """
    prefix = f"{field}." if field else ""
    delays = delays_name or f"{prefix}n_delays"
    if n_steps - n_delays < 2:
        raise ParameterError(
            f"{delays}={n_delays} leaves fewer than 2 embedded snapshots from {n_steps} recorded steps; "
            f"use n_delays <= {n_steps - 2}"
        )
    most_components = min(n_inits * n_steps, n_observables)
    if n_components is not None and n_components > most_components:
        raise ParameterError(
            f"{prefix}n_components={n_components} exceeds what the data allow: {n_inits} x {n_steps} snapshots of "
            f"{n_observables} observables have at most {most_components} principal components"
        )
    n_features = n_observables if n_components is None else n_components
    dimension = (n_delays + 1) * n_features
    n_pairs = n_inits * (n_steps - n_delays - 1)
    if rank is not None and rank > min(dimension, n_pairs):
        raise ParameterError(
            f"{prefix}rank={rank} exceeds what the data allow: an embedded snapshot has ({n_delays} + 1) x "
            f"{n_features} = {dimension} dimensions and there are {n_inits} x ({n_steps} - {n_delays} - 1) = "
            f"{n_pairs} snapshot pairs; use {prefix}rank <= {min(dimension, n_pairs)}"
        )


def delay_embed(trajectories: ArrayLike, n_delays: int) -> NDArray[Any]:
    """Time-delay (Hankel) embedding of each trajectory.

    The embedded state at time ``t`` is ``[x_t, x_{t+1}, ..., x_{t+n_delays}]``
    concatenated along the observable axis (blocks in that order, each ``D`` wide).
    ``n_delays`` counts the lagged copies *added* to the state.

    Parameters
    ----------
    trajectories : array_like [M, T, D] or [T, D]
        Trajectories of ``M`` initialisations (or a single one).
    n_delays : int
        Number of lagged copies to append, ``0 <= n_delays <= T - 2`` (at least two
        embedded snapshots are needed to form one snapshot pair).

    Returns
    -------
    embedded : ndarray [M, T - n_delays, (n_delays + 1) * D] or [T - n_delays, (n_delays + 1) * D]
        Embedded trajectories, 2-D when the input was 2-D.  With ``n_delays == 0`` the
        (validated, float64 or complex128) data are returned unchanged.

    Raises
    ------
    ParameterError
        If ``n_delays`` is not a non-negative integer or leaves fewer than two snapshots.
    ValueError
        If ``trajectories`` has the wrong shape or contains NaN/inf.
    """
    n_delays = check_int(n_delays, "n_delays", 0)
    data, single = _as_trajectories(trajectories)
    _, n_steps, _ = data.shape
    if n_steps - n_delays < 2:
        raise ParameterError(
            f"n_delays={n_delays} is too large for T={n_steps} snapshots: the embedding keeps "
            f"T - n_delays = {n_steps - n_delays} snapshots but needs at least 2 to form a snapshot pair "
            f"(use n_delays <= {n_steps - 2})"
        )
    if n_delays == 0:
        embedded = data
    else:
        n_out = n_steps - n_delays
        embedded = np.concatenate([data[:, lag : lag + n_out, :] for lag in range(n_delays + 1)], axis=-1)
    return embedded[0] if single else embedded


def snapshot_pairs(trajectories: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Snapshot pairs ``(x_t, x_{t+1})`` formed within each initialisation.

    The last snapshot of one initialisation is never paired with the first snapshot
    of the next one.

    Parameters
    ----------
    trajectories : array_like [M, T, D] or [T, D]
        Trajectories, ``T >= 2``.

    Returns
    -------
    X : ndarray [D, M * (T - 1)]
        Columns are the states ``0 .. T-2`` of initialisation 0, then of
        initialisation 1, and so on.
    Y : ndarray [D, M * (T - 1)]
        The corresponding successor states ``1 .. T-1``.

    Raises
    ------
    ValueError
        On a wrong shape, ``T < 2`` or NaN/inf values.
    """
    data, _ = _as_trajectories(trajectories)
    n_init, n_steps, n_obs = data.shape
    if n_steps < 2:
        raise ValueError(f"trajectories need at least T=2 snapshots to form pairs, got shape {data.shape}")
    x = data[:, :-1, :].reshape(n_init * (n_steps - 1), n_obs).T
    y = data[:, 1:, :].reshape(n_init * (n_steps - 1), n_obs).T
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def pca_project(trajectories: ArrayLike, n_components: int) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Project trajectories onto their leading principal components.

    The PCA is fitted on all ``M * T`` snapshots of all initialisations together:
    the data are centred by their mean snapshot and decomposed by an SVD.  The
    projection uses the same centring, ``(x - mean) @ components.T``, so the
    projected data have zero mean over all snapshots.  Each component's sign is fixed
    so that its entry of largest magnitude is positive (first such entry on ties).

    Parameters
    ----------
    trajectories : array_like [M, T, D] or [T, D]
        Trajectories to project.
    n_components : int
        Number of components, ``1 <= n_components <= min(M * T, D)``.

    Returns
    -------
    projected : ndarray [M, T, n_components] or [T, n_components]
        Coordinates of the centred snapshots (2-D when the input was 2-D).
    components : ndarray [n_components, D]
        Orthonormal principal axes (rows), by descending explained variance.
    mean : ndarray [D]
        Mean snapshot used for centring.

    Raises
    ------
    ParameterError
        If ``n_components`` is out of range.
    ValueError
        On a wrong shape or NaN/inf values.
    """
    data, single = _as_trajectories(trajectories)
    n_init, n_steps, n_obs = data.shape
    n_components = check_int(n_components, "n_components", 1)
    limit = min(n_init * n_steps, n_obs)
    if n_components > limit:
        raise ParameterError(
            f"n_components={n_components} exceeds min(M*T, D) = min({n_init * n_steps}, {n_obs}) = {limit}"
        )
    flat = data.reshape(n_init * n_steps, n_obs)
    mean = flat.mean(axis=0)
    centred = flat - mean
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    components = vh[:n_components].copy()
    pivot = np.argmax(np.abs(components), axis=1)
    signs = components[np.arange(n_components), pivot]
    if np.iscomplexobj(components):
        signs = np.conj(signs) / np.where(np.abs(signs) > 0, np.abs(signs), 1.0)
        components *= signs[:, None]
    else:
        components *= np.where(signs < 0, -1.0, 1.0)[:, None]
    projected = centred @ components.conj().T
    projected = projected.reshape(n_init, n_steps, n_components)
    return (projected[0] if single else projected), components, mean


# ---------------------------------------------------------------------------
# dynamic mode decomposition
# ---------------------------------------------------------------------------


def _svd_direct(x: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.float64], NDArray[Any]]:
    """Thin SVD ``X = U diag(s) V^H``; returns ``U``, ``s`` and ``V`` (not ``V^H``)."""
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    return u, s, vh.conj().T


def _svd_gram(x: NDArray[Any]) -> tuple[NDArray[Any] | None, NDArray[np.float64], NDArray[Any] | None]:
    """Singular values and the singular vectors of the smaller side from a Gram matrix.

    With ``n_features <= n_snapshots`` the Gram matrix is ``X X^H`` and gives ``U``;
    otherwise it is ``X^H X`` and gives ``V``.  Returns ``(U, s, None)`` or
    ``(None, s, V)``; the caller completes the rank-``r`` part of the other side.
    """
    left = x.shape[0] <= x.shape[1]
    gram = x @ x.conj().T if left else x.conj().T @ x
    evals, evecs = scipy.linalg.eigh(gram)
    evals = evals[::-1]
    evecs = evecs[:, ::-1]
    n_sv = min(x.shape)
    s = np.sqrt(np.clip(evals[:n_sv], 0.0, None))
    vectors = evecs[:, :n_sv]
    return (vectors, s, None) if left else (None, s, vectors)


def dmd(
    X: ArrayLike,
    Y: ArrayLike,
    rank: int | None = None,
    svd: str = "auto",
    keep_modes: bool = True,
) -> KoopmanSpectrum:
    """Exact dynamic mode decomposition with a rank-``r`` truncated SVD.

    With the thin SVD ``X = U S V^H`` truncated to ``r`` terms, the reduced operator
    is ``A_r = U_r^H Y V_r S_r^{-1}`` (``r x r``).  Its eigenvalues are the Koopman
    eigenvalue estimates and the exact DMD modes are ``Y V_r S_r^{-1} W`` (``W``:
    right eigenvectors of ``A_r``), normalised to unit 2-norm.

    Residuals follow residual DMD (Colbrook & Townsend) with the linear dictionary
    ``psi(x) = U_r^H x``: with ``Psi_X = (U_r^H X)^T`` and ``Psi_Y = (U_r^H Y)^T``
    (``[n_snapshots, r]``), the Koopman matrix on dictionary coefficients is
    ``K = Psi_X^+ Psi_Y = A_r^T``, so its eigenvectors ``g`` are left eigenvectors of
    ``A_r``, and the residual of ``(lambda, g)`` is
    ``||Psi_Y g - lambda Psi_X g||_2 / ||Psi_X g||_2``.  It is zero (up to rounding)
    when the data are exactly generated by a linear map on the span of ``U_r``.

    Two routes compute the SVD:

    * ``"direct"``: ``np.linalg.svd(X, full_matrices=False)``.
    * ``"gram"``: the eigen-decomposition of the Gram matrix of the smaller side —
      ``X^H X`` (``n_snapshots`` squared) when ``n_features > n_snapshots``, else
      ``X X^H`` — gives ``S`` and ``V`` (or ``U``); the rank-``r`` part of the other
      side follows as ``U_r = X V_r S_r^{-1}`` (or ``V_r = X^H U_r S_r^{-1}``).  A
      matrix product and a symmetric eigen-decomposition are many times cheaper than
      a full SVD of a large matrix, but squaring the matrix squares the condition
      number: singular values below about ``sqrt(eps) * s_max`` are not resolved.
      The automatic rank of this route therefore uses the tolerance
      ``sqrt(max(X.shape) * eps) * s_max`` (the usual tolerance applied to the
      eigenvalues of a Gram matrix) instead of ``max(X.shape) * eps * s_max``.
    * ``"auto"``: ``"gram"`` when ``n_features > 2 * n_snapshots`` (e.g. network
      weights), or when an explicit ``rank`` truncates a large matrix
      (``min(X.shape) >= GRAM_MIN_SIZE``), where only the leading singular triplets
      matter; ``"direct"`` otherwise.

    Parameters
    ----------
    X : array_like [n_features, n_snapshots]
        Snapshots (columns) at times ``t``.
    Y : array_like [n_features, n_snapshots]
        Successor snapshots at times ``t + 1``.
    rank : int or None
        Truncation rank ``r``.  ``None`` uses the numerical rank of ``X`` (singular
        values above ``max(X.shape) * eps * s_max``; see the Gram route above).  A
        rank above the numerical rank raises :class:`~equivdyn.errors.ParameterError`.
    svd : {"auto", "direct", "gram"}
        SVD route (see above).
    keep_modes : bool
        Whether to compute and return the exact DMD modes.

    Returns
    -------
    KoopmanSpectrum
        ``eigenvalues`` complex128 ``[r]`` sorted by descending modulus (ties by
        ascending angle in ``(-pi, pi]``), ``singular_values`` float64
        ``[min(n_features, n_snapshots)]`` (all, descending), ``residuals`` float64
        ``[r]``, ``modes`` complex128 ``[n_features, r]`` or None, ``n_snapshots``
        and ``params = {"rank": r, "svd": route}``.

    Raises
    ------
    ValueError
        On shapes that are not 2-D or differ between ``X`` and ``Y``, or NaN/inf (in the
        data, or, as a last guard, in the eigenvalues or residuals).
    ParameterError
        On a bad ``rank``/``svd`` value, or when ``X`` is numerically zero.
    """
    x = _as_snapshot_matrix(X, "X")
    y = _as_snapshot_matrix(Y, "Y")
    if x.shape != y.shape:
        raise ValueError(f"X and Y must have the same shape, got X {x.shape} and Y {y.shape}")
    rank = _check_optional_int(rank, "rank", 1)
    svd = _check_svd(svd)
    if not isinstance(keep_modes, (bool, np.bool_)):
        raise ParameterError(f"keep_modes must be a bool, got {keep_modes!r}")
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        x = x.astype(np.complex128, copy=False)
        y = y.astype(np.complex128, copy=False)

    # DMD is invariant to a common scaling of X and Y.  Scaling both by a power of two (exact)
    # to a largest entry in [0.5, 1) keeps the Gram products and the norms of the residuals of
    # data far from 1 (e.g. 1e160 or 1e-300) from overflowing to inf or underflowing to 0.
    exponent = _binary_exponent(x, y)
    x, y = _ldexp(x, -exponent), _ldexp(y, -exponent)

    n_features, n_snapshots = x.shape
    route = svd
    if route == "auto":
        large_truncated = rank is not None and min(x.shape) >= GRAM_MIN_SIZE
        route = "gram" if n_features > 2 * n_snapshots or large_truncated else "direct"

    eps = np.finfo(np.float64).eps
    if route == "direct":
        u, s, v = _svd_direct(x)
        tol = max(x.shape) * eps * (s[0] if s.size else 0.0)
    else:
        u, s, v = _svd_gram(x)
        tol = np.sqrt(max(x.shape) * eps) * (s[0] if s.size else 0.0)
    numerical_rank = int(np.count_nonzero(s > tol))
    if numerical_rank == 0:
        raise ParameterError(
            f"X is numerically zero (largest singular value {np.ldexp(s[0], exponent) if s.size else 0.0}); "
            "no DMD possible"
        )
    if rank is None:
        r = numerical_rank
    elif rank > numerical_rank:
        raise ParameterError(
            f"rank={rank} exceeds the numerical rank {numerical_rank} of X (shape {x.shape}, "
            f"svd route {route!r}); use rank <= {numerical_rank} or rank=None"
        )
    else:
        r = rank

    s_r = s[:r]
    if v is None:
        u_r = u[:, :r]
        v_r = (x.conj().T @ u_r) / s_r
    else:
        v_r = v[:, :r]
        u_r = u[:, :r] if u is not None else (x @ v_r) / s_r
    y_v_sinv = (y @ v_r) / s_r  # [n_features, r]
    u_r_h = u_r.conj().T
    a_tilde = u_r_h @ y_v_sinv  # [r, r]

    eigvals, left, right = scipy.linalg.eig(a_tilde, left=True, right=True)
    eigvals = eigvals.astype(np.complex128)

    # residuals: eigenvectors of K = A_r^T are conjugated left eigenvectors of A_r
    g = np.conj(left)
    psi_x = (u_r_h @ x).T  # [n_snapshots, r]
    psi_y = (u_r_h @ y).T
    psi_x_g = psi_x @ g
    psi_y_g = psi_y @ g
    num = np.linalg.norm(psi_y_g - psi_x_g * eigvals[np.newaxis, :], axis=0)
    den = np.linalg.norm(psi_x_g, axis=0)
    residuals = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf).astype(np.float64)

    if not (np.isfinite(eigvals).all() and np.isfinite(residuals).all()):
        raise ValueError(
            f"DMD gave non-finite eigenvalues or residuals (X of shape {x.shape}, rank {r}, svd route {route!r})"
        )

    order = _spectral_order(eigvals)
    modes: NDArray[np.complex128] | None = None
    if keep_modes:
        phi = (y_v_sinv @ right).astype(np.complex128)
        norms = np.linalg.norm(phi, axis=0)
        # a zero exact mode (eigenvalue 0) falls back to the projected mode U_r w
        small = norms <= eps * max(1.0, float(norms.max(initial=0.0)))
        if small.any():
            phi[:, small] = u_r @ right[:, small]
            norms[small] = np.linalg.norm(phi[:, small], axis=0)
        phi /= np.where(norms > 0, norms, 1.0)
        modes = phi[:, order]

    return KoopmanSpectrum(
        eigenvalues=eigvals[order],
        singular_values=np.ldexp(np.asarray(s, dtype=np.float64), exponent),
        residuals=residuals[order],
        modes=modes,
        n_snapshots=int(n_snapshots),
        params={"rank": r, "svd": route},
    )


# ---------------------------------------------------------------------------
# estimator
# ---------------------------------------------------------------------------


class KoopmanEstimator:
    """Estimate a Koopman spectrum from trajectories (estimator/model split).

    The estimator holds only parameters (validated at construction); :meth:`fit`
    returns a new frozen :class:`KoopmanSpectrum` and leaves the estimator unchanged.

    Parameters
    ----------
    n_delays : int
        Number of lagged copies added by :func:`delay_embed` (``0``: none).
    rank : int or None
        DMD truncation rank; ``None`` uses the numerical rank.
    n_components : int or None
        If given, trajectories are first projected onto this many principal
        components by :func:`pca_project`.
    svd : {"auto", "direct", "gram"}
        SVD route of :func:`dmd`.
    keep_modes : bool
        Whether the returned spectrum keeps the DMD modes.

    Raises
    ------
    ParameterError
        On any invalid parameter.
    """

    def __init__(
        self,
        n_delays: int = 0,
        rank: int | None = None,
        n_components: int | None = None,
        svd: str = "auto",
        keep_modes: bool = False,
    ) -> None:
        self.n_delays: int = check_int(n_delays, "n_delays", 0)
        self.rank: int | None = _check_optional_int(rank, "rank", 1)
        self.n_components: int | None = _check_optional_int(n_components, "n_components", 1)
        self.svd: str = _check_svd(svd)
        if not isinstance(keep_modes, (bool, np.bool_)):
            raise ParameterError(f"keep_modes must be a bool, got {keep_modes!r}")
        self.keep_modes: bool = bool(keep_modes)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters.

        Returns
        -------
        dict
            ``n_delays``, ``rank``, ``n_components``, ``svd`` and ``keep_modes``.
        """
        return {
            "n_delays": self.n_delays,
            "rank": self.rank,
            "n_components": self.n_components,
            "svd": self.svd,
            "keep_modes": self.keep_modes,
        }

    def fit(self, trajectories: ArrayLike) -> KoopmanSpectrum:
        """Fit the Koopman approximation to trajectories.

        Parameters
        ----------
        trajectories : array_like [M, T, D] or [T, D]
            Trajectories of ``M`` initialisations (or a single one).

        Returns
        -------
        KoopmanSpectrum
            The spectrum; its ``params`` hold ``n_delays``, ``rank`` (requested),
            ``rank_used``, ``n_components``, ``svd`` (route used), ``svd_requested``,
            ``keep_modes``, ``n_initialisations`` (M), ``n_steps`` (T) and
            ``n_observables`` (D).

        Raises
        ------
        ValueError
            On a bad trajectory array (shape, NaN/inf) or parameters that do not fit
            it (``n_delays``, ``n_components``, ``rank`` too large).
        """
        data, _ = _as_trajectories(trajectories)
        n_init, n_steps, n_obs = data.shape
        check_fit_shape(
            n_init, n_steps, n_obs, n_delays=self.n_delays, rank=self.rank, n_components=self.n_components
        )
        if self.n_components is not None:
            data, _, _ = pca_project(data, self.n_components)
        embedded = delay_embed(data, self.n_delays)
        x, y = snapshot_pairs(embedded)
        spectrum = dmd(x, y, rank=self.rank, svd=self.svd, keep_modes=self.keep_modes)
        params: dict[str, Any] = {
            "n_delays": self.n_delays,
            "rank": self.rank,
            "rank_used": spectrum.params["rank"],
            "n_components": self.n_components,
            "svd": spectrum.params["svd"],
            "svd_requested": self.svd,
            "keep_modes": self.keep_modes,
            "n_initialisations": int(n_init),
            "n_steps": int(n_steps),
            "n_observables": int(n_obs),
        }
        return KoopmanSpectrum(
            eigenvalues=spectrum.eigenvalues,
            singular_values=spectrum.singular_values,
            residuals=spectrum.residuals,
            modes=spectrum.modes,
            n_snapshots=spectrum.n_snapshots,
            params=params,
        )
