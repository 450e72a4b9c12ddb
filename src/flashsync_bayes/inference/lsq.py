"""The paper's joint least squares (Šmíd & Matas 2017), robust, with its covariance and draws.

In the centred unknowns ``δ̃_c = (d_c - 1) * X`` (ms), ``B_c = d_c m_c + s_c - M`` (ms), the time
per row ``a_c = d_c T_c / L_c`` (ms) and ``ψ_j = φ_j - M`` (ms), every edge gives
``δ̃_c x_e / X + B_c + a_c y_e - ψ_j = -x_e`` (``x_e = p_e - m_c``), which is linear. The fit
iteratively re-weights with Student-t weights, has one event-time noise σ for all cameras (set so
that the weighted residual chi-square equals its degrees of freedom) and takes the priors as weak
pseudo-observations (so it stays defined when the data cannot separate time per row from shift).
Gauss-Newton covariance; draws are multivariate Student-t with the residual degrees of freedom
(the noise scale is estimated, not known).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flashsync_bayes.inference.flicker_ruler import ruler_precision
from flashsync_bayes.inference.problem import CameraPriors, Priors, Problem, camera_priors, prior_time_per_row
from flashsync_bayes.joint_lsq import normal_equations, solve_blocks

#: Smallest event-time noise σ (ms) the lsq step reports.
MIN_SIGMA_MS = 1e-3
LSQ_ITERATIONS = 8


class LsqSolution(NamedTuple):
    """Least-squares solution in centred unknowns (see module docstring).

    Attributes:
        vector: ``(P,)`` packed unknowns: K camera unknowns first, then the F flash times.
        camera_covariance: ``(K, K)`` Gauss-Newton covariance of the camera unknowns.
        flash_gain: ``(F, K)`` and flash_variance: ``(F,)``: given the camera unknowns θ, the flash
            times are Gaussian with mean ``ψ̂ - flash_gain @ (θ - θ̂)`` and these variances.
        drift_column, offset_column, tpr_column: ``(C,)`` columns of δ̃, B, a (-1 where fixed).
        flash_column: ``(F,)`` columns of ψ.
        drift_scaled, offset_ms: ``(C,)`` δ̃, B (ms); ``flash_ms``: ``(F,)`` ψ (ms).
        sigma_ms: ``(C,)`` event-time noise estimate (one common value, see :func:`_common_sigma`).
        residual_ms: ``(E,)`` mapped event time minus flash time.
        dof: residual degrees of freedom ``E - trace(hat matrix)`` behind the σ estimate.
    """

    vector: np.ndarray
    camera_covariance: np.ndarray
    flash_gain: np.ndarray
    flash_variance: np.ndarray
    drift_column: np.ndarray
    offset_column: np.ndarray
    tpr_column: np.ndarray
    flash_column: np.ndarray
    drift_scaled: np.ndarray
    offset_ms: np.ndarray
    flash_ms: np.ndarray
    sigma_ms: np.ndarray
    residual_ms: np.ndarray
    dof: float


class _Columns(NamedTuple):
    """Columns of the packed unknowns: drift, offset, tpr ``(C,)`` (-1 where fixed), flash ``(F,)``; K camera, P in all."""

    drift: np.ndarray
    offset: np.ndarray
    tpr: np.ndarray
    flash: np.ndarray
    n_camera: int
    n_total: int


class _Design(NamedTuple):
    """Sparse design: each edge touches at most four unknowns ``index`` ``(E, 4)`` (column P is a dummy) with ``value``.

    Also the target ``(E,)`` (ms), the fixed times per row ``(C,)`` (ms, 0 where free), which edges
    have a free time per row ``(E,)`` and the row scale of the time-per-row columns.
    """

    index: np.ndarray
    value: np.ndarray
    target: np.ndarray
    known_tpr: np.ndarray
    has_tpr: np.ndarray
    row_scale: float


def _columns(problem: Problem, camera_prior: CameraPriors) -> _Columns:
    """Column layout: δ̃ and B of cameras with a free drift, a of cameras with free rows, then ψ of every flash."""
    n_cam = len(problem.cameras)
    fixed = np.isfinite(problem.fixed_total_rows)
    free_drift = camera_prior.drift_sd > 0
    columns = iter(range(10**9))
    drift_col = np.array([next(columns) if free_drift[c] else -1 for c in range(n_cam)])
    offset_col = np.array([next(columns) if free_drift[c] else -1 for c in range(n_cam)])
    tpr_col = np.array([next(columns) if not fixed[c] else -1 for c in range(n_cam)])
    flash_col = np.array([next(columns) for _ in range(problem.flash_ids.size)])
    n_cam_par = int(free_drift.sum()) * 2 + int((~fixed).sum())
    return _Columns(drift_col, offset_col, tpr_col, flash_col, n_cam_par, problem.flash_ids.size + n_cam_par)


def _design(problem: Problem, cols: _Columns) -> _Design:
    """The :class:`_Design` of the edges: ``δ̃_c x_e / X + B_c + a_c y_e - ψ_j = -x_e`` (minus known row times)."""
    fixed = np.isfinite(problem.fixed_total_rows)
    cam, fl = problem.event_camera, problem.event_flash
    x = problem.frame_time_ms - problem.camera_centre_ms[cam]
    y = problem.row
    known_tpr = np.where(fixed, problem.frame_period_ms / np.where(fixed, problem.fixed_total_rows, 1.0), 0.0)
    row_scale = float(problem.stored_rows.max())
    index = np.full((x.size, 4), cols.n_total)
    value = np.zeros((x.size, 4))
    has_drift = cols.drift[cam] >= 0
    index[has_drift, 0] = cols.drift[cam][has_drift]
    value[has_drift, 0] = ((x + known_tpr[cam] * y) / problem.time_scale_ms)[has_drift]
    index[has_drift, 1] = cols.offset[cam][has_drift]
    value[has_drift, 1] = 1.0
    has_tpr = cols.tpr[cam] >= 0
    index[has_tpr, 2] = cols.tpr[cam][has_tpr]
    value[has_tpr, 2] = y[has_tpr] / row_scale
    index[:, 3] = cols.flash[fl]
    value[:, 3] = -1.0
    return _Design(index, value, -(x + known_tpr[cam] * y), known_tpr, has_tpr, row_scale)


def _prior_equations(problem: Problem, priors: Priors, cols: _Columns, row_scale: float):
    """Normal matrix ``(P, P)`` and right-hand side ``(P,)`` of the priors as pseudo-observations.

    Drift and time per row of every free camera, the offset where a prior centre exists, and the flicker ruler.
    """
    camera_prior = camera_priors(problem, priors)
    big_x, n_par = problem.time_scale_ms, cols.n_total
    prior_rows, prior_targets, prior_sds = [], [], []
    a0, a_sd = prior_time_per_row(problem, priors)
    for c in range(len(problem.cameras)):
        if cols.drift[c] >= 0:
            g = np.zeros(n_par)
            g[cols.drift[c]] = 1.0
            prior_rows.append(g), prior_targets.append(0.0), prior_sds.append(camera_prior.drift_sd[c] * big_x)
            if np.isfinite(camera_prior.offset_loc_ms[c]):
                g = np.zeros(n_par)
                g[cols.offset[c]] = 1.0
                g[cols.drift[c]] = -camera_prior.offset_lever_ms[c] / big_x
                prior_rows.append(g)
                prior_targets.append(camera_prior.offset_loc_ms[c])
                prior_sds.append(camera_prior.offset_sd_ms[c])
        if cols.tpr[c] >= 0:
            g = np.zeros(n_par)
            g[cols.tpr[c]] = 1.0
            prior_rows.append(g), prior_targets.append(a0[c] * row_scale), prior_sds.append(a_sd[c] * row_scale)
    prior_design = np.array(prior_rows).reshape(-1, n_par)
    prior_precision = 1.0 / np.asarray(prior_sds) ** 2
    prior_normal = prior_design.T @ (prior_precision[:, None] * prior_design)
    prior_rhs = prior_design.T @ (prior_precision * np.asarray(prior_targets))
    ruler_normal, ruler_rhs = _ruler_equations(problem, priors, cols, row_scale)
    return prior_normal + ruler_normal, prior_rhs + ruler_rhs


def _ruler_equations(problem: Problem, priors: Priors, cols: _Columns, row_scale: float):
    """Normal matrix ``(P, P)`` and right-hand side ``(P,)`` of the flicker ruler: each pinned camera's
    relative time-per-row error ``(a_c - â_c) / â_c`` with the correlated precision of :func:`ruler_precision`."""
    ruler, n_par = problem.ruler, cols.n_total
    pinned = np.flatnonzero(ruler.used & (cols.tpr >= 0))
    if pinned.size == 0:
        return np.zeros((n_par, n_par)), np.zeros(n_par)
    measured = ruler.time_per_row_ms[pinned] * row_scale
    design = np.zeros((pinned.size, n_par))
    design[np.arange(pinned.size), cols.tpr[pinned]] = 1.0 / measured
    precision = ruler_precision(ruler.weight[pinned], ruler.frequency_variance(priors.mains_relative_sd))
    return design.T @ precision @ design, design.T @ precision @ np.ones(pinned.size)


def _leverage(design: _Design, n_cam_par: int, event_flash, camera_cov, gain, flash_var, weight) -> np.ndarray:
    """Leverage ``h_e = w_e v_eᵀ N⁻¹ v_e`` ``(E,)`` of each edge, from the blocks; the flash entry of ``v_e`` is -1."""
    fl = event_flash
    cam_index, cam_value = design.index[:, :3], design.value[:, :3]
    padded = np.pad(camera_cov, ((0, 1), (0, 1)))
    cam_index = np.where(cam_index < n_cam_par, cam_index, n_cam_par)
    block = padded[cam_index[:, :, None], cam_index[:, None, :]]
    quadratic = np.einsum("ek,el,ekl->e", cam_value, cam_value, block)
    # N⁻¹[camera k, flash j] = -(S⁻¹ B D⁻¹)[k, j] = -(camera_cov @ gain.T)[k, j]
    cross = np.pad(camera_cov @ gain.T, ((0, 1), (0, 0)))
    quadratic += 2.0 * np.sum(cam_value * cross[cam_index, fl[:, None]], axis=1)
    quadratic += flash_var[fl] + np.einsum("ek,kl,el->e", gain[fl], camera_cov, gain[fl])
    return np.clip(weight * quadratic, 0.0, 0.95)


def solve_lsq(problem: Problem, priors: Priors = Priors()) -> LsqSolution:
    """Joint robust least-squares solution of all cameras and flashes, with its covariance."""
    cols = _columns(problem, camera_priors(problem, priors))
    design = _design(problem, cols)
    prior = _prior_equations(problem, priors, cols, design.row_scale)
    cam, y, has_tpr = problem.event_camera, problem.row, design.has_tpr
    fixed = np.isfinite(problem.fixed_total_rows)
    nu = priors.nu
    sigma = np.full(len(problem.cameras), 0.01)
    tpr = prior_time_per_row(problem, priors)[0].copy()
    robust = np.ones(y.size)
    dof = float(y.size)
    residual = np.zeros(y.size)
    for iteration in range(LSQ_ITERATIONS + 1):
        variance = sigma[cam] ** 2 + (tpr[cam] * problem.row_sd) ** 2
        weight = robust / variance
        # Gauss-Newton on the rows (the data's own scale), not on times: the time-per-row column
        # holds the predicted row and the target its correction. In time units a shorter row
        # would shrink every residual, and along the locked-phase ridge the fit would slide to
        # short rows; in rows it is scale-free there and the prior decides, as it should.
        gauss_newton = design.value.copy()
        gauss_newton[has_tpr, 2] = (y + residual / tpr[cam])[has_tpr] / design.row_scale
        target = design.target + np.where(has_tpr, residual, 0.0)
        normal, rhs = normal_equations(design.index, weight, gauss_newton, target, prior)
        vector, camera_cov, gain, flash_var = solve_blocks(normal, rhs, cols.n_camera)
        residual = design.target - np.sum(np.append(vector, 0.0)[design.index] * design.value, axis=1)
        if iteration == LSQ_ITERATIONS:
            break
        leverage = _leverage(design, cols.n_camera, problem.event_flash, camera_cov, gain, flash_var, weight)
        drift_now = 1.0 + _drift_scaled(vector, cols.drift) / problem.time_scale_ms
        free_tpr = np.where(cols.tpr >= 0, vector[np.maximum(cols.tpr, 0)] / design.row_scale, 0.0)
        tpr = np.where(fixed, drift_now * design.known_tpr, free_tpr)
        z2 = residual**2 / ((1.0 - leverage) * variance)
        robust = (nu + 1.0) / (nu + z2)
        dof = float(np.sum(1.0 - leverage))
        sigma[:] = _common_sigma(residual, (tpr[cam] * problem.row_sd) ** 2, robust, dof)
    blocks = _unscaled(cols, design, vector, camera_cov, gain)
    return _solution(cols, blocks, flash_var, sigma, residual, dof)


def _unscaled(cols: _Columns, design: _Design, vector, camera_cov, gain):
    """Vector, camera covariance and flash gain with the row scaling of the time-per-row columns undone."""
    unscale = np.ones(cols.n_total)
    unscale[cols.tpr[cols.tpr >= 0]] = 1.0 / design.row_scale
    vector = vector * unscale
    camera_cov = camera_cov * np.outer(unscale[: cols.n_camera], unscale[: cols.n_camera])
    gain = gain / unscale[None, : cols.n_camera]
    return vector, camera_cov, gain


def _solution(cols: _Columns, blocks, flash_var, sigma, residual, dof) -> LsqSolution:
    """The :class:`LsqSolution` of unscaled blocks ``(vector, camera covariance, flash gain)``."""
    vector, camera_cov, gain = blocks
    return LsqSolution(
        vector=vector,
        camera_covariance=camera_cov,
        flash_gain=gain,
        flash_variance=flash_var,
        drift_column=cols.drift,
        offset_column=cols.offset,
        tpr_column=cols.tpr,
        flash_column=cols.flash,
        drift_scaled=_drift_scaled(vector, cols.drift),
        offset_ms=np.where(cols.offset >= 0, vector[np.maximum(cols.offset, 0)], 0.0),
        flash_ms=vector[cols.flash],
        sigma_ms=sigma.copy(),
        residual_ms=-residual,
        dof=dof,
    )


def _common_sigma(residual, row_variance, robust, dof) -> float:
    """Event-time noise σ (ms) making the weighted residual chi-square equal the residual degrees of freedom.

    One σ for all cameras: with two cameras the residuals of a flash's two edges are mirror
    images, so only the sum of their noise variances is identifiable from the data.
    """

    def chi2(s2):
        return np.sum(robust * residual**2 / (s2 + row_variance))

    low, high = MIN_SIGMA_MS**2, max(np.max(residual**2) * 10.0, 4.0 * MIN_SIGMA_MS**2)
    if dof <= 0 or chi2(low) <= dof:
        return MIN_SIGMA_MS
    for _ in range(60):  # bisection in log σ²
        mid = np.sqrt(low * high)
        low, high = (mid, high) if chi2(mid) > dof else (low, mid)
    return float(np.sqrt(np.sqrt(low * high)))


def _drift_scaled(vector: np.ndarray, drift_col: np.ndarray) -> np.ndarray:
    """δ̃ per camera ``(C,)`` (0 where fixed) from a packed lsq vector."""
    return np.where(drift_col >= 0, vector[np.maximum(drift_col, 0)], 0.0)


def lsq_natural(problem: Problem, solution: LsqSolution, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Natural parameters of packed lsq vectors ``(..., P)``: per camera ``(..., C)``, flash_ms ``(..., F)``.

    Keys: drift, offset_ms, shift_ms, total_rows, time_per_row_ms and flash_ms (centred ψ).
    """
    vectors = np.asarray(vectors)
    fixed = np.isfinite(problem.fixed_total_rows)
    drift_col, offset_col, tpr_col = solution.drift_column, solution.offset_column, solution.tpr_column
    drift = 1.0 + np.where(drift_col >= 0, vectors[..., np.maximum(drift_col, 0)], 0.0) / problem.time_scale_ms
    offset = np.where(offset_col >= 0, vectors[..., np.maximum(offset_col, 0)], 0.0)
    known_tpr = problem.frame_period_ms / np.where(fixed, problem.fixed_total_rows, 1.0)
    tpr = np.where(fixed, drift * known_tpr, vectors[..., np.maximum(tpr_col, 0)])
    total_rows = np.where(fixed, problem.fixed_total_rows, drift * problem.frame_period_ms / tpr)
    shift = offset + problem.centre_ms - drift * problem.camera_centre_ms
    return {
        "drift": drift,
        "offset_ms": offset,
        "shift_ms": shift,
        "total_rows": total_rows,
        "time_per_row_ms": tpr,
        "flash_ms": vectors[..., solution.flash_column],
    }


