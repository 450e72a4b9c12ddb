"""Row profiles, flash scores and sub-row edge fits: pure JAX kernels on plain arrays.

The signal is the *change* of each row's brightness between consecutive frames, as a log ratio.
A frame is split into ``n_blocks`` column blocks; a row's brightness in a block is the block mean.
Light added by a flash multiplies the ambient light reflected by the scene, so the ratio of a
block's brightness in frame k and k-1 does not depend on the scene's albedo. Three order
statistics over the blocks make the row profiles (:class:`RowProfiles`): the median, which moving
objects and partial flashes narrower than half the picture cannot move (the ambient light's
change: auto-exposure gain, flicker bands), and the ``rank``-th largest and smallest, which follow
a flash that lights only part of the columns. Once the ambient change is divided out
(:mod:`flashsync_bayes.ambient`), a flash's leading edge ``r0`` shows as a rise like
``G * (1 - exp(-(r - r0)/ρ))`` of the relative change (DESIGN §2).
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, log_ndtr, ndtr

#: Half-widths (rows) of the box filters of the step detector: sharp edges, then slow rises.
STEP_HALF_WIDTHS = (4, 16)
#: Rows above / below a candidate leading edge that the sub-row fit looks at.
FIT_ROWS_ABOVE = 24
FIT_ROWS_BELOW = 72


def block_means(frames, n_blocks: int):
    """Mean luma of each row in each of ``n_blocks`` column blocks, ``(n, rows, n_blocks)`` float32.

    Columns beyond the last whole block are ignored.
    """
    n, rows, width = frames.shape
    block = width // n_blocks
    trimmed = frames[:, :, : block * n_blocks].astype(jnp.float32)
    return trimmed.reshape(n, rows, n_blocks, block).mean(axis=-1)


def merge_exchange_pairs(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's merge-exchange sorting network for ``n`` items.

    Knuth, TAOCP vol. 3, Algorithm 5.2.2M; valid for any n.
    """
    pairs: list[tuple[int, int]] = []
    if n < 2:
        return pairs
    t = (n - 1).bit_length()
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            pairs += [(i, i + d) for i in range(n - d) if i & p == r]
            if q == p:
                break
            d, q, r = q - p, q // 2, p
        p //= 2
    return pairs


def sorted_last_axis(values) -> list:
    """The (short, static) last axis sorted through a sorting network of min/max operations, as a list of arrays.

    Much faster than a sort on CPU for the few blocks of a row.
    """
    columns = [values[..., i] for i in range(values.shape[-1])]
    for i, j in merge_exchange_pairs(len(columns)):
        columns[i], columns[j] = jnp.minimum(columns[i], columns[j]), jnp.maximum(columns[i], columns[j])
    return columns


def median_last_axis(values):
    """Median over the (short, static) last axis; same result as ``jnp.median``."""
    return _middle(sorted_last_axis(values))


class RowProfiles(NamedTuple):
    """Per-frame row profiles of the log brightness change since the previous frame, each ``(n, rows)``.

    Attributes:
        median: median over the column blocks.
        upper: the ``rank``-th largest block change: a rise that this many blocks show.
        lower: the ``rank``-th smallest block change: a fall that this many blocks show.
    """

    median: jax.Array
    upper: jax.Array
    lower: jax.Array


#: Pixels this bright (grey level) are saturated; a block with more than :data:`MAX_SATURATED` of
#: them saturated in either frame, or within :data:`SATURATED_MARGIN` rows of such a block (the
#: soft, blooming border of a bright window), cannot follow the light: its change says nothing.
SATURATED = 250
MAX_SATURATED = 0.05
SATURATED_MARGIN = 2


def block_log_changes(means, previous_means):
    """Log ratios ``(n, rows, blocks)`` of block means to those of the frame before.

    ``means`` are block means ``(n, rows, blocks)``; ``previous_means`` ``(rows, blocks)`` are
    those of the frame before the first one. One grey level is added to both sides so that black
    blocks stay finite.
    """
    before = jnp.concatenate([previous_means[None], means[:-1]], axis=0)
    return jnp.log((means + 1.0) / (before + 1.0))


