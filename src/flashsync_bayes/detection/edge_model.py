"""Sub-row model of a flash's leading edge in a row-change profile, and its Levenberg-Marquardt fit (pure JAX).

Once the ambient change is divided out, a flash's leading edge ``r0`` shows as a rise like
``G * (1 - exp(-(r - r0)/ρ))`` of the relative change, blurred by the codec and optics (DESIGN §2).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, log_ndtr, ndtr

from flashsync_bayes import export_cache
from flashsync_bayes.detection.profiles import biweight, biweight_loss, robust_sd
from flashsync_bayes.export_cache import serializable

#: Rows above / below a candidate leading edge that the sub-row fit looks at.
FIT_ROWS_ABOVE = 24
FIT_ROWS_BELOW = 72


def blurred_exponential_rise(x, decay_rows, blur_rows):
    """``1 - exp(-x/ρ)`` for x > 0 (0 before) convolved with a Gaussian of sd ``blur_rows``.

    The ex-Gaussian cumulative distribution ``Φ(z) - exp(-z²/2) · exp(u²/2) Φ(-u)`` with
    ``z = x/σ`` and ``u = σ/ρ - z``, evaluated through ``erfcx`` (u ≥ 0) or ``log Φ`` (u < 0) so
    that it stays accurate for any ratio of decay and blur.
    """
    z = x / blur_rows
    u = blur_rows / decay_rows - z
    u_pos = jnp.maximum(u, 0.0)
    u_neg = jnp.minimum(u, 0.0)
    tail_pos = jnp.exp(-0.5 * z * z) * 0.5 * erfcx(u_pos / jnp.sqrt(2.0))
    tail_neg = jnp.exp(0.5 * (u_neg * u_neg - z * z) + log_ndtr(-u_neg))
    return ndtr(z) - jnp.where(u >= 0, tail_pos, tail_neg)


#: Number of edge-model parameters, see :func:`edge_model`.
N_EDGE_PARAMS = 7
#: Index of the band's tilt in the parameters (fitted only where asked, else held at 0).
TILT = 6


def edge_model(params, x):
    """Modelled row change at row offsets ``x``.

    ``params = (base, gain, edge, log ρ, log σ, log e, tilt)``: a band that starts at ``edge``,
    rises with the pulse's decay ρ (rows), is blurred by a Gaussian of sd σ rows (codec, optics),
    and whose exposure-start side begins ``e`` rows later. The pulse rises instantly: a flash's
    rise is far shorter than a row's exposure. The band's height changes by the share ``tilt``
    every :data:`FIT_ROWS_BELOW` rows: the flash's light is relative to the lamps', and where their
    flicker bands stand still from frame to frame (a frame period of whole flicker periods) the
    flicker cannot be divided out, so the height follows the bands along the rows.
    """
    base, gain, edge, log_decay, log_blur, log_extent, tilt = params
    decay, blur, extent = jnp.exp(log_decay), jnp.exp(log_blur), jnp.exp(log_extent)
    start = blurred_exponential_rise(x - edge, decay, blur)
    stop = blurred_exponential_rise(x - edge - extent, decay, blur)
    return base + gain * (start - stop) * (1.0 + tilt * (x - edge) / FIT_ROWS_BELOW)


@serializable
class EdgeFit(NamedTuple):
    """Result of one sub-row edge fit (row offsets relative to the window's anchor row).

    Attributes:
        params: fitted parameters of :func:`edge_model`, ``(..., N_EDGE_PARAMS)``.
        edge_sd: standard deviation of ``edge`` (rows), inflated for correlated residuals.
        trailing: offset of the exposure-start side ``edge + e`` (rows), where the band's rows
            began their exposure after the flash; beyond the window it is only extrapolated.
        trailing_sd: its standard deviation (rows).
        residual_sd: sd of the fit residuals (relative brightness).
        converged: whether the final step was small.
        misfit: sum of squared residuals over the rows inside the frame, unweighted.
        noise_var: variance of one row's residual, inflated for their correlation (what a
            parameter must explain more than to be worth fitting).
    """

    params: jax.Array
    edge_sd: jax.Array
    trailing: jax.Array
    trailing_sd: jax.Array
    residual_sd: jax.Array
    converged: jax.Array
    misfit: jax.Array
    noise_var: jax.Array


#: Residual autocorrelation lags summed for the variance inflation of an edge fit.
RESIDUAL_LAGS = 8


def correlation_inflation(residuals):
    """Variance inflation ``1 + 2 Σ_k ρ_k`` (lags 1..RESIDUAL_LAGS) for correlated fit residuals.

    Neighbouring rows share codec blur and scene structure, so residuals are not independent;
    negative autocorrelations are ignored, which keeps the inflation at least 1.
    """
    power = jnp.maximum(jnp.sum(residuals * residuals), 1e-30)
    lags = jnp.arange(1, RESIDUAL_LAGS + 1)
    shifted = jax.vmap(lambda k: jnp.sum(residuals * jnp.roll(residuals, k) * (jnp.arange(residuals.size) >= k)))(lags)
    return 1.0 + 2.0 * jnp.sum(jnp.maximum(shifted / power, 0.0))


def _fit_one(y, weight, x, init, free, iterations: int, inside):
    """Levenberg-Marquardt fit of :func:`edge_model` to one window (rows weighted by ``weight``); returns ``(EdgeFit, cost)``.

    ``inside`` marks the window's rows inside the frame: the fit's ``misfit`` is over them, unweighted.
    """

    def residuals(p):
        return weight * (edge_model(p, x) - y)

    def cost(p):
        r = residuals(p)
        return jnp.sum(r * r)

    jacobian = jax.jacfwd(residuals)

    def step(_, state):
        p, damping, current = state
        J = jacobian(p) * free[None, :]  # fixed parameters neither move nor steer the others
        JtJ = J.T @ J
        scaled = JtJ + damping * jnp.diag(jnp.diag(JtJ) + 1e-12) + jnp.diag(1.0 - free)
        delta = free * jnp.clip(-jnp.linalg.solve(scaled, J.T @ residuals(p)), -2.0, 2.0)
        candidate = p + delta
        candidate_cost = cost(candidate)
        better = jnp.isfinite(candidate_cost) & (candidate_cost < current)
        return (
            jnp.where(better, candidate, p),
            jnp.where(better, damping / 3.0, damping * 4.0),
            jnp.where(better, candidate_cost, current),
        )

    p, damping, final_cost = jax.lax.fori_loop(0, iterations, step, (init, 1e-2, cost(init)))
    r = residuals(p)
    J = jacobian(p) * free[None, :]
    dof = jnp.maximum(jnp.sum(weight > 0) - jnp.sum(free), 1)
    residual_var = final_cost / dof
    inflation = correlation_inflation(r)
    covariance = jnp.linalg.pinv(J.T @ J) * residual_var * inflation
    extent = jnp.exp(p[5])
    trailing_gradient = jnp.zeros(p.size).at[2].set(1.0).at[5].set(extent)
    fit = EdgeFit(
        params=p,
        edge_sd=jnp.sqrt(jnp.maximum(covariance[2, 2], 0.0)),
        trailing=p[2] + extent,
        trailing_sd=jnp.sqrt(jnp.maximum(trailing_gradient @ covariance @ trailing_gradient, 0.0)),
        residual_sd=jnp.sqrt(residual_var),
        converged=damping < 1e3,
        misfit=jnp.sum(inside * (y - edge_model(p, x)) ** 2),
        noise_var=residual_var * inflation,
    )
    return fit, final_cost


#: Smallest robust residual sd (relative change) of the refit's weights, for noise-free windows.
MIN_RESIDUAL_SD = 1e-6


def _fit_best(y, weight, x, starts, free, iterations: int) -> EdgeFit:
    """Fit from each of several starting points ``(n_starts, N_EDGE_PARAMS)``, keep the robustly best, then refit robustly.

    The best fit has the lowest Tukey-biweight loss of its residuals (:func:`biweight_loss`, at the smallest robust
    residual sd of all the fits): with least squares, a row or two that no fit can be (a moving object's thin edge
    far below the flash's) chose the fit that bent most towards them. The refit starts from the best fit and weighs
    rows by the biweight of its residuals, so that those rows do not bend the edge.
    """
    fits, costs = jax.vmap(_fit_one, in_axes=(None, None, None, 0, None, None, None))(y, weight, x, starts, free, iterations, weight)
    residuals = jnp.where(weight > 0, y - jax.vmap(edge_model, in_axes=(0, None))(fits.params, x), jnp.nan)
    usable = jnp.isfinite(costs)
    spreads = jax.vmap(partial(robust_sd, ignore_nan=True))(residuals)
    scale = jnp.min(jnp.where(usable & jnp.isfinite(spreads), spreads, jnp.inf)) + MIN_RESIDUAL_SD
    losses = jnp.sum(weight * biweight_loss(jnp.nan_to_num(residuals), scale), axis=1)
    best = jnp.argmin(jnp.where(usable, losses, jnp.inf))
    first = jax.tree_util.tree_map(lambda leaf: leaf[best], fits)
    residual = residuals[best]
    scale = robust_sd(residual, ignore_nan=True) + MIN_RESIDUAL_SD
    robust = weight * biweight(jnp.nan_to_num(residual), scale)
    refit, _ = _fit_one(y, robust, x, first.params, free, iterations, weight)
    return refit


def fit_edges(windows, weights, blur_rows=None, start=None, iterations: int = 60, tilted=None, fresh_starts: bool = False) -> EdgeFit:
    """Sub-row fits of leading edges in row-change windows ``(n_edges, FIT_ROWS_ABOVE + FIT_ROWS_BELOW)``.

    ``weights`` (same shape) are 1 for rows inside the frame and 0 outside. Row offset 0 is the
    window's row ``FIT_ROWS_ABOVE`` (the anchor, a few rows below the edge at most); the fitted
    ``edge`` parameter is relative to it. Positive-going edges only: flip the sign for falling ones.
    ``blur_rows`` (one per window, rows), when given, fixes the blur instead of fitting it (NaN:
    fitted). Each window is fitted from three starting points (:func:`initial_edge_params`) or,
    given ``start`` ``(n_edges, N_EDGE_PARAMS)`` (e.g. an earlier fit's params), from that one, and
    with ``fresh_starts`` from the three too: an earlier fit with a wide free blur may have taken
    the rise for a step (decay near 0, whose gradient vanishes), a mode that a fit with the blur
    fixed small could not leave from there.
    ``tilted`` (one bool per window, default none) frees the band's tilt (see :func:`edge_model`),
    else held at 0. With the compilation cache on, the traced fit is kept on disk (:mod:`~flashsync_bayes.export_cache`).
    """
    dtype = windows.dtype
    blur_rows = np.full(windows.shape[0], np.nan, dtype) if blur_rows is None else np.asarray(blur_rows, dtype)
    tilted = np.zeros(windows.shape[0], dtype) if tilted is None else np.asarray(tilted, dtype)
    start = None if start is None else np.asarray(start, dtype)
    return export_cache.call(_fit_edges, windows, weights, blur_rows, tilted, start, iterations=iterations, fresh_starts=fresh_starts)


@partial(jax.jit, static_argnames=("iterations", "fresh_starts"))
def _fit_edges(windows, weights, blur_rows, tilted, start, iterations: int, fresh_starts: bool) -> EdgeFit:
    """:func:`fit_edges`; the blur of window ``i`` is fixed where ``blur_rows[i]`` is finite, its tilt free where
    ``tilted[i]`` is 1. Free and fixed parameters share one compiled kernel per window count (one with ``start``,
    one without)."""
    x = jnp.arange(windows.shape[-1], dtype=windows.dtype) - FIT_ROWS_ABOVE
    if start is None:
        starts = jax.vmap(initial_edge_params)(windows, weights)
    elif fresh_starts:
        starts = jnp.concatenate([start[:, None, :], jax.vmap(initial_edge_params)(windows, weights)], axis=1)
    else:
        starts = start[:, None, :]
    fixed = jnp.isfinite(blur_rows)
    starts = starts.at[..., 4].set(jnp.where(fixed[:, None], jnp.log(blur_rows)[:, None], starts[..., 4]))
    free = jnp.where(fixed[:, None], jnp.ones(N_EDGE_PARAMS).at[4].set(0.0)[None, :], 1.0)
    free = free.at[:, TILT].set(tilted)
    starts = starts.at[..., TILT].multiply(tilted[:, None])
    return jax.vmap(_fit_best, in_axes=(0, 0, None, 0, 0, None))(windows, weights, x, starts, free, iterations)


#: A band whose last ``DECLINE_ROWS`` rows in the window average under ``DECLINE_SHARE`` of its peak declines: its fit
#: starts with the band ending at the peak (:func:`initial_edge_params`).
DECLINE_ROWS = 8
DECLINE_SHARE = 0.75


def initial_edge_params(window, weight):
    """Starting points ``(3, N_EDGE_PARAMS)`` for one window: band end inside (where it falls to half, else at its peak
    where it declines) or beyond it, or a step."""
    x = jnp.arange(window.shape[-1]) - FIT_ROWS_ABOVE
    above = (x < -3) & (weight > 0)
    base = jnp.sum(jnp.where(above, window, 0.0)) / jnp.maximum(jnp.sum(above), 1)
    signal = window - base
    below = (x >= -3) & (weight > 0)
    peak_index = jnp.argmax(jnp.where(below, signal, -jnp.inf))
    gain = jnp.maximum(signal[peak_index], 1e-6)
    onset = jnp.min(jnp.where(below & (signal >= 0.1 * gain), x, 0))
    half = jnp.min(jnp.where(below & (signal >= 0.5 * gain), x, FIT_ROWS_BELOW))
    decay = jnp.maximum(half - onset, 0.5) / jnp.log(2.0)
    past_peak = below & (x > x[peak_index]) & (signal < 0.5 * gain)
    # a band that declines but does not fall to half within the window (a pulse decaying over most of the
    # exposure's rows) ends about at its peak: its rows exposed after the flash began lose it; a plateau's
    # peak is only its noise, so it keeps the end far away
    last = jnp.max(jnp.where(below, x, -FIT_ROWS_ABOVE))
    tail = below & (x > last - DECLINE_ROWS)
    declines = jnp.sum(jnp.where(tail, signal, 0.0)) < DECLINE_SHARE * gain * jnp.maximum(jnp.sum(tail), 1)
    far = 4 * FIT_ROWS_BELOW
    fall = jnp.where(jnp.any(past_peak), jnp.min(jnp.where(past_peak, x, far)), jnp.where(declines, x[peak_index], far))
    extent_inside = jnp.maximum(fall - onset, 2.0)
    extent_beyond = jnp.asarray(8.0 * FIT_ROWS_BELOW)
    common = [base, gain, onset - 0.5, jnp.log(decay), jnp.log(0.7)]
    # a step of light (or a pulse much longer than the exposure) is the limit of a very slow rise
    slow_decay = 100.0 * FIT_ROWS_BELOW
    slow = [base, gain * slow_decay / extent_inside, onset - 0.5, jnp.log(slow_decay), jnp.log(0.7)]
    no_tilt = jnp.zeros_like(base)
    return jnp.stack(
        [
            jnp.stack(common + [jnp.log(extent_inside), no_tilt]),
            jnp.stack(common + [jnp.log(extent_beyond), no_tilt]),
            jnp.stack(slow + [jnp.log(extent_inside), no_tilt]),
        ]
    )
