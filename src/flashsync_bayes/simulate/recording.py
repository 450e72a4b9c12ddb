"""Whole simulated recordings: every camera's video of one scene under the same flashes, and truth.json."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.timestamps import container_timescale, jittered_ticks, video_rate
from flashsync_bayes.io.writer import check_crf, write_video
from flashsync_bayes.simulate.camera import Camera, Flashes, n_sensor_frames, sensor_frames_kept, stored_frame_times_ms
from flashsync_bayes.simulate.lighting import exposure_gains
from flashsync_bayes.simulate.render import render_chunks
from flashsync_bayes.simulate.scene import Scene
from flashsync_bayes.simulate.setups import check_seed
from flashsync_bayes.simulate.truth import camera_truth, recording_truth, write_truth


def simulate_recording(
    outdir,
    cameras: Sequence[Camera],
    flashes: Flashes,
    duration_s: float,
    seed: int,
    crf: int = 23,
    scene: Scene | None = None,
    overwrite: bool = False,
    progress: bool = True,
    *,
    preset: str = "medium",
    timestamps: str = "exact",
    pts_jitter_ms: float = 0.0,
    pts_jitter: str = "uniform",
) -> dict:
    """Write ``cam0.mp4, cam1.mp4, ...`` and ``truth.json`` into ``outdir``; returns the truth dict.

    Every camera records ``duration_s`` of its own clock from camera time 0 and sees ``scene``
    (default ``Scene(seed=seed)``, e.g. :func:`~flashsync_bayes.simulate.scene.scene_preset`); frame
    drops, sensor noise and pts jitter follow ``seed``. Container timestamps follow ``timestamps``,
    ``pts_jitter_ms`` and ``pts_jitter`` (see :func:`~flashsync_bayes.io.writer.write_video`). The
    truth holds the flashes (reference ms; ``decay_ms`` null marks a step change), the scene and its
    layout, each camera's parameters keyed by file name, the read-back pts (``pts_ms``) and exact
    sensor start time (``sensor_time_ms``) and auto-exposure gain (``exposure_gain``) of every stored
    frame, and the exact leading edge of every flash (see
    :data:`~flashsync_bayes.simulate.truth.REFERENCE_CLOCK_NOTE`). Videos are written one by one,
    each atomically, and truth.json last.
    """
    cameras = list(cameras)
    _check_recording(cameras, flashes, duration_s, seed, crf)
    rates = [video_rate(c.frame_rate) for c in cameras]
    timescales = [container_timescale(rate, timestamps) for rate in rates]
    if not (isinstance(pts_jitter_ms, (int, float, np.number)) and math.isfinite(pts_jitter_ms) and pts_jitter_ms >= 0):
        raise FlashsyncError(f"pts_jitter_ms must be >= 0, got {pts_jitter_ms!r}")
    kept_masks = [
        sensor_frames_kept(camera, n_sensor_frames(camera, duration_s), np.random.default_rng([seed, i, 1]))
        for i, camera in enumerate(cameras)
    ]
    jitter_seeds = [_derived_seed(seed, i, 3) for i in range(len(cameras))]
    if pts_jitter_ms > 0:  # fail before any file is written
        _check_jitter(cameras, kept_masks, timescales, jitter_seeds, pts_jitter_ms, pts_jitter)
    scene = Scene(seed=seed) if scene is None else scene
    if not isinstance(scene, Scene):
        raise FlashsyncError("scene must be a Scene (see scene_preset)")
    outdir = os.fspath(outdir)
    names = [f"cam{i}.mp4" for i in range(len(cameras))]
    _prepare_outdir(outdir, names + ["truth.json"], overwrite)
    options = {"crf": crf, "preset": preset, "overwrite": overwrite, "progress": progress, "timestamps": timestamps}
    options |= {"pts_jitter_ms": pts_jitter_ms, "pts_jitter": pts_jitter}
    truth_cameras = {}
    for i, (camera, name, kept, timescale) in enumerate(zip(cameras, names, kept_masks, timescales)):
        take = _Take(outdir, name, camera, kept, timescale, _derived_seed(seed, i, 2), jitter_seeds[i])
        truth_cameras[name] = _record_camera(take, flashes, scene, options)
    truth = recording_truth(duration_s, seed, crf, flashes, scene, truth_cameras)
    write_truth(outdir, truth)
    return truth


def _derived_seed(seed: int, camera_index: int, stream: int) -> int:
    """A 32-bit seed for one random stream (2: sensor noise, 3: pts jitter) of one camera."""
    return int(np.random.SeedSequence([seed, camera_index, stream]).generate_state(1)[0])


def _check_recording(cameras: list, flashes, duration_s, seed, crf) -> None:
    """FlashsyncError for inputs of :func:`simulate_recording` it cannot record."""
    if not cameras or not all(isinstance(c, Camera) for c in cameras):
        raise FlashsyncError("cameras must be a non-empty list of Camera")
    if not isinstance(flashes, Flashes):
        raise FlashsyncError("flashes must be a Flashes instance")
    if not (isinstance(duration_s, (int, float, np.number)) and math.isfinite(duration_s) and duration_s > 0):
        raise FlashsyncError(f"duration must be a positive number of seconds, got {duration_s!r}")
    check_seed(seed)
    check_crf(crf)
    for i, camera in enumerate(cameras):
        if camera.width % 2 or camera.height % 2:
            raise FlashsyncError(f"camera {i}: 4:2:0 video needs even frame sizes, got {camera.width}x{camera.height}")


def _check_jitter(cameras, kept_masks, timescales, jitter_seeds, jitter_ms: float, kind: str) -> None:
    """FlashsyncError if the pts jitter would make some camera's timestamps collide or run backwards."""
    for camera, kept, timescale, jitter_seed in zip(cameras, kept_masks, timescales, jitter_seeds):
        sensor_time_ms = stored_frame_times_ms(camera, kept)
        jittered_ticks(sensor_time_ms, timescale, jitter_ms=jitter_ms, kind=kind, seed=jitter_seed)


