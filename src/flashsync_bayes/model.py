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

import functools
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
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer import Predictive, log_likelihood
from numpyro.infer.autoguide import AutoMultivariateNormal
from numpyro.infer.hmc import hmc
from numpyro.infer.reparam import NeuTraReparam
from numpyro.infer.util import potential_energy

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_index, frame_clocks, validate_events
from flashsync_bayes.sensors import READOUT_FRACTION_PRIOR, known_total_rows
from flashsync_bayes.timing import snap_frame_times

METHODS = ("bayes", "laplace", "lsq")
MIN_EVENTS = 256
MIN_FLASHES = 64
MIN_CAMERAS = 4
#: Smallest event-time noise σ (ms) the lsq step reports.
MIN_SIGMA_MS = 1e-3
LSQ_ITERATIONS = 8


class Priors(NamedTuple):
    """Prior settings of the model.

    Attributes:
        drift_ppm: sd of the drift around 1 (parts per million); consumer clocks differ by up
            to ~270 ppm (FACTS.md).
        readout_fraction: Beta(α, β) of the readout fraction ``R / L`` (stored rows over total
            sensor rows), :data:`~flashsync_bayes.sensors.READOUT_FRACTION_PRIOR` by default: 90 %
            of it lies at ``L / R`` 1.04-2.0, real sensors' range.
        shift_sd_ms: sd of each shift around the coarse offset (ms).
        sigma_rows: mean of the exponential prior of each camera's edge noise beyond the edges'
            own ``row_sd`` (rows).
        nu: degrees of freedom of the Student-t likelihood.
    """

    drift_ppm: float = 300.0
    readout_fraction: tuple[float, float] = READOUT_FRACTION_PRIOR
    shift_sd_ms: float = 1000.0
    sigma_rows: float = 0.5
    nu: float = 4.0

    def readout_moments(self) -> tuple[float, float]:
        """Mean and sd of the readout-fraction prior."""
        return beta_moments(*self.readout_fraction)

    def readout_per_camera(self, n_free: int) -> tuple[float, float]:
        """Beta(α', β') of each of ``n_free`` cameras' readout fractions: the prior to the power ``1 / n_free``.

        Where the flash edges pin only the ratios of the cameras' times per row (one frame rate,
        locked phases), the posterior along the common scale is the product of the cameras'
        priors. Independent full priors would count the readout prior ``n_free`` times and
        narrow it by ``sqrt(n_free)`` — confidently wrong for a rig of identical cameras. With
        ``Beta(1 + (α - 1) / n, 1 + (β - 1) / n)`` each, the product along that ridge is one
        ``Beta(α, β)``: what is known about sensors counts once.
        """
        n = max(int(n_free), 1)
        alpha, beta = self.readout_fraction
        return 1.0 + (alpha - 1.0) / n, 1.0 + (beta - 1.0) / n


def beta_moments(alpha, beta):
    """Mean and sd of Beta(α, β) distributions (floats or arrays)."""
    total = alpha + beta
    return alpha / total, np.sqrt(alpha * beta / (total**2 * (total + 1.0)))


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
            ``(C,)`` L where known, NaN where free; ``facts``: per camera the fact that fixed
            it ("total rows", "readout time") or None.
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
    facts: tuple
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


# ----------------------------------------------------------------------------------------------
# Preparing the data
# ----------------------------------------------------------------------------------------------


def _camera_values(events, name: str) -> np.ndarray | None:
    """Per-camera float variable ``name`` of the events dataset, or None if absent."""
    if name not in events or events[name].dims != ("camera",):
        return None
    return np.asarray(events[name].values, dtype=np.float64)


def _facts_per_camera(events, facts, what: str) -> dict[int, float]:
    """``{camera index: value}`` of a mapping keyed by camera label or path."""
    return {camera_index(events, key, what): float(value) for key, value in (facts or {}).items()}


def prepare_problem(events, reference=None, total_rows=None, frame_period_ms=None, readout_ms=None) -> Problem:
    """The :class:`Problem` of the matched leading edges of ``events`` (raises FlashsyncError on bad input)."""
    validate_events(events)
    labels = tuple(str(c) for c in events["camera"].values)
    paths = tuple(str(p) for p in events["path"].values)
    n_cameras = len(labels)
    if n_cameras < 2:
        raise FlashsyncError(f"need at least two cameras to synchronize, got {n_cameras}")
    ref = 0 if reference is None else camera_index(events, reference, "reference")
    stored_rows = np.asarray(events["height"].values, dtype=np.float64)
    period = np.asarray(events["frame_period_ms"].values, dtype=np.float64).copy()
    clocks = frame_clocks(events)
    for c, clock in enumerate(clocks):
        if clock is not None:
            period[c] = clock.period_ms
    for c, value in _facts_per_camera(events, frame_period_ms, "frame_period_ms").items():
        if not value > 0:
            raise FlashsyncError(f"frame period of camera '{labels[c]}' must be positive, got {value}")
        period[c] = value
    rows_given = _facts_per_camera(events, total_rows, "total_rows")
    readout_given = _facts_per_camera(events, readout_ms, "readout_ms")
    fixed_rows = np.array(
        [
            known_total_rows(labels[c], int(stored_rows[c]), period[c], rows_given.get(c), readout_given.get(c))
            for c in range(n_cameras)
        ]
    )
    facts = tuple(
        "total rows" if c in rows_given else "readout time" if c in readout_given else None for c in range(n_cameras)
    )

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
        facts=facts,
        camera_centre_ms=centre,
        centre_ms=float(centre[ref]),
        time_scale_ms=scale,
        shift_prior_ms=shift_prior,
        frame_clocks=tuple(clocks),
    )


# ----------------------------------------------------------------------------------------------
# Least squares (the paper's method)
# ----------------------------------------------------------------------------------------------


class CameraPriors(NamedTuple):
    """Per-camera priors of drift and centred offset, ``(C,)`` arrays.

    ``drift ~ Normal(1, drift_sd)``; ``offset_ms ~ Normal(offset_loc_ms + offset_lever_ms * (drift - 1),
    offset_sd_ms)`` (offset = the camera's centre time mapped to the reference, minus M). For
    other cameras this is the shift prior ``Normal(coarse shift, shift_sd_ms)`` written in offsets
    (lever ``m_c``; loc NaN without a coarse shift). For the reference camera it is its frame clock's
    uncertainty: the snapped frame times ``p`` of a clock fitted to rounded or jittered timestamps
    are off the sensor's true clock by ``δ_c + (p - t_c) δ_T / T`` (``t_c`` the clock's centre), so
    its drift ``1 + δ_T / T`` has sd ``period_sd / T`` and its offset the lever ``m_ref - t_c``. A
    reference without a clock (or with exact timestamps) has sd 0: drift 1, shift 0 exactly.
    """

    drift_sd: np.ndarray
    offset_loc_ms: np.ndarray
    offset_lever_ms: np.ndarray
    offset_sd_ms: np.ndarray


