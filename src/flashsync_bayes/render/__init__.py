"""Synchronized outputs (DESIGN §3): frames of every camera on the reference clock, videos and a preview montage.

Modules, from the bottom up:

- :mod:`.choice`: which frame of every camera goes with each reference frame (the result's frame
  table), those frames decoded once and in order, and :func:`synchronized_frames` for analysis code.
- :mod:`.labels`: text burnt into frames (matplotlib glyphs, no ffmpeg drawtext).
- :mod:`.output`: checks before writing, progress bars.
- :mod:`.synchronized`: :func:`write_synchronized`, one re-timed video per camera and ``frames.json``.
- :mod:`.preview`: :func:`write_preview`, the labelled montage.
"""

from flashsync_bayes.render.choice import (
    FrameChoice,
    camera_frame_times,
    frame_choice,
    select_frames,
    synchronized_frames,
    video_paths,
)
from flashsync_bayes.render.labels import draw_label, label_mask
from flashsync_bayes.render.preview import PreviewLayout, preview_label, preview_layout, write_preview
from flashsync_bayes.render.synchronized import FRAMES_JSON, frames_record, output_paths, write_synchronized

__all__ = [
    "FRAMES_JSON",
    "FrameChoice",
    "PreviewLayout",
    "camera_frame_times",
    "draw_label",
    "frame_choice",
    "frames_record",
    "label_mask",
    "output_paths",
    "preview_label",
    "preview_layout",
    "select_frames",
    "synchronized_frames",
    "video_paths",
    "write_preview",
    "write_synchronized",
]