def scaled_cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric PSD matrix via its correlation matrix (eigenvalue clipping if needed)."""
    sd = np.sqrt(np.maximum(np.diag(matrix), 1e-300))
    corr = 0.5 * (matrix + matrix.T) / np.outer(sd, sd)
    try:
        factor = np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(corr)
        factor = np.linalg.cholesky((vectors * np.maximum(values, 1e-12)) @ vectors.T)
    return sd[:, None] * factor


def lsq_factor(solution: LsqSolution) -> np.ndarray:
    """Lower-triangular factor ``(P, P)`` of the covariance of all packed lsq unknowns (cameras first).

    Given the camera unknowns θ the flash times are independent, ``ψ = ψ̂ - G (θ - θ̂) + sqrt(v) z``
    (:func:`~flashsync_bayes.joint_lsq.solve_blocks`), so the factor is ``[[L, 0], [-G L, diag(sqrt(v))]]`` with ``L`` the
    camera covariance's Cholesky factor: exact, and stable even though every flash time is almost
    fixed by the cameras.
    """
    camera = scaled_cholesky(solution.camera_covariance)
    n_cam, n_flash = camera.shape[0], solution.flash_variance.size
    factor = np.zeros((n_cam + n_flash, n_cam + n_flash))
    factor[:n_cam, :n_cam] = camera
    factor[n_cam:, :n_cam] = -solution.flash_gain @ camera
    factor[n_cam:, n_cam:] = np.diag(np.sqrt(solution.flash_variance))
    return factor


def student_noise(rng_key, dof, num_draws: int, size: int):
    """Standard multivariate Student-t draws ``(num_draws, size)`` with ``dof`` degrees of freedom.

    Standard normal draws, each row times ``sqrt(dof / χ²_dof)``.
    """
    key_normal, key_scale = jax.random.split(rng_key)
    chi2 = 2.0 * jax.random.gamma(key_scale, 0.5 * dof, (num_draws,))
    return jax.random.normal(key_normal, (num_draws, size)) * jnp.sqrt(dof / chi2)[:, None]


@partial(jax.jit, static_argnames=("num_draws", "size"))
def seeded_student_noise(seed, dof, num_draws: int, size: int):
    """:func:`student_noise` of the key ``jax.random.PRNGKey(seed)``, one compiled program per shape."""
    return student_noise(jax.random.PRNGKey(seed), dof, num_draws, size)


def draw_dof(solution: LsqSolution) -> float:
    """Degrees of freedom of the Student-t draws of lsq and Laplace (at least 1)."""
    return max(float(solution.dof), 1.0)


def lsq_draws(solution: LsqSolution, noise) -> np.ndarray:
    """Packed lsq vectors ``(n, P)`` around the solution with its covariance, from standard draws ``noise`` ``(n, P)``.

    Given :func:`student_noise` of :func:`draw_dof` degrees of freedom they are the
    multivariate Student-t of the solution.
    """
    return solution.vector + np.asarray(noise) @ lsq_factor(solution).T