def camera_priors(problem: Problem, priors: Priors) -> CameraPriors:
    """The :class:`CameraPriors` of a problem."""
    ref, centre = problem.reference, problem.camera_centre_ms
    drift_sd = np.full(len(problem.cameras), priors.drift_ppm * 1e-6)
    offset_loc = problem.shift_prior_ms + centre - problem.centre_ms
    offset_lever = centre.copy()
    offset_sd = np.full(len(problem.cameras), float(priors.shift_sd_ms))
    clock = problem.frame_clocks[ref]
    drift_sd[ref] = 0.0 if clock is None else clock.period_sd_ms / clock.period_ms
    offset_loc[ref] = 0.0
    offset_lever[ref] = 0.0 if clock is None else centre[ref] - clock.centre_ms
    offset_sd[ref] = 0.0 if clock is None else clock.centre_sd_ms
    return CameraPriors(drift_sd, offset_loc, offset_lever, offset_sd)


def _prior_time_per_row(problem: Problem, priors: Priors):
    """Prior mean and sd ``(C,)`` of the time per row a (ms) implied by each camera's readout-fraction prior."""
    mean_q, sd_q = beta_moments(*priors.readout_per_camera(int(np.sum(~np.isfinite(problem.fixed_total_rows)))))
    return problem.frame_period_ms * mean_q / problem.stored_rows, problem.frame_period_ms * sd_q / problem.stored_rows


def solve_lsq(problem: Problem, priors: Priors = Priors()) -> LsqSolution:
    """Joint robust least-squares solution of all cameras and flashes, with its covariance."""
    n_cam = len(problem.cameras)
    n_flash = problem.flash_ids.size
    ref = problem.reference
    fixed = np.isfinite(problem.fixed_total_rows)
    camera_prior = camera_priors(problem, priors)
    free_drift = camera_prior.drift_sd > 0
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

    # priors as pseudo-observations: drift, time per row, and offset where a prior centre exists
    prior_rows, prior_targets, prior_sds = [], [], []
    a0, a_sd = _prior_time_per_row(problem, priors)
    for c in range(n_cam):
        if drift_col[c] >= 0:
            g = np.zeros(n_par)
            g[drift_col[c]] = 1.0
            prior_rows.append(g), prior_targets.append(0.0), prior_sds.append(camera_prior.drift_sd[c] * big_x)
            if np.isfinite(camera_prior.offset_loc_ms[c]):
                g = np.zeros(n_par)
                g[offset_col[c]] = 1.0
                g[drift_col[c]] = -camera_prior.offset_lever_ms[c] / big_x
                prior_rows.append(g)
                prior_targets.append(camera_prior.offset_loc_ms[c])
                prior_sds.append(camera_prior.offset_sd_ms[c])
        if tpr_col[c] >= 0:
            g = np.zeros(n_par)
            g[tpr_col[c]] = 1.0
            prior_rows.append(g), prior_targets.append(a0[c] * row_scale), prior_sds.append(a_sd[c] * row_scale)
    prior_design = np.array(prior_rows).reshape(-1, n_par)
    prior_precision = 1.0 / np.asarray(prior_sds) ** 2
    prior_normal = prior_design.T @ (prior_precision[:, None] * prior_design)
    prior_rhs = prior_design.T @ (prior_precision * np.asarray(prior_targets))

    def normal_equations(weight, value, target):
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
    residual = np.zeros(n_ev)
    for iteration in range(LSQ_ITERATIONS + 1):
        variance = sigma[cam] ** 2 + (tpr[cam] * problem.row_sd) ** 2
        weight = robust / variance
        # Gauss-Newton on the rows (the data's own scale), not on times: the time-per-row column
        # holds the predicted row and the target its correction. In time units a shorter row
        # would shrink every residual, and along the locked-phase ridge the fit would slide to
        # short rows; in rows it is scale-free there and the prior decides, as it should.
        gauss_newton = value.copy()
        gauss_newton[has_tpr, 2] = (y + residual / tpr[cam])[has_tpr] / row_scale
        normal, rhs = normal_equations(weight, gauss_newton, target + np.where(has_tpr, residual, 0.0))
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

#: Sharpness k of :class:`SoftClipTransform`: its slope differs from 1 by less than exp(-k d) at a
#: distance d from 0 and 1, so it is linear to 1e-8 for readout fractions 0.1-0.9 and saturates
#: within ~1/k of the ends. A ridge whose width is 1e-4 of its length must stay straight to that
#: precision, or NUTS needs tiny steps to follow it.
SOFT_CLIP_SHARPNESS = 200.0
#: Prior sd (ms) of each flash time around its least-squares value: flat at the data's scale.
FLASH_PRIOR_SD_MS = 1000.0
#: Prior sds of the inert drift and offset (ms) of cameras whose mapping is fixed: a reference
#: camera whose timestamps are exact or irregular, and padding.
INERT_DRIFT_SD = 1e-4
INERT_OFFSET_SD_MS = 1.0
#: Latent sites of :func:`sync_model`, in the order the model samples them.
LATENT_SITES = ("drift", "offset_ms", "readout_fraction", "sigma_rows", "flash_ms")
#: Deterministic sites of :func:`sync_model` that results report.
DERIVED_SITES = (
    "drift_used", "shift_ms", "time_per_row_ms", "total_rows", "readout_fraction_used", "sigma_ms", "flash_time_ms"
)


class _ReadoutInterval(constraints._Interval):
    """The unit interval of the readout fraction; unconstrained through :class:`SoftClipTransform`."""


readout_interval = _ReadoutInterval(0.0, 1.0)


