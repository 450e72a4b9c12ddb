"""The joint synchronization model (DESIGN §5) and its inference: lsq, Laplace and NUTS.

Every matched leading edge ``e`` of flash ``j`` in camera ``c`` (frame time ``p_e``, row ``y_e``)
satisfies ``d_c * (p_e + y_e * T_c / L_c) + s_c ≈ φ_j`` with drift ``d_c`` (reference: 1), shift
``s_c`` (reference: 0), total sensor rows ``L_c``, frame period ``T_c`` and flash time ``φ_j``.

Numerics. Times are centred: camera ``c``'s frame times on the mean frame time ``m_c`` of its
events (``x_e = p_e - m_c``) and the flash times on the reference camera's mean ``M``. The
unknowns are then ``δ̃_c = (d_c - 1) * X`` (``X`` the largest ``|x_e|``, so δ̃ is in ms), the
centred offset ``B_c = d_c m_c + s_c - M`` (ms), the time per row ``a_c = d_c T_c / L_c`` (ms) and
``ψ_j = φ_j - M`` (ms); in these, ``δ̃_c x_e / X + B_c + a_c y_e - ψ_j = -x_e`` is linear.

* ``method="lsq"``: the paper's joint least squares (Šmíd & Matas 2017) in exactly these linear
  unknowns, with iteratively re-weighted Student-t weights, one event-time noise σ for all
  cameras (set so that the weighted residual chi-square equals its degrees of freedom), and the
  priors below as weak pseudo-observations (so it stays defined when the data cannot separate
  time per row from shift). Gauss-Newton covariance; draws are multivariate Student-t with the
  residual degrees of freedom (the noise scale is estimated, not known).
* the NumPyro model :func:`sync_model`: the likelihood is written for the observed rows, i.e.
  ``y_e ~ StudentT(ν, (φ_j - s_c - d_c p_e) / a_c, sqrt(σ_c² / a_c² + row_sd_e²))``, which is the
  DESIGN's time-domain StudentT divided by the constant ``a_c`` — the Jacobian ``1/a_c`` must be
  kept, or the model would prefer short rows. It is sampled in whitened coordinates: the camera
  parameters ``(δ̃_c, B_c, log h_c)`` (``h_c = L_c/R_c - 1``) are an affine function of
  ``camera_z`` built from the lsq solution and covariance, and each flash time is
  ``φ_j = φ̂_j(cameras) + c_j * flash_z_j`` with ``φ̂_j`` the weighted mean of the mapped times of
  its edges. Both maps have constant Jacobians, so the posterior is unchanged while NUTS sees a
  near-standard-normal target.
* ``method="laplace"``: damped-Newton MAP of the same model from the lsq point, with σ_c held at
  the lsq estimate (a joint mode of σ and one latent time per flash underestimates σ), and
  draws from the inverse Hessian there (Student-t as for lsq). Fast, but its intervals ignore the
  uncertainty of σ and of per-camera noise differences: they are somewhat too narrow when the
  event-time noise dominates (see the calibration numbers in the tests).
* ``method="bayes"`` (default): NUTS started at the lsq solution (``camera_z = flash_z = 0`` and
  ``σ`` at its lsq estimate, the values ``init_to_value`` would set).

Priors (``Priors``): drift ``Normal(1, drift_ppm·1e-6)``; hidden-row fraction ``h_c`` truncated
``Normal(mean, sd)`` at 0 (default mean 0.06, sd 0.04: 1080→1125 and 720→750 are 4 %, 480→525 is
9 %; up to ~12 % is plausible); shift ``Normal(coarse shift, shift_sd_ms)`` when the events carry
the matching's coarse mapping, else around the lsq shift; ``σ_c ~ Exponential(mean sigma_ms)``;
flash times flat; ``ν`` fixed.

JAX compiles once per array shape: events, flashes and cameras are padded to powers of two
(at least ``MIN_EVENTS``, ``MIN_FLASHES``, ``MIN_CAMERAS``) with masks, so fits of similar size
reuse the compiled sampler and optimiser.
"""

from __future__ import annotations

import sys
import time as _time
import warnings
from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.distributions import constraints
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_index
from flashsync_bayes.timing import FrameClock, snap_frame_times

METHODS = ("bayes", "laplace", "lsq")
MIN_EVENTS = 256
MIN_FLASHES = 64
MIN_CAMERAS = 4
#: Hidden-row fractions below this are clipped when building the whitening (log h needs h > 0).
MIN_HIDDEN_FRACTION = 3e-3
#: Largest prior sd of log h used in the whitening.
MAX_LOG_HIDDEN_SD = 1.0
#: Smallest event-time noise σ (ms) the lsq step reports.
MIN_SIGMA_MS = 1e-3
LSQ_ITERATIONS = 8


class Priors(NamedTuple):
    """Prior settings of the model; widen them for unusual sensors.

    Attributes:
        drift_ppm: sd of the drift around 1 (parts per million).
        hidden_rows: (mean, sd) of the hidden-row fraction ``(L - R) / R``, truncated at 0;
            e.g. ``(0.5, 0.5)`` for fast-readout sensors at low frame rates.
        shift_sd_ms: sd of each shift around the coarse offset (ms).
        sigma_ms: mean of the exponential prior of each camera's event-time noise σ (ms).
        nu: degrees of freedom of the Student-t likelihood.
    """

    drift_ppm: float = 300.0
    hidden_rows: tuple[float, float] = (0.06, 0.04)
    shift_sd_ms: float = 1000.0
    sigma_ms: float = 0.05
    nu: float = 4.0


class Problem(NamedTuple):
    """Matched leading edges and per-camera facts, ready for fitting (NumPy, unpadded).

    Attributes:
        cameras: camera labels; ``paths`` their paths.
        reference: index of the reference camera.
        event_index: ``(E,)`` positions of the used events in the input dataset.
        event_camera, event_flash: ``(E,)`` camera index and flash index (into ``flash_ids``).
        frame_time_ms: ``(E,)`` (snapped) frame times p; ``row``, ``row_sd``: ``(E,)`` rows.
        flash_ids: ``(F,)`` matched flash ids in use.
        stored_rows: ``(C,)`` R; ``frame_period_ms``: ``(C,)`` T used; ``fixed_total_rows``:
            ``(C,)`` L where known, NaN where free.
        camera_centre_ms: ``(C,)`` m_c; ``centre_ms``: M; ``time_scale_ms``: X.
        shift_prior_ms: ``(C,)`` coarse shift relative to the reference, NaN where unknown.
        frame_clocks: per camera FrameClock or None.
    """

    cameras: tuple
    paths: tuple
    reference: int
    event_index: np.ndarray
    event_camera: np.ndarray
    event_flash: np.ndarray
    frame_time_ms: np.ndarray
    row: np.ndarray
    row_sd: np.ndarray
    flash_ids: np.ndarray
    stored_rows: np.ndarray
    frame_period_ms: np.ndarray
    fixed_total_rows: np.ndarray
    camera_centre_ms: np.ndarray
    centre_ms: float
    time_scale_ms: float
    shift_prior_ms: np.ndarray
    frame_clocks: tuple


