"""Container timestamps of written videos: exact frame rates, mp4 timebases, phone-style rounding, jitter."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from flashsync_bayes.errors import FlashsyncError

#: The mp4 timebase is a multiple of this (the usual 90 kHz video clock).
BASE_TIMESCALE = 90000

#: Container timestamp styles of :func:`~flashsync_bayes.io.writer.write_video`: the timescale (ticks
#: per second) of each, None for the exact one of :func:`video_timescale`. Phones' QuickTime files use
#: 600; "ms" stores whole milliseconds (as Matroska does).
TIMESTAMP_TIMESCALES = {"exact": None, "quicktime": 600, "ms": 1000}

#: Distributions of per-frame timestamp jitter: ``pts_jitter_ms`` is the half width of "uniform"
#: and the standard deviation of "gaussian" (cut at 3 standard deviations).
JITTER_KINDS = ("uniform", "gaussian")


def video_rate(frame_rate: float) -> Fraction:
    """Exact frame rate for the container, e.g. 30000/1001 for 29.97002997 (denominator <= 1001)."""
    rate = Fraction(frame_rate).limit_denominator(1001)
    if rate <= 0 or abs(float(rate) - frame_rate) > 1e-9 * frame_rate:
        raise FlashsyncError(
            f"frame rate {frame_rate} is not a simple fraction with denominator <= 1001 (e.g. 30, 30000/1001)"
        )
    return rate


def video_timescale(rate: Fraction) -> int:
    """Ticks per second of the mp4 timebase: lcm(90000, numerator), so every ``k * T`` is a whole tick."""
    timescale = math.lcm(BASE_TIMESCALE, rate.numerator)
    if timescale >= 1 << 31:
        raise FlashsyncError(f"frame rate {rate} needs a timescale {timescale} that mp4 cannot store")
    return timescale


def container_timescale(rate: Fraction, timestamps: str = "exact") -> int:
    """Ticks per second of the mp4 timebase for a timestamp style of :data:`TIMESTAMP_TIMESCALES`."""
    if timestamps not in TIMESTAMP_TIMESCALES:
        raise FlashsyncError(f"unknown timestamps '{timestamps}'; known: {', '.join(TIMESTAMP_TIMESCALES)}")
    return TIMESTAMP_TIMESCALES[timestamps] or video_timescale(rate)


def jittered_ticks(
    sensor_time_ms, timescale: int, *, jitter_ms: float, kind: str = "uniform", seed: int = 0
) -> np.ndarray:
    """Container ticks of frames stamped ``sensor_time_ms`` plus random jitter, ``(n,)`` int64.

    Every time but the first (files start where the sensor did) gets an independent offset
    (:data:`JITTER_KINDS`); all are rounded to the nearest tick. FlashsyncError where the jitter
    would make timestamps negative or not strictly increasing.
    """
    if kind not in JITTER_KINDS:
        raise FlashsyncError(f"unknown pts jitter '{kind}'; known: {', '.join(JITTER_KINDS)}")
    sensor_time_ms = np.asarray(sensor_time_ms, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        offset_ms = rng.uniform(-jitter_ms, jitter_ms, sensor_time_ms.size)
    else:
        offset_ms = np.clip(rng.normal(0.0, jitter_ms, sensor_time_ms.size), -3 * jitter_ms, 3 * jitter_ms)
    offset_ms[:1] = 0.0
    ticks = np.floor((sensor_time_ms + offset_ms) * (timescale / 1000.0) + 0.5).astype(np.int64)
    if np.any(ticks < 0) or np.any(np.diff(ticks) <= 0):
        raise FlashsyncError(
            f"pts jitter of {jitter_ms} ms makes timestamps collide or run backwards in a 1/{timescale} s "
            "timebase; use less jitter than half a frame period"
        )
    return ticks
