"""Tests of timing.py: frame clocks, snapping, the time mapping, its inverse and frame tables."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashsync_bayes.timing import (
    FrameClock,
    estimate_frame_clock,
    frame_table,
    locate,
    nearest_frames,
    reference_time_ms,
    snap_frame_times,
    tick_numbers,
)


def regular_pts(period_ms, n, origin_ms=0.0, drop=0.0, seed=0):
    """True tick times ``(m,)`` of a regular clock with a share ``drop`` of frames dropped (first kept)."""
    rng = np.random.default_rng(seed)
    kept = rng.random(n) >= drop
    kept[0] = True
    return origin_ms + period_ms * np.flatnonzero(kept)


def assert_recovers(pts, truth, period_ms):
    """The clock fitted to ``pts`` has the right period and snaps every frame to its own tick.

    The fitted clock may differ from the true one by a tiny origin and period error, so snapped
    times stay within 2 % of a period of the truth rather than equal to it.
    """
    clock = estimate_frame_clock(pts)
    assert clock is not None
    assert clock.period_ms == pytest.approx(period_ms, rel=2e-4)
    snapped = snap_frame_times(pts, clock)
    true_ticks = np.round((truth - truth[0]) / period_ms)
    np.testing.assert_array_equal(np.round((snapped - snapped[0]) / clock.period_ms), true_ticks)
    np.testing.assert_allclose(snapped, truth, atol=0.02 * period_ms)
    ticks = tick_numbers(pts, clock)
    np.testing.assert_array_equal(ticks - ticks[0], true_ticks)
    return clock


def test_clock_of_exact_timestamps():
    truth = regular_pts(1000 / 29.97, 600, origin_ms=1234.5)
    clock = assert_recovers(truth, truth, 1000 / 29.97)
    assert clock.origin_ms == pytest.approx(1234.5, abs=1e-6)


def test_clock_of_jittered_timestamps():
    truth = regular_pts(1000 / 30, 3000)
    pts = truth + np.random.default_rng(1).normal(0.0, 2.0, truth.size)
    assert_recovers(pts, truth, 1000 / 30)


def test_clock_of_millisecond_rounded_timestamps():
    truth = regular_pts(1000 / 59.94, 5000, origin_ms=40.0)
    assert_recovers(np.round(truth), truth, 1000 / 59.94)


def test_clock_with_dropped_frames_and_jitter():
    truth = regular_pts(40.0, 4000, drop=0.15, seed=3)
    pts = np.round(truth + np.random.default_rng(2).uniform(-3.0, 3.0, truth.size))
    assert_recovers(pts, truth, 40.0)


def test_variable_frame_rate_is_not_a_clock():
    rng = np.random.default_rng(4)
    # a phone at nominal 59.94 fps that delivers ~57 frames a second with irregular spacing
    steps = 1000 / 57 * rng.uniform(0.7, 1.3, 2000)
    assert estimate_frame_clock(np.cumsum(steps)) is None
    # frame rate switching from 30 to 24 fps halfway
    switching = np.concatenate([np.arange(300) * 1000 / 30, 10_000 + np.arange(300) * 1000 / 24])
    assert estimate_frame_clock(switching) is None
    assert estimate_frame_clock([0.0, 33.3]) is None


@given(
    rate=st.floats(10.0, 240.0),
    jitter=st.floats(0.0, 0.06),
    drop=st.floats(0.0, 0.3),
    rounding=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_clock_property(rate, jitter, drop, rounding, seed):
    period = 1000.0 / rate
    truth = regular_pts(period, 2000, origin_ms=seed * 0.37, drop=drop, seed=seed)
    pts = truth + np.random.default_rng(seed).normal(0.0, jitter * period, truth.size)
    if rounding and period > 8.0:  # whole ms is only a small error at up to 120 fps
        pts = np.round(pts)
    assert_recovers(pts, truth, period)


def test_snapping_is_idempotent_and_none_keeps_pts():
    clock = FrameClock(origin_ms=3.0, period_ms=1000 / 24)
    pts = np.array([3.4, 45.0, 90.2, 1000.1])
    once = snap_frame_times(pts, clock)
    np.testing.assert_allclose(snap_frame_times(once, clock), once)
    np.testing.assert_allclose(once, 3.0 + 1000 / 24 * np.array([0, 1, 2, 24]))
    np.testing.assert_array_equal(snap_frame_times(pts, None), pts)


def test_ticks_without_a_clock_count_median_steps():
    pts = np.array([10.0, 43.0, 77.0, 143.0, 177.0])  # irregular, one frame missing after 77
    np.testing.assert_array_equal(tick_numbers(pts, None), [0, 1, 2, 4, 5])
    assert tick_numbers(np.zeros(0), None).size == 0


def test_reference_time_broadcasts_over_draws():
    draws = np.array([[1.0], [1.0001]]), np.array([[10.0], [11.0]]), np.array([[0.03], [0.031]])
    out = reference_time_ms(np.array([0.0, 1000.0]), np.array([0.0, 100.0]), *draws)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[1], [11.0, 1.0001 * 1000 + 11 + 3.1])


def test_locate_round_trip():
    rng = np.random.default_rng(5)
    frames_ms = regular_pts(1000 / 25, 500, drop=0.1, seed=6)
    drift, shift, tpr = 1.00007, -1234.5, 40.0 / 1125
    frame = rng.integers(0, frames_ms.size, 200)
    row = rng.uniform(0, 1079, 200)
    t = reference_time_ms(frames_ms[frame], row, drift, shift, tpr)
    found, found_row = locate(t, frames_ms, drift, shift, tpr)
    np.testing.assert_array_equal(found, frame)
    np.testing.assert_allclose(found_row, row, atol=1e-6)
    before, nan_row = locate(drift * frames_ms[0] + shift - 1.0, frames_ms, drift, shift, tpr)
    assert before == -1 and np.isnan(nan_row)


def test_nearest_frames_and_table():
    ref = np.array([0.0, 10.0, 20.0, 30.0])
    other = np.array([21.0, 1.0, 14.9])
    index, diff = nearest_frames(ref, other, 5.0)
    np.testing.assert_array_equal(index, [1, 2, 0, -1])
    np.testing.assert_allclose(diff[:3], [1.0, 4.9, 1.0])
    assert np.isnan(diff[3])
    table = frame_table(ref, {"a": ref, "b": other}, {"a": 10.0, "b": 10.0})
    np.testing.assert_array_equal(table["a"][0], [0, 1, 2, 3])
    np.testing.assert_array_equal(table["b"][0], [1, 2, 0, -1])
    empty_index, _ = nearest_frames(ref, np.array([]), 5.0)
    assert (empty_index == -1).all()
