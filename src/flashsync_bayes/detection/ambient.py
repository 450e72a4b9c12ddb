"""The ambient light's change from frame to frame: auto-exposure gain and mains-flicker bands.

Indoor lamps flicker at twice the mains frequency (100 or 120 Hz). Each row integrates that light
over its own exposure window, so a rolling shutter paints horizontal bands of ``ν`` cycles per row
(``ν = f * time per row``) whose phase advances by ``2π f T`` every frame period ``T`` (FACTS.md).
Without a flash, the median row profile of frame k (log brightness change, see
:class:`~flashsync_bayes.detection.profiles.RowProfiles`) is the ambient change

    l_k(r) = g_k + w_k(r) - w_{k-1}(r),    w_k(r) = Σ_h Re[z_{k,h} e^{2πihνr}]  (h = 1 .. H),

with ``g_k`` the change of the camera's gain (auto-exposure latches one gain per frame) and
``w_k`` the log flicker level the rows of frame k saw; the complex amplitudes turn by a fixed
``ρ = e^{2πi f T}`` per frame period (``ρ^h`` for harmonic h), slowly varying with the
mains frequency and the exposure. Lamps' light is no pure sinusoid: a filament's or a tube's
has a second harmonic, an LED driver that switches its current a square wave's third (a third
of the fundamental; each row's exposure averages it away the more, the longer it is). ``H`` is
:func:`harmonics`: 3 where a frame holds enough cycles to tell them apart, else 2.

The model is fitted in three steps, none of which lets a flash frame explain itself:

1. :func:`band_frequency`: ``ν`` from the spectrum of many frames' median profiles;
2. :func:`frame_coefficients`: per frame, a robust least-squares fit of the change's
   sinusoids (pure JAX, vmapped over frames);
3. :func:`predict_flicker`: ``ρ`` from the periodogram of consecutive frames' changes, then
   every frame's flicker predicted from the median of its neighbours' (leave-one-out), so a
   flash in frame k does not bend it.

:func:`flash_profiles` then divides the predicted change out of the rising and falling
profiles and turns them into the relative change the edge model expects; :func:`frame_gain`
gives each frame's gain change (the mode of its median profile), against which rows above a
leading edge count as quiet. What the fit learns (:class:`Flicker`: band period in rows, phase
step per frame) is a ruler for the time per row. Where the bands creep, moving a few thousandths of
a cycle a frame, :func:`creeping_flicker` measures that ruler from the change over many frames.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flashsync_bayes.detection import selection
from flashsync_bayes.detection.profiles import RowProfiles, biweight, median_of_kept_columns, rank_statistics, robust_sd

#: Flicker cycles per frame height searched: 100-120 Hz at 24-120 fps with readout fractions
#: 0.45-1 give 0.37-5 cycles (slower ones are hard to tell from slow changes of the light).
CYCLES_PER_HEIGHT = (0.4, 6.5)
#: Step of that search (cycles per frame height); the peak is refined between steps.
CYCLES_STEP = 0.02
#: Frames and row bins used to find the band frequency.
SEARCH_FRAMES = 256
SEARCH_BINS = 192
#: A band frequency counts only if its sinusoid explains at least this share of the profiles'
#: variance and this many times the median share over all frequencies searched.
MIN_EXPLAINED = 0.1
MIN_PEAK_RATIO = 4.0
#: Share of the variance by which ``(ν/2, ν)`` must beat ``(ν, 2ν)`` for ν/2 to be the fundamental.
HARMONIC_MARGIN = 0.05
#: The band frequency is refined within this share of the search's (on each side), in ``REFINE_STEPS`` steps a side.
REFINE_SPAN = 0.15
REFINE_STEPS = 60
#: Consecutive groups of the searched frames whose refined band frequencies give its standard error,
#: measured where each group holds at least ``MIN_GROUP_FRAMES`` frames.
ERROR_GROUPS = 4
MIN_GROUP_FRAMES = 16
#: Frames on each side whose flicker predicts a frame's.
NEIGHBOURS = 15
#: Frames whose flicker change ``|1 - ρ^-n|`` is smaller than this say little about the phase.
MIN_LEVER = 0.3
#: Longest lag (frames) over which bands that creep (barely move from one frame to the next) are measured, and the
#: fewest frame pairs a lag must leave (:func:`creeping_flicker`).
MAX_CREEP_LAG = 512
MIN_CREEP_PAIRS = 64
#: The search for bands that creep shortens the lag by this factor until it finds them.
CREEP_LAG_FACTOR = 4
#: The phase the bands travel over the lag chosen for the measurement (cycles; 0.5 changes the light most).
CREEP_TRAVEL = 0.5
#: Smallest :func:`band_lever` over the lag for bands that creep to count: over many frames the scene changes far more
#: than between two, and the bands must change the light at least by their own level (a sixth of a cycle's travel).
MIN_CREEP_LEVER = 1.0
#: Smallest amplitude of the log level for bands that creep to count: fainter ones (an exposure of nearly a whole
#: flicker period) drown in the scene's change over the lag (at 0.010 a period came out 2.7 times the true one).
MIN_CREEP_AMPLITUDE = 0.02
#: The period is measured again over this share of the lag: where the two disagree, the scene's change over the lag
#: leans the bands' fit, and their difference joins the period's error.
OTHER_LAG = 2.0 / 3.0
#: Frame pairs whose change holds more than this many times the median pair's energy are left out of the search for
#: bands that creep (a flash lights one frame of a few pairs each: with ten flashes in 300 frames, a quarter of them).
QUIET_ENERGY = 4.0
#: Largest change of the gain between frames taken for auto-exposure (relative): AE loops move
#: the gain by a share of the metering error per frame, a dip of ~15 % over a few frames.
MAX_GAIN_CHANGE = 0.25
#: Iterations of the per-frame robust fit.
ROBUST_ITERATIONS = 4
#: Harmonics of the band frequency in the flicker model: ν and 2ν, and 3ν where a frame holds at least
#: ``THIRD_HARMONIC_CYCLES`` cycles of ν (with fewer, three harmonics and a slope are too alike to be told apart: from
#: one cycle on, a 1.01-cycle camera's band frequency came out 15 % low; always, a 0.86-cycle one's 25 % off).
HARMONICS = 2
THIRD_HARMONIC_CYCLES = 1.5


def harmonics(cycles_per_row: float, rows: int) -> int:
    """Harmonics of the flicker model for bands of ``cycles_per_row`` in frames of ``rows`` rows (see :data:`HARMONICS`)."""
    return HARMONICS + int(cycles_per_row * rows >= THIRD_HARMONIC_CYCLES)


class Flicker(NamedTuple):
    """What the flicker fit of one camera learnt.

    Attributes:
        cycles_per_row: band frequency ν (0 if no flicker was found).
        phase_step: phase advance of the bands per frame period, cycles in [0, 1).
        amplitude: median amplitude of the fundamental's log level ``|z|``.
        cycles_per_row_sd: standard error of ν (cycles per row; 0 where not measured).
        lag_frames: frames between the two profiles whose change measured ν: 1, or more for bands that creep
            (:func:`creeping_flicker`).
    """

    cycles_per_row: float
    phase_step: float
    amplitude: float
    cycles_per_row_sd: float = 0.0
    lag_frames: float = 1.0

    @property
    def moves(self) -> bool:
        """Whether bands were found that change the light over :attr:`lag_frames` (:func:`band_lever`)."""
        return self.cycles_per_row > 0 and band_lever(self.phase_step, self.lag_frames) >= MIN_LEVER

    @property
    def period_rows(self) -> float:
        """Band period in rows, ``(1/f) / time per row``; NaN without flicker."""
        return 1.0 / self.cycles_per_row if self.cycles_per_row > 0 else float("nan")

    @property
    def period_rows_sd(self) -> float:
        """Standard error of :attr:`period_rows` (rows); NaN where ν or its error was not measured."""
        measured = self.cycles_per_row > 0 and self.cycles_per_row_sd > 0
        return self.cycles_per_row_sd / self.cycles_per_row**2 if measured else float("nan")


NO_FLICKER = Flicker(0.0, 0.0, 0.0)


def turn_cycles(turn: complex) -> float:
    """The phase of a complex turn ``e^{2πi s}`` as cycles ``s`` in [0, 1)."""
    return float(np.angle(turn) / (2 * np.pi)) % 1.0


def wrapped_cycles(cycles):
    """Cycles wrapped into [-0.5, 0.5): the signed distance from the nearest whole cycle."""
    return (cycles + 0.5) % 1.0 - 0.5


def band_lever(phase_step, frames=1.0):
    """``|1 - e^{2πi s n}|``: the share of the bands' level by which they change the light over ``frames`` ``n`` when
    their phase advances ``phase_step`` ``s`` (cycles) a frame; 0 for bands that stand still, 2 at half a cycle."""
    return np.abs(1.0 - np.exp(2j * np.pi * np.nan_to_num(np.asarray(phase_step, np.float64)) * np.asarray(frames)))


def row_bins(profiles: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``profiles`` ``(n, rows)`` over consecutive row bins, ``(n, bins)``, and the bins' centre rows."""
    rows = profiles.shape[1]
    size = max(1, -(-rows // n_bins))
    n_full = rows // size
    binned = profiles[:, : n_full * size].reshape(profiles.shape[0], n_full, size).mean(axis=2)
    return binned, (np.arange(n_full) + 0.5) * size - 0.5


def _detrended(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``values`` ``(..., bins)`` minus their least-squares line over ``centres``: a slow change of the light is no band."""
    trend = np.stack([np.ones_like(centres), centres - centres.mean()], axis=1)
    solution, *_ = np.linalg.lstsq(trend, np.moveaxis(values, -1, 0).reshape(centres.size, -1), rcond=None)
    return values - (trend @ solution).reshape((centres.size,) + values.shape[:-1]).transpose(*range(1, values.ndim), 0)


def _projected_share(binned: np.ndarray, centres: np.ndarray, cycles_per_row: np.ndarray) -> np.ndarray:
    """Median over frames of the share of a frame's (detrended) variance some sinusoids explain.

    ``cycles_per_row`` ``(n_models, n_sinusoids)``: the frequencies of each model, each sinusoid
    with its own phase per frame. Returns ``(n_models,)``. Per frame and then the median, so that
    the few frames with a flash (large, band-shaped changes) cannot pass for flicker.
    """
    centred = _detrended(binned, centres)
    total = np.maximum(np.sum(centred**2, axis=1), 1e-30)
    phase = 2 * np.pi * np.asarray(cycles_per_row, dtype=np.float64)[:, :, None] * centres
    basis = _detrended(np.concatenate([np.cos(phase), np.sin(phase)], axis=1), centres)  # (models, 2k, bins)
    # a least-squares fit's explained energy |B b|^2 = c' (B'B)^+ c with c = B'y, for all models at once
    inner = basis @ centred.T
    explained = np.sum(inner * (np.linalg.pinv(basis @ np.swapaxes(basis, 1, 2), hermitian=True) @ inner), axis=1)
    return np.median(explained / total, axis=1)


def band_frequency(median: np.ndarray) -> tuple[float, float]:
    """Flicker band frequency ν and its standard error (cycles per row) in median profiles ``(n_frames, rows)``; 0s if none.

    The frequency whose sinusoid explains most of the frames' variance (each frame its own phase),
    refined between grid steps; its half instead where the pair ``(ν/2, ν)`` explains clearly
    more than ``(ν, 2ν)`` (a second harmonic stronger than the fundamental); 0 unless it explains
    :data:`MIN_EXPLAINED` of the variance and :data:`MIN_PEAK_RATIO` times the median share. Then
    refined to where the :func:`harmonics` that frames are fitted with explain most (within
    :data:`REFINE_SPAN`). The error is the spread of that refinement over :data:`ERROR_GROUPS`
    consecutive groups of the frames (whose scenes differ most), divided by the square root of their
    number (0 with fewer frames).
    """
    n, rows = median.shape
    if n < 3 or rows < 16:
        return 0.0, 0.0
    chosen = np.unique(np.linspace(1, n - 1, min(SEARCH_FRAMES, n - 1)).astype(int))
    binned, centres = row_bins(np.asarray(median[chosen], dtype=np.float64), SEARCH_BINS)
    grid = np.arange(CYCLES_PER_HEIGHT[0], CYCLES_PER_HEIGHT[1] + CYCLES_STEP / 2, CYCLES_STEP)
    shares = _projected_share(binned, centres, grid[:, None] / rows)
    best = int(np.argmax(shares))
    if shares[best] < MIN_EXPLAINED or shares[best] < MIN_PEAK_RATIO * np.median(shares):
        return 0.0, 0.0
    cycles = grid[best] + CYCLES_STEP * _peak_offset(shares, best)
    if cycles / 2 >= CYCLES_PER_HEIGHT[0]:
        pairs = np.array([[cycles / 2, cycles], [cycles, 2 * cycles]]) / rows
        with_half, with_double = _projected_share(binned, centres, pairs)
        if with_half > with_double + HARMONIC_MARGIN:
            cycles /= 2
    refined = _refined_cycles(binned, centres, cycles, rows)
    if binned.shape[0] < ERROR_GROUPS * MIN_GROUP_FRAMES:
        return refined / rows, 0.0
    groups = [_refined_cycles(part, centres, cycles, rows) for part in np.array_split(binned, ERROR_GROUPS)]
    # the spread of G estimates has G - 1 degrees of freedom: the error is t-distributed with that scale,
    # and its Gaussian stand-in needs the t's variance, (G - 1) / (G - 3) times the scale's square
    dof = ERROR_GROUPS - 1
    spread = np.std(groups, ddof=1) / np.sqrt(ERROR_GROUPS) * np.sqrt(dof / (dof - 2))
    return refined / rows, float(spread / rows)


def _refined_cycles(binned: np.ndarray, centres: np.ndarray, cycles: float, rows: int) -> float:
    """Band cycles per frame height near ``cycles`` where the flicker model's :func:`harmonics` explain most of ``binned``.

    A single sinusoid leans towards the harmonic's and the slow light's frequencies where a frame
    holds about one cycle (9 % at 0.86 cycles); the model's own harmonics do not.
    """
    fine = cycles * (1.0 + REFINE_SPAN * np.linspace(-1.0, 1.0, 2 * REFINE_STEPS + 1))
    orders = np.arange(1, harmonics(cycles / rows, rows) + 1)
    shares = _projected_share(binned, centres, np.outer(fine, orders) / rows)
    best = int(np.argmax(shares))
    return float(fine[best] + cycles * REFINE_SPAN / REFINE_STEPS * _peak_offset(shares, best))


def _peak_offset(values: np.ndarray, peak: int) -> float:
    """Offset in [-0.5, 0.5] grid steps of the parabola through ``values`` around its maximum at ``peak`` (0 at an end)."""
    if not 0 < peak < values.size - 1:
        return 0.0
    return _vertex_offset(*values[peak - 1 : peak + 2])


def _vertex_offset(left: float, mid: float, right: float) -> float:
    """Offset in [-0.5, 0.5] grid steps from ``mid`` of the vertex of the parabola through three values a step apart
    (0 unless it opens downwards)."""
    curvature = left - 2 * mid + right
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0


def _sinusoids(phase, n_harmonics: int):
    """``[cos φ, sin φ, ..., cos Hφ, sin Hφ]`` of ``n_harmonics`` harmonics, stacked on a new first axis ``(2 H, ...)``."""
    return jnp.stack([f(h * phase) for h in range(1, n_harmonics + 1) for f in (jnp.cos, jnp.sin)])


def _design(centres, cycles_per_row, n_harmonics: int):
    """Columns ``[1, cos φ, sin φ, ..., cos Hφ, sin Hφ, slope]`` of the band sinusoids at row ``centres``, ``(bins, 2 H + 2)``."""
    phase = 2 * jnp.pi * cycles_per_row * centres
    slope = (centres - centres.mean()) / centres.shape[0]
    return jnp.concatenate([jnp.ones_like(phase)[None], _sinusoids(phase, n_harmonics), slope[None]]).T


def _robust_fit(values, design):
    """Tukey-biweight least squares of one frame's binned profile ``(bins,)``: coefficients ``(2 H + 2,)``."""

    def step(coefficients, _):
        residual = values - design @ coefficients
        weight = biweight(residual, robust_sd(residual) + 1e-9) + 1e-6
        normal = design.T @ (weight[:, None] * design) + 1e-9 * jnp.eye(design.shape[1])
        return jnp.linalg.solve(normal, design.T @ (weight * values)), None

    start = jnp.linalg.lstsq(design, values)[0]
    coefficients, _ = jax.lax.scan(step, start, None, length=ROBUST_ITERATIONS)
    return coefficients


@partial(jax.jit, static_argnames=("n_harmonics",))
def _frame_coefficients(binned, centres, cycles_per_row, n_harmonics: int):
    """:func:`_robust_fit` of every frame ``(n, bins)``: ``(n, 2 H + 2)``."""
    design = _design(centres, cycles_per_row, n_harmonics)
    return jax.vmap(_robust_fit, in_axes=(0, None))(binned, design)


def frame_coefficients(median: np.ndarray, cycles_per_row: float) -> np.ndarray:
    """Per frame ``[g, a1, b1, ..., aH, bH, s]`` ``(n, 2 H + 2)``: gain, band sinusoids and slope of its median profile.

    A robust fit of ``g + Σ_h (ah cos hφ + bh sin hφ) + s (r - r̄) / R`` with ``φ = 2π ν r`` and
    :func:`harmonics` ``H``; the slope takes slow changes of the light over the frame's readout.
    """
    binned, centres = row_bins(np.asarray(median, dtype=np.float32), SEARCH_BINS)
    n_harmonics = harmonics(cycles_per_row, median.shape[1])
    coefficients = _frame_coefficients(jnp.asarray(binned), jnp.asarray(centres), cycles_per_row, n_harmonics)
    return np.asarray(coefficients, dtype=np.float64)


#: Zero-padding factor of the periodogram in :func:`_rotation` (its grid step: a quarter of the resolution).
PERIODOGRAM_PADDING = 4
#: Change amplitudes larger than this many times their median are clipped to it before the
#: periodogram (a flash frame's fit is no flicker).
CLIP_MEDIANS = 3.0


def _rotation(change: np.ndarray, ticks: np.ndarray, step: np.ndarray) -> complex:
    """Unit ``ρ`` by which consecutive frames' complex change amplitudes turn: the periodogram's peak.

    The changes of frames that follow their predecessor (``step`` 1) form ``c_k ∝ ρ^m_k`` over
    their tick numbers ``m_k``: a complex sinusoid in the frame index whose frequency, the phase
    step, is the peak of ``|Σ c_k ρ^-m_k|``. Unlike the pulse-pair angle of consecutive products,
    the peak is not pulled by a part of the changes that does not turn with the bands (gain
    changes and slow light leaking into a band of barely one cycle per frame, moving objects),
    nor by a few frames with a flash (clipped to :data:`CLIP_MEDIANS` median amplitudes).
    """
    usable = (step == 1) & np.isfinite(change)
    if np.count_nonzero(usable) < 2:
        return 1.0 + 0.0j
    values, index = change[usable], (ticks[usable] - ticks[usable].min()).astype(np.int64)
    size = np.abs(values)
    limit = CLIP_MEDIANS * max(float(np.median(size)), 1e-30)
    values = values * np.minimum(1.0, limit / np.maximum(size, 1e-30))
    n_grid = PERIODOGRAM_PADDING * (1 << int(index.max() + 1).bit_length())
    series = np.zeros(n_grid, complex)
    np.add.at(series, index, values)
    power = np.abs(np.fft.fft(series)) ** 2
    peak = int(np.argmax(power))
    offset = _vertex_offset(power[peak - 1], power[peak], power[(peak + 1) % n_grid])  # the spectrum wraps around
    return complex(np.exp(2j * np.pi * (peak + offset) / n_grid))


#: A missing complex value: NaN in both parts (``nan + 0j`` would count as an imaginary 0).
MISSING = complex(np.nan, np.nan)


def _neighbour_median(values: np.ndarray, half_width: int) -> np.ndarray:
    """Median of each entry's neighbours within ``half_width`` (itself left out, NaNs ignored), complex ``(n,)``."""
    n = values.size
    padded = np.concatenate([np.full(half_width, MISSING), values, np.full(half_width, MISSING)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_width + 1)
    windows = np.delete(windows, half_width, axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        real = np.nanmedian(windows.real, axis=1)
        imag = np.nanmedian(windows.imag, axis=1)
    out = real + 1j * imag
    return np.where(np.isfinite(out), out, 0.0)[:n]


def predict_flicker(coefficients: np.ndarray, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, complex]:
    """Flicker of every frame predicted from its neighbours: ``(change (n, 2 H), level (n, 2 H), ρ)``.

    ``coefficients`` from :func:`frame_coefficients`; ``ticks`` the frames' tick numbers on their
    frame clock (consecutive frames differ by 1, dropped frames leave gaps). Returns the predicted
    change coefficients ``[a1, b1, ..., aH, bH]``, the log flicker level ``w_k`` as coefficients of the
    same sinusoids, and the per-frame rotation ``ρ`` of the fundamental.
    """
    n, n_harmonics = coefficients.shape[0], (coefficients.shape[1] - 2) // 2
    step = np.concatenate([[0], np.diff(ticks)]).astype(np.int64)
    change = [coefficients[:, 2 * h - 1] - 1j * coefficients[:, 2 * h] for h in range(1, n_harmonics + 1)]
    rho = _rotation(change[0], ticks, step)
    predicted_change, level = np.zeros((n, 2 * n_harmonics)), np.zeros((n, 2 * n_harmonics))
    for h, observed in enumerate(change, start=1):
        turn = rho**h
        lever = 1.0 - turn ** (-step.astype(np.float64))
        lever[0] = 0.0
        usable = np.abs(lever) >= MIN_LEVER
        # de-rotated state u_k = z_k ρ^-m_k, constant but for slow mains drift and exposure changes
        state = np.where(usable, observed / np.where(usable, lever, 1.0), MISSING) * turn ** (-ticks.astype(np.float64))
        smooth = _neighbour_median(state, NEIGHBOURS) * turn ** ticks.astype(np.float64)
        predicted = smooth * lever
        predicted_change[:, 2 * h - 2], predicted_change[:, 2 * h - 1] = predicted.real, -predicted.imag
        level[:, 2 * h - 2], level[:, 2 * h - 1] = smooth.real, -smooth.imag
    return predicted_change, level, rho


def fit_flicker(
    median: np.ndarray, ticks: np.ndarray, cycles_per_row: float | None = None
) -> tuple[Flicker, np.ndarray, np.ndarray]:
    """The flicker of one camera's median profiles ``(n, rows)``: ``(Flicker, change (n, 2 H), level (n, 2 H))``.

    ``cycles_per_row``: the band frequency ν (cycles per row, 0 for no flicker) to fit, e.g. one found
    earlier in the same video (its error is then not measured here: 0); None searches it in ``median``
    (:func:`band_frequency`).
    """
    n = median.shape[0]
    cycles, cycles_sd = band_frequency(median) if cycles_per_row is None else (float(cycles_per_row), 0.0)
    if cycles <= 0:
        return NO_FLICKER, *no_flicker_coefficients(n)
    change, level, rho = predict_flicker(frame_coefficients(median, cycles), ticks)
    amplitude = float(np.median(np.hypot(level[:, 0], level[:, 1])))
    return Flicker(cycles, turn_cycles(rho), amplitude, cycles_sd), change, level


def lagged_changes(level: np.ndarray, ticks: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Log level changes ``(pairs, rows)`` between frames ``lag`` ticks apart, and the earlier frames' ticks.

    ``level`` ``(n, rows)``: the frames' log levels, the sums of their median profiles (each frame's change from the
    frame before; up to one profile, which the differences cancel). Frames whose partner was dropped pair with none.
    """
    later = np.minimum(np.searchsorted(ticks, ticks + lag), ticks.size - 1)
    paired = ticks[later] == ticks + lag
    return level[later[paired]] - level[paired], ticks[paired]


def _quiet_pairs(changes: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame pairs of :func:`lagged_changes` whose change (detrended in the rows) holds at most
    :data:`QUIET_ENERGY` times the median pair's energy: bands that creep change every pair alike, a flash (in either
    frame, a few pairs each) many times more."""
    binned, centres = row_bins(changes, SEARCH_BINS)
    energy = np.sum(_detrended(binned, centres) ** 2, axis=1)
    quiet = energy <= QUIET_ENERGY * np.median(energy)
    return changes[quiet], starts[quiet]


def _band_phasors(changes: np.ndarray, cycles_per_row: float) -> np.ndarray:
    """Complex amplitudes ``a - i b`` ``(n,)`` of the sinusoid ``a cos φ + b sin φ`` (``φ = 2π ν r``) in each of the
    profiles ``(n, rows)``: least squares beside a line in the rows (as :func:`frame_coefficients`' fundamental, not
    robust)."""
    binned, centres = row_bins(changes, SEARCH_BINS)
    phase = 2 * np.pi * cycles_per_row * centres
    basis = _detrended(np.stack([np.cos(phase), np.sin(phase)]), centres)
    (a, b), *_ = np.linalg.lstsq(basis.T, _detrended(binned, centres).T, rcond=None)
    return a - 1j * b


def _phasor_step(phasors: np.ndarray, ticks: np.ndarray) -> float:
    """Phase step per frame (cycles in [0, 1)) by which the complex amplitudes of frames at ``ticks`` turn
    (:func:`_rotation`)."""
    return turn_cycles(_rotation(phasors, ticks, np.concatenate([[0], np.diff(ticks)])))


def _lagged_bands(level: np.ndarray, ticks: np.ndarray, lag: int):
    """``(ν, its error, changes, starts)``: the bands (:func:`band_frequency`, 0s if none or fewer than
    :data:`MIN_CREEP_PAIRS` pairs) in the quiet changes over ``lag`` frames (:func:`lagged_changes`,
    :func:`_quiet_pairs`)."""
    changes, starts = _quiet_pairs(*lagged_changes(level, ticks, lag))
    cycles, cycles_sd = band_frequency(changes) if starts.size >= MIN_CREEP_PAIRS else (0.0, 0.0)
    return cycles, cycles_sd, changes, starts


def creeping_flicker(median: np.ndarray, ticks: np.ndarray) -> Flicker:
    """Bands that creep, measured from the change over many frames; :data:`NO_FLICKER` where none is found.

    Where the frame rate is near a divisor of the lamps' (30 fps under 120 Hz, 25 under 100 Hz) the bands stand all
    but still: the mains' few hundredths of a hertz move them a few thousandths of a cycle a frame, too little for one
    frame's change to show. Over ``n`` frames they travel ``n`` steps, and the log level changes by the bands times
    :func:`band_lever`. The bands are sought (:func:`band_frequency`) in the changes over the longest lag that leaves
    half the frames paired (at most :data:`MAX_CREEP_LAG`), shortened by :data:`CREEP_LAG_FACTOR` until found, the
    pairs a flash lit left out (:func:`_quiet_pairs`); their phase step then sets the lag over which they travel
    :data:`CREEP_TRAVEL` cycles, and the changes over that lag measure ν and its error, which takes in the difference
    from the ν measured over :data:`OTHER_LAG` of that lag. Bands that travel too little over it
    (:data:`MIN_CREEP_LEVER`) or are faint (:data:`MIN_CREEP_AMPLITUDE`) count as none. ``median`` ``(n, rows)`` as
    in :func:`fit_flicker`, ``ticks`` the frames' tick numbers. A ruler only: the ambient model does not use them.
    """
    ticks = np.asarray(ticks, dtype=np.int64)
    level = np.cumsum(np.asarray(median, dtype=np.float64), axis=0)
    longest = min(MAX_CREEP_LAG, int(ticks[-1] - ticks[0]) // 2) if ticks.size else 0
    lag, cycles = longest, 0.0
    while lag >= 2 and cycles <= 0:
        cycles, _, changes, starts = _lagged_bands(level, ticks, lag)
        lag //= CREEP_LAG_FACTOR
    if cycles <= 0:
        return NO_FLICKER
    travel = abs(wrapped_cycles(_phasor_step(_band_phasors(changes, cycles), starts)))
    lag = int(np.clip(round(CREEP_TRAVEL / max(travel, 1e-9)), 1, longest))
    cycles, cycles_sd, changes, starts = _lagged_bands(level, ticks, lag)
    if cycles <= 0:
        return NO_FLICKER
    phasors = _band_phasors(changes, cycles)
    step = _phasor_step(phasors, starts)
    lever = float(band_lever(step, lag))
    if lever < MIN_CREEP_LEVER:
        return NO_FLICKER
    amplitude = float(np.median(np.abs(phasors))) / lever
    if amplitude < MIN_CREEP_AMPLITUDE:
        return NO_FLICKER
    other_cycles = _lagged_bands(level, ticks, int(round(lag * OTHER_LAG)))[0]
    if other_cycles <= 0:
        return NO_FLICKER
    cycles_sd = float(np.hypot(cycles_sd, (cycles - other_cycles) / np.sqrt(2.0)))
    return Flicker(cycles, step, amplitude, cycles_sd, float(lag))


def no_flicker_coefficients(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(change, level)`` coefficients ``(n, 2 HARMONICS)`` of ``n`` frames without flicker (zeros)."""
    return np.zeros((n, 2 * HARMONICS)), np.zeros((n, 2 * HARMONICS))


@partial(jax.jit, static_argnames=("rows",))
def flicker_rows(coefficients, cycles_per_row, rows: int):
    """``Σ_h (ah cos hφ + bh sin hφ)`` over ``rows`` rows, ``(n, rows)``, ``φ = 2π ν r``.

    With :func:`predict_flicker`'s change coefficients ``(n, 2 H)``: every row's predicted flicker log
    change; with its level coefficients: every row's log flicker level.
    """
    phase = 2 * jnp.pi * cycles_per_row * jnp.arange(rows, dtype=jnp.float32)
    return coefficients.astype(jnp.float32) @ _sinusoids(phase, coefficients.shape[1] // 2)


@jax.jit
def flash_profiles(log_change, flicker_change, flicker_level):
    """Relative change ``(n, rows)`` of a profile ``(n, rows)`` once the predicted flicker change is divided out.

    ``exp(l - flicker change) - 1`` is the light a flash added relative to the ambient light of
    the row; times the row's flicker level ``exp(w_k)`` it is relative to the lamps' mean, as the
    edge model expects (flicker would otherwise modulate a flash band's height along the rows).
    ``flicker_change`` and ``flicker_level`` are :func:`flicker_rows` of the change and level coefficients.
    """
    return jnp.expm1(log_change - flicker_change) * jnp.exp(flicker_level)


#: Frames per run in which each column block's share of the lamps' flicker is fitted (least squares), and runs on each
#: side whose fits' median is a frame's share: it follows an object that passes in front of a window for a second, or a
#: window that saturates for a while, and a flash or a moving edge spoils one run's fit, not the median.
SHARE_RUN_FRAMES = 4
SHARE_RUNS_AROUND = 4
#: A fit (a run's, or all frames') counts only where its slope's sd (the blocks' noise over the root sum of squares of
#: the flicker change) is at most this: a run whose bands barely move, or whose block was saturated, says little of the
#: block's share, and a share fitted to noise would add noise.
MAX_SHARE_SD = 0.25
#: Blocks are divided only where some block's share over the whole window differs from the median's by this much (less
#: changes the blocks by under a tenth of the flicker).
MIN_SHARE_EXCESS = 0.1
#: That share is fitted on every this-many-th frame (a window's share stands over hundreds of frames).
SHARE_CHECK_EVERY = 4


def _slopes(f, difference, noise, axis: int):
    """``(slope, counted)``: least-squares slopes ``Σ f d / Σ f²`` of ``difference`` on ``f`` summed over ``axis``, and
    whether each counts (see :data:`MAX_SHARE_SD`)."""
    squares = jnp.sum(f * f, axis=axis)
    return jnp.sum(f * difference, axis=axis) / jnp.maximum(squares, 1e-30), squares * MAX_SHARE_SD**2 >= noise**2


def _in_runs(values, run: int):
    """``values`` ``(n, ...)`` as runs of ``run`` frames ``(runs, run, ...)``, the last run padded with zeros."""
    runs = -(-values.shape[0] // run)
    padded = jnp.pad(values, ((0, runs * run - values.shape[0]),) + ((0, 0),) * (values.ndim - 1))
    return padded.reshape((runs, run) + values.shape[1:])


def _run_shares(f, difference, noise, around: int):
    """Median over each run's ``around`` runs on each side of the slopes of ``difference`` on ``f``, both in runs
    ``(runs, run, ...)`` (:func:`_in_runs`), of the runs whose fit counts: ``(runs, ...)`` (0 where none does)."""
    runs = f.shape[0]
    slopes, counted = (
        jnp.pad(v, ((around, around),) + ((0, 0),) * (v.ndim - 1)) for v in _slopes(f, difference, noise, axis=1)
    )  # runs beyond the ends do not count
    shifts = range(2 * around + 1)
    return median_of_kept_columns([slopes[k : k + runs] for k in shifts], [~counted[k : k + runs] for k in shifts])


def _share_fit_inputs(rows: RowProfiles, flicker_change):
    """``(f, difference, noise)`` of the share fits: the flicker change and each block's difference from the median,
    ``(n, rows, blocks)``, both 0 where a block is saturated (stored as the median, it counts in no fit), and the blocks'
    noise about the median (robust sd of a subsample)."""
    free = rows.blocks != rows.median.astype(jnp.float16)[..., None]
    f = jnp.where(free, flicker_change.astype(jnp.float32)[..., None], 0.0)
    difference = jnp.where(free, rows.blocks.astype(jnp.float32) - rows.median.astype(jnp.float32)[..., None], 0.0)
    return f, difference, robust_sd(difference[::8, ::8].ravel())


@jax.jit
def _share_off(rows: RowProfiles, flicker_change):
    """Whether some block's share of some row, fitted over every :data:`SHARE_CHECK_EVERY`-th frame, differs from the
    median's by :data:`MIN_SHARE_EXCESS` or more (see :func:`lamp_share_divided`)."""
    every = slice(None, None, SHARE_CHECK_EVERY)
    f, difference, noise = _share_fit_inputs(RowProfiles(*(r[every] for r in rows)), flicker_change[every])
    slopes, counted = _slopes(f, difference, noise, axis=0)
    return jnp.any(counted & (jnp.abs(slopes) >= MIN_SHARE_EXCESS))


@partial(jax.jit, static_argnames=("rank",))
def _share_divided(rows: RowProfiles, flicker_change, rank: int) -> RowProfiles:
    """:func:`lamp_share_divided` where some block's share is off (every row is fitted on its own)."""
    f, difference, noise = _share_fit_inputs(rows, flicker_change)
    f, difference = (_in_runs(v, SHARE_RUN_FRAMES) for v in (f, difference))
    excess = jnp.maximum(_run_shares(f, difference, noise, SHARE_RUNS_AROUND), -1.0)[:, None] * f  # (runs, run, ...)
    blocks = rows.blocks.astype(jnp.float32) - excess.reshape((-1,) + f.shape[2:])[: rows.blocks.shape[0]]
    return RowProfiles(rows.median, *rank_statistics(blocks, rank), blocks.astype(jnp.float16))


def lamp_share_divided(rows: RowProfiles, flicker_change, rank: int) -> RowProfiles:
    """``rows`` with each column block's own share of the flicker change taken off its block changes, and their rank
    statistics again (the median as it was: the flicker is read from it).

    The bands are the lamps' light: a block lit by daylight through a window, or by a lamp that does not flicker,
    changes by less (share 0: not at all) than the median ``f`` ``(n, rows)`` of :func:`flicker_rows`, and the rank
    statistics would see the rest as bands stepping in those blocks (where the window spans ``rank`` blocks, as high
    as the flicker). Block ``b`` of row ``r`` changes by ``(1 + e) f``, ``e`` the slope of its difference from the
    median on ``f`` (:func:`_run_shares`: :data:`SHARE_RUN_FRAMES`, :data:`SHARE_RUNS_AROUND`), kept at ``e >= -1``
    (no negative light). Saturated blocks, stored as the median
    (:func:`~flashsync_bayes.detection.profiles.row_profiles`), stay so and count in no fit. Takes ``e f`` off the
    blocks, which keep ``f`` like the median (the evidence divides it out of all alike). ``rows`` as they are unless
    some block's share of some row over all the frames is :data:`MIN_SHARE_EXCESS` off the median's
    (:func:`_share_off`); then every row is fitted (fitting only those rows and a few beside them saves time but
    steps where divided and undivided rows meet: with 4 rows beside, an edge there came out 3.7 rows late, 1.7 with all).
    """
    if not bool(_share_off(rows, flicker_change)):
        return rows
    return _share_divided(rows, flicker_change, rank)


def _shorth_midpoint(values):
    """Midpoint of the shortest interval holding half of ``values`` ``(rows,)``: a robust mode."""
    ordered = selection.sort(values)
    half = values.shape[0] // 2
    widths = ordered[half:] - ordered[: values.shape[0] - half]
    start = jnp.argmin(widths)
    return 0.5 * (ordered[start] + ordered[start + half])


@jax.jit
def frame_gain(median_relative):
    """Each frame's gain change ``(n,)``: the mode of its relative median profile ``(n, rows)``.

    Auto-exposure changes the whole frame alike, while a flash changes the rows below its edge.
    A mode beyond :data:`MAX_GAIN_CHANGE` is a light lighting most rows, not the gain: 0 then.
    """
    gain = jax.vmap(_shorth_midpoint)(median_relative)
    return jnp.where(jnp.abs(gain) <= MAX_GAIN_CHANGE, gain, 0.0)
