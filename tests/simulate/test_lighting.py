"""Ambient light of indoor scenes (mains flicker on the reference clock) and auto-exposure gains."""

from __future__ import annotations

import numpy as np
import pytest

from flashsync_bayes.simulate import (
    Camera,
    Scene,
    auto_exposure_gains,
    camera_ambient_light,
    exposure_gains,
    scene_preset,
)
from tests.simulate.helpers import HEIGHT, NO_FLASHES, WIDTH, flash_time_for_edge, render, single_flash


def lamp_mean(start_ms, end_ms, scene, n_samples=2001):
    """Lamp output relative to its mean, averaged over each window by the midpoint rule (reference ms)."""
    fraction = (np.arange(n_samples) + 0.5) / n_samples
    t_s = (start_ms[..., None] + (end_ms - start_ms)[..., None] * fraction) / 1000.0
    omega = 2 * np.pi * 2 * scene.mains_hz
    theta = omega * t_s + scene.flicker_phase
    wave = np.sin(theta) + scene.flicker_square * (np.sin(3 * theta) / 3 + np.sin(5 * theta) / 5)
    wave += scene.flicker_harmonic * np.sin(2 * omega * t_s + scene.flicker_harmonic_phase)
    return 1.0 + scene.flicker_modulation * wave.mean(axis=-1)


def test_flicker_bands_have_the_mains_period_and_move_by_f_times_T():
    scene = Scene(ambient_variation=0.0, mains_hz=50.0, flicker_modulation=0.3, flicker_phase=0.4)
    short = Camera(width=WIDTH, height=HEIGHT, total_rows=200, frame_rate=30.0, exposure_ms=1.0)
    frames_ms = np.array([12, 13]) * short.frame_period_ms
    # a 10 ms exposure holds exactly one 100 Hz period in every row: no bands at all
    long = Camera(width=WIDTH, height=HEIGHT, total_rows=200, frame_rate=30.0, exposure_ms=10.0)
    hidden = camera_ambient_light(long, scene, frames_ms)
    assert hidden == pytest.approx(np.full((2, HEIGHT), 90.0), abs=1e-9)
    bands = camera_ambient_light(short, scene, frames_ms)
    period_rows = (1000.0 / 100.0) / short.time_per_row_ms
    assert period_rows == pytest.approx(60.0)
    assert bands[:, 60:] == pytest.approx(bands[:, :36], abs=1e-9)
    # from frame to frame the phase advances by 2π f T = 2π (3 + 1/3): the pattern moves up 20 rows
    assert (100.0 * short.frame_period_ms / 1000.0) % 1.0 * period_rows == pytest.approx(20.0)
    assert bands[1, :76] == pytest.approx(bands[0, 20:], abs=1e-9)
    amplitude = 90.0 * 0.3 * np.sinc(100.0 * 1e-3)  # the 1 ms window averages the sine a little
    assert 0.5 * (bands.max() - bands.min()) == pytest.approx(amplitude, rel=2e-3)


@pytest.mark.parametrize("square", [0.0, 1.0])
def test_cameras_see_the_flicker_of_the_reference_clock(square):
    """Lamps' sinusoids, or with ``square`` 1 an LED driver's square wave's odd harmonics too, on the reference clock."""
    scene = scene_preset("indoor_60hz", seed=7, ambient_variation=0.0, flicker_square=square)
    assert scene.flicker_harmonic > 0 and abs(scene.mains_hz - 60.0) <= 0.05
    cameras = [
        Camera(width=WIDTH, height=HEIGHT, total_rows=130, frame_rate=30000 / 1001, exposure_ms=2.0,
               drift=1 + 150e-6, shift_ms=3.6e6 + 12.345),
        Camera(width=WIDTH, height=HEIGHT, total_rows=171, frame_rate=25.0, exposure_ms=4.5,
               drift=1 - 80e-6, shift_ms=3.6e6 - 7.5),
    ]  # fmt: skip
    for camera in cameras:
        k = np.array([0, 1, 777])
        light = camera_ambient_light(camera, scene, k * camera.frame_period_ms)
        start_cam = k[:, None] * camera.frame_period_ms + np.arange(HEIGHT)[None, :] * camera.line_period_ms
        start_ref = camera.drift * start_cam + camera.shift_ms
        end_ref = camera.drift * (start_cam + camera.exposure_ms) + camera.shift_ms
        assert light == pytest.approx(scene.ambient * lamp_mean(start_ref, end_ref, scene), rel=2e-5)
        assert np.ptp(light) > 10.0


def test_auto_exposure_gain_is_one_without_flashes_dips_after_a_flash_and_recovers():
    assert np.array_equal(auto_exposure_gains(np.zeros(50), strength=0.2, rate=0.5, delay_frames=2), np.ones(50))
    excess = np.zeros(40)
    excess[10] = 0.5
    for delay in (1, 2):
        gains = auto_exposure_gains(excess, strength=0.2, rate=0.5, delay_frames=delay)
        assert np.all(gains[: 10 + delay] == 1.0)
        assert gains[10 + delay] == pytest.approx(1.5**-0.5)
        assert gains.min() >= 0.8 and abs(gains[-1] - 1.0) < 1e-3
    excess[10] = 20.0
    assert auto_exposure_gains(excess, strength=0.2, rate=0.5, delay_frames=1).min() == pytest.approx(0.8)

    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=110, frame_rate=30.0, exposure_ms=8.0, noise_sigma=0.0)
    scene = Scene(seed=1, ae_strength=0.2, ae_delay_frames=1)
    flash = single_flash(flash_time_for_edge(camera, 10, 20.5), amplitude=80.0)
    gains = exposure_gains(camera, flash, scene, 40)
    assert np.all(gains[:11] == 1.0) and gains[11] == pytest.approx(0.8)
    assert np.all(np.diff(gains[11:]) >= 0) and abs(gains[-1] - 1.0) < 1e-3
    assert np.array_equal(exposure_gains(camera, NO_FLASHES, scene, 40), np.ones(40))
    assert np.array_equal(exposure_gains(camera, flash, Scene(seed=1), 40), np.ones(40))

    # one gain scales the whole frame; frames do not depend on what is rendered with them
    frames = render(camera, flash, scene, [10, 11, 12])
    unity = render(camera, flash, scene, [10, 11, 12], gains=np.ones(13))
    assert np.array_equal(frames[0], unity[0])
    assert np.all(np.abs(frames[1] - 0.8 * unity[1]) <= 0.9)
    assert np.array_equal(render(camera, flash, scene, [12])[0], frames[2])