class SoftClipTransform(numpyro.distributions.transforms.Transform):
    """``R -> (0, 1)``: ``q = (softplus(k v) - softplus(k (v - 1))) / k`` with k :data:`SOFT_CLIP_SHARPNESS`.

    The identity over (0, 1) up to ~1/k of its ends, and smooth, unlike the logistic map: time
    per row, offsets and flash times scale together along the locked-phase ridge, which therefore
    stays a straight line in these coordinates and NUTS can follow it with long steps.
    """

    domain = constraints.real
    codomain = readout_interval
    sign = 1

    def __call__(self, v):
        k = SOFT_CLIP_SHARPNESS
        return (jax.nn.softplus(k * v) - jax.nn.softplus(k * (v - 1.0))) / k

    def _inverse(self, q):
        k = SOFT_CLIP_SHARPNESS
        return (jnp.log(jnp.expm1(k * q)) - jnp.log(-jnp.expm1(k * (q - 1.0)))) / k

    def log_abs_det_jacobian(self, v, q, intermediates=None):
        # σ(kv) - σ(kv - k) = σ(kv) σ(k - kv) (1 - e^{-k})
        k = SOFT_CLIP_SHARPNESS
        return jax.nn.log_sigmoid(k * v) + jax.nn.log_sigmoid(k - k * v) + jnp.log(-jnp.expm1(-k))

    def tree_flatten(self):
        return (), ((), {})

    def __eq__(self, other):
        return isinstance(other, SoftClipTransform)


@biject_to.register(_ReadoutInterval)
def _readout_bijection(constraint):
    return SoftClipTransform()


class ReadoutFraction(dist.Beta):
    """Beta prior of the readout fraction ``R / L``, sampled through :class:`SoftClipTransform`."""

    support = readout_interval


class ModelData(NamedTuple):
    """Padded arrays :func:`sync_model` reads (C cameras, F flashes, E events after padding)."""

    event_camera: jax.Array  # (E,) int
    event_flash: jax.Array  # (E,) int
    event_x_ms: jax.Array  # (E,) p - m_c
    event_row: jax.Array  # (E,)
    event_row_sd: jax.Array  # (E,)
    event_mask: jax.Array  # (E,) bool
    stored_rows: jax.Array  # (C,) R
    frame_period_ms: jax.Array  # (C,) T
    reference: jax.Array  # () index of the reference camera
    flash_mask: jax.Array  # (F,) bool: real flashes (not padding)
    selection_weight: jax.Array  # () 1 for sampling, 0 for the Laplace mode (see sync_model)
    fixed_mapping: jax.Array  # (C,) bool: drift 1, shift 0 exactly (reference without clock uncertainty, padding)
    known_readout: jax.Array  # (C,) bool: R / L given by a fact
    readout_value: jax.Array  # (C,) the given R / L (dummy where unknown)
    camera_centre_ms: jax.Array  # (C,) m_c
    centre_ms: jax.Array  # () M
    drift_sd: jax.Array  # (C,)
    offset_loc_ms: jax.Array  # (C,)
    offset_lever_ms: jax.Array  # (C,)
    offset_sd_ms: jax.Array  # (C,)
    readout_prior: jax.Array  # (C, 2) Beta α', β' of each camera (Priors.readout_per_camera; INERT_READOUT_PRIOR)
    sigma_rate: jax.Array  # () 1 / mean σ (1/rows)
    flash_loc_ms: jax.Array  # (F,) prior centre of ψ_j = φ_j - M
    nu: jax.Array  # ()


class Whitening(NamedTuple):
    """Map ``u -> x`` from whitened coordinates to the model's unconstrained ones (:data:`LATENT_SITES` order).

    ``x = loc + scale @ u + gain * (q_m - ridge_centre)``, except that entry ``ridge_index`` (the
    readout fraction ``q_m`` of the camera nearest to ``L = R``) is ``q_m = sigmoid(ridge_logit +
    ridge_scale * u_m)``. With one frame rate and locked phases the data pin only the ratios of the
    cameras' times per row: the posterior is a long ridge along which every parameter moves in
    proportion to ``q_m`` and which ends at ``q_m = 1``. Here it is a straight line along ``u_m``
    (everything else follows ``q_m`` linearly), and the smooth logistic keeps the end at ``L = R``
    gentle, so NUTS explores the ridge with long steps.

    Attributes:
        loc: ``(K,)`` unconstrained values at the centre (the lsq solution).
        scale: ``(K, K)`` lower-triangular factor of the covariance given ``q_m`` (row and column
            ``ridge_index`` are unused).
        gain: ``(K,)`` change of each unconstrained value per unit of ``q_m``.
        ridge_index: () position of ``q_m`` in ``x``.
        ridge_centre: () ``q_m`` at the centre; ``ridge_logit``: its logit; ``ridge_scale``: its sd in logits.
    """

    loc: jax.Array
    scale: jax.Array
    gain: jax.Array
    ridge_index: jax.Array
    ridge_centre: jax.Array
    ridge_logit: jax.Array
    ridge_scale: jax.Array


