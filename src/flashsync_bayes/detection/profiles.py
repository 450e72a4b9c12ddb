"""Row profiles and flash scores: pure JAX kernels on plain arrays.

The signal is the *change* of each row's brightness between consecutive frames, as a log ratio.
A frame is split into ``n_blocks`` column blocks; a row's brightness in a block is the block mean.
Light added by a flash multiplies the ambient light reflected by the scene, so the ratio of a
block's brightness in frame k and k-1 does not depend on the scene's albedo. Three order
statistics over the blocks make the row profiles (:class:`RowProfiles`): the median, which moving
objects and partial flashes narrower than half the picture cannot move (the ambient light's
change: auto-exposure gain, flicker bands), and the ``rank``-th largest and smallest, which follow
a flash that lights only part of the columns. Once the ambient change is divided out
(:mod:`~flashsync_bayes.detection.ambient`), a flash's leading edge shows as a step in them, which
:mod:`~flashsync_bayes.detection.edge_model` locates to a fraction of a row (DESIGN §2).
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flashsync_bayes import transfer
from flashsync_bayes.detection import selection

#: Half-widths (rows) of the box filters of the step detector: sharp edges, then slow rises.
STEP_HALF_WIDTHS = (4, 16)


def column_blocks(frames, n_blocks: int):
    """Frames ``(n, rows, width)`` as ``(n, rows, n_blocks, block)``: rows cut into ``n_blocks`` column blocks.

    Columns beyond the last whole block are left out.
    """
    n, rows, width = frames.shape
    block = width // n_blocks
    return frames[:, :, : block * n_blocks].reshape(n, rows, n_blocks, block)


def _count_dtype(block: int):
    """Smallest unsigned integer type that holds a sum of ``block`` 8-bit values."""
    return jnp.uint16 if block * 255 < 2**16 else jnp.uint32


def block_means(frames, n_blocks: int, light):
    """Mean light above black of each row in each of ``n_blocks`` column blocks, ``(n, rows, n_blocks)`` float32 in code
    steps (see :func:`column_blocks`); ``light`` is the video's :func:`light_table`.

    8-bit frames are looked up and summed as integers (exact, and twice as fast as in float32 on CPU); other
    frames hold codes as floats, interpolated in the table.
    """
    blocks = column_blocks(frames, n_blocks)
    if blocks.dtype == jnp.uint8:
        values = jnp.take(jnp.asarray(light), blocks.astype(jnp.int32))
        return values.sum(axis=-1, dtype=jnp.uint32).astype(jnp.float32) / (blocks.shape[-1] * LIGHT_SCALE)
    codes = jnp.arange(light.shape[0], dtype=jnp.float32)
    return jnp.interp(blocks.astype(jnp.float32), codes, jnp.asarray(light, jnp.float32)).mean(axis=-1) / LIGHT_SCALE


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


def sorted_columns(columns: list) -> list:
    """Arrays of one shape (a short, static list) sorted elementwise through a sorting network of min/max operations:
    the smallest of each element first. Much faster than a sort on CPU for the few blocks of a row."""
    columns = list(columns)
    for i, j in merge_exchange_pairs(len(columns)):
        columns[i], columns[j] = jnp.minimum(columns[i], columns[j]), jnp.maximum(columns[i], columns[j])
    return columns


def sorted_last_axis(values) -> list:
    """The (short, static) last axis sorted (:func:`sorted_columns`), as a list of arrays."""
    return sorted_columns([values[..., i] for i in range(values.shape[-1])])


def median_last_axis(values):
    """Median over the (short, static) last axis; same result as ``jnp.median``."""
    return _middle(sorted_last_axis(values))


class RowProfiles(NamedTuple):
    """Per-frame row profiles of the log brightness change since the previous frame, ``(n, rows)`` but for ``blocks``.

    Attributes:
        median: median over the column blocks.
        upper: the ``rank``-th largest block change: a rise that this many blocks show.
        lower: the ``rank``-th smallest block change: a fall that this many blocks show.
        blocks: ``(n, rows, blocks)`` float16, each column block's change (saturated blocks as the
            median): where a step is, whether enough blocks make it themselves
            (:meth:`~flashsync_bayes.detection.evidence.Evidence.step_support`).
    """

    median: jax.Array
    upper: jax.Array
    lower: jax.Array
    blocks: jax.Array


#: Light per 8-bit code is tabulated in 1/LIGHT_SCALE of a code step (integers: block sums stay exact).
LIGHT_SCALE = 64


def light_table(black: float, white: float, transfer_name: str = transfer.LINEAR) -> np.ndarray:
    """Light above ``black`` of every 8-bit luma code, ``(256,)`` uint16 in 1/:data:`LIGHT_SCALE` code steps:
    the signal's share of the black-to-white span decoded by the video's transfer
    (:func:`~flashsync_bayes.transfer.decode`), times that span (so under the linear transfer the code above black)."""
    span = white - black
    signal = (np.arange(256) - black) / span
    return np.round(transfer.decode(signal, transfer_name) * span * LIGHT_SCALE).astype(np.uint16)


class LumaLevels(NamedTuple):
    """8-bit luma codes of black and of full white in a video, and the light of every code.

    Video ("tv", limited) range, which most camera and phone H.264/HEVC carry, puts black at 16 and
    white at 235 (brighter "super-white" codes up to 255 are clipped highlights too); full ("pc",
    JPEG) range at 0 and 255. ``light`` is the :func:`light_table` of the video's transfer: light is
    proportional to the code above black only for linear video, cameras store it bent (BT.709, HLG).
    """

    black: float
    white: float
    light: np.ndarray

    @classmethod
    def of(cls, black: float, white: float, transfer_name: str = transfer.LINEAR) -> LumaLevels:
        """Levels of a video with black and white at these codes and the transfer ``transfer_name``."""
        return cls(black, white, light_table(black, white, transfer_name))


FULL_RANGE = LumaLevels.of(0.0, 255.0)
VIDEO_RANGE = LumaLevels.of(16.0, 235.0)
#: Pixels above this share of the black-to-white span (250 of 255 in full range) are saturated; a
#: block with more than :data:`MAX_SATURATED` of them saturated in either frame, or within
#: :data:`SATURATED_MARGIN` rows of such a block (the soft, blooming border of a bright window),
#: cannot follow the light: its change says nothing.
SATURATED_SHARE = 0.98
MAX_SATURATED = 0.05
SATURATED_MARGIN = 2


def block_log_changes(means, previous_means):
    """Log ratios ``(n, rows, blocks)`` of the light in block means to that of the frame before.

    ``means`` are block means ``(n, rows, blocks)`` of the light above black (code steps, see
    :class:`LumaLevels`); ``previous_means`` ``(rows, blocks)`` are those of the frame before the
    first one. One code step is added to both sides so that black blocks stay finite.
    """
    before = jnp.concatenate([previous_means[None], means[:-1]], axis=0)
    return jnp.log((means + 1.0) / (before + 1.0))


def saturated_blocks(frames, previous_saturated, n_blocks: int, levels: LumaLevels):
    """``(either, both, last)``: blocks ``(n, rows, blocks)`` saturated in a frame or the one before, those saturated in
    both, and the last frame's ``(rows, blocks)``."""
    threshold = levels.black + SATURATED_SHARE * (levels.white - levels.black)
    over = column_blocks(frames >= threshold, n_blocks)
    share = jnp.sum(over, axis=-1, dtype=_count_dtype(over.shape[-1])) > MAX_SATURATED * over.shape[-1]  # counted: faster than a mean
    rows = share.shape[1]
    padded = jnp.pad(share, ((0, 0), (SATURATED_MARGIN, SATURATED_MARGIN), (0, 0)))
    near = functools.reduce(jnp.logical_or, [padded[:, k : k + rows] for k in range(2 * SATURATED_MARGIN + 1)])
    before = jnp.concatenate([previous_saturated[None], near[:-1]], axis=0)
    return near | before, near & before, near[-1]


