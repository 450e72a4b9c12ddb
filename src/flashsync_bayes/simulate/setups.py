"""Random setups: cameras and flashes with realistic parameters (FACTS.md), repeatable from a seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from flashsync_bayes import sensors
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.simulate.camera import Camera, Flashes, n_sensor_frames


def check_seed(seed) -> None:
    """FlashsyncError unless ``seed`` is a non-negative integer."""
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise FlashsyncError(f"seed must be a non-negative integer, got {seed!r}")


def random_setup(
    n_cameras: int,
    duration_s: float,
    n_flashes: int,
    seed: int,
    width: int = 640,
    height: int = 360,
    *,
    frame_rate: float | Sequence[float] = 30.0,
    drop_probability: float = 0.0,
    noise_sigma: float = 2.0,
    rotate_last: bool = False,
    max_drift_ppm: float = 50.0,
    max_shift_ms: float = 3000.0,
    min_spacing_frames: float = 3.0,
    max_rise_ms: float = 0.0,
    rows_ratio: tuple[float, float] | str | None = None,
    exposure_ms: tuple[float, float] = (2.0, 10.0),
) -> tuple[list[Camera], Flashes]:
    """Random cameras and flashes with realistic parameters (FACTS.md); returns ``(cameras, flashes)``.

    Camera 0 defines the reference clock (drift 1, shift 0); the others drift within
    ±``max_drift_ppm`` and start up to ``max_shift_ms`` (at most a fifth of the duration) earlier
    or later. Total sensor rows ``L`` are drawn with ``L / R`` uniform in ``rows_ratio``: a
    ``(low, high)`` pair, the name of a :data:`flashsync_bayes.sensors.PRESETS` family (its range),
    or by default :data:`flashsync_bayes.sensors.ROWS_RATIO_RANGE`; ``L`` is rounded to whole rows
    inside the range. Exposures are uniform in ``exposure_ms`` (ms), at most one frame period.
    Flashes (decay 0.2-1 ms, rise 0-``max_rise_ms``, 30-80 grey levels) fall where every camera
    records, at least ``min_spacing_frames`` frame periods apart; their leading edges may land in
    hidden rows. ``frame_rate`` may be one rate or one per camera (cycled).
    """
    _check_counts(n_cameras, n_flashes, duration_s, seed)
    rates = _frame_rates(frame_rate)
    ratio_range = _rows_ratio_range(rows_ratio)
    exposure_range = _exposure_range(exposure_ms, rates)
    rng = np.random.default_rng([seed, 7])
    shift_bound_ms = min(max_shift_ms, 0.2 * (duration_s * 1000.0))
    cameras = []
    for i in range(n_cameras):
        rate = rates[i % len(rates)]
        first = i == 0
        camera = Camera(
            width=width,
            height=height,
            total_rows=_random_total_rows(rng, height, ratio_range),
            frame_rate=rate,
            exposure_ms=float(rng.uniform(exposure_range[0], min(exposure_range[1], 1000.0 / rate))),
            drift=1.0 if first else float(1.0 + rng.uniform(-max_drift_ppm, max_drift_ppm) * 1e-6),
            shift_ms=0.0 if first else float(rng.uniform(-shift_bound_ms, shift_bound_ms)),
            drop_probability=drop_probability,
            noise_sigma=noise_sigma,
            rotated=rotate_last and i == n_cameras - 1,
        )
        cameras.append(camera)
    return cameras, _random_flashes(rng, cameras, duration_s, n_flashes, min_spacing_frames, max_rise_ms)


def _check_counts(n_cameras, n_flashes, duration_s, seed) -> None:
    """FlashsyncError unless the counts are whole, the duration positive and the seed valid."""
    if not (isinstance(n_cameras, (int, np.integer)) and n_cameras >= 1):
        raise FlashsyncError(f"need at least one camera, got {n_cameras!r}")
    if not (isinstance(n_flashes, (int, np.integer)) and n_flashes >= 0):
        raise FlashsyncError(f"the number of flashes must be a non-negative integer, got {n_flashes!r}")
    if not duration_s > 0:
        raise FlashsyncError(f"duration must be positive, got {duration_s} s")
    check_seed(seed)


def _frame_rates(frame_rate) -> list[float]:
    """The frame rates (Hz) to cycle through, from one rate or a sequence of them."""
    rates = [float(frame_rate)] if np.isscalar(frame_rate) else [float(r) for r in frame_rate]
    if not rates or min(rates) <= 0:
        raise FlashsyncError(f"frame rates must be positive, got {frame_rate!r}")
    return rates


def _rows_ratio_range(rows_ratio) -> tuple[float, float]:
    """``(low, high)`` range of ``L / R`` from a pair, a sensor preset name or None (the default range)."""
    if rows_ratio is None:
        rows_ratio = sensors.ROWS_RATIO_RANGE
    elif isinstance(rows_ratio, str):
        rows_ratio = sensors.preset(rows_ratio).rows_ratio
    ratio_low, ratio_high = (float(r) for r in rows_ratio)
    if not 1.0 <= ratio_low <= ratio_high:
        raise FlashsyncError(f"rows_ratio must be (low, high) with 1 <= low <= high, got {rows_ratio!r}")
    return ratio_low, ratio_high


def _exposure_range(exposure_ms, rates: list[float]) -> tuple[float, float]:
    """``(low, high)`` exposure range (ms), checked to fit in a frame at the fastest rate."""
    exposure_low, exposure_high = (float(e) for e in exposure_ms)
    if not 0 < exposure_low <= exposure_high:
        raise FlashsyncError(f"exposure_ms must be (low, high) with 0 < low <= high, got {exposure_ms!r}")
    if exposure_low > 1000.0 / max(rates):
        raise FlashsyncError(f"exposures from {exposure_low} ms do not fit in a frame at {max(rates):g} fps")
    return exposure_low, exposure_high


def _random_total_rows(rng: np.random.Generator, height: int, ratio_range: tuple[float, float]) -> int:
    """Total sensor rows L with ``L / height`` uniform in ``ratio_range``, whole rows inside the range."""
    low, high = ratio_range
    return int(np.clip(round(height * rng.uniform(low, high)), math.ceil(height * low), math.floor(height * high)))


def _random_flashes(
    rng: np.random.Generator,
    cameras: list[Camera],
    duration_s: float,
    n_flashes: int,
    min_spacing_frames: float,
    max_rise_ms: float,
) -> Flashes:
    """``n_flashes`` random flashes where every camera records, ``min_spacing_frames`` frame periods apart."""
    period_ms = max(c.frame_period_ms for c in cameras)
    start_ms = max(c.shift_ms for c in cameras) + 2 * period_ms
    end_ms = min(c.shift_ms + c.drift * n_sensor_frames(c, duration_s) * c.frame_period_ms for c in cameras)
    end_ms -= 2 * period_ms
    gap_ms = min_spacing_frames * period_ms
    free_ms = end_ms - start_ms - max(n_flashes - 1, 0) * gap_ms
    if n_flashes and free_ms < 0:
        raise FlashsyncError(
            f"{n_flashes} flashes {gap_ms:.1f} ms apart do not fit in the {max(end_ms - start_ms, 0):.0f} ms "
            "that every camera records; use a longer duration or fewer flashes"
        )
    time_ms = start_ms + np.sort(rng.uniform(0, max(free_ms, 0.0), n_flashes)) + np.arange(n_flashes) * gap_ms
    return Flashes(
        time_ms=time_ms,
        decay_ms=rng.uniform(0.2, 1.0, n_flashes),
        rise_ms=rng.uniform(0.0, max_rise_ms, n_flashes),
        amplitude=rng.uniform(30.0, 80.0, n_flashes),
    )