class RidgeTransform(numpyro.distributions.transforms.Transform):
    """The :class:`Whitening` map as a NumPyro transform (for :class:`~numpyro.infer.reparam.NeuTraReparam`)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, whitening: Whitening):
        self.whitening = whitening

    def _ridge(self, u):
        """``(q_m, its derivative by u_m)``."""
        w = self.whitening
        q = jax.nn.sigmoid(w.ridge_logit + w.ridge_scale * u[..., w.ridge_index])
        return q, w.ridge_scale * q * (1.0 - q)

    def __call__(self, u):
        w = self.whitening
        q, _ = self._ridge(u)
        x = w.loc + u @ w.scale.T + w.gain * (q - w.ridge_centre)[..., None]
        return x.at[..., w.ridge_index].set(SoftClipTransform().inv(q))

    def log_abs_det_jacobian(self, u, x, intermediates=None):
        w = self.whitening
        q, dq_du = self._ridge(u)
        dq_dv = jnp.exp(SoftClipTransform().log_abs_det_jacobian(x[..., w.ridge_index], q))
        diagonal = jnp.log(jnp.abs(jnp.diagonal(w.scale))).at[w.ridge_index].set(0.0)
        return jnp.log(dq_du) - jnp.log(dq_dv) + jnp.sum(diagonal)


class _RidgeGuide(AutoMultivariateNormal):
    """An AutoMultivariateNormal whose transform is a :class:`RidgeTransform` given as ``params["whitening"]``."""

    def get_transform(self, params):
        return RidgeTransform(params["whitening"])


def camera_parameters(drift, offset_ms, readout_fraction, sigma_rows, data: ModelData) -> dict:
    """What the likelihood uses and results report of the camera latents, each ``(C,)``.

    The drift, centred offset (ms) and readout fraction in use (the fixed or given value where a
    camera has one), the shift, time per row and edge noise (ms), and total rows.
    """
    readout = jnp.where(data.known_readout, data.readout_value, readout_fraction)
    drift = jnp.where(data.fixed_mapping, 1.0, drift)
    offset_ms = jnp.where(data.fixed_mapping, data.camera_centre_ms - data.centre_ms, offset_ms)
    time_per_row = drift * data.frame_period_ms * readout / data.stored_rows
    return {
        "drift_used": drift,
        "offset_used_ms": offset_ms,
        "shift_ms": offset_ms + data.centre_ms - drift * data.camera_centre_ms,
        "time_per_row_ms": time_per_row,
        "total_rows": data.stored_rows / readout,
        "readout_fraction_used": readout,
        "sigma_ms": sigma_rows * time_per_row,
    }


def sync_model(data: ModelData):
    """NumPyro model of DESIGN §5; observes the rows of the matched leading edges.

    Every edge ``e`` (camera c, flash j) has ``y_e ~ StudentT(ν, (ψ_j - B_c - d_c x_e) / a_c,
    sqrt(σ_c² + row_sd_e²))`` — DESIGN §5's time-domain Student-t divided by the time per row
    ``a_c = d_c T_c (R_c / L_c) / R_c`` (Jacobian kept), with the extra edge noise σ_c in rows.
    Priors: :class:`CameraPriors` for drift ``d`` and centred offset ``B``; :class:`ReadoutFraction`
    for ``R / L`` (unused where a fact gives it); ``σ_c ~ Exponential`` (rows); flash times ``ψ_j``
    (centred on M) flat at the data's scale (Normal, sd :data:`FLASH_PRIOR_SD_MS`), with the
    selection term ``-F log a_ref`` weighted by ``selection_weight``: 1 where the posterior is
    integrated (NUTS), 0 for the joint mode of the Laplace approximation, where the flash times'
    room and its correction both drop out.
    """
    n_cam, n_flash = data.stored_rows.shape[0], data.flash_loc_ms.shape[0]
    with numpyro.plate("camera", n_cam):
        drift = numpyro.sample("drift", dist.Normal(1.0, data.drift_sd))
        offset_loc = data.offset_loc_ms + data.offset_lever_ms * (drift - 1.0)
        offset = numpyro.sample("offset_ms", dist.Normal(offset_loc, data.offset_sd_ms))
        readout = numpyro.sample("readout_fraction", ReadoutFraction(data.readout_prior[:, 0], data.readout_prior[:, 1]))
        sigma = numpyro.sample("sigma_rows", dist.Exponential(data.sigma_rate))
    with numpyro.plate("flash", n_flash):
        flash = numpyro.sample("flash_ms", dist.Normal(data.flash_loc_ms, FLASH_PRIOR_SD_MS))
    camera = camera_parameters(drift, offset, readout, sigma, data)
    # Only flashes whose edges fall in stored rows are seen; given that, where one lies is uniform
    # over the rows (a window ∝ time per row), while the flat prior gives every flash time room ∝
    # time per row. Without this term an unpinned time per row would slide towards L = R.
    reference_row_ms = camera["time_per_row_ms"][data.reference]
    numpyro.factor("flash_selection", -data.selection_weight * jnp.sum(data.flash_mask) * jnp.log(reference_row_ms))
    for name in DERIVED_SITES[:-1]:
        numpyro.deterministic(name, camera[name])
    numpyro.deterministic("flash_time_ms", flash + data.centre_ms)
    cam = data.event_camera
    a = camera["time_per_row_ms"][cam]
    loc = (flash[data.event_flash] - camera["offset_used_ms"][cam] - camera["drift_used"][cam] * data.event_x_ms) / a
    scale = jnp.sqrt(sigma[cam] ** 2 + data.event_row_sd**2)
    with numpyro.plate("event", data.event_row.shape[0]), numpyro.handlers.mask(mask=data.event_mask):
        numpyro.sample("row", dist.StudentT(data.nu, loc, scale), obs=data.event_row)


@functools.lru_cache(maxsize=16)
def _guide(n_cam: int, n_flash: int, n_event: int) -> _RidgeGuide:
    """A :class:`_RidgeGuide` of :func:`sync_model` for one padded shape.

    Only its structure is used (site order and sizes for :class:`NeuTraReparam`); its transform
    comes from a :class:`Whitening`. One guide per shape keeps the compiled samplers reusable.
    """
    guide = _RidgeGuide(sync_model)
    # concrete values even when first called while a sampler is being traced
    with jax.ensure_compile_time_eval(), numpyro.handlers.seed(rng_seed=0), numpyro.handlers.block():
        guide(_placeholder_data(n_cam, n_flash, n_event))
    order = [name for name, site in guide.prototype_trace.items() if site["type"] == "sample" and not site["is_observed"]]
    assert tuple(order) == LATENT_SITES, order
    return guide


def _placeholder_data(n_cam: int, n_flash: int, n_event: int) -> ModelData:
    """A valid :class:`ModelData` of the given padded shape (values irrelevant)."""
    ones = jnp.ones(n_cam)
    return ModelData(
        event_camera=jnp.zeros(n_event, int),
        event_flash=jnp.zeros(n_event, int),
        event_x_ms=jnp.zeros(n_event),
        event_row=jnp.zeros(n_event),
        event_row_sd=jnp.ones(n_event),
        event_mask=jnp.zeros(n_event, bool),
        stored_rows=100.0 * ones,
        frame_period_ms=10.0 * ones,
        reference=jnp.asarray(0),
        flash_mask=jnp.zeros(n_flash, bool),
        selection_weight=jnp.asarray(1.0),
        fixed_mapping=jnp.zeros(n_cam, bool),
        known_readout=jnp.zeros(n_cam, bool),
        readout_value=0.8 * ones,
        camera_centre_ms=0.0 * ones,
        centre_ms=jnp.asarray(0.0),
        drift_sd=1e-4 * ones,
        offset_loc_ms=0.0 * ones,
        offset_lever_ms=0.0 * ones,
        offset_sd_ms=ones,
        readout_prior=jnp.tile(jnp.asarray(READOUT_FRACTION_PRIOR), (n_cam, 1)),
        sigma_rate=jnp.asarray(20.0),
        flash_loc_ms=jnp.zeros(n_flash),
        nu=jnp.asarray(4.0),
    )


def _neutra(data: ModelData, whitening: Whitening) -> NeuTraReparam:
    """The NeuTra reparametrization of :func:`sync_model` by ``whitening``."""
    guide = _guide(data.stored_rows.shape[0], data.flash_loc_ms.shape[0], data.event_row.shape[0])
    return NeuTraReparam(guide, {"whitening": whitening})


def whitened_potential(u, data: ModelData, whitening: Whitening):
    """Negative log posterior density (up to a constant) at whitened coordinates ``u`` ``(K,)``."""
    model = _neutra(data, whitening).reparam(sync_model)
    return potential_energy(model, (data,), {}, {"auto_shared_latent": u})


@jax.jit
def latent_draws(u, data: ModelData, whitening: Whitening) -> dict[str, jax.Array]:
    """Latent site values (:data:`LATENT_SITES`) of whitened draws ``(n, K)``, each ``(n, ...)``."""
    guide = _guide(data.stored_rows.shape[0], data.flash_loc_ms.shape[0], data.event_row.shape[0])
    x = RidgeTransform(whitening)(u)
    return {
        name: biject_to(guide.prototype_trace[name]["fn"].support)(x[:, part])
        for name, part in _site_slices(data).items()
    }


# ----------------------------------------------------------------------------------------------
# Padded model data and the whitening from the least-squares solution
# ----------------------------------------------------------------------------------------------


def _bucket(n: int, minimum: int) -> int:
    """Smallest power of two >= max(n, minimum)."""
    return 1 << (max(int(n), int(minimum)) - 1).bit_length()


def _pad(values, size: int, fill) -> np.ndarray:
    """``values`` followed by ``fill`` up to ``size`` entries."""
    values = np.asarray(values)
    out = np.full(size, fill, dtype=values.dtype)
    out[: values.size] = values
    return out


def model_data(problem: Problem, solution: LsqSolution, priors: Priors = Priors()) -> ModelData:
    """Padded :class:`ModelData` of a problem; priors centred with the lsq solution where no coarse value exists."""
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    pc, pf, pe = _bucket(n_cam, MIN_CAMERAS), _bucket(n_flash, MIN_FLASHES), _bucket(n_ev, MIN_EVENTS)
    prior = camera_priors(problem, priors)
    lsq_drift = 1.0 + solution.drift_scaled / problem.time_scale_ms
    offset_loc = np.where(
        np.isfinite(prior.offset_loc_ms), prior.offset_loc_ms, solution.offset_ms - prior.offset_lever_ms * (lsq_drift - 1)
    )
    known = np.isfinite(problem.fixed_total_rows)
    x = problem.frame_time_ms - problem.camera_centre_ms[problem.event_camera]
    f64 = partial(jnp.asarray, dtype=jnp.float64)
    return ModelData(
        event_camera=jnp.asarray(_pad(problem.event_camera, pe, 0)),
        event_flash=jnp.asarray(_pad(problem.event_flash, pe, 0)),
        event_x_ms=f64(_pad(x, pe, 0.0)),
        event_row=f64(_pad(problem.row, pe, 0.0)),
        event_row_sd=f64(_pad(problem.row_sd, pe, 1.0)),
        event_mask=jnp.asarray(np.arange(pe) < n_ev),
        stored_rows=f64(_pad(problem.stored_rows, pc, 100.0)),
        frame_period_ms=f64(_pad(problem.frame_period_ms, pc, 10.0)),
        reference=jnp.asarray(problem.reference),
        flash_mask=jnp.asarray(np.arange(pf) < n_flash),
        selection_weight=f64(1.0),
        fixed_mapping=jnp.asarray(_pad(prior.drift_sd <= 0, pc, True)),
        known_readout=jnp.asarray(_pad(known, pc, False)),
        readout_value=f64(_pad(np.where(known, problem.stored_rows / np.where(known, problem.fixed_total_rows, 1.0), 0.8), pc, 0.8)),
        camera_centre_ms=f64(_pad(problem.camera_centre_ms, pc, problem.centre_ms)),
        centre_ms=f64(problem.centre_ms),
        drift_sd=f64(_pad(np.where(prior.drift_sd > 0, prior.drift_sd, INERT_DRIFT_SD), pc, INERT_DRIFT_SD)),
        offset_loc_ms=f64(_pad(offset_loc, pc, 0.0)),
        offset_lever_ms=f64(_pad(prior.offset_lever_ms, pc, 0.0)),
        offset_sd_ms=f64(_pad(np.where(prior.drift_sd > 0, prior.offset_sd_ms, INERT_OFFSET_SD_MS), pc, INERT_OFFSET_SD_MS)),
        readout_prior=f64(_readout_priors(priors, _pad(~known, pc, False))),
        sigma_rate=f64(1.0 / priors.sigma_rows),
        flash_loc_ms=f64(_pad(solution.flash_ms, pf, 0.0)),
        nu=f64(priors.nu),
    )


#: Prior of the readout fractions that nothing depends on (cameras with a known fact, padding):
#: far from 0 and 1, where a sampler exploring it would meet the steep ends of SoftClipTransform.
INERT_READOUT_PRIOR = (20.0, 20.0)


def _readout_priors(priors: Priors, free: np.ndarray) -> np.ndarray:
    """Beta parameters ``(C, 2)`` of the readout fractions: the per-camera prior where free, else inert."""
    per_camera = priors.readout_per_camera(int(np.sum(free)))
    return np.where(free[:, None], np.asarray(per_camera), np.asarray(INERT_READOUT_PRIOR))


def _site_slices(data: ModelData) -> dict[str, slice]:
    """Position of each latent site in the flat unconstrained vector (:data:`LATENT_SITES` order)."""
    sizes = [data.stored_rows.shape[0]] * 4 + [data.flash_loc_ms.shape[0]]
    ends = np.cumsum(sizes)
    return {name: slice(int(end - size), int(end)) for name, size, end in zip(LATENT_SITES, sizes, ends)}


def lsq_latents(problem: Problem, solution: LsqSolution, data: ModelData, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Padded latent site values ``(n, ...)`` of packed lsq vectors ``(n, P)`` (σ at its lsq value)."""
    natural = lsq_natural(problem, solution, vectors)
    n_cam, n = len(problem.cameras), vectors.shape[0]
    pc, pf = data.stored_rows.shape[0], data.flash_loc_ms.shape[0]
    known = np.isfinite(problem.fixed_total_rows)
    readout = natural["time_per_row_ms"] * problem.stored_rows / (natural["drift"] * problem.frame_period_ms)
    prior = np.asarray(data.readout_prior)
    mean_q = prior[:, 0] / prior.sum(axis=1)
    values = {
        "drift": natural["drift"],
        "offset_ms": natural["offset_ms"],
        "readout_fraction": np.where(known, mean_q[:n_cam], readout),
        "sigma_rows": solution.sigma_ms / natural["time_per_row_ms"],
        "flash_ms": natural["flash_ms"],
    }
    fills = {"drift": 1.0, "offset_ms": 0.0, "readout_fraction": mean_q, "sigma_rows": 1.0 / float(data.sigma_rate)}
    out = {}
    for name, value in values.items():
        size = pf if name == "flash_ms" else pc
        padded = np.broadcast_to(fills.get(name, 0.0), (n, size)).copy()
        padded[:, : value.shape[1]] = value
        out[name] = padded
    return out