def _prepare_outdir(outdir: str, files: list[str], overwrite: bool) -> None:
    """Create ``outdir``; FlashsyncError if one of ``files`` exists there and ``overwrite`` is off."""
    existing = [path for path in (os.path.join(outdir, name) for name in files) if os.path.exists(path)]
    if existing and not overwrite:
        raise FlashsyncError(f"{existing[0]} exists; pass overwrite=True (--overwrite) or choose another outdir")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as error:
        raise FlashsyncError(f"cannot create output directory {outdir}: {error.strerror}") from error


class _Take(NamedTuple):
    """One camera's part of a recording: where it goes, its sensor frames, timebase and seeds."""

    outdir: str
    name: str
    camera: Camera
    kept: np.ndarray
    timescale: int
    noise_seed: int
    jitter_seed: int


def _record_camera(take: _Take, flashes: Flashes, scene: Scene, options: dict) -> dict:
    """Render and write one camera's video; returns its truth.json entry."""
    camera, kept = take.camera, take.kept
    gains = exposure_gains(camera, flashes, scene, kept.size)
    chunks = render_chunks(camera, flashes, scene, np.flatnonzero(kept), noise_seed=take.noise_seed, gains=gains)
    pts_ms = write_video(
        os.path.join(take.outdir, take.name),
        chunks,
        kept,
        frame_rate=camera.frame_rate,
        rotation_deg=180 if camera.rotated else 0,
        description=take.name,
        jitter_seed=take.jitter_seed,
        transfer_name=camera.transfer,
        codec=camera.codec,
        **options,
    )
    return camera_truth(
        take.name,
        camera,
        flashes,
        kept,
        pts_ms,
        gains,
        take.timescale,
        noise_seed=take.noise_seed,
        timestamps=options["timestamps"],
        pts_jitter_ms=float(options["pts_jitter_ms"]),
        pts_jitter=options["pts_jitter"],
    )
