"""Rendered frames: independent of batching, flicker bands, partial flashes and a saturated window."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flashsync_bayes.simulate import (
    Camera,
    Scene,
    Shake,
    camera_ambient_light,
    camera_shake,
    flash_column_gain,
    frame_model,
    render_chunks,
    render_frames,
    scene_layout,
    shake_offsets,
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


def test_a_shaken_camera_sees_the_scene_moved_by_its_shake():
    """A shake that holds 3 pixels across (or 2 rows down) while a frame is read out shows the steady frame moved by as
    many whole pixels (bilinear sampling at whole pixels is exact; float32 coordinates may tip a rounding); a drawn
    shake has the RMS asked for, and moves the view from frame to frame."""
    scene = Scene(seed=5, n_objects=0, ambient_variation=0.0)  # steady light on a static scene
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=110, frame_rate=30.0, exposure_ms=8.0, noise_sigma=0.0)
    model, key = frame_model(camera, NO_FLASHES, scene), jax.random.key(0)

    def frame(shake):
        return render_frames(model._replace(shake=shake), key, jnp.array([3]), jnp.ones(1), window=1)[0].astype(int)

    steady = frame(None)
    still = jnp.array([1e-9])  # Hz: one sinusoid that stays at its crest over the frame
    for moved, expected in [
        (frame(Shake(still, jnp.array([3.0]), jnp.array([[np.pi / 2], [0.0]]))), steady[:, 3:]),
        (frame(Shake(still, jnp.array([2.0]), jnp.array([[0.0], [np.pi / 2]]))), steady[2:]),
    ]:
        part = moved[: expected.shape[0], : expected.shape[1]]
        assert np.abs(part - expected).max() <= 1 and np.mean(part != expected) < 0.01
        assert np.mean(np.abs(part - steady[: part.shape[0], : part.shape[1]])) > 1  # the scene's texture shows the move
    for seed in range(4):
        across, down = shake_offsets(camera_shake(2.5, seed), np.arange(0.0, 300.0, 0.01))
        assert [float(np.sqrt(np.mean(np.square(d)))) for d in (across, down)] == pytest.approx([2.5, 2.5], rel=0.1)
    handheld = dataclasses.replace(camera, shake_px=2.5)
    shaken = np.concatenate(list(render_chunks(handheld, NO_FLASHES, scene, [0, 3], noise_seed=1))).astype(int)
    assert np.mean(np.abs(shaken[1] - steady)) > 1