def saturated_blocks(frames, previous_saturated, n_blocks: int):
    """Blocks ``(n, rows, blocks)`` saturated in a frame or the one before, and the last frame's ``(rows, blocks)``."""
    share = block_means(frames >= SATURATED, n_blocks) > MAX_SATURATED
    rows = share.shape[1]
    padded = jnp.pad(share, ((0, 0), (SATURATED_MARGIN, SATURATED_MARGIN), (0, 0)))
    near = functools.reduce(jnp.logical_or, [padded[:, k : k + rows] for k in range(2 * SATURATED_MARGIN + 1)])
    before = jnp.concatenate([previous_saturated[None], near[:-1]], axis=0)
    return near | before, near[-1]


def _middle(columns: list):
    """Median of a sorted list of arrays."""
    n = len(columns)
    return 0.5 * (columns[(n - 1) // 2] + columns[n // 2])


def row_profiles(changes, saturated, rank: int) -> RowProfiles:
    """:class:`RowProfiles` of block changes ``(n, rows, blocks)``; ``rank`` counts from 1.

    Saturated blocks (a bright window, a highlight) cannot follow the light: for the rank
    statistics they count as the median of all blocks, i.e. as no evidence either way.
    """
    median = _middle(sorted_last_axis(changes))
    columns = sorted_last_axis(jnp.where(saturated, median[..., None], changes))
    return RowProfiles(median, columns[len(columns) - rank], columns[rank - 1])


class BlockState(NamedTuple):
    """What a chunk hands to the next: the last frame's block means and saturated blocks, ``(rows, blocks)``."""

    means: jax.Array
    saturated: jax.Array


def first_state(frame, n_blocks: int) -> BlockState:
    """The :class:`BlockState` of a video's first frame ``(rows, width)``, to start with (its changes are then 0)."""
    frames = frame[None]
    return BlockState(block_means(frames, n_blocks)[0], saturated_blocks(frames, jnp.zeros(frames.shape[1:2] + (n_blocks,), bool), n_blocks)[1])


@partial(jax.jit, static_argnames=("n_blocks", "rank"))
def chunk_profiles(frames, state: BlockState, *, n_blocks: int, rank: int):
    """Row profiles of a chunk of uint8 frames ``(n, rows, width)``: ``(RowProfiles, BlockState)``.

    ``state`` is the previous chunk's (or :func:`first_state` for the first chunk).
    """
    means = block_means(frames, n_blocks)
    saturated, last_saturated = saturated_blocks(frames, state.saturated, n_blocks)
    profiles = row_profiles(block_log_changes(means, state.means), saturated, rank)
    return profiles, BlockState(means[-1], last_saturated)


#: Rows on each side of a row whose median smooths profiles before steps are scored, as a share
#: of the frame's rows (at least :data:`MIN_MEDIAN_ROWS`): a moving object's edge sweeps a band a
#: few rows high each frame (a person crossing a 720-row picture in 4 s at 24 fps: 7.5 rows),
#: a flash a band of at least its exposure's rows. A running median keeps steps and ramps.
MEDIAN_SHARE = 0.015
MIN_MEDIAN_ROWS = 3


def median_rows(n_rows: int) -> int:
    """Rows on each side of the running median of :func:`row_median_filter` for ``n_rows``-row frames."""
    return max(MIN_MEDIAN_ROWS, int(np.ceil(MEDIAN_SHARE * n_rows)))


@jax.jit
def row_median_filter(profiles):
    """Running median over ``2 * median_rows(rows) + 1`` rows of profiles ``(n, rows)`` (edge rows repeated)."""
    rows = profiles.shape[1]
    half = median_rows(rows)
    padded = jnp.pad(profiles, ((0, 0), (half, half)), mode="edge")
    stacked = jnp.stack([padded[:, k : k + rows] for k in range(2 * half + 1)], axis=-1)
    return median_last_axis(stacked)


def robust_sd(values, axis=-1):
    """Standard deviation estimated from the median absolute deviation (1.4826 * MAD)."""
    centre = jnp.median(values, axis=axis, keepdims=True)
    return 1.4826 * jnp.median(jnp.abs(values - centre), axis=axis)


def row_noise(change):
    """Per-frame noise sd of the row changes from row-to-row differences, ``(n,)``."""
    return robust_sd(jnp.diff(change, axis=-1)) / jnp.sqrt(2.0)


def box_step(change, half_width: int):
    """Mean of ``half_width`` rows from r on minus mean of the ``half_width`` rows above r, ``(n, rows)``.

    Rows within ``half_width`` of the top or bottom get 0.
    """
    n, rows = change.shape
    cumulative = jnp.concatenate([jnp.zeros((n, 1), change.dtype), jnp.cumsum(change, axis=-1)], axis=-1)
    r = jnp.arange(rows)
    lo = jnp.clip(r - half_width, 0, rows)
    hi = jnp.clip(r + half_width, 0, rows)
    below = (cumulative[:, hi] - cumulative[:, r]) / half_width
    above = (cumulative[:, r] - cumulative[:, lo]) / half_width
    inside = (r >= half_width) & (r + half_width <= rows)
    return jnp.where(inside[None, :], below - above, 0.0)


@jax.jit
def box_steps(change):
    """:func:`box_step` of profiles ``(n, rows)`` at each of :data:`STEP_HALF_WIDTHS`, ``(n, n_widths, rows)``."""
    return jnp.stack([box_step(change, half_width) for half_width in STEP_HALF_WIDTHS], axis=1)


class FrameScores(NamedTuple):
    """Per-frame step statistics of the row changes, one column per box half-width.

    Attributes:
        step: strongest box step of either sign (relative brightness), ``(n, n_widths)``.
        row: row of that step (the first row below it), ``(n, n_widths)``.
        noise: noise sd of a single row's change, ``(n,)``.
    """

    step: jax.Array
    row: jax.Array
    noise: jax.Array


@jax.jit
def frame_scores(change) -> FrameScores:
    """Strongest row step of every frame at each of :data:`STEP_HALF_WIDTHS`, and its noise."""
    steps, rows = [], []
    for half_width in STEP_HALF_WIDTHS:
        box = box_step(change, half_width)
        row = jnp.argmax(jnp.abs(box), axis=-1)
        steps.append(jnp.take_along_axis(box, row[:, None], axis=-1)[:, 0])
        rows.append(row)
    return FrameScores(step=jnp.stack(steps, -1), row=jnp.stack(rows, -1), noise=row_noise(change))


def flash_thresholds(steps, noise, min_snr: float, spread: float, min_step: float):
    """Step size, per box half-width ``(n_widths,)``, that a flash frame must exceed.

    The largest of ``min_step``, ``min_snr`` times the typical noise of a box step, and the median
    plus ``spread`` robust sds of all frames' steps (most frames hold no flash, so these describe
    scene motion, lighting drift and codec noise).
    """
    magnitude = jnp.abs(steps)
    widths = jnp.asarray(STEP_HALF_WIDTHS, dtype=magnitude.dtype)
    step_noise = jnp.median(noise) * jnp.sqrt(2.0 / widths)
    outlier = jnp.median(magnitude, axis=0) + spread * robust_sd(magnitude, axis=0)
    return jnp.maximum(jnp.maximum(min_snr * step_noise, outlier), min_step)


# --- sub-row edge model -------------------------------------------------------------------------


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
#: Largest rise constant as a fraction of the decay constant.
MAX_RISE_FRACTION = 0.9


def pulse_response(x, decay_rows, rise_rows, blur_rows):
    """Blurred cumulative light of a pulse with rise ``τ`` and decay ``ρ`` (rows), 0 before x = 0.

    ``(ρ B(x; ρ) - τ B(x; τ)) / (ρ - τ)`` with ``B`` the blurred exponential rise.
    """
    slow = blurred_exponential_rise(x, decay_rows, blur_rows)
    fast = blurred_exponential_rise(x, rise_rows, blur_rows)
    return (decay_rows * slow - rise_rows * fast) / (decay_rows - rise_rows)


def edge_model(params, x):
    """Modelled row change at row offsets ``x``.

    ``params = (base, gain, edge, log ρ, log σ, log e, logit τ/ρ)``: a band that starts at ``edge``,
    rises with the pulse (decay ρ, rise τ, in rows), is blurred by a Gaussian of sd σ rows (codec,
    optics), and whose exposure-start side begins ``e`` rows later.
    """
    base, gain, edge, log_decay, log_blur, log_extent, rise_logit = params
    decay, blur, extent = jnp.exp(log_decay), jnp.exp(log_blur), jnp.exp(log_extent)
    rise = decay * MAX_RISE_FRACTION * jax.nn.sigmoid(rise_logit)
    start = pulse_response(x - edge, decay, rise, blur)
    stop = pulse_response(x - edge - extent, decay, rise, blur)
    return base + gain * (start - stop)


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
    """

    params: jax.Array
    edge_sd: jax.Array
    trailing: jax.Array
    trailing_sd: jax.Array
    residual_sd: jax.Array
    converged: jax.Array


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


def _fit_one(y, weight, x, init, free, iterations: int):
    """Levenberg-Marquardt fit of :func:`edge_model` to one window; returns ``(EdgeFit, cost)``."""

    def residuals(p):
        return weight * (edge_model(p, x) - y)

    def cost(p):
        r = residuals(p)
        return jnp.sum(r * r)

    jacobian = jax.jacfwd(residuals)

    def step(_, state):
        p, damping, current = state
        J = jacobian(p)
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
    covariance = jnp.linalg.pinv(J.T @ J) * residual_var * correlation_inflation(r)
    extent = jnp.exp(p[5])
    trailing_gradient = jnp.zeros(p.size).at[2].set(1.0).at[5].set(extent)
    fit = EdgeFit(
        params=p,
        edge_sd=jnp.sqrt(jnp.maximum(covariance[2, 2], 0.0)),
        trailing=p[2] + extent,
        trailing_sd=jnp.sqrt(jnp.maximum(trailing_gradient @ covariance @ trailing_gradient, 0.0)),
        residual_sd=jnp.sqrt(residual_var),
        converged=damping < 1e3,
    )
    return fit, final_cost


def _fit_best(y, weight, x, starts, free, iterations: int) -> EdgeFit:
    """Fit from each of several starting points ``(n_starts, N_EDGE_PARAMS)``; keep the lowest cost."""
    fits, costs = jax.vmap(_fit_one, in_axes=(None, None, None, 0, None, None))(y, weight, x, starts, free, iterations)
    best = jnp.argmin(jnp.where(jnp.isfinite(costs), costs, jnp.inf))
    return jax.tree_util.tree_map(lambda leaf: leaf[best], fits)


@partial(jax.jit, static_argnames=("iterations", "fit_rise"))
def fit_edges(windows, weights, blur_rows=None, iterations: int = 60, fit_rise: bool = False) -> EdgeFit:
    """Sub-row fits of leading edges in row-change windows ``(n_edges, FIT_ROWS_ABOVE + FIT_ROWS_BELOW)``.

    ``weights`` (same shape) are 1 for rows inside the frame and 0 outside. Row offset 0 is the
    window's row ``FIT_ROWS_ABOVE`` (the anchor, a few rows below the edge at most); the fitted
    ``edge`` parameter is relative to it. Positive-going edges only: flip the sign for falling ones.
    Without ``fit_rise`` the pulse is taken to rise instantly. ``blur_rows`` (one per window),
    when given, fixes the blur instead of fitting it.
    """
    x = jnp.arange(windows.shape[-1], dtype=windows.dtype) - FIT_ROWS_ABOVE
    starts = jax.vmap(initial_edge_params)(windows, weights)
    starts = starts if fit_rise else starts.at[..., 6].set(-30.0)
    free = jnp.ones(N_EDGE_PARAMS).at[6].set(1.0 if fit_rise else 0.0)
    if blur_rows is not None:
        starts = starts.at[..., 4].set(jnp.log(blur_rows)[:, None])
        free = free.at[4].set(0.0)
    return jax.vmap(_fit_best, in_axes=(0, 0, None, 0, None, None))(windows, weights, x, starts, free, iterations)


def initial_edge_params(window, weight):
    """Starting points ``(3, N_EDGE_PARAMS)`` for one window: band end inside or beyond it, or a step."""
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
    fall = jnp.min(jnp.where(past_peak, x, 4 * FIT_ROWS_BELOW))
    extent_inside = jnp.maximum(fall - onset, 2.0)
    extent_beyond = jnp.asarray(8.0 * FIT_ROWS_BELOW)
    common = [base, gain, onset - 0.5, jnp.log(decay), jnp.log(0.7)]
    # a step of light (or a pulse much longer than the exposure) is the limit of a very slow rise
    slow_decay = 100.0 * FIT_ROWS_BELOW
    slow = [base, gain * slow_decay / extent_inside, onset - 0.5, jnp.log(slow_decay), jnp.log(0.7)]
    return jnp.stack(
        [
            jnp.stack(common + [jnp.log(extent_inside), jnp.asarray(-3.0)]),
            jnp.stack(common + [jnp.log(extent_beyond), jnp.asarray(-3.0)]),
            jnp.stack(slow + [jnp.log(extent_inside), jnp.asarray(-3.0)]),
        ]
    )