def _middle(columns: list):
    """Median of a sorted list of arrays."""
    n = len(columns)
    return 0.5 * (columns[(n - 1) // 2] + columns[n // 2])


def median_of_kept(values, left_out):
    """Median over the (short, static) last axis of the values not ``left_out`` (a mask); 0 where all are left out
    (:func:`median_of_kept_columns`)."""
    n = values.shape[-1]
    return median_of_kept_columns([values[..., i] for i in range(n)], [left_out[..., i] for i in range(n)])


def median_of_kept_columns(values: list, left_out: list):
    """Elementwise median of arrays of one shape (a short, static list) over those not ``left_out`` (masks, one an
    array); 0 where all are left out.

    One sorting network (:func:`sorted_columns`): the left-out values go to -inf and +inf in turn (the first to -inf),
    so as many lie below the kept ones as above, or one more below when their number is odd. The kept values' median
    then sits at fixed places of the sorted values: the ``n // 2``-th (an odd number kept) or the mean of the
    ``(n - 1) // 2``-th and the next (an even number). A list rather than a last axis, so that arrays which are slices
    of one another (neighbours in time) need not be stacked.
    """
    n = len(values)
    turn = jnp.zeros(jnp.shape(values[0]), jnp.int32)
    pushed = []
    for value, out in zip(values, left_out):
        turn = turn + out
        pushed.append(jnp.where(out, jnp.where(turn % 2 == 1, -jnp.inf, jnp.inf), value))
    columns = sorted_columns(pushed)
    kept = n - turn
    lower = (n - 1) // 2
    even = 0.5 * (columns[lower] + columns[min(lower + 1, n - 1)])
    return jnp.where(kept > 0, jnp.where(kept % 2 == 1, columns[n // 2], even), 0.0)


def row_profiles(changes, saturated, clipped, rank: int) -> RowProfiles:
    """:class:`RowProfiles` of block changes ``(n, rows, blocks)``; ``rank`` counts from 1.

    Saturated blocks (a bright window, a highlight) cannot follow the light. Those ``clipped`` in both
    frames (a window, a lamp) show no change whatever the light does: the median leaves them out, as
    the ambient model reads the light's change from it (a window over a third of the columns would
    otherwise let two blocks of a moving object move it by half their change). Those ``saturated``
    in either frame count as the median for the rank statistics, i.e. as no evidence either way
    (a flash that saturates the blocks it lights still moves the median: its clipped rise points the right way).
    """
    median = median_of_kept(changes, clipped)
    evidence = jnp.where(saturated, median[..., None], changes)
    return RowProfiles(median, *rank_statistics(evidence, rank), evidence.astype(jnp.float16))


def rank_statistics(evidence, rank: int):
    """``(upper, lower)``: the ``rank``-th largest and the ``rank``-th smallest of block changes ``(..., blocks)``."""
    columns = sorted_last_axis(evidence)
    return columns[len(columns) - rank], columns[rank - 1]


class BlockState(NamedTuple):
    """What a chunk hands to the next: the last frame's block means and saturated blocks, ``(rows, blocks)``."""

    means: jax.Array
    saturated: jax.Array


def first_state(frame, n_blocks: int, levels: LumaLevels = FULL_RANGE) -> BlockState:
    """The :class:`BlockState` of a video's first frame ``(rows, width)``, to start with (its changes are then 0)."""
    frames = frame[None]
    no_saturation = jnp.zeros(frames.shape[1:2] + (n_blocks,), bool)
    return BlockState(block_means(frames, n_blocks, levels.light)[0], saturated_blocks(frames, no_saturation, n_blocks, levels)[2])


@partial(jax.jit, static_argnames=("n_blocks", "rank"))
def chunk_profiles(frames, state: BlockState, levels: LumaLevels = FULL_RANGE, *, n_blocks: int, rank: int):
    """Row profiles of a chunk of uint8 frames ``(n, rows, width)``: ``(RowProfiles, BlockState)``.

    ``state`` is the previous chunk's (or :func:`first_state` for the first chunk); ``levels``
    the video's luma range (:data:`VIDEO_RANGE` for most encoded video).
    """
    means = block_means(frames, n_blocks, levels.light)
    saturated, clipped, last_saturated = saturated_blocks(frames, state.saturated, n_blocks, levels)
    profiles = row_profiles(block_log_changes(means, state.means), saturated, clipped, rank)
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


def robust_sd(values, axis=-1, ignore_nan: bool = False):
    """Standard deviation estimated from the median absolute deviation (1.4826 * MAD); NaNs left out with ``ignore_nan``."""
    centre = selection.median(values, axis=axis, keepdims=True, ignore_nan=ignore_nan)
    return 1.4826 * selection.median(jnp.abs(values - centre), axis=axis, ignore_nan=ignore_nan)


#: Tukey biweight constant, in robust sds: 95 % efficiency for Gaussian residuals.
BIWEIGHT = 4.685


def _biweight_inside(residual, scale):
    """``1 - u²`` of ``u = residual / (BIWEIGHT scale)`` where ``|u| < 1``, else 0: what the Tukey biweight is made of."""
    u = residual / (BIWEIGHT * scale)
    return jnp.where(jnp.abs(u) < 1, 1 - u * u, 0.0)


def biweight(residual, scale):
    """Tukey biweight weights of ``residual`` for a robust ``scale`` (sd): 0 beyond :data:`BIWEIGHT` sds."""
    return _biweight_inside(residual, scale) ** 2


def biweight_loss(residual, scale):
    """Tukey biweight loss of ``residual`` for a robust ``scale`` (sd), in [0, 1]: 1 beyond :data:`BIWEIGHT` sds (the
    loss whose weights are :func:`biweight`)."""
    return 1 - _biweight_inside(residual, scale) ** 3


#: Row-to-row differences (about, at least) from which :func:`row_noise` estimates a frame's noise. Thresholds take the
#: median over a window's frames (:func:`flash_thresholds`), so a frame's estimate need not be precise (128 differences:
#: ~15 %; the median of 1000 frames: ~0.5 %); all of a 720-row frame's took 3/4 of the time of scoring frames.
NOISE_DIFFERENCES = 128


def row_noise(change):
    """Per-frame noise sd of the row changes from row-to-row differences, ``(n,)``: every k-th difference, k = rows //
    :data:`NOISE_DIFFERENCES` (all in frames of fewer rows)."""
    every = max(1, change.shape[-1] // NOISE_DIFFERENCES)
    return robust_sd(jnp.diff(change, axis=-1)[:, ::every]) / jnp.sqrt(2.0)


def box_step(change, half_width: int, xp=jnp):
    """Mean of ``half_width`` rows from r on minus mean of the ``half_width`` rows above r, ``(n, rows)``.

    Rows within ``half_width`` of the top or bottom get 0. ``xp`` is the array module: ``jax.numpy``
    inside compiled kernels, ``numpy`` for the few small arrays of one candidate (JAX would dispatch
    and compile every operation of a new shape eagerly: ~6 ms a call).
    """
    n, rows = change.shape
    if rows < 2 * half_width:
        return xp.zeros((n, rows), change.dtype)
    cumulative = xp.concatenate([xp.zeros((n, 1), change.dtype), xp.cumsum(change, axis=-1)], axis=-1)
    # rows r = half_width .. rows - half_width: (sum of rows r .. r+h-1) - (sum of rows r-h .. r-1), in slices
    h = half_width
    inside = cumulative[:, 2 * h :] - 2 * cumulative[:, h : rows - h + 1] + cumulative[:, : rows - 2 * h + 1]
    return xp.pad(inside / half_width, ((0, 0), (half_width, half_width - 1)))


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


@jax.jit
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


#: Frames scored per JAX call (a fixed shape, so scoring compiles once per frame height).
SCORE_BATCH = 256


def in_batches(kernel, change: np.ndarray):
    """``kernel`` (a JAX function of ``(SCORE_BATCH, rows)``) over all frames of ``change`` in fixed-size batches.

    Returns the kernel's output (an array or a NamedTuple of arrays) for the frames, as NumPy.
    """
    n, rows = change.shape
    parts = []
    for start in range(0, n, SCORE_BATCH):
        batch = change[start : start + SCORE_BATCH]
        padded = np.zeros((SCORE_BATCH, rows), np.float32)
        padded[: batch.shape[0]] = batch
        out = kernel(jnp.asarray(padded))
        parts.append(jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[: batch.shape[0]], out))
    if not parts:
        empty = kernel(jnp.zeros((SCORE_BATCH, rows), np.float32))
        return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[:0], empty)
    return jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves), *parts)


def score_frames(change: np.ndarray) -> FrameScores:
    """:func:`frame_scores` over all frames, in fixed-size batches."""
    return in_batches(frame_scores, change)