def lsq_factor(solution: LsqSolution) -> np.ndarray:
    """Lower-triangular factor ``(P, P)`` of the covariance of all packed lsq unknowns (cameras first).

    Given the camera unknowns θ the flash times are independent, ``ψ = ψ̂ - G (θ - θ̂) + sqrt(v) z``
    (:func:`_solve_blocks`), so the factor is ``[[L, 0], [-G L, diag(sqrt(v))]]`` with ``L`` the
    camera covariance's Cholesky factor: exact, and stable even though every flash time is almost
    fixed by the cameras.
    """
    camera = _scaled_cholesky(solution.camera_covariance)
    n_cam, n_flash = camera.shape[0], solution.flash_variance.size
    factor = np.zeros((n_cam + n_flash, n_cam + n_flash))
    factor[:n_cam, :n_cam] = camera
    factor[n_cam:, :n_cam] = -solution.flash_gain @ camera
    factor[n_cam:, n_cam:] = np.diag(np.sqrt(solution.flash_variance))
    return factor


#: sd of log σ in the whitening (NUTS adapts the rest).
LOG_SIGMA_SD = 0.5
#: Readout fractions of the lsq solution are clipped into this range for the whitening.
READOUT_CLIP = (0.05, 0.99)


def whitening_from_lsq(problem: Problem, solution: LsqSolution, data: ModelData) -> Whitening:
    """:class:`Whitening` centred on the lsq solution with its covariance mapped to the unconstrained sites.

    Parameters the lsq solution does not estimate (fixed ones, padding, inert readout fractions of
    cameras with a known fact) get their prior scale; log σ is independent of the rest.
    """
    slices = _site_slices(data)
    n_unconstrained = slices["flash_ms"].stop
    latents = lsq_latents(problem, solution, data, solution.vector[None])
    latents["readout_fraction"] = np.clip(latents["readout_fraction"], *READOUT_CLIP)
    clip = SoftClipTransform()
    loc = np.zeros(n_unconstrained)
    for name, value in latents.items():
        value = value[0]
        if name == "readout_fraction":
            value = np.asarray(clip.inv(jnp.asarray(value)))
        elif name == "sigma_rows":
            value = np.log(value)
        loc[slices[name]] = value
    # prior scales on the diagonal where the lsq solution has no column
    _, sd_q = beta_moments(*np.asarray(data.readout_prior).T)
    scale = np.concatenate(
        [
            np.asarray(data.drift_sd),
            np.asarray(data.offset_sd_ms),
            sd_q,
            np.full(data.stored_rows.shape[0], LOG_SIGMA_SD),
            np.full(data.flash_loc_ms.shape[0], FLASH_PRIOR_SD_MS),
        ]
    )
    # lsq camera columns -> unconstrained camera sites, with the derivative of each map
    drift = 1.0 + solution.drift_scaled / problem.time_scale_ms
    readout_v = loc[slices["readout_fraction"]][: len(problem.cameras)]
    dq_dv = np.exp(np.asarray(clip.log_abs_det_jacobian(jnp.asarray(readout_v), None)))
    site, column, derivative = [], [], []
    for c in range(len(problem.cameras)):
        for name, source, factor in (
            ("drift", solution.drift_column[c], 1.0 / problem.time_scale_ms),
            ("offset_ms", solution.offset_column[c], 1.0),
            ("readout_fraction", solution.tpr_column[c], problem.stored_rows[c] / (drift[c] * problem.frame_period_ms[c] * dq_dv[c])),
        ):
            if source >= 0:
                site.append(slices[name].start + c), column.append(source), derivative.append(factor)
    site, column, derivative = np.array(site), np.array(column), np.array(derivative)
    # camera sites (drift, offset, readout): their covariance, given the ridge readout q_m
    n_camera_sites = slices["sigma_rows"].start
    covariance = np.diag(scale[:n_camera_sites] ** 2)
    covariance[np.ix_(site, site)] = solution.camera_covariance[np.ix_(column, column)] * np.outer(derivative, derivative)
    # the ridge readout: the free camera most likely to come near L = R
    free_readout = np.flatnonzero(solution.tpr_column >= 0)
    q = latents["readout_fraction"][0]
    reach = q + 2.0 * np.sqrt(np.diag(covariance)[slices["readout_fraction"]])
    # (with every readout given, an inert one takes the place; nothing follows it)
    ridge_camera = int(free_readout[np.argmax(reach[free_readout])]) if free_readout.size else 0
    m = slices["readout_fraction"].start + ridge_camera
    camera_gain = covariance[:, m] / covariance[m, m]
    conditional = covariance - np.outer(camera_gain, covariance[m])
    conditional[m, :] = conditional[:, m] = 0.0
    conditional[m, m] = 1.0
    camera_factor = _scaled_cholesky(conditional)
    camera_gain[m] = 1.0  # the flash rows below follow q_m itself
    # flash times given the cameras (see lsq_factor), in site coordinates
    flash_gain = np.zeros((data.flash_loc_ms.shape[0], n_camera_sites))
    flash_gain[: solution.flash_variance.size, site] = -solution.flash_gain[:, column] / derivative
    flash_sd = scale[slices["flash_ms"]].copy()
    flash_sd[: solution.flash_variance.size] = np.sqrt(solution.flash_variance)
    factor = np.diag(scale)
    factor[:n_camera_sites, :n_camera_sites] = camera_factor
    factor[slices["flash_ms"], :n_camera_sites] = flash_gain @ camera_factor
    factor[slices["flash_ms"], slices["flash_ms"]] = np.diag(flash_sd)
    factor[:, m] = 0.0  # u_m acts through q_m only
    factor[m, m] = 1.0
    gain = np.zeros(n_unconstrained)
    gain[:n_camera_sites] = camera_gain
    gain[slices["flash_ms"]] = flash_gain @ camera_gain
    gain[m] = 0.0
    centre = float(np.asarray(clip(jnp.asarray(loc[m]))))
    sd_logit = np.sqrt(covariance[m, m]) / (centre * (1.0 - centre))
    f64 = partial(jnp.asarray, dtype=jnp.float64)
    return Whitening(
        loc=f64(loc),
        scale=f64(factor),
        gain=f64(gain),
        ridge_index=jnp.asarray(m),
        ridge_centre=f64(centre),
        ridge_logit=f64(np.log(centre / (1.0 - centre))),
        ridge_scale=f64(sd_logit),
    )


