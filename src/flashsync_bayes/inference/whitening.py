"""Whitened coordinates of :func:`~flashsync_bayes.inference.model.sync_model`, built from the lsq solution.

The camera parameters ``(δ̃_c, B_c, log h_c)`` are an affine function of the whitened coordinates
built from the lsq solution and covariance, and each flash time is ``φ_j = φ̂_j(cameras) + c_j *
flash_z_j`` with ``φ̂_j`` the weighted mean of the mapped times of its edges. Both maps have
constant Jacobians, so the posterior is unchanged while samplers see a near-standard-normal
target. :func:`whitened_potential` is NumPyro's potential energy of the model at ``x(u)`` minus the
map's log-Jacobian, counted once. (NumPyro's ``NeuTraReparam`` adds a transform's scalar log-Jacobian
once per element of the first latent site's plate, i.e. once per camera: with 16 cameras the
target was the posterior times ``|J|^15`` and NUTS lost its step size.) Nothing here runs the model
outside a trace, so a new process traces each sampler once and compiles nothing else.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import potential_energy

from flashsync_bayes.export_cache import serializable
from flashsync_bayes.inference.lsq import LsqSolution, scaled_cholesky
from flashsync_bayes.inference.model import (
    FLASH_PRIOR_SD_MS,
    ModelData,
    soft_clip,
    soft_clip_inverse,
    soft_clip_log_slope,
    sync_model,
)
from flashsync_bayes.inference.model_data import lsq_latents, site_slices
from flashsync_bayes.inference.problem import Problem, beta_moments

#: sd of log σ in the whitening (NUTS adapts the rest).
LOG_SIGMA_SD = 0.5
#: Readout fractions of the lsq solution are clipped into this range for the whitening.
READOUT_CLIP = (0.05, 0.99)


@serializable
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
    """The :class:`Whitening` map ``u -> x`` as a NumPyro transform (``(..., K) -> (..., K)``)."""

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
        return x.at[..., w.ridge_index].set(soft_clip_inverse(q))

    def log_abs_det_jacobian(self, u, x, intermediates=None):
        w = self.whitening
        q, dq_du = self._ridge(u)
        diagonal = jnp.log(jnp.abs(jnp.diagonal(w.scale))).at[w.ridge_index].set(0.0)
        return jnp.log(dq_du) - soft_clip_log_slope(x[..., w.ridge_index]) + jnp.sum(diagonal)


def _unpack(x, data: ModelData) -> dict:
    """Unconstrained values of each latent site (:data:`LATENT_SITES`) from flat vectors ``(..., K)``."""
    return {name: x[..., part] for name, part in site_slices(data).items()}


def whitened_potential(u, data: ModelData, whitening: Whitening):
    """Negative log posterior density (up to a constant) at whitened coordinates ``u`` ``(K,)``.

    NumPyro's potential energy of :func:`sync_model` at ``x(u)`` (which includes the Jacobians of
    the sites' own transforms to their supports) minus the log-Jacobian of ``u -> x``.
    """
    transform = RidgeTransform(whitening)
    x = transform(u)
    return potential_energy(sync_model, (data,), {}, _unpack(x, data)) - transform.log_abs_det_jacobian(u, x)


def latent_draws(u, data: ModelData, whitening: Whitening) -> dict[str, jax.Array]:
    """Latent site values (:data:`LATENT_SITES`) of whitened draws ``(n, K)``, each ``(n, ...)``."""
    model = numpyro.handlers.trace(numpyro.handlers.seed(sync_model, rng_seed=0))
    sites = model.get_trace(data)
    return {name: biject_to(sites[name]["fn"].support)(value) for name, value in _unpack(RidgeTransform(whitening)(u), data).items()}


def _centre(problem: Problem, solution: LsqSolution, data: ModelData, slices) -> tuple[np.ndarray, dict]:
    """Unconstrained site values ``(K,)`` at the lsq solution, and its latent values (readout fractions clipped)."""
    latents = lsq_latents(problem, solution, data, solution.vector[None])
    latents["readout_fraction"] = np.clip(latents["readout_fraction"], *READOUT_CLIP)
    loc = np.zeros(slices["flash_ms"].stop)
    for name, value in latents.items():
        value = value[0]
        if name == "readout_fraction":
            value = soft_clip_inverse(value, np)
        elif name == "sigma_rows":
            value = np.log(value)
        loc[slices[name]] = value
    return loc, latents


def _prior_scales(data: ModelData) -> np.ndarray:
    """Prior sd ``(K,)`` of every unconstrained site: where the lsq solution has no column, this is the scale."""
    _, sd_q = beta_moments(*np.asarray(data.readout_prior).T)
    return np.concatenate(
        [
            np.asarray(data.drift_sd),
            np.asarray(data.offset_sd_ms),
            sd_q,
            np.full(data.stored_rows.shape[0], LOG_SIGMA_SD),
            np.full(data.flash_loc_ms.shape[0], FLASH_PRIOR_SD_MS),
        ]
    )


def _site_columns(problem: Problem, solution: LsqSolution, slices, loc: np.ndarray):
    """For each lsq camera column: its unconstrained site, its column and the derivative site / column, three arrays."""
    drift = 1.0 + solution.drift_scaled / problem.time_scale_ms
    readout_v = loc[slices["readout_fraction"]][: len(problem.cameras)]
    dq_dv = np.exp(soft_clip_log_slope(readout_v, np))
    site, column, derivative = [], [], []
    for c in range(len(problem.cameras)):
        for name, source, factor in (
            ("drift", solution.drift_column[c], 1.0 / problem.time_scale_ms),
            ("offset_ms", solution.offset_column[c], 1.0),
            ("readout_fraction", solution.tpr_column[c], problem.stored_rows[c] / (drift[c] * problem.frame_period_ms[c] * dq_dv[c])),
        ):
            if source >= 0:
                site.append(slices[name].start + c), column.append(source), derivative.append(factor)
    return np.array(site), np.array(column), np.array(derivative)


def _ridge_site(solution: LsqSolution, latents: dict, covariance: np.ndarray, slices) -> int:
    """Site of the ridge readout: the free camera most likely to come near ``L = R``.

    With every readout given, an inert one takes the place; nothing follows it.
    """
    free_readout = np.flatnonzero(solution.tpr_column >= 0)
    q = latents["readout_fraction"][0]
    reach = q + 2.0 * np.sqrt(np.diag(covariance)[slices["readout_fraction"]])
    ridge_camera = int(free_readout[np.argmax(reach[free_readout])]) if free_readout.size else 0
    return slices["readout_fraction"].start + ridge_camera


def whitening_from_lsq(problem: Problem, solution: LsqSolution, data: ModelData) -> Whitening:
    """:class:`Whitening` centred on the lsq solution with its covariance mapped to the unconstrained sites.

    Parameters the lsq solution does not estimate (fixed ones, padding, inert readout fractions of
    cameras with a known fact) get their prior scale; log σ is independent of the rest.
    """
    slices = site_slices(data)
    loc, latents = _centre(problem, solution, data, slices)
    scale = _prior_scales(data)
    site, column, derivative = _site_columns(problem, solution, slices, loc)
    # camera sites (drift, offset, readout): their covariance, given the ridge readout q_m
    n_camera_sites = slices["sigma_rows"].start
    covariance = np.diag(scale[:n_camera_sites] ** 2)
    covariance[np.ix_(site, site)] = solution.camera_covariance[np.ix_(column, column)] * np.outer(derivative, derivative)
    m = _ridge_site(solution, latents, covariance, slices)
    camera_gain = covariance[:, m] / covariance[m, m]
    conditional = covariance - np.outer(camera_gain, covariance[m])
    conditional[m, :] = conditional[:, m] = 0.0
    conditional[m, m] = 1.0
    camera_factor = scaled_cholesky(conditional)
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
    gain = np.zeros(slices["flash_ms"].stop)
    gain[:n_camera_sites] = camera_gain
    gain[slices["flash_ms"]] = flash_gain @ camera_gain
    gain[m] = 0.0
    centre = float(soft_clip(loc[m], np))
    sd_logit = np.sqrt(covariance[m, m]) / (centre * (1.0 - centre))
    f64 = partial(np.asarray, dtype=np.float64)
    return Whitening(
        loc=f64(loc),
        scale=f64(factor),
        gain=f64(gain),
        ridge_index=np.asarray(m, dtype=np.int64),
        ridge_centre=f64(centre),
        ridge_logit=f64(np.log(centre / (1.0 - centre))),
        ridge_scale=f64(sd_logit),
    )
