"""Event-level simulation: the events dataset a perfect detector would report, without pixels."""

from __future__ import annotations

import numpy as np

from flashsync_bayes.events import make_events
from flashsync_bayes.simulate.camera import Flashes, leading_edges, sensor_frames_kept, stored_frame_times_ms


def simulate_events(
    cameras,
    flashes: Flashes,
    duration_ms: float,
    seed: int,
    *,
    row_sd: float = 0.15,
    miss_probability: float = 0.0,
    n_spurious: int = 0,
    labels=None,
):
    """Event-level simulation: an events dataset of noisy leading edges, without rendering frames.

    Each camera records ``duration_ms`` of its own clock. Every flash whose leading edge lies in
    stored rows of a stored frame is reported (unless missed with ``miss_probability``) at its true
    row plus Gaussian noise of ``row_sd`` rows; ``n_spurious`` events per camera land at random
    frames and rows. The extra event variable ``true_flash`` holds the flash index (-1 spurious).
    Returns ``(events, kept)`` with ``kept`` the per-camera masks of stored sensor frames.
    """
    rng = np.random.default_rng(seed)
    labels = list(labels) if labels is not None else [f"cam{i}" for i in range(len(cameras))]
    columns = {name: [] for name in ("event_camera", "frame", "frame_time_ms", "row", "row_sd", "true_flash")}
    info = {name: [] for name in ("path", "width", "height", "frame_period_ms", "n_frames", "rotation_deg")}
    all_kept = []
    for label, camera in zip(labels, cameras):
        kept = sensor_frames_kept(camera, int(np.ceil(duration_ms / camera.frame_period_ms)), rng)
        all_kept.append(kept)
        pts_ms = stored_frame_times_ms(camera, kept)
        edges = leading_edges(camera, flashes, kept)
        seen = (edges["status"] == "stored") & (rng.random(len(flashes)) >= miss_probability)
        flash_index = np.flatnonzero(seen)
        spurious_frame = rng.integers(0, pts_ms.size, n_spurious)
        frame = np.concatenate([edges["frame"][seen], spurious_frame])
        true_row = np.concatenate([edges["row"][seen], rng.uniform(0, camera.height - 1, n_spurious)])
        columns["event_camera"] += [label] * frame.size
        columns["frame"].append(frame)
        columns["frame_time_ms"].append(pts_ms[frame])
        columns["row"].append(true_row + rng.normal(0.0, row_sd, frame.size))
        columns["row_sd"].append(np.full(frame.size, row_sd))
        columns["true_flash"].append(np.concatenate([flash_index, np.full(n_spurious, -1)]))
        for name, value in zip(
            info, (f"{label}.mp4", camera.width, camera.height, camera.frame_period_ms, pts_ms.size, 0)
        ):
            info[name].append(value)
    event_info = {k: (np.concatenate(v) if k != "event_camera" else v) for k, v in columns.items()}
    events = make_events(labels, info, event_info, attrs={"simulated": 1})
    return events, all_kept
