"""Ground truth of a simulated recording: the truth.json that goes with its videos."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.io.timestamps import video_rate
from flashsync_bayes.simulate.camera import Camera, Flashes, leading_edges, stored_frame_times_ms
from flashsync_bayes.simulate.scene import Scene, scene_layout

REFERENCE_CLOCK_NOTE = (
    "Reference time of stored row r (fractional, readout order, frames not auto-rotated) of a frame: "
    "t_ref_ms = drift * sensor_time_ms + shift_ms + r * time_per_row_ms, "
    "time_per_row_ms = drift * frame_period_ms / total_rows, where sensor_time_ms = k * frame_period_ms "
    "is the exact camera-clock time at which the sensor started the frame (sensor frame k). pts_ms are "
    "the container timestamps readers see: sensor_time_ms in the timebase when timestamps is 'exact', "
    "else rounded to the timebase (1/600 s 'quicktime', 1 ms 'ms') and, with pts_jitter_ms > 0, jittered "
    "first; the time model uses sensor_time_ms. This is the time the row's exposure starts; an edge row "
    "is where the row's exposure ends at the flash, so flashes_ms = drift * (sensor_time_ms + exposure_ms) "
    "+ shift_ms + row * time_per_row_ms for every edge (sensor_time_ms of its sensor_frame). flashes_ms are "
    "in the reference clock; camera 0 of random_setup runs on it (drift 1, shift 0). exposure_gain is "
    "every stored frame's auto-exposure gain (all 1 without auto-exposure)."
)


def _edges(camera: Camera, flashes: Flashes, kept: np.ndarray, pts_ms: np.ndarray) -> list[dict]:
    """truth.json entries of every flash's exact leading edge in one camera (see :data:`REFERENCE_CLOCK_NOTE`)."""
    edges = leading_edges(camera, flashes, kept)
    edge_list = []
    for j in range(len(flashes)):
        frame = int(edges["frame"][j])
        sensor_frame = int(edges["sensor_frame"][j])
        edge_list.append(
            {
                "flash": j,
                "frame": frame,
                "sensor_frame": sensor_frame,
                "row": float(edges["row"][j]),
                "status": str(edges["status"][j]),
                "frame_time_ms": float(pts_ms[frame]) if frame >= 0 else None,
                "sensor_time_ms": sensor_frame * camera.frame_period_ms,
            }
        )
    return edge_list


def camera_truth(
    name: str,
    camera: Camera,
    flashes: Flashes,
    kept: np.ndarray,
    pts_ms: np.ndarray,
    gains: np.ndarray,
    timescale: int,
    **extra,
) -> dict:
    """truth.json entry of one written camera; ``gains`` over sensor frames, ``extra`` items added as they are."""
    rate = video_rate(camera.frame_rate)
    return {
        "file": name,
        "width": camera.width,
        "height": camera.height,
        "total_rows": int(camera.total_rows),
        "frame_rate": f"{rate.numerator}/{rate.denominator}",
        "frame_period_ms": camera.frame_period_ms,
        "exposure_ms": camera.exposure_ms,
        "drift": camera.drift,
        "drift_ppm": (camera.drift - 1.0) * 1e6,
        "shift_ms": camera.shift_ms,
        "time_per_row_ms": camera.time_per_row_ms,
        "rotation_deg": 180 if camera.rotated else 0,
        "noise_sigma": camera.noise_sigma,
        "transfer": camera.transfer,
        "codec": camera.codec,
        "drop_probability": camera.drop_probability,
        "shake_px": camera.shake_px,
        **extra,
        "timebase": f"1/{timescale}",
        "n_sensor_frames": int(kept.size),
        "n_frames": int(pts_ms.size),
        "dropped_sensor_frames": [int(k) for k in np.flatnonzero(~kept)],
        "pts_ms": [float(p) for p in pts_ms],
        "sensor_time_ms": [float(t) for t in stored_frame_times_ms(camera, kept)],
        "exposure_gain": [float(g) for g in gains[kept]],
        "edges": _edges(camera, flashes, kept, pts_ms),
    }


def recording_truth(duration_s: float, seed: int, crf: int, flashes: Flashes, scene: Scene, cameras: dict) -> dict:
    """The whole truth.json: the flashes (reference ms; ``decay_ms`` null marks a step), the scene and
    its layout, and the :func:`camera_truth` entries ``cameras`` keyed by file name.
    """
    return {
        "reference_clock": REFERENCE_CLOCK_NOTE,
        "duration_s": float(duration_s),
        "seed": int(seed),
        "crf": int(crf),
        "flashes_ms": [float(t) for t in flashes.time_ms],
        "flashes": {
            "decay_ms": [float(d) if math.isfinite(d) else None for d in flashes.decay_ms],
            "kind": ["pulse" if math.isfinite(d) else "step" for d in flashes.decay_ms],
            "rise_ms": [float(r) for r in flashes.rise_ms],
            "amplitude": [float(a) for a in flashes.amplitude],
        },
        "scene": dataclasses.asdict(scene),
        "scene_layout": {k: list(v) if isinstance(v, tuple) else v for k, v in scene_layout(scene)._asdict().items()},
        "cameras": cameras,
    }


def write_truth(outdir: str, truth: dict) -> None:
    """Write ``truth`` to ``outdir/truth.json`` atomically (indented JSON, one trailing newline)."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w") as handle:
            json.dump(truth, handle, indent=1)
            handle.write("\n")

    atomic_write(os.path.join(outdir, "truth.json"), write)