def _scaled_cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric PSD matrix via its correlation matrix (eigenvalue clipping if needed)."""
    sd = np.sqrt(np.maximum(np.diag(matrix), 1e-300))
    corr = 0.5 * (matrix + matrix.T) / np.outer(sd, sd)
    try:
        factor = np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(corr)
        factor = np.linalg.cholesky((vectors * np.maximum(values, 1e-12)) @ vectors.T)
    return sd[:, None] * factor


# ----------------------------------------------------------------------------------------------
# Samplers
# ----------------------------------------------------------------------------------------------

#: Later chains start at ``OVERDISPERSION`` times a standard normal draw in whitened coordinates,
#: i.e. spread wider than the lsq approximation, so that R-hat can reveal a ridge left unexplored.
OVERDISPERSION = 1.5


class NutsDraws(NamedTuple):
    """NUTS output, every field ``(chains, draws, ...)``.

    Attributes:
        u: whitened coordinates ``(..., K)``.
        potential_energy, diverging, num_steps, accept_prob, energy, step_size: sampler statistics.
    """

    u: jax.Array
    potential_energy: jax.Array
    diverging: jax.Array
    num_steps: jax.Array
    accept_prob: jax.Array
    energy: jax.Array
    step_size: jax.Array


@partial(jax.jit, static_argnames=("num_warmup", "num_samples", "num_chains"))
def run_nuts(rng_key, data: ModelData, whitening: Whitening, num_warmup: int, num_samples: int, num_chains: int) -> NutsDraws:
    """NUTS in whitened coordinates, chains vectorized; warmup and sampling in one ``lax.scan``.

    The first chain starts at the lsq solution (u = 0), the others overdispersed (see
    :data:`OVERDISPERSION`). Compiles once per padded shape.
    """
    potential = partial(whitened_potential, data=data, whitening=whitening)
    size = whitening.loc.shape[0]

    def one_chain(key, u0):
        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        key_init, key_run = jax.random.split(key)
        state = init_kernel(u0, num_warmup, rng_key=key_init, max_tree_depth=8, target_accept_prob=0.85)

        def step(s, _):
            s = sample_kernel(s)
            return s, NutsDraws(s.z, s.potential_energy, s.diverging, s.num_steps, s.accept_prob, s.energy, s.adapt_state.step_size)

        _, trace = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
        return jax.tree_util.tree_map(lambda v: v[num_warmup:], trace)

    key_start, key_chains = jax.random.split(rng_key)
    spread = OVERDISPERSION * (jnp.arange(num_chains) > 0)[:, None]
    starts = spread * jax.random.normal(key_start, (num_chains, size))
    return jax.vmap(one_chain)(jax.random.split(key_chains, num_chains), starts)


class LaplaceDraws(NamedTuple):
    """Laplace output.

    Attributes:
        u: whitened draws ``(num_draws, K)``.
        iterations: Newton iterations taken; converged: whether the search stopped by itself.
        curvature: eigenvalues ``(K,)`` of the Hessian at the mode (negative at a saddle).
    """

    u: jax.Array
    iterations: jax.Array
    converged: jax.Array
    curvature: jax.Array


@partial(jax.jit, static_argnames=("num_draws",))
def run_laplace(rng_key, data: ModelData, whitening: Whitening, dof, num_draws: int) -> LaplaceDraws:
    """Mode by damped Newton in whitened coordinates and Student-t draws from the inverse Hessian there.

    The noise σ stays at its lsq value (u = 0 on its coordinates): a joint mode of σ and one latent
    time per flash would shrink σ by up to √2 when flashes are seen by two cameras (Neyman-Scott),
    and the intervals with it. Draws are multivariate Student-t with ``dof`` degrees of freedom, as
    for a linear model whose noise scale is estimated. Each iteration evaluates energy, gradient and
    Hessian once, at the proposed point; a rejected proposal raises the damping.
    """
    size = whitening.loc.shape[0]
    sigma = _site_slices(data)["sigma_rows"]
    free = jnp.ones(size).at[sigma].set(0.0)
    eye = jnp.eye(size)

    def value_and_gradient(u):
        value, gradient = jax.value_and_grad(whitened_potential)(u, data, whitening)
        return gradient * free, (value, gradient * free)

    evaluate = jax.jacfwd(value_and_gradient, has_aux=True)

    def restricted(h):
        return h * free[:, None] * free[None, :] + jnp.diag(1.0 - free)

    def cond(state):
        return (state[5] < 60) & ~state[6]

    def body(state):
        u, energy, g, h, lam, it, _ = state
        step = -jnp.linalg.solve(restricted(h) + lam * eye, g)
        # converged when the Newton model promises no gain above the rounding noise of the energy
        done = (it > 0) & (-0.5 * jnp.dot(g, step) < 1e-9 * (1.0 + jnp.abs(energy)))
        h_new, (energy_new, g_new) = evaluate(u + step)
        accept = jnp.isfinite(energy_new) & jnp.all(jnp.isfinite(g_new)) & (energy_new <= energy + 1e-12 * jnp.abs(energy)) & ~done
        keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        lam = jnp.where(accept, jnp.maximum(lam / 10.0, 1e-12), lam * 10.0)
        return keep(u + step, u), keep(energy_new, energy), keep(g_new, g), keep(h_new, h), lam, it + 1, done

    # the first iteration takes a zero step and so evaluates the starting point
    start = (jnp.zeros(size), jnp.asarray(jnp.inf), jnp.zeros(size), eye, jnp.asarray(1e-4), jnp.asarray(0), jnp.asarray(False))
    u, _, _, h, _, iterations, converged = jax.lax.while_loop(cond, body, start)
    values, vectors = jnp.linalg.eigh(restricted(0.5 * (h + h.T)))
    # at a saddle (a flash between two Student-t modes) use |curvature|: the Gaussian then spans
    # both modes instead of exploding along the negative direction
    curvature = jnp.maximum(jnp.abs(values), 1e-3)
    key_normal, key_scale = jax.random.split(rng_key)
    noise = jax.random.normal(key_normal, (num_draws, size)) * student_scale(key_scale, dof, num_draws)[:, None]
    draws = u + ((noise / jnp.sqrt(curvature)) @ vectors.T) * free
    return LaplaceDraws(draws, iterations, converged, values)


def student_scale(rng_key, dof, n: int):
    """Factors ``(n,)`` sqrt(dof / χ²_dof) turning standard normal draws into Student-t draws."""
    chi2 = 2.0 * jax.random.gamma(rng_key, 0.5 * dof, (n,))
    return jnp.sqrt(dof / chi2)


def lsq_draws(rng_key, solution: LsqSolution, num_draws: int) -> np.ndarray:
    """Packed lsq vectors ``(num_draws, P)``: multivariate Student-t around the solution with its covariance."""
    chol = lsq_factor(solution)
    key_normal, key_scale = jax.random.split(rng_key)
    noise = np.array(jax.random.normal(key_normal, (num_draws, chol.shape[0])))
    noise *= np.asarray(student_scale(key_scale, draw_dof(solution), num_draws))[:, None]
    return solution.vector + noise @ chol.T


def draw_dof(solution: LsqSolution) -> float:
    """Degrees of freedom of the Student-t draws of lsq and Laplace (at least 1)."""
    return max(float(solution.dof), 1.0)


def posterior_quantities(latents: dict, data: ModelData) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Derived sites (:data:`DERIVED_SITES`, each ``(n, ...)``) and the row log-likelihood ``(n, E)`` of latent draws."""
    derived, loglik = _posterior_quantities(latents, data)
    return {k: np.asarray(v) for k, v in derived.items()}, np.asarray(loglik)


