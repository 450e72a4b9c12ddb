"""Cameras, flashes and small helpers shared by the simulator's tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from flashsync_bayes.simulate import Camera, Flashes, render_chunks
from flashsync_bayes.transfer import LINEAR

HEIGHT = 96  # every profile-level camera has this many stored rows, so flash_light compiles once
WIDTH = 160
NO_FLASHES = Flashes(time_ms=[], decay_ms=[], rise_ms=[], amplitude=[])

#: A recording of two cameras (the second drifts, drops frames and is rotated) and five flashes.
CAMERAS = [
    Camera(width=WIDTH, height=HEIGHT, total_rows=100, frame_rate=30.0, exposure_ms=8.0),
    Camera(
        width=WIDTH,
        height=HEIGHT,
        total_rows=110,
        frame_rate=30000 / 1001,
        exposure_ms=9.0,
        drift=1 + 30e-6,
        shift_ms=-250.3,
        drop_probability=0.25,
        rotated=True,
    ),
]
FLASHES = Flashes(
    time_ms=[300.7, 640.2, 1010.9, 1200.0, 1500.3],
    decay_ms=[0.3, 0.5, 0.4, 0.3, 0.6],
    rise_ms=[0.0, 0.02, 0.0, 0.01, 0.0],
    amplitude=[70.0, 60.0, 80.0, 70.0, 60.0],
)
DURATION_S = 2.0


def single_flash(time_ms, decay_ms=0.5, rise_ms=0.0, amplitude=50.0):
    """One flash at ``time_ms`` (reference ms)."""
    return Flashes(time_ms=[time_ms], decay_ms=[decay_ms], rise_ms=[rise_ms], amplitude=[amplitude])


def flash_time_for_edge(camera, sensor_frame, row):
    """Reference time of a flash whose leading edge is ``row`` (fractional, in [0, L)) of ``sensor_frame``."""
    camera_ms = (sensor_frame + row / camera.total_rows) * camera.frame_period_ms + camera.exposure_ms
    return camera.drift * camera_ms + camera.shift_ms


def render(camera, flashes, scene, sensor_frames, **kwargs):
    """Rendered frames as float, ``(n, H, W)``, in light itself (the camera's transfer curve left out)."""
    camera = dataclasses.replace(camera, transfer=LINEAR)
    chunks = render_chunks(camera, flashes, scene, sensor_frames, noise_seed=3, **kwargs)
    return np.concatenate(list(chunks)).astype(float)
