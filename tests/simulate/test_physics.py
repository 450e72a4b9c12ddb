"""Flash and flicker light integrated over each row's exposure window, against the analytic edge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flashsync_bayes.simulate import (
    PULSE_SPAN_DECAYS,
    Camera,
    Flashes,
    camera_flash_light,
    leading_edges,
    window_mean_sine,
)
from tests.simulate.helpers import HEIGHT, WIDTH, flash_time_for_edge, single_flash


@given(
    extra_rows=st.integers(0, 96),
    frame_rate=st.sampled_from([24.0, 25.0, 30.0, 30000 / 1001, 60.0]),
    exposure_fraction=st.floats(0.05, 1.0),
    drift_ppm=st.floats(-300.0, 300.0),
    shift_ms=st.floats(-5000.0, 5000.0),
    sensor_frame=st.integers(1, 2000),
    position=st.floats(0.0, 1.0, exclude_max=True),
    decay_ms=st.floats(0.02, 3.0),
    rise_fraction=st.floats(0.0, 0.5),
    amplitude=st.floats(5.0, 200.0),
)
def test_light_starts_right_below_the_analytic_edge(
    extra_rows,
    frame_rate,
    exposure_fraction,
    drift_ppm,
    shift_ms,
    sensor_frame,
    position,
    decay_ms,
    rise_fraction,
    amplitude,
):
    total_rows = HEIGHT + extra_rows
    period_ms = 1000.0 / frame_rate
    camera = Camera(
        width=WIDTH,
        height=HEIGHT,
        total_rows=total_rows,
        frame_rate=frame_rate,
        exposure_ms=exposure_fraction * period_ms,
        drift=1 + drift_ppm * 1e-6,
        shift_ms=shift_ms,
    )
    row = position * total_rows
    assume(abs(row - round(row)) > 1e-3)  # float64 resolves the edge far finer
    flash_ms = flash_time_for_edge(camera, sensor_frame, row)
    flashes = single_flash(flash_ms, decay_ms, rise_fraction * decay_ms, amplitude)
    edges = leading_edges(camera, flashes, np.ones(sensor_frame + 3, dtype=bool))
    assert edges["sensor_frame"][0] == sensor_frame
    assert edges["row"][0] == pytest.approx(row, abs=1e-6)
    assert edges["status"][0] == ("stored" if row < HEIGHT else "hidden")

    frame_ms = (sensor_frame + np.arange(-1, 2)) * period_ms
    light = camera_flash_light(camera, flashes, frame_ms)
    assert light.shape == (3, HEIGHT)
    assert np.all(light >= 0)
    assert np.all(light[0] == 0)  # the frame before the edge saw nothing
    first_lit = int(math.floor(row)) + 1
    lit = np.flatnonzero(light[1] > 0)
    if first_lit < HEIGHT:
        assert lit[0] == first_lit
        # rows whose exposure window contains the onset all get light
        line_ms = period_ms / total_rows
        spans_onset = np.arange(first_lit, min(HEIGHT, math.ceil(row + camera.exposure_ms / line_ms)))
        assert np.all(light[1, spans_onset] > 0)
        # rows whose window holds the whole pulse get its full amplitude
        r = np.arange(HEIGHT)
        pulse_rows = PULSE_SPAN_DECAYS * decay_ms / (camera.drift * line_ms)
        whole = (r > row + pulse_rows) & (r < row + camera.exposure_ms / line_ms)
        assert light[1, whole] == pytest.approx(np.full(whole.sum(), amplitude), rel=1e-9)
    else:
        assert lit.size == 0


@pytest.mark.parametrize("row", [HEIGHT - 2.5, HEIGHT + 7.25])
def test_band_wraps_into_the_next_frame(row):
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=120, frame_rate=30.0, exposure_ms=10.0)
    flashes = single_flash(flash_time_for_edge(camera, 40, row), decay_ms=1.0, amplitude=60.0)
    light = camera_flash_light(camera, flashes, np.array([39, 40, 41]) * camera.frame_period_ms)
    assert np.all(light[0] == 0)
    if row < HEIGHT:
        assert np.all(light[1, : int(row) + 1] == 0) and np.all(light[1, int(row) + 1 :] > 0)
    else:
        assert np.all(light[1] == 0)  # the edge is in hidden rows: nothing stored in this frame
    # the top rows of the next frame were still exposing when the flash fired
    assert np.all(light[2, :5] > 0.5 * 60.0)
    edges = leading_edges(camera, flashes, np.ones(50, dtype=bool))
    assert edges["status"][0] == ("stored" if row < HEIGHT else "hidden")


def test_step_change_stays_on_and_a_second_step_switches_it_off():
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=104, frame_rate=25.0, exposure_ms=6.0)
    on_ms = flash_time_for_edge(camera, 10, 30.4)
    off_ms = flash_time_for_edge(camera, 300, 70.6)
    flashes = Flashes(time_ms=[on_ms, off_ms], decay_ms=np.inf, rise_ms=0.0, amplitude=[40.0, -40.0])
    frames = np.array([9, 10, 11, 12, 200, 300, 301, 400])
    light = camera_flash_light(camera, flashes, frames * camera.frame_period_ms)
    assert np.all(light[0] == 0)
    assert np.all(light[1, :31] == 0) and np.all(light[1, 31:] > 0)
    assert np.all(np.diff(light[1, 31:]) >= 0) and light[1, -1] == pytest.approx(40.0)
    assert light[2:5] == pytest.approx(np.full((3, HEIGHT), 40.0))
    assert light[5, :71] == pytest.approx(np.full(71, 40.0)) and np.all(light[5, 71:] < 40.0)
    assert light[6:] == pytest.approx(np.zeros((2, HEIGHT)), abs=1e-9)


@given(
    start_ms=st.floats(-1e6, 4e6),
    duration_ms=st.floats(0.05, 40.0),
    frequency_hz=st.floats(50.0, 250.0),
    phase=st.floats(0.0, 2 * np.pi),
)
def test_window_mean_sine_is_the_exact_average(start_ms, duration_ms, frequency_hz, phase):
    fraction = (np.arange(4001) + 0.5) / 4001
    t_s = (start_ms + duration_ms * fraction) / 1000.0
    expected = np.mean(np.sin(2 * np.pi * frequency_hz * t_s + phase))
    mean = float(window_mean_sine(start_ms, start_ms + duration_ms, frequency_hz, phase))
    assert mean == pytest.approx(expected, abs=2e-5)
    whole_periods = 3 * 1000.0 / frequency_hz
    assert abs(float(window_mean_sine(start_ms, start_ms + whole_periods, frequency_hz, phase))) < 1e-9