@jax.jit
def _posterior_quantities(latents: dict, data: ModelData):
    """:func:`posterior_quantities` compiled once per shape."""
    predictive = Predictive(sync_model, posterior_samples=latents, return_sites=list(DERIVED_SITES))
    return predictive(jax.random.PRNGKey(0), data), log_likelihood(sync_model, latents, data)["row"]


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


def _sample(method, key, problem, solution, data, priors, num_warmup, num_samples, num_chains, say):
    """Latent draws (each ``(chains * draws, ...)``), ``(chains, draws)`` and sample stats of one method."""
    if method == "lsq":
        latents = lsq_latents(problem, solution, data, lsq_draws(key, solution, num_samples))
        return latents, (1, num_samples), {"diverging": np.zeros((1, num_samples), dtype=bool)}
    whitening = whitening_from_lsq(problem, solution, data)
    if method == "laplace":
        say("Laplace approximation (mode + Hessian)")
        out = run_laplace(key, data._replace(selection_weight=jnp.asarray(0.0)), whitening, jnp.asarray(draw_dof(solution)), num_samples)
        if not bool(out.converged):
            warnings.warn(
                f"Laplace mode search stopped after {int(out.iterations)} steps without converging; try method='bayes'",
                stacklevel=3,
            )
        elif float(np.min(out.curvature)) < 0:
            warnings.warn(
                "the posterior is not unimodal at the Laplace point (some flash lies between disagreeing edges); "
                "its intervals are rough there, method='bayes' is exact",
                stacklevel=3,
            )
        u, shape, stats = out.u, (1, num_samples), {"diverging": np.zeros((1, num_samples), dtype=bool)}
    else:
        say(f"NUTS: {num_chains} chains, {num_warmup} warmup + {num_samples} draws each (first run compiles)")
        out = run_nuts(key, data, whitening, num_warmup, num_samples, num_chains)
        num_steps = np.asarray(out.num_steps)
        stats = {
            "lp": -np.asarray(out.potential_energy),
            "diverging": np.asarray(out.diverging),
            "n_steps": num_steps,
            "tree_depth": np.floor(np.log2(np.maximum(num_steps, 1))).astype(np.int64) + 1,
            "acceptance_rate": np.asarray(out.accept_prob),
            "energy": np.asarray(out.energy),
            "step_size": np.asarray(out.step_size),
        }
        shape = (num_chains, num_samples)
        u = out.u.reshape((num_chains * num_samples, -1))
    return {k: np.asarray(v) for k, v in latent_draws(u, data, whitening).items()}, shape, stats