class LsqSolution(NamedTuple):
    """Least-squares solution in centred unknowns (see module docstring).

    Attributes:
        vector: ``(P,)`` packed unknowns: K camera unknowns first, then the F flash times.
        camera_covariance: ``(K, K)`` Gauss-Newton covariance of the camera unknowns.
        flash_gain: ``(F, K)`` and flash_variance: ``(F,)``: given the camera unknowns θ, the flash
            times are Gaussian with mean ``ψ̂ - flash_gain @ (θ - θ̂)`` and these variances.
        drift_column, offset_column, tpr_column: ``(C,)`` columns of δ̃, B, a (-1 where fixed).
        flash_column: ``(F,)`` columns of ψ.
        drift_scaled, offset_ms, time_per_row_ms: ``(C,)`` δ̃, B, a; ``flash_ms``: ``(F,)`` ψ.
        sigma_ms: ``(C,)`` event-time noise estimate (one common value, see :func:`_common_sigma`);
            ``weight``: ``(E,)`` final weights (1/ms²).
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
    time_per_row_ms: np.ndarray
    flash_ms: np.ndarray
    sigma_ms: np.ndarray
    weight: np.ndarray
    residual_ms: np.ndarray
    dof: float


class ModelData(NamedTuple):
    """Padded JAX arrays the NumPyro model reads (C cameras, F flashes, E events after padding)."""

    event_camera: jax.Array  # (E,) int
    event_flash: jax.Array  # (E,) int
    event_x_ms: jax.Array  # (E,) p - m_c
    event_row: jax.Array  # (E,)
    event_row_sd: jax.Array  # (E,)
    event_mask: jax.Array  # (E,) bool
    event_weight: jax.Array  # (E,) weights of φ̂ (0 on padding)
    flash_weight_sum: jax.Array  # (F,)
    flash_scale_ms: jax.Array  # (F,) c_j
    flash_mask: jax.Array  # (F,) bool
    theta_mean: jax.Array  # (3C,) [δ̃, B, log h]
    theta_chol: jax.Array  # (3C, 3C)
    free_z: jax.Array  # (3C,) bool: entries of camera_z that move a parameter
    free_drift: jax.Array  # (C,) bool
    free_rows: jax.Array  # (C,) bool
    shift_prior_mask: jax.Array  # (C,) bool
    shift_prior_ms: jax.Array  # (C,)
    stored_rows: jax.Array  # (C,)
    frame_period_ms: jax.Array  # (C,)
    fixed_total_rows: jax.Array  # (C,) (dummy where free)
    camera_centre_ms: jax.Array  # (C,)
    centre_ms: jax.Array  # ()
    time_scale_ms: jax.Array  # ()
    drift_sd: jax.Array  # ()
    shift_sd_ms: jax.Array  # ()
    hidden_mean: jax.Array  # ()
    hidden_sd: jax.Array  # ()
    sigma_rate: jax.Array  # () 1 / mean σ
    nu: jax.Array  # ()


# ----------------------------------------------------------------------------------------------
# Preparing the data
# ----------------------------------------------------------------------------------------------


def _camera_values(events, name: str) -> np.ndarray | None:
    """Per-camera float variable ``name`` of the events dataset, or None if absent."""
    if name not in events or events[name].dims != ("camera",):
        return None
    return np.asarray(events[name].values, dtype=np.float64)


def prepare_problem(events, reference=None, total_rows=None, frame_period_ms=None) -> Problem:
    """The :class:`Problem` of the matched leading edges of ``events`` (raises FlashsyncError on bad input)."""
    from flashsync_bayes.events import validate_events

    validate_events(events)
    labels = tuple(str(c) for c in events["camera"].values)
    paths = tuple(str(p) for p in events["path"].values)
    n_cameras = len(labels)
    if n_cameras < 2:
        raise FlashsyncError(f"need at least two cameras to synchronize, got {n_cameras}")
    ref = 0 if reference is None else camera_index(events, reference, "reference")
    stored_rows = np.asarray(events["height"].values, dtype=np.float64)
    period = np.asarray(events["frame_period_ms"].values, dtype=np.float64).copy()
    clock_origin = _camera_values(events, "clock_origin_ms")
    clock_period = _camera_values(events, "clock_period_ms")
    clocks = []
    for c in range(n_cameras):
        clock = None
        if clock_origin is not None and clock_period is not None:
            if np.isfinite(clock_origin[c]) and np.isfinite(clock_period[c]) and clock_period[c] > 0:
                clock = FrameClock(float(clock_origin[c]), float(clock_period[c]))
                period[c] = clock.period_ms
        clocks.append(clock)
    for key, value in (frame_period_ms or {}).items():
        c = camera_index(events, key, "frame_period_ms")
        if not float(value) > 0:
            raise FlashsyncError(f"frame period of camera '{labels[c]}' must be positive, got {value}")
        period[c] = float(value)
    fixed_rows = np.full(n_cameras, np.nan)
    for key, value in (total_rows or {}).items():
        c = camera_index(events, key, "total_rows")
        if not float(value) >= stored_rows[c]:
            raise FlashsyncError(
                f"total rows of camera '{labels[c]}' must be at least its {int(stored_rows[c])} stored rows, "
                f"got {value}"
            )
        fixed_rows[c] = float(value)

    flash = np.asarray(events["flash"].values, dtype=np.int64)
    use = (np.asarray(events["edge"].values).astype(str) == "leading") & (flash >= 0)
    camera_of = {label: i for i, label in enumerate(labels)}
    event_camera_all = np.array([camera_of[str(c)] for c in events["event_camera"].values], dtype=np.int64)
    # flashes seen by a single camera carry no information about the mapping
    while True:
        index = np.flatnonzero(use)
        ids, inverse = np.unique(flash[index], return_inverse=True)
        seen = np.zeros((ids.size, n_cameras), dtype=bool)
        seen[inverse, event_camera_all[index]] = True
        shared = seen.sum(axis=1) >= 2
        if shared.all():
            break
        use[index[~shared[inverse]]] = False
    for c in range(n_cameras):
        if not np.any(event_camera_all[index] == c):
            raise FlashsyncError(
                f"camera '{labels[c]}' has no matched leading edge of a flash that another camera also saw; "
                "check its flash detection and matching, or leave the camera out"
            )
    # every camera must be linked to the reference through shared flashes
    linked = np.zeros(n_cameras, dtype=bool)
    linked[ref] = True
    while True:
        reached = seen[seen[:, linked].any(axis=1)].any(axis=0) | linked
        if (reached == linked).all():
            break
        linked = reached
    if not linked.all():
        lost = [labels[c] for c in np.flatnonzero(~linked)]
        raise FlashsyncError(
            f"cameras {lost} share no flash, directly or through other cameras, with the reference "
            f"'{labels[ref]}'; they cannot be synchronized together"
        )

    event_camera = event_camera_all[index]
    frame_time = np.asarray(events["frame_time_ms"].values, dtype=np.float64)[index]
    for c, clock in enumerate(clocks):
        if clock is not None:
            mine = event_camera == c
            frame_time[mine] = snap_frame_times(frame_time[mine], clock)
    centre = np.array([frame_time[event_camera == c].mean() for c in range(n_cameras)])
    scale = float(max(np.max(np.abs(frame_time - centre[event_camera])), 1.0))

    shift_prior = np.full(n_cameras, np.nan)
    coarse_drift = _camera_values(events, "coarse_drift")
    coarse_shift = _camera_values(events, "coarse_shift_ms")
    if coarse_shift is not None:
        if coarse_drift is None:
            coarse_drift = np.ones(n_cameras)
        if np.isfinite(coarse_shift[ref]) and np.isfinite(coarse_drift[ref]) and coarse_drift[ref] > 0:
            shift_prior = (coarse_shift - coarse_shift[ref]) / coarse_drift[ref]
            shift_prior[ref] = np.nan

    return Problem(
        cameras=labels,
        paths=paths,
        reference=ref,
        event_index=index,
        event_camera=event_camera,
        event_flash=inverse.astype(np.int64),
        frame_time_ms=frame_time,
        row=np.asarray(events["row"].values, dtype=np.float64)[index],
        row_sd=np.asarray(events["row_sd"].values, dtype=np.float64)[index],
        flash_ids=ids,
        stored_rows=stored_rows,
        frame_period_ms=period,
        fixed_total_rows=fixed_rows,
        camera_centre_ms=centre,
        centre_ms=float(centre[ref]),
        time_scale_ms=scale,
        shift_prior_ms=shift_prior,
        frame_clocks=tuple(clocks),
    )


# ----------------------------------------------------------------------------------------------
# Least squares (the paper's method)
# ----------------------------------------------------------------------------------------------


def _prior_time_per_row(problem: Problem, priors: Priors):
    """Prior mean and sd ``(C,)`` of the time per row a (ms) implied by the hidden-row prior."""
    mean_h, sd_h = priors.hidden_rows
    a0 = problem.frame_period_ms / (problem.stored_rows * (1.0 + mean_h))
    sd = problem.frame_period_ms / (problem.stored_rows * (1.0 + mean_h) ** 2) * sd_h
    return a0, sd


def solve_lsq(problem: Problem, priors: Priors = Priors()) -> LsqSolution:
    """Joint robust least-squares solution of all cameras and flashes, with its covariance."""
    n_cam = len(problem.cameras)
    n_flash = problem.flash_ids.size
    ref = problem.reference
    fixed = np.isfinite(problem.fixed_total_rows)
    free_drift = np.arange(n_cam) != ref
    columns = iter(range(10**9))
    drift_col = np.array([next(columns) if free_drift[c] else -1 for c in range(n_cam)])
    offset_col = np.array([next(columns) if free_drift[c] else -1 for c in range(n_cam)])
    tpr_col = np.array([next(columns) if not fixed[c] else -1 for c in range(n_cam)])
    flash_col = np.array([next(columns) for _ in range(n_flash)])
    n_cam_par = int(free_drift.sum()) * 2 + int((~fixed).sum())
    n_par = n_flash + n_cam_par

    cam, fl = problem.event_camera, problem.event_flash
    x = problem.frame_time_ms - problem.camera_centre_ms[cam]
    y = problem.row
    known_tpr = np.where(fixed, problem.frame_period_ms / np.where(fixed, problem.fixed_total_rows, 1.0), 0.0)
    big_x = problem.time_scale_ms
    row_scale = float(problem.stored_rows.max())
    n_ev = x.size
    # each edge touches at most four unknowns: δ̃_c, B_c, a_c and ψ_j (column n_par is a dummy)
    index = np.full((n_ev, 4), n_par)
    value = np.zeros((n_ev, 4))
    has_drift = drift_col[cam] >= 0
    index[has_drift, 0] = drift_col[cam][has_drift]
    value[has_drift, 0] = ((x + known_tpr[cam] * y) / big_x)[has_drift]
    index[has_drift, 1] = offset_col[cam][has_drift]
    value[has_drift, 1] = 1.0
    has_tpr = tpr_col[cam] >= 0
    index[has_tpr, 2] = tpr_col[cam][has_tpr]
    value[has_tpr, 2] = y[has_tpr] / row_scale
    index[:, 3] = flash_col[fl]
    value[:, 3] = -1.0
    target = -(x + known_tpr[cam] * y)

    # priors as pseudo-observations: drift, time per row, and shift where a coarse value exists
    prior_rows, prior_targets, prior_sds = [], [], []
    a0, a_sd = _prior_time_per_row(problem, priors)
    for c in range(n_cam):
        if drift_col[c] >= 0:
            g = np.zeros(n_par)
            g[drift_col[c]] = 1.0
            prior_rows.append(g), prior_targets.append(0.0), prior_sds.append(priors.drift_ppm * 1e-6 * big_x)
            if np.isfinite(problem.shift_prior_ms[c]):
                g = np.zeros(n_par)
                g[offset_col[c]] = 1.0
                g[drift_col[c]] = -problem.camera_centre_ms[c] / big_x
                prior_rows.append(g)
                prior_targets.append(problem.shift_prior_ms[c] + problem.camera_centre_ms[c] - problem.centre_ms)
                prior_sds.append(priors.shift_sd_ms)
        if tpr_col[c] >= 0:
            g = np.zeros(n_par)
            g[tpr_col[c]] = 1.0
            prior_rows.append(g), prior_targets.append(a0[c] * row_scale), prior_sds.append(a_sd[c] * row_scale)
    prior_design = np.array(prior_rows).reshape(-1, n_par)
    prior_precision = 1.0 / np.asarray(prior_sds) ** 2
    prior_normal = prior_design.T @ (prior_precision[:, None] * prior_design)
    prior_rhs = prior_design.T @ (prior_precision * np.asarray(prior_targets))

    def normal_equations(weight):
        normal = np.zeros((n_par + 1, n_par + 1))
        pairs = weight[:, None, None] * value[:, :, None] * value[:, None, :]
        np.add.at(normal, (index[:, :, None], index[:, None, :]), pairs)
        rhs = np.zeros(n_par + 1)
        np.add.at(rhs, index, (weight * target)[:, None] * value)
        return normal[:n_par, :n_par] + prior_normal, rhs[:n_par] + prior_rhs

    def predict(vector):
        return np.sum(np.append(vector, 0.0)[index] * value, axis=1)

    nu = priors.nu
    sigma = np.full(n_cam, 0.01)
    tpr = a0.copy()
    robust = np.ones(n_ev)
    dof = float(n_ev)
    for iteration in range(LSQ_ITERATIONS + 1):
        variance = sigma[cam] ** 2 + (tpr[cam] * problem.row_sd) ** 2
        weight = robust / variance
        normal, rhs = normal_equations(weight)
        vector, camera_cov, gain, flash_var = _solve_blocks(normal, rhs, n_cam_par)
        residual = target - predict(vector)
        if iteration == LSQ_ITERATIONS:
            break
        # leverage h_e = w_e v_eᵀ N⁻¹ v_e from the blocks; the flash entry of v_e is -1
        cam_index, cam_value = index[:, :3], value[:, :3]
        padded = np.pad(camera_cov, ((0, 1), (0, 1)))
        cam_index = np.where(cam_index < n_cam_par, cam_index, n_cam_par)
        block = padded[cam_index[:, :, None], cam_index[:, None, :]]
        quadratic = np.einsum("ek,el,ekl->e", cam_value, cam_value, block)
        # N⁻¹[camera k, flash j] = -(S⁻¹ B D⁻¹)[k, j] = -(camera_cov @ gain.T)[k, j]
        cross = np.pad(camera_cov @ gain.T, ((0, 1), (0, 0)))
        quadratic += 2.0 * np.sum(cam_value * cross[cam_index, fl[:, None]], axis=1)
        quadratic += flash_var[fl] + np.einsum("ek,kl,el->e", gain[fl], camera_cov, gain[fl])
        leverage = np.clip(weight * quadratic, 0.0, 0.95)
        drift_now = 1.0 + _drift_scaled(vector, drift_col) / big_x
        free_tpr = np.where(tpr_col >= 0, vector[np.maximum(tpr_col, 0)] / row_scale, 0.0)
        tpr = np.where(fixed, drift_now * known_tpr, free_tpr)
        z2 = residual**2 / ((1.0 - leverage) * variance)
        robust = (nu + 1.0) / (nu + z2)
        dof = float(np.sum(1.0 - leverage))
        sigma[:] = _common_sigma(residual, (tpr[cam] * problem.row_sd) ** 2, robust, dof)
    # undo the row scaling of the time-per-row columns
    unscale = np.ones(n_par)
    unscale[tpr_col[tpr_col >= 0]] = 1.0 / row_scale
    vector = vector * unscale
    camera_cov = camera_cov * np.outer(unscale[:n_cam_par], unscale[:n_cam_par])
    gain = gain / unscale[None, :n_cam_par]
    drift_scaled = _drift_scaled(vector, drift_col)
    offset = np.where(offset_col >= 0, vector[np.maximum(offset_col, 0)], 0.0)
    tpr = np.where(
        fixed, (1.0 + drift_scaled / big_x) * known_tpr, np.where(tpr_col >= 0, vector[np.maximum(tpr_col, 0)], 0.0)
    )
    return LsqSolution(
        vector=vector,
        camera_covariance=camera_cov,
        flash_gain=gain,
        flash_variance=flash_var,
        drift_column=drift_col,
        offset_column=offset_col,
        tpr_column=tpr_col,
        flash_column=flash_col,
        drift_scaled=drift_scaled,
        offset_ms=offset,
        time_per_row_ms=tpr,
        flash_ms=vector[flash_col],
        sigma_ms=sigma.copy(),
        weight=weight,
        residual_ms=-residual,
        dof=dof,
    )


def _solve_blocks(normal: np.ndarray, rhs: np.ndarray, k: int):
    """Solution ``(P,)`` of the normal equations with K camera and F flash unknowns, by the Schur complement.

    The flash-flash block is diagonal (each edge sees one flash), so only the K x K Schur
    complement is factorised. Returns (solution, camera covariance ``(K, K)``, flash gain
    ``(F, K)`` = D⁻¹Bᵀ, conditional flash variances ``(F,)`` = 1/D).
    """
    a, b, d = normal[:k, :k], normal[:k, k:], np.diag(normal[k:, k:]).copy()
    d_inv = 1.0 / d
    gain = (b * d_inv[None, :]).T
    schur = a - b @ gain
    camera_cov = _spd_inverse(0.5 * (schur + schur.T))
    camera = camera_cov @ (rhs[:k] - gain.T @ rhs[k:])
    flash = d_inv * rhs[k:] - gain @ camera
    return np.concatenate([camera, flash]), camera_cov, gain, d_inv


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive (semi)definite matrix: Jacobi-scaled Cholesky, pseudo-inverse if singular.

    Cholesky (LAPACK potrf/potri) rather than an eigen-decomposition: it is many times faster and
    far less sensitive to BLAS threads competing for a busy CPU.
    """
    from scipy.linalg import lapack

    scale = 1.0 / np.sqrt(np.maximum(np.diag(matrix), 1e-300))
    scaled = matrix * np.outer(scale, scale)
    factor, info = lapack.dpotrf(scaled, lower=True)
    if info == 0:
        inverse, info = lapack.dpotri(factor, lower=True)
        if info == 0:
            inverse = np.tril(inverse) + np.tril(inverse, -1).T
            return inverse * np.outer(scale, scale)
    return np.linalg.pinv(matrix, hermitian=True)


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


