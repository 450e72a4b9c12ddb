"""Rendered frames: independent of batching, flicker bands, partial flashes and a saturated window."""

from __future__ import annotations

import numpy as np
import pytest

from flashsync_bayes.simulate import (
    Camera,
    Scene,
    camera_ambient_light,
    flash_column_gain,
    render_chunks,
    scene_layout,
    window_mask,
)
from tests.simulate.helpers import (
    CAMERAS,
    FLASHES,
    HEIGHT,
    NO_FLASHES,
    WIDTH,
    flash_time_for_edge,
    render,
    single_flash,
)


def test_rendered_frames_do_not_depend_on_batching():
    camera = CAMERAS[1]
    sensor_frames = [0, 1, 2, 5, 6, 9, 10, 11, 30]
    whole = np.concatenate(list(render_chunks(camera, FLASHES, Scene(seed=2), sensor_frames, noise_seed=3)))
    for chunk in (4,):
        parts = list(render_chunks(camera, FLASHES, Scene(seed=2), sensor_frames, noise_seed=3, chunk_frames=chunk))
        assert [p.shape[0] for p in parts][:-1] == [chunk] * (len(parts) - 1)
        assert np.array_equal(np.concatenate(parts), whole)
    single = next(render_chunks(camera, FLASHES, Scene(seed=2), [9], noise_seed=3))
    assert np.array_equal(single[0], whole[5])
    assert whole.dtype == np.uint8 and whole.shape == (len(sensor_frames), HEIGHT, WIDTH)


def test_rendered_frames_show_flicker_bands_only_for_short_exposures():
    steady = Scene(seed=4, ambient_variation=0.0)
    flicker = Scene(seed=4, ambient_variation=0.0, flicker_modulation=0.3, flicker_phase=1.0)
    for exposure_ms in (1.0, 10.0):
        camera = Camera(width=WIDTH, height=HEIGHT, total_rows=200, frame_rate=30.0, exposure_ms=exposure_ms)
        rows = render(camera, NO_FLASHES, flicker, [3]).mean(axis=2)
        ratio = rows / render(camera, NO_FLASHES, steady, [3]).mean(axis=2)
        expected = camera_ambient_light(camera, flicker, [3 * camera.frame_period_ms]) / 90.0
        assert ratio == pytest.approx(expected, abs=0.01)
        assert np.ptp(expected) > 0.5 if exposure_ms == 1.0 else np.ptp(expected) < 1e-9


def test_flash_lights_only_its_columns_and_the_window_saturates():
    scene = Scene(seed=9, n_objects=0, flash_coverage=0.5, flash_falloff=0.3, window_luminance=400.0)
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=110, frame_rate=30.0, exposure_ms=8.0)
    gain = flash_column_gain(scene, WIDTH)
    lit = gain > 0
    assert abs(lit.sum() - 0.5 * WIDTH) <= 2 and np.all(np.diff(np.flatnonzero(lit)) == 1)
    inside = gain[np.flatnonzero(lit)[2:-2]]
    assert np.all((inside >= 0.7 - 1e-12) & (inside <= 1.3 + 1e-12)) and np.ptp(inside) > 0.2
    u0, u1 = scene_layout(scene).flash_u
    assert u1 - u0 == pytest.approx(0.5)

    flash = single_flash(flash_time_for_edge(camera, 5, 30.5), amplitude=250.0)
    flashed = render(camera, flash, scene, [4, 5, 6])
    plain = render(camera, NO_FLASHES, scene, [4, 5, 6])
    assert np.array_equal(flashed[:, :, ~lit], plain[:, :, ~lit])  # the flash adds nothing there
    band = slice(34, 30 + int(camera.exposure_ms / camera.line_period_ms) - 3)
    difference = flashed[1, band][:, gain > 0.9] - plain[1, band][:, gain > 0.9]
    assert np.all(difference > 20.0)
    assert np.any(flashed[1, band][:, lit] == 255) and not np.any(plain[:, band][:, :, lit] == 255)

    mask = window_mask(scene, WIDTH, HEIGHT)
    window = mask == 1.0
    assert window.sum() > 200 and not np.any(lit[window.any(axis=0)])
    assert np.all(flashed[:, window] == 255) and np.all(plain[:, window] == 255)