def fit(
    events,
    reference=None,
    method: str = "bayes",
    total_rows: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    readout_ms: Mapping[str, float] | None = None,
    seed: int = 0,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    progress: bool = False,
    priors: Priors | None = None,
):
    """Synchronization of all cameras of a matched events dataset, as a :class:`~flashsync_bayes.result.SyncResult`.

    Uses the leading edges with ``flash >= 0``; flashes seen by one camera only are dropped.
    ``reference`` (label or path, default the first camera) defines the time axis: its snapped
    frame times, with the frame clock's own uncertainty. ``total_rows`` / ``readout_ms`` (time to
    read all stored rows) / ``frame_period_ms`` map cameras (label or path) to known sensor facts.
    ``method`` is "bayes" (NUTS, ``num_chains`` chains of ``num_samples`` draws), "laplace" or "lsq".
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

    problem = prepare_problem(events, reference, total_rows, frame_period_ms, readout_ms)
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    say(f"{n_cam} cameras, {n_flash} flashes, {n_ev} edges; least squares")
    solution = solve_lsq(problem, priors)
    data = model_data(problem, solution, priors)
    latents, (chains, draws), sample_stats = _sample(
        method, jax.random.PRNGKey(seed), problem, solution, data, priors, num_warmup, num_samples, num_chains, say
    )
    derived, loglik = posterior_quantities(latents, data)
    per_camera = {
        "drift": derived["drift_used"],
        "shift_ms": derived["shift_ms"],
        "total_rows": derived["total_rows"],
        "time_per_row_ms": derived["time_per_row_ms"],
        "readout_fraction": derived["readout_fraction_used"],
        "sigma_ms": derived["sigma_ms"],
    }
    posterior = {name: value[:, :n_cam] for name, value in per_camera.items()}
    posterior["flash_time_ms"] = derived["flash_time_ms"][:, :n_flash]
    posterior = {k: v.reshape((chains, draws) + v.shape[1:]) for k, v in posterior.items()}
    say("done")
    return SyncResult.from_fit(
        problem=problem,
        method=method,
        posterior=posterior,
        sample_stats=sample_stats,
        log_likelihood=loglik[:, :n_ev].reshape(chains, draws, n_ev),
        heights=np.asarray(events["height"].values),
        priors=priors,
    )