# ----------------------------------------------------------------------------------------------
# The NumPyro model
# ----------------------------------------------------------------------------------------------


def _bucket(n: int, minimum: int) -> int:
    """Smallest power of two >= max(n, minimum)."""
    return 1 << (max(int(n), int(minimum)) - 1).bit_length()


def model_data(problem: Problem, solution: LsqSolution, priors: Priors = Priors()) -> ModelData:
    """Padded :class:`ModelData` for the model, whitened by the lsq solution."""
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    pc, pf, pe = _bucket(n_cam, MIN_CAMERAS), _bucket(n_flash, MIN_FLASHES), _bucket(n_ev, MIN_EVENTS)
    ref = problem.reference
    fixed = np.isfinite(problem.fixed_total_rows)
    real = np.arange(pc) < n_cam
    free_drift = real & (np.arange(pc) != ref)
    free_rows = real.copy()
    free_rows[:n_cam] &= ~fixed

    def pad(values, size, fill):
        out = np.full(size, fill, dtype=np.asarray(values).dtype)
        out[: len(values)] = values
        return out

    stored = pad(problem.stored_rows, pc, 100.0)
    period = pad(problem.frame_period_ms, pc, 10.0)
    mean_h, sd_h = priors.hidden_rows
    known_rows = pad(problem.fixed_total_rows, pc, np.nan)
    fixed_rows = np.where(np.isfinite(known_rows), known_rows, stored * (1 + mean_h))
    drift = 1.0 + pad(solution.drift_scaled, pc, 0.0) / problem.time_scale_ms
    tpr = pad(solution.time_per_row_ms, pc, 1.0)
    hidden = np.clip(drift * period / (np.where(tpr > 0, tpr, np.nan) * stored) - 1.0, MIN_HIDDEN_FRACTION, 10.0)
    hidden = np.where(np.isfinite(hidden) & free_rows, hidden, mean_h if mean_h > 0 else 0.05)
    log_hidden = np.log(hidden)

    # covariance of the free camera parameters (δ̃, B, log h) from the lsq covariance
    theta_mean = np.concatenate([pad(solution.drift_scaled, pc, 0.0), pad(solution.offset_ms, pc, 0.0), log_hidden])
    free_z = np.concatenate([free_drift, free_drift, free_rows])
    source_col = np.full(3 * pc, -1)
    gain = np.zeros(3 * pc)
    for c in range(n_cam):
        if free_drift[c]:
            source_col[c], gain[c] = solution.drift_column[c], 1.0
            source_col[pc + c], gain[pc + c] = solution.offset_column[c], 1.0
        if free_rows[c]:
            # d log h / d a = -(d T / (a² R)) / h
            source_col[2 * pc + c] = solution.tpr_column[c]
            gain[2 * pc + c] = -(drift[c] * period[c] / (tpr[c] ** 2 * stored[c])) / hidden[c]
    free_index = np.flatnonzero(free_z)
    sub = solution.camera_covariance[np.ix_(source_col[free_index], source_col[free_index])]
    sub = sub * np.outer(gain[free_index], gain[free_index])
    sd = np.sqrt(np.maximum(np.diag(sub), 1e-300))
    cap = np.where(free_index >= 2 * pc, np.minimum(1.0, MAX_LOG_HIDDEN_SD / sd), 1.0)
    sub = sub * np.outer(cap, cap)
    sub = 0.5 * (sub + sub.T) + np.diag(1e-12 * np.diag(sub) + 1e-300)
    chol = np.zeros((3 * pc, 3 * pc))
    chol[np.ix_(free_index, free_index)] = _safe_cholesky(sub)

    # flash times: fixed weights for φ̂ and the conditional scale c_j
    weight = solution.weight
    weight_sum = np.bincount(problem.event_flash, weights=weight, minlength=n_flash)
    x = problem.frame_time_ms - problem.camera_centre_ms[problem.event_camera]
    shift_prior = problem.shift_prior_ms.copy()
    lsq_shift = solution.offset_ms + problem.centre_ms - drift[:n_cam] * problem.camera_centre_ms
    shift_prior = np.where(np.isfinite(shift_prior), shift_prior, lsq_shift)
    f64 = jnp.float64
    return ModelData(
        event_camera=jnp.asarray(pad(problem.event_camera, pe, 0)),
        event_flash=jnp.asarray(pad(problem.event_flash, pe, 0)),
        event_x_ms=jnp.asarray(pad(x, pe, 0.0), dtype=f64),
        event_row=jnp.asarray(pad(problem.row, pe, 0.0), dtype=f64),
        event_row_sd=jnp.asarray(pad(problem.row_sd, pe, 1.0), dtype=f64),
        event_mask=jnp.asarray(np.arange(pe) < n_ev),
        event_weight=jnp.asarray(pad(weight, pe, 0.0), dtype=f64),
        flash_weight_sum=jnp.asarray(pad(weight_sum, pf, 1.0), dtype=f64),
        flash_scale_ms=jnp.asarray(pad(1.0 / np.sqrt(weight_sum), pf, 1.0), dtype=f64),
        flash_mask=jnp.asarray(np.arange(pf) < n_flash),
        theta_mean=jnp.asarray(theta_mean, dtype=f64),
        theta_chol=jnp.asarray(chol, dtype=f64),
        free_z=jnp.asarray(free_z),
        free_drift=jnp.asarray(free_drift),
        free_rows=jnp.asarray(free_rows),
        shift_prior_mask=jnp.asarray(free_drift),
        shift_prior_ms=jnp.asarray(pad(shift_prior, pc, 0.0), dtype=f64),
        stored_rows=jnp.asarray(stored, dtype=f64),
        frame_period_ms=jnp.asarray(period, dtype=f64),
        fixed_total_rows=jnp.asarray(fixed_rows, dtype=f64),
        camera_centre_ms=jnp.asarray(pad(problem.camera_centre_ms, pc, problem.centre_ms), dtype=f64),
        centre_ms=jnp.asarray(problem.centre_ms, dtype=f64),
        time_scale_ms=jnp.asarray(problem.time_scale_ms, dtype=f64),
        drift_sd=jnp.asarray(priors.drift_ppm * 1e-6, dtype=f64),
        shift_sd_ms=jnp.asarray(priors.shift_sd_ms, dtype=f64),
        hidden_mean=jnp.asarray(mean_h, dtype=f64),
        hidden_sd=jnp.asarray(sd_h, dtype=f64),
        sigma_rate=jnp.asarray(1.0 / priors.sigma_ms, dtype=f64),
        nu=jnp.asarray(priors.nu, dtype=f64),
    )


