"""Synchronized time of any (camera, frame, row), its inverse, frame clocks and frame tables.

Pure NumPy functions on arrays (DESIGN §2): a stored row ``r`` of a frame with (snapped) timestamp
``p`` of a camera maps to reference time ``t_ref = drift * p + shift_ms + r * time_per_row_ms``.

*Frame time convention.* Where a whole frame needs one time (the synchronized frame table), this
module uses the reference time of the frame's **middle stored row** ``(height - 1) / 2``: cameras
with different resolutions and readout speeds are then compared at the middle of their readouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

#: Largest residual RMS of the pts around a fitted regular clock, as a fraction of its period,
#: for the clock to be accepted (uniformly irregular pts give about 0.29).
CLOCK_RMS_FRACTION = 0.12
#: Residuals beyond this fraction of the period count as outliers ...
CLOCK_OUTLIER_FRACTION = 0.35
#: ... and at most this share of the frames may be outliers.
CLOCK_MAX_OUTLIER_SHARE = 0.01
#: Timestamps within this of a regular clock (ms; float64 round-off of hour-long ms times is ~1e-11)
#: are exact: the clock then carries no uncertainty.
EXACT_CLOCK_MS = 1e-9


class FrameClock(NamedTuple):
    """A regular frame clock in a camera's own time: ticks at ``origin_ms + k * period_ms``.

    The clock is a least-squares line through the timestamps, so it carries their noise (rounding
    to 1/600 s or whole ms, jitter): the time of tick ``k`` has the standard deviation
    ``sqrt(centre_sd_ms² + ((k - centre_tick) * period_sd_ms)²)`` around the sensor's true clock.

    Attributes:
        origin_ms: time of tick 0, the tick nearest the first frame (camera ms).
        period_ms: frame period (camera ms).
        centre_tick: tick at which the fitted time and period are uncorrelated (mean tick).
        centre_sd_ms: sd of the clock's time at ``centre_tick`` (ms).
        period_sd_ms: sd of the period (ms).
    """

    origin_ms: float
    period_ms: float
    centre_tick: float = 0.0
    centre_sd_ms: float = 0.0
    period_sd_ms: float = 0.0

    @property
    def centre_ms(self) -> float:
        """Clock time (ms) at :attr:`centre_tick`."""
        return self.origin_ms + self.centre_tick * self.period_ms


def _fit_ticks(pts_ms: np.ndarray, period_ms: float, origin_ms: float):
    """Tick numbers ``(n,)`` of the pts and the least-squares clock ``(origin_ms, period_ms)`` on them."""
    ticks = np.round((pts_ms - origin_ms) / period_ms)
    ticks -= ticks[0]
    if np.unique(ticks).size < 2:
        return ticks, origin_ms, period_ms
    slope, intercept = np.polyfit(ticks, pts_ms, 1)
    return ticks, float(intercept), float(slope)


def estimate_frame_clock(pts_ms, nominal_period_ms: float | None = None) -> FrameClock | None:
    """Regular clock ``FrameClock(origin_ms, period_ms)`` the pts scatter around, or None if irregular.

    Handles jitter of a few ms, whole-ms rounding and dropped frames (skipped ticks). Ticks are
    assigned on a growing prefix of the frames so that a slightly wrong first period cannot slip a
    tick; the clock is rejected (None) when the residual RMS exceeds ``CLOCK_RMS_FRACTION`` of the
    period or more than ``CLOCK_MAX_OUTLIER_SHARE`` of the frames lie further than
    ``CLOCK_OUTLIER_FRACTION`` of a period from their tick, as with variable frame rate.

    ``nominal_period_ms`` (the container's frame period) starts the search instead of the median
    step; give it for sparse pts, e.g. only the frames with flashes, seconds to minutes apart,
    whose steps are thousands of periods (it must then be within ~``0.3 / steps`` of the truth).
    """
    pts_ms = np.sort(np.asarray(pts_ms, dtype=np.float64).ravel())
    if pts_ms.size < 4 or not np.all(np.isfinite(pts_ms)):
        return None
    steps = np.diff(pts_ms)
    steps = steps[steps > 0]
    if steps.size < 3:
        return None
    # the median step is biased by dropped frames (2T, 3T steps); total time over total ticks is not
    period = float(np.median(steps)) if nominal_period_ms is None else float(nominal_period_ms)
    for _ in range(3):
        ticks = np.round(steps / period)
        clean = (ticks >= 1) & (np.abs(steps / period - ticks) < 0.3)
        if not clean.any():
            return None
        period = float(steps[clean].sum() / ticks[clean].sum())
    origin = float(pts_ms[0])
    n = min(pts_ms.size, 16)
    while True:
        for _ in range(2):
            ticks, origin, period = _fit_ticks(pts_ms[:n], period, origin)
            if not period > 0:
                return None
        if n == pts_ms.size:
            break
        n = min(pts_ms.size, 2 * n)
    for _ in range(3):
        ticks, origin, period = _fit_ticks(pts_ms, period, origin)
        if not period > 0:
            return None
        residual = pts_ms - (origin + period * ticks)
        inlier = np.abs(residual) <= CLOCK_OUTLIER_FRACTION * period
        if inlier.sum() >= 2 and np.unique(ticks[inlier]).size >= 2:
            period, origin = np.polyfit(ticks[inlier], pts_ms[inlier], 1)
            period, origin = float(period), float(origin)
    residual = pts_ms - (origin + period * ticks)
    inlier = np.abs(residual) <= CLOCK_OUTLIER_FRACTION * period
    rms = float(np.sqrt(np.mean(residual[inlier] ** 2))) if inlier.any() else np.inf
    if rms > CLOCK_RMS_FRACTION * period or (~inlier).mean() > CLOCK_MAX_OUTLIER_SHARE:
        return None
    return FrameClock(origin, period, *_clock_uncertainty(ticks[inlier], residual[inlier]))


def _clock_uncertainty(ticks: np.ndarray, residual: np.ndarray) -> tuple[float, float, float]:
    """``(centre_tick, centre_sd_ms, period_sd_ms)`` of a least-squares clock from its inlier ticks and residuals.

    Ordinary least-squares standard errors with the residual variance; rounding residuals are not
    independent (a sawtooth), but over the lengths that matter these errors are of the same size as
    the sawtooth's (checked against rounded 29.97 fps and 25 fps clocks).
    """
    n = ticks.size
    centre = float(ticks.mean())
    spread = float(np.sum((ticks - centre) ** 2))
    if n < 3 or spread <= 0 or float(np.max(np.abs(residual))) <= EXACT_CLOCK_MS:
        return centre, 0.0, 0.0
    variance = float(np.sum(residual**2)) / (n - 2)
    return centre, float(np.sqrt(variance / n)), float(np.sqrt(variance / spread))


def snap_frame_times(pts_ms, clock: FrameClock | None) -> np.ndarray:
    """Pts snapped to the clock, ``origin + period * round((pts - origin) / period)`` (ms, shape of pts).

    Returns the pts unchanged (as float64) when ``clock`` is None. Snapping is idempotent.
    """
    pts_ms = np.asarray(pts_ms, dtype=np.float64)
    if clock is None:
        return pts_ms
    origin, period = float(clock.origin_ms), float(clock.period_ms)
    return origin + period * np.round((pts_ms - origin) / period)


def tick_numbers(pts_ms, clock: FrameClock | None) -> np.ndarray:
    """Tick numbers ``(n,)`` int64 of frames on their clock: consecutive frames differ by 1, dropped ones leave gaps.

    Without a clock (irregular pts) the median positive step of the pts serves as the period.
    """
    pts_ms = np.asarray(pts_ms, dtype=np.float64)
    if clock is not None:
        return np.round((pts_ms - clock.origin_ms) / clock.period_ms).astype(np.int64)
    steps = np.diff(pts_ms)
    period = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
    origin = pts_ms[0] if pts_ms.size else 0.0
    return np.round((pts_ms - origin) / period).astype(np.int64)


def reference_time_ms(frame_time_ms, row, drift, shift_ms, time_per_row_ms) -> np.ndarray:
    """Reference time (ms) ``drift * frame_time_ms + shift_ms + row * time_per_row_ms``, broadcast.

    Pass parameters of shape ``(n_draws, 1)`` and times/rows of shape ``(n,)`` to get ``(n_draws, n)``.
    """
    frame_time_ms = np.asarray(frame_time_ms, dtype=np.float64)
    row = np.asarray(row, dtype=np.float64)
    return np.asarray(drift) * frame_time_ms + np.asarray(shift_ms) + row * np.asarray(time_per_row_ms)


def locate(reference_time_ms, frame_times_ms, drift, shift_ms, time_per_row_ms):
    """Frame index (int64, -1 before the first frame) and fractional row of reference times, shapes of input.

    The frame is the last one of ``frame_times_ms`` (sorted camera times, ms) whose row 0 starts at
    or before the reference time; the row counts from its row 0 and may exceed the stored rows when
    the time falls in the hidden rows or in a gap left by dropped frames (NaN when frame is -1).
    """
    reference_time_ms = np.asarray(reference_time_ms, dtype=np.float64)
    frame_times_ms = np.asarray(frame_times_ms, dtype=np.float64)
    starts = float(drift) * frame_times_ms + float(shift_ms)
    frame = np.searchsorted(starts, reference_time_ms, side="right") - 1
    safe = np.clip(frame, 0, max(starts.size - 1, 0))
    row = (reference_time_ms - starts[safe]) / float(time_per_row_ms) if starts.size else np.full_like(
        reference_time_ms, np.nan
    )
    row = np.where(frame >= 0, row, np.nan)
    return frame.astype(np.int64), row


def nearest_frames(target_ms, frame_ms, max_difference_ms):
    """Index (int64, -1 if none within ``max_difference_ms``) and difference ``frame - target`` (ms, NaN) per target.

    ``target_ms`` and ``frame_ms`` are reference times; ``frame_ms`` needs not be sorted.
    """
    target_ms = np.asarray(target_ms, dtype=np.float64)
    frame_ms = np.asarray(frame_ms, dtype=np.float64)
    if frame_ms.size == 0:
        return np.full(target_ms.shape, -1, dtype=np.int64), np.full(target_ms.shape, np.nan)
    order = np.argsort(frame_ms, kind="stable")
    sorted_ms = frame_ms[order]
    right = np.clip(np.searchsorted(sorted_ms, target_ms), 0, sorted_ms.size - 1)
    left = np.clip(right - 1, 0, sorted_ms.size - 1)
    pick = np.where(np.abs(sorted_ms[left] - target_ms) <= np.abs(sorted_ms[right] - target_ms), left, right)
    difference = sorted_ms[pick] - target_ms
    found = np.abs(difference) <= max_difference_ms
    index = np.where(found, order[pick], -1).astype(np.int64)
    return index, np.where(found, difference, np.nan)


def frame_table(
    reference_frame_ms, camera_frame_ms: Mapping[str, np.ndarray], camera_period_ms: Mapping[str, float]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per camera, ``(index, difference_ms)`` arrays ``(n_reference_frames,)`` of its nearest frame.

    All times are reference times of the frames' middle rows (ms); a camera's frame counts only
    within half of its period ``camera_period_ms[camera]`` (reference ms), else index -1 and NaN.
    """
    return {
        camera: nearest_frames(reference_frame_ms, times, 0.5 * float(camera_period_ms[camera]))
        for camera, times in camera_frame_ms.items()
    }
