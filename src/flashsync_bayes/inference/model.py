"""The NumPyro model of DESIGN §5: priors as sample sites, the rows of matched leading edges observed.

The likelihood is written for the observed rows, i.e. ``y_e ~ StudentT(ν, (φ_j - s_c - d_c p_e) /
a_c, sqrt(σ_c² / a_c² + row_sd_e²))``, which is the DESIGN's time-domain StudentT divided by the
constant ``a_c`` — the Jacobian ``1/a_c`` must be kept, or the model would prefer short rows.
Numbers are centred as in :mod:`flashsync_bayes.inference.problem`; :class:`ModelData` holds them padded.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

from flashsync_bayes.export_cache import serializable
from flashsync_bayes.inference.flicker_ruler import ruler_precision

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


def soft_clip(v, xp=jnp):
    """Readout fraction ``q = (softplus(k v) - softplus(k (v - 1))) / k`` of unconstrained ``v`` (k :data:`SOFT_CLIP_SHARPNESS`).

    ``xp`` is the array module: ``jax.numpy`` inside models and samplers, ``numpy`` where plain
    numbers are prepared (no JAX dispatch, nothing compiled).
    """
    k = SOFT_CLIP_SHARPNESS
    return (xp.logaddexp(k * v, 0.0) - xp.logaddexp(k * (v - 1.0), 0.0)) / k


def soft_clip_inverse(q, xp=jnp):
    """Unconstrained ``v`` of readout fractions ``q`` in (0, 1): the inverse of :func:`soft_clip`."""
    k = SOFT_CLIP_SHARPNESS
    return (xp.log(xp.expm1(k * q)) - xp.log(-xp.expm1(k * (q - 1.0)))) / k


def soft_clip_log_slope(v, xp=jnp):
    """``log dq/dv`` of :func:`soft_clip` at ``v``: ``σ(kv) - σ(kv - k) = σ(kv) σ(k - kv) (1 - e^{-k})``."""
    k = SOFT_CLIP_SHARPNESS
    return -xp.logaddexp(-k * v, 0.0) - xp.logaddexp(k * v - k, 0.0) + xp.log(-xp.expm1(-k))


class SoftClipTransform(numpyro.distributions.transforms.Transform):
    """``R -> (0, 1)``: :func:`soft_clip`.

    The identity over (0, 1) up to ~1/k of its ends, and smooth, unlike the logistic map: time
    per row, offsets and flash times scale together along the locked-phase ridge, which therefore
    stays a straight line in these coordinates and NUTS can follow it with long steps.
    """

    domain = constraints.real
    codomain = readout_interval
    sign = 1

    def __call__(self, v):
        return soft_clip(v)

    def _inverse(self, q):
        return soft_clip_inverse(q)

    def log_abs_det_jacobian(self, v, q, intermediates=None):
        return soft_clip_log_slope(v)

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


@serializable
class ModelData(NamedTuple):
    """Padded arrays :func:`sync_model` reads (C cameras, F flashes, E events after padding).

    :func:`~flashsync_bayes.inference.model_data.model_data` builds them as NumPy arrays; inside
    the compiled programs they are traced JAX arrays.
    """

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
    ruler_time_per_row_ms: jax.Array  # (C,) the flicker ruler's time per row (1 where it pins nothing)
    ruler_weight: jax.Array  # (C,) 1 / its relative variance (0 where it pins nothing)
    mains_variance: jax.Array  # () relative variance of the lamps' flicker frequency


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
    room and its correction both drop out. Where mains-flicker bands measured a camera's time per
    row, its relative error is Gaussian, correlated between cameras through the lamps' one frequency
    (:func:`~flashsync_bayes.inference.flicker_ruler.ruler_precision`).
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
    relative = camera["time_per_row_ms"] / data.ruler_time_per_row_ms - 1.0
    precision = ruler_precision(data.ruler_weight, data.mains_variance, jnp)
    numpyro.factor("flicker_ruler", -0.5 * relative @ precision @ relative)
    for name in DERIVED_SITES[:-1]:
        numpyro.deterministic(name, camera[name])
    numpyro.deterministic("flash_time_ms", flash + data.centre_ms)
    cam = data.event_camera
    a = camera["time_per_row_ms"][cam]
    loc = (flash[data.event_flash] - camera["offset_used_ms"][cam] - camera["drift_used"][cam] * data.event_x_ms) / a
    scale = jnp.sqrt(sigma[cam] ** 2 + data.event_row_sd**2)
    with numpyro.plate("event", data.event_row.shape[0]), numpyro.handlers.mask(mask=data.event_mask):
        numpyro.sample("row", dist.StudentT(data.nu, loc, scale), obs=data.event_row)