def _safe_cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric PSD matrix, via eigenvalue clipping if needed."""
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(matrix)
        values = np.maximum(values, 1e-12 * max(values.max(), 1e-300))
        return np.linalg.cholesky((vectors * values) @ vectors.T)


class Natural(NamedTuple):
    """Model parameters in natural units: per camera ``(C,)`` and per flash ``(F,)``."""

    drift: jax.Array
    offset_ms: jax.Array
    shift_ms: jax.Array
    total_rows: jax.Array
    time_per_row_ms: jax.Array
    sigma_ms: jax.Array
    flash_ms: jax.Array  # centred ψ = φ - M


def natural_parameters(camera_z, flash_z, sigma_ms, data: ModelData) -> Natural:
    """Natural parameters of one point of the whitened coordinates."""
    n = data.stored_rows.shape[0]
    theta = data.theta_mean + data.theta_chol @ camera_z
    drift = 1.0 + theta[:n] / data.time_scale_ms
    offset = theta[n : 2 * n]
    hidden = jnp.exp(theta[2 * n :])
    total_rows = jnp.where(data.free_rows, data.stored_rows * (1.0 + hidden), data.fixed_total_rows)
    tpr = drift * data.frame_period_ms / total_rows
    cam = data.event_camera
    mapped = drift[cam] * data.event_x_ms + offset[cam] + tpr[cam] * data.event_row
    weighted = jax.ops.segment_sum(data.event_weight * mapped, data.event_flash, data.flash_mask.shape[0])
    flash = weighted / data.flash_weight_sum + data.flash_scale_ms * flash_z
    shift = offset + data.centre_ms - drift * data.camera_centre_ms
    return Natural(drift, offset, shift, total_rows, tpr, sigma_ms, flash)


def _row_distribution(nat: Natural, data: ModelData):
    """Student-t distribution ``(E,)`` of the observed rows given natural parameters."""
    cam = data.event_camera
    a = nat.time_per_row_ms[cam]
    loc = (nat.flash_ms[data.event_flash] - nat.offset_ms[cam] - nat.drift[cam] * data.event_x_ms) / a
    scale = jnp.sqrt((nat.sigma_ms[cam] / a) ** 2 + data.event_row_sd**2)
    return dist.StudentT(data.nu, loc, scale)


def _log_prior(camera_z, flash_z, nat: Natural, data: ModelData):
    """Log prior density of the camera parameters in whitened coordinates (constant Jacobians dropped)."""
    n = data.stored_rows.shape[0]
    hidden = nat.total_rows / data.stored_rows - 1.0
    log_hidden = (data.theta_mean + data.theta_chol @ camera_z)[2 * n :]
    lp = jnp.sum(jnp.where(data.free_drift, dist.Normal(1.0, data.drift_sd).log_prob(nat.drift), 0.0))
    shift_lp = dist.Normal(data.shift_prior_ms, data.shift_sd_ms).log_prob(nat.shift_ms)
    lp += jnp.sum(jnp.where(data.shift_prior_mask, shift_lp, 0.0))
    hidden_lp = dist.Normal(data.hidden_mean, data.hidden_sd).log_prob(hidden) + log_hidden
    lp += jnp.sum(jnp.where(data.free_rows, hidden_lp, 0.0))
    # entries that move nothing, and padded flashes, get a standard normal so the target is proper
    lp -= 0.5 * jnp.sum(jnp.where(data.free_z, 0.0, camera_z**2))
    lp -= 0.5 * jnp.sum(jnp.where(data.flash_mask, 0.0, flash_z**2))
    return lp


def sync_model(data: ModelData):
    """NumPyro model of DESIGN §5 in whitened coordinates; observes the rows of the matched edges."""
    n_z = data.theta_mean.shape[0]
    n_flash = data.flash_mask.shape[0]
    n_cam = data.stored_rows.shape[0]
    camera_z = numpyro.sample("camera_z", dist.ImproperUniform(constraints.real, (), (n_z,)))
    flash_z = numpyro.sample("flash_z", dist.ImproperUniform(constraints.real, (), (n_flash,)))
    sigma = numpyro.sample("sigma_ms", dist.Exponential(data.sigma_rate * jnp.ones(n_cam)).to_event(1))
    nat = natural_parameters(camera_z, flash_z, sigma, data)
    numpyro.factor("camera_prior", _log_prior(camera_z, flash_z, nat, data))
    with numpyro.handlers.mask(mask=data.event_mask):
        numpyro.sample("row", _row_distribution(nat, data), obs=data.event_row)


def _draw_dof(solution: LsqSolution) -> float:
    """Degrees of freedom of the Student-t draws of lsq and Laplace (at least 1)."""
    return max(float(solution.dof), 1.0)


def _unconstrained_init(solution: LsqSolution, data: ModelData) -> dict[str, jax.Array]:
    """Unconstrained starting point at the lsq solution: camera_z = flash_z = 0, σ at its lsq value."""
    n_cam = data.stored_rows.shape[0]
    sigma = np.full(n_cam, 1.0 / float(data.sigma_rate))
    sigma[: solution.sigma_ms.size] = solution.sigma_ms
    return {
        "camera_z": jnp.zeros(data.theta_mean.shape[0]),
        "flash_z": jnp.zeros(data.flash_mask.shape[0]),
        "sigma_ms": jnp.log(jnp.asarray(sigma)),
    }


def _potential(z: dict, data: ModelData):
    """Potential energy (negative log joint in unconstrained space)."""
    return potential_energy(sync_model, (data,), {}, z)


@partial(jax.jit, static_argnames=("num_warmup", "num_samples", "num_chains"))
def _run_nuts(rng_key, init: dict, data: ModelData, num_warmup: int, num_samples: int, num_chains: int):
    """NUTS draws of the unconstrained latents ``(chains, samples, ...)`` with per-draw sample stats.

    Warmup and sampling run in one ``lax.scan`` so the NUTS kernel is compiled once; the first
    chain starts exactly at ``init``, further chains at ``init`` plus N(0, 0.3²) in whitened units.
    """

    def one_chain(key, z0):
        init_kernel, sample_kernel = hmc(potential_fn=partial(_potential, data=data), algo="NUTS")
        key_init, key_run = jax.random.split(key)
        state = init_kernel(z0, num_warmup, rng_key=key_init, max_tree_depth=8, target_accept_prob=0.85)

        def step(s, _):
            s = sample_kernel(s)
            return s, (s.z, s.potential_energy, s.diverging, s.num_steps, s.accept_prob, s.energy,
                       s.adapt_state.step_size)

        _, trace = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
        return jax.tree_util.tree_map(lambda v: v[num_warmup:], trace)

    keys = jax.random.split(rng_key, num_chains + 1)
    if num_chains == 1:
        return jax.tree_util.tree_map(lambda v: v[None], one_chain(keys[1], init))
    jitter = jax.vmap(lambda k: jax.tree_util.tree_map(lambda v: 0.3 * jax.random.normal(k, v.shape), init))(
        jax.random.split(keys[0], num_chains)
    )
    first = (jnp.arange(num_chains) > 0).astype(jnp.float64)
    starts = jax.tree_util.tree_map(lambda v, j: v[None] + j * first.reshape((-1,) + (1,) * v.ndim), init, jitter)
    return jax.vmap(one_chain)(keys[1:], starts)


@partial(jax.jit, static_argnames=("num_draws",))
def _run_laplace(rng_key, init: dict, data: ModelData, dof, num_draws: int):
    """MAP by damped Newton from ``init`` and ``num_draws`` draws from the inverse Hessian there.

    Draws are multivariate Student-t with ``dof`` degrees of freedom (Gaussian for large dof),
    as for a linear model whose noise scale is estimated from ``dof`` residual degrees of freedom.

    The noise σ stays at its value in ``init`` (the lsq estimate, corrected for the degrees of
    freedom the flash times use): a joint mode of σ and one latent time per flash would shrink σ
    by up to √2 when flashes are seen by two cameras (Neyman-Scott) and the intervals with it.

    Returns (draws of the unconstrained latents ``(num_draws, ...)``, iterations, converged, the
    MAP ``(n,)`` and the Hessian's eigenvalues ``(n,)`` there).
    Each iteration evaluates energy, gradient and Hessian once, at the proposed point (one compiled
    copy of the Hessian graph); a rejected proposal raises the damping.
    """
    free = {"camera_z": init["camera_z"], "flash_z": init["flash_z"]}
    flat0, unravel_free = ravel_pytree(free)

    def unravel(flat):
        return {**unravel_free(flat), "sigma_ms": init["sigma_ms"]}

    def energy(flat):
        return _potential(unravel(flat), data)

    def value_and_gradient(flat):
        value, gradient = jax.value_and_grad(energy)(flat)
        return gradient, (value, gradient)

    evaluate = jax.jacfwd(value_and_gradient, has_aux=True)
    eye = jnp.eye(flat0.size)

    def cond(state):
        return (state[5] < 60) & ~state[6]

    def body(state):
        flat, u, g, h, lam, it, _ = state
        step = -jnp.linalg.solve(h + lam * eye, g)
        # converged when the Newton model promises no gain above the rounding noise of the energy
        done = (it > 0) & (-0.5 * jnp.dot(g, step) < 1e-9 * (1.0 + jnp.abs(u)))
        h_new, (u_new, g_new) = evaluate(flat + step)
        accept = jnp.isfinite(u_new) & jnp.all(jnp.isfinite(g_new)) & (u_new <= u + 1e-12 * jnp.abs(u)) & ~done
        keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        lam = jnp.where(accept, jnp.maximum(lam / 10.0, 1e-12), lam * 10.0)
        return keep(flat + step, flat), keep(u_new, u), keep(g_new, g), keep(h_new, h), lam, it + 1, done

    # the first iteration takes a zero step and so evaluates the starting point
    zero, false = jnp.asarray(0), jnp.asarray(False)
    state = (flat0, jnp.asarray(jnp.inf), jnp.zeros_like(flat0), eye, jnp.asarray(1e-4), zero, false)
    flat, _, _, h, _, iterations, converged = jax.lax.while_loop(cond, body, state)
    values, vectors = jnp.linalg.eigh(0.5 * (h + h.T))
    # at a saddle (a flash between two Student-t modes) use |curvature|: the Gaussian then spans
    # both modes instead of exploding along the negative direction
    curvature = jnp.maximum(jnp.abs(values), 1e-3)
    key_normal, key_scale = jax.random.split(rng_key)
    noise = jax.random.normal(key_normal, (num_draws, flat.size))
    noise = noise * _student_scale(key_scale, dof, num_draws)[:, None]
    draws = flat + (noise / jnp.sqrt(curvature)) @ vectors.T
    return jax.vmap(unravel)(draws), iterations, converged, flat, values


def _student_scale(rng_key, dof, n: int):
    """Factors ``(n,)`` sqrt(dof / χ²_dof) turning standard normal draws into Student-t draws."""
    chi2 = 2.0 * jax.random.gamma(rng_key, 0.5 * dof, (n,))
    return jnp.sqrt(dof / chi2)


@jax.jit
def _natural_draws(z: dict, data: ModelData) -> Natural:
    """Natural parameters of unconstrained draws ``(n, ...)`` (each ``(n, C)`` or ``(n, F)``)."""
    return jax.vmap(lambda zi: natural_parameters(zi["camera_z"], zi["flash_z"], jnp.exp(zi["sigma_ms"]), data))(z)


def row_log_likelihood(problem: Problem, drift, offset_ms, time_per_row_ms, sigma_ms, flash_ms, nu: float):
    """Student-t log-likelihood ``(n, E)`` of the observed rows for parameter draws ``(n, C)`` / ``(n, F)``."""
    from scipy.special import gammaln

    cam, fl = problem.event_camera, problem.event_flash
    x = problem.frame_time_ms - problem.camera_centre_ms[cam]
    a = np.asarray(time_per_row_ms)[:, cam]
    loc = (np.asarray(flash_ms)[:, fl] - np.asarray(offset_ms)[:, cam] - np.asarray(drift)[:, cam] * x) / a
    scale = np.sqrt((np.asarray(sigma_ms)[:, cam] / a) ** 2 + problem.row_sd**2)
    z = (problem.row - loc) / scale
    const = gammaln(0.5 * (nu + 1)) - gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
    return const - np.log(scale) - 0.5 * (nu + 1) * np.log1p(z**2 / nu)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def enable_compilation_cache(directory=None) -> str:
    """Directory (str) of JAX's persistent compilation cache, which this call turns on for the process.

    Compiling the sampler takes seconds (NUTS ~6 s, Laplace ~7 s on two busy cores); with the
    cache a new process reuses earlier compilations of the same padded shapes (~1-2 s). Opt-in,
    because it changes JAX's process-wide configuration; default directory
    ``~/.cache/flashsync_bayes/jax``.
    """
    import os

    directory = os.fspath(directory or os.path.join(os.path.expanduser("~"), ".cache", "flashsync_bayes", "jax"))
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return directory


def fit(
    events,
    reference=None,
    method: str = "bayes",
    total_rows: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    seed: int = 0,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    progress: bool = False,
    priors: Priors | None = None,
):
    """Synchronization of all cameras of a matched events dataset, as a :class:`~flashsync_bayes.result.SyncResult`.

    Uses the leading edges with ``flash >= 0``; flashes seen by one camera only are dropped.
    ``reference`` (label or path, default the first camera) gets drift 1 and shift 0.
    ``total_rows`` / ``frame_period_ms`` map cameras (label or path) to known sensor facts.
    ``method`` is "bayes" (NUTS), "laplace" or "lsq"; ``num_samples`` draws per chain are kept.
    """
    from flashsync_bayes.result import SyncResult

    if method not in METHODS:
        raise FlashsyncError(f"method must be one of {METHODS}, got '{method}'")
    if num_samples < 1 or num_chains < 1 or num_warmup < 0:
        raise FlashsyncError("num_samples and num_chains must be >= 1 and num_warmup >= 0")
    priors = Priors() if priors is None else priors
    started = _time.perf_counter()

    def say(message):
        if progress:
            print(f"[flashsync fit {_time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    problem = prepare_problem(events, reference, total_rows, frame_period_ms)
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    say(f"{n_cam} cameras, {n_flash} flashes, {n_ev} edges; least squares")
    solution = solve_lsq(problem, priors)
    data = model_data(problem, solution, priors)
    key = jax.random.PRNGKey(seed)
    sample_stats: dict[str, np.ndarray] = {}

    if method == "lsq":
        rng = np.random.default_rng(seed)
        dof = _draw_dof(solution)
        t_scale = np.sqrt(dof / rng.chisquare(dof, num_samples))[:, None]
        cov = solution.camera_covariance
        chol = _safe_cholesky(0.5 * (cov + cov.T) + np.diag(1e-30 + 1e-14 * np.diag(cov)))
        k = cov.shape[0]
        camera_dev = (rng.standard_normal((num_samples, k)) @ chol.T) * t_scale
        flash_dev = -camera_dev @ solution.flash_gain.T
        flash_dev += rng.standard_normal((num_samples, n_flash)) * np.sqrt(solution.flash_variance) * t_scale
        vectors = solution.vector + np.concatenate([camera_dev, flash_dev], axis=1)
        nat = lsq_natural(problem, solution, vectors)
        nat["sigma_ms"] = np.repeat(solution.sigma_ms[None], num_samples, axis=0)
        chains, draws = 1, num_samples
        sample_stats["diverging"] = np.zeros((1, num_samples), dtype=bool)
    else:
        init = _unconstrained_init(solution, data)
        if method == "laplace":
            say("Laplace approximation (MAP + Hessian)")
            z, iterations, converged, _, curvature = _run_laplace(
                key, init, data, jnp.asarray(_draw_dof(solution)), num_samples
            )
            if not bool(converged):
                warnings.warn(
                    f"Laplace MAP search stopped after {int(iterations)} steps without converging; "
                    "try method='bayes'",
                    stacklevel=2,
                )
            elif float(np.min(curvature)) < 0:
                warnings.warn(
                    "the posterior is not unimodal at the Laplace point (some flash lies between "
                    "disagreeing edges); its intervals are rough there, method='bayes' is exact",
                    stacklevel=2,
                )
            z = jax.tree_util.tree_map(lambda v: v[None], z)
            sample_stats["diverging"] = np.zeros((1, num_samples), dtype=bool)
        else:
            say(f"NUTS: {num_chains} chain(s), {num_warmup} warmup + {num_samples} draws (first run compiles)")
            z, potential, diverging, num_steps, accept_prob, energy, step_size = _run_nuts(
                key, init, data, num_warmup, num_samples, num_chains
            )
            num_steps = np.asarray(num_steps)
            sample_stats.update(
                lp=-np.asarray(potential),
                diverging=np.asarray(diverging),
                n_steps=num_steps,
                tree_depth=np.floor(np.log2(np.maximum(num_steps, 1))).astype(np.int64) + 1,
                acceptance_rate=np.asarray(accept_prob),
                energy=np.asarray(energy),
                step_size=np.asarray(step_size),
            )
        chains, draws = np.asarray(z["flash_z"]).shape[:2]
        flat = jax.tree_util.tree_map(lambda v: v.reshape((chains * draws,) + v.shape[2:]), z)
        natural = _natural_draws(flat, data)
        nat = {
            "drift": natural.drift[:, :n_cam],
            "offset_ms": natural.offset_ms[:, :n_cam],
            "shift_ms": natural.shift_ms[:, :n_cam],
            "total_rows": natural.total_rows[:, :n_cam],
            "time_per_row_ms": natural.time_per_row_ms[:, :n_cam],
            "sigma_ms": natural.sigma_ms[:, :n_cam],
            "flash_ms": natural.flash_ms[:, :n_flash],
        }
        nat = {k: np.asarray(v) for k, v in nat.items()}
    loglik = row_log_likelihood(
        problem, nat["drift"], nat["offset_ms"], nat["time_per_row_ms"], nat["sigma_ms"], nat["flash_ms"], priors.nu
    )
    posterior = {
        "drift": nat["drift"],
        "shift_ms": nat["shift_ms"],
        "total_rows": nat["total_rows"],
        "time_per_row_ms": nat["time_per_row_ms"],
        "sigma_ms": nat["sigma_ms"],
        "flash_time_ms": nat["flash_ms"] + problem.centre_ms,
    }
    posterior = {k: v.reshape((chains, draws) + v.shape[1:]) for k, v in posterior.items()}
    loglik = loglik.reshape(chains, draws, n_ev)
    say("done")
    return SyncResult.from_fit(
        problem=problem,
        method=method,
        posterior=posterior,
        sample_stats=sample_stats,
        log_likelihood=loglik,
        heights=np.asarray(events["height"].values),
    )
