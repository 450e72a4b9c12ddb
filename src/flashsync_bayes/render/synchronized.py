"""Synchronized videos: every camera re-timed to the reference camera's frames, and the frame list beside them."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.io.frames import output_rate, write_rgb_video
from flashsync_bayes.io.video import probe
from flashsync_bayes.render.choice import FrameChoice, camera_frame_times, camera_frames, frame_choice, video_paths
from flashsync_bayes.render.output import check_outputs, counted

#: Name of the frame list written beside the synchronized videos.
FRAMES_JSON = "frames.json"
#: What a written frame holds where a camera has no frame within half a frame period.
BLANK_NOTE = "black frame where the camera has no frame within half its frame period (frame_index -1)"


def output_paths(files: dict[str, str], outdir) -> dict[str, str]:
    """Output video per camera label: ``outdir/<input file stem>.mp4``; FlashsyncError on equal stems."""
    outdir = os.fspath(outdir)
    out, seen = {}, {}
    for camera, path in files.items():
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:
            raise FlashsyncError(f"{seen[stem]} and {path} would both be written as {stem}.mp4; rename one of them")
        seen[stem] = path
        out[camera] = os.path.join(outdir, f"{stem}.mp4")
    return out


def frames_record(choice: FrameChoice, files: dict, outputs: dict, rate, reference_pts_ms) -> dict:
    """JSON-able frame list: per output frame the reference frame's pts and time (ms), each camera's frame and difference (ms)."""

    def plain(values: np.ndarray) -> list:
        return [None if not np.isfinite(v) else float(v) for v in values]

    return {
        "reference": choice.reference,
        "frame_rate": float(rate),
        "frame_rate_fraction": f"{rate.numerator}/{rate.denominator}",
        "n_frames": int(choice.reference_time_ms.size),
        "frame_time": "reference time of the middle stored row (ms)",
        "blank": BLANK_NOTE,
        "reference_pts_ms": plain(np.asarray(reference_pts_ms, dtype=np.float64)),
        "reference_time_ms": plain(choice.reference_time_ms),
        "cameras": {
            camera: {
                "video": files[camera],
                "output": os.path.basename(outputs[camera]),
                "frame_index": choice.frame_index[camera].tolist(),
                "difference_ms": plain(choice.difference_ms[camera]),
            }
            for camera in outputs
        },
    }


def write_synchronized(
    result, paths, outdir, *, overwrite: bool = False, progress: bool = False, crf: int = 18, preset: str = "veryfast"
) -> dict[str, str]:
    """Write every camera re-timed to the reference's frames into ``outdir``; returns camera label -> output path.

    Output frame k of every video is that camera's frame chosen for reference frame k
    (:func:`~flashsync_bayes.render.choice.frame_choice`), a black frame where none lies within
    half a frame period; so each video has exactly the reference's frame count, at the
    reference's constant nominal frame rate, from time 0. Frames keep the camera's stored size
    and orientation (rotation is kept as display metadata). Audio is dropped from every output.
    Outputs are named after the input files (``cam1.mp4``) and written atomically, one by one;
    ``frames.json`` (:data:`FRAMES_JSON`, :func:`frames_record`) lists the chosen frames and is
    written last. ``paths``: see :func:`~flashsync_bayes.render.choice.video_paths`; the
    reference's video is required. Existing outputs are replaced only with ``overwrite``.
    """
    files = video_paths(result, paths)
    outputs = output_paths(files, outdir)
    sidecar = os.path.join(os.fspath(outdir), FRAMES_JSON)
    check_outputs([*outputs.values(), sidecar], list(files.values()), overwrite)
    times = camera_frame_times(result, files)
    choice = frame_choice(result, times)
    rate = output_rate(probe(files[choice.reference]).frame_rate)
    n_frames = choice.reference_time_ms.size
    for camera, output in outputs.items():
        info = probe(files[camera])
        blank = np.zeros((info.height, info.width, 3), dtype=np.uint8)
        frames = camera_frames(files[camera], times[camera], choice.frame_index[camera], blank=blank)
        with contextlib.closing(counted(frames, n_frames, os.path.basename(output), progress)) as frames:
            written = write_rgb_video(
                output, frames, frame_rate=rate, crf=crf, preset=preset, rotation_deg=info.rotation_deg, overwrite=overwrite
            )
        if written != n_frames:  # cannot happen: one frame per reference frame
            raise FlashsyncError(f"wrote {written} frames to {output} for {n_frames} reference frames")
    record = frames_record(choice, files, outputs, rate, times[choice.reference])
    atomic_write(sidecar, lambda tmp: _write_json(tmp, record))
    return outputs


def _write_json(path: str, record: dict) -> None:
    """Write ``record`` as JSON to ``path``."""
    with open(path, "w") as handle:
        json.dump(record, handle)
