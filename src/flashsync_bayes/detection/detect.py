"""Flash detection front door: videos -> row profiles -> ambient light divided out -> edges -> events (cached).

The numerics live in :mod:`~flashsync_bayes.detection.profiles` (row profiles, scores),
:mod:`~flashsync_bayes.detection.ambient` (auto-exposure gain, mains flicker),
:mod:`~flashsync_bayes.detection.candidates` and :mod:`~flashsync_bayes.detection.edges`;
:mod:`~flashsync_bayes.detection.stream` runs them on one video slice by slice while it is
decoded. This module finds one video's events (:func:`camera_events`) through the explicit cache
(:mod:`~flashsync_bayes.detection.cache`), builds the events dataset of many (run by
:mod:`.distribute`) and recomputes what detection saw around one frame (:func:`frame_evidence`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import xarray as xr

from flashsync_bayes import __version__
from flashsync_bayes.detection import cache
from flashsync_bayes.detection.ambient import Flicker
from flashsync_bayes.detection.distribute import in_process, map_videos
from flashsync_bayes.detection.evidence import Evidence
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.detection.stream import VideoDetection, detect_video, frame_window, window_evidence
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import check_unique_labels, clock_columns, make_events
from flashsync_bayes.io import video
from flashsync_bayes.timing import FrameClock, estimate_frame_clock

#: Per-camera event variables of the flicker fit (:class:`~flashsync_bayes.detection.ambient.Flicker`):
#: band period in rows and its standard error (NaN without flicker), phase step per frame (cycles), log amplitude, and
#: the frames over which the period was measured (1, or more for bands that creep).
FLICKER_VARIABLES = {
    "period_rows": "flicker_period_rows",
    "period_rows_sd": "flicker_period_rows_sd",
    "phase_step": "flicker_phase_step",
    "amplitude": "flicker_amplitude",
    "lag_frames": "flicker_lag_frames",
}
#: Per-event columns of :attr:`CameraEvents.edges`.
EDGE_COLUMNS = ("frame", "frame_time_ms", "row", "row_sd", "polarity", "edge", "amplitude")


# --- one video, then all of them ----------------------------------------------------------------


class CameraEvents(NamedTuple):
    """What detection finds in one video, as plain NumPy arrays and floats (so it pickles between processes).

    Attributes:
        info: the video's :class:`~flashsync_bayes.io.video.VideoInfo`.
        n_frames: frames decoded.
        clock: the regular frame clock behind the timestamps (ms), None where irregular.
        flicker: what the flicker fit learnt (:class:`~flashsync_bayes.detection.ambient.Flicker`, floats).
        edges: per-edge columns ``(n_edges,)`` of :func:`~flashsync_bayes.detection.edges.find_edges`
            (``frame`` int64) and ``frame_time_ms`` (ms) of each edge's frame.
    """

    info: video.VideoInfo
    n_frames: int
    clock: FrameClock | None
    flicker: Flicker
    edges: dict[str, np.ndarray]


def camera_events(path: str, settings: DetectorSettings, cache_dir: str | None = None, progress: bool = False) -> CameraEvents:
    """:class:`CameraEvents` of one video: probe, then detection (from ``cache_dir`` when it holds it), frame clock."""
    info = video.probe(path)
    found = video_detection(path, settings, cache_dir, progress, info)
    edges = {**found.edges, "frame_time_ms": found.frame_time_ms[found.edges["frame"]]}
    return CameraEvents(info, int(found.frame_time_ms.size), estimate_frame_clock(found.frame_time_ms), found.flicker, edges)


def video_detection(
    path: str,
    settings: DetectorSettings,
    cache_dir: str | None = None,
    progress: bool = False,
    info: video.VideoInfo | None = None,
) -> VideoDetection:
    """What detection finds in one video (:func:`~flashsync_bayes.detection.stream.detect_video`), from ``cache_dir``
    when it holds it (else stored there); ``info`` is the video's probe when the caller has it."""
    found = cache.load(path, settings, cache_dir) if cache_dir else None
    if found is None:
        found = detect_video(path, settings, info, progress)
        if cache_dir:
            cache.save(path, settings, cache_dir, found)
    return found


def frame_evidence(path, frame: int, settings: DetectorSettings | None = None, cache_dir: str | None = None) -> tuple[Evidence, int]:
    """``(Evidence, first frame)`` of the window in which detection looked at ``frame`` of a video.

    Only that window is decoded (after a seek); the frame times come from ``cache_dir`` when
    detection cached them there, else from the container. The flicker band is searched in the
    window. ``settings`` must be the detector's (default :class:`~flashsync_bayes.detection.DetectorSettings`).
    """
    path, settings = os.fspath(path), settings or DetectorSettings()
    found = cache.load(path, settings, cache_dir) if cache_dir else None
    frame_time_ms = found.frame_time_ms if found is not None else video.frame_times_ms(path)
    window = frame_window(path, int(frame), settings, frame_time_ms)
    return window_evidence(window, settings)[0], window.start


def detect_events(
    paths: Sequence[str],
    settings: DetectorSettings | None = None,
    *,
    labels: Sequence[str] | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
    jobs: int | str = 1,
    client=None,
) -> xr.Dataset:
    """Events dataset (DESIGN §4) of the flashes visible in each video; ``flash`` is -1 (unmatched).

    ``labels`` name the cameras (default: the paths as given). With ``cache_dir`` what detection
    finds in each video is stored there and reused until the video or the settings change (:mod:`.cache`).
    Per camera the events also carry what the flicker fit learnt (:data:`FLICKER_VARIABLES`).
    Videos are decoded one after the other here (``jobs=1``), in up to ``jobs`` local processes
    (0 or "auto": one per CPU), or one task each on a ``dask.distributed`` ``client``, whose workers
    must read ``paths`` and ``cache_dir`` at the same paths (a shared file system); the events are
    the same either way (:func:`~flashsync_bayes.detection.distribute.map_videos`).
    """
    settings = settings or DetectorSettings()
    paths = [os.fspath(p) for p in paths]
    labels = list(labels) if labels is not None else list(paths)
    if not paths:
        raise FlashsyncError("no videos given")
    check_unique_labels(labels)
    here = in_process(len(paths), jobs, client)
    work = functools.partial(camera_events, settings=settings, cache_dir=cache_dir, progress=progress and here)
    found = map_videos(work, paths, jobs=jobs, client=client, progress=progress)
    return events_dataset(labels, paths, found, settings)


def events_dataset(
    labels: Sequence[str], paths: Sequence[str], found: Sequence[CameraEvents], settings: DetectorSettings
) -> xr.Dataset:
    """Events dataset of the cameras ``labels`` (videos ``paths``) from their :class:`CameraEvents`."""
    camera_info = {
        "path": list(paths),
        "width": [c.info.width for c in found],
        "height": [c.info.height for c in found],
        "frame_period_ms": [c.info.frame_period_ms for c in found],
        "n_frames": [c.n_frames for c in found],
        "rotation_deg": [c.info.rotation_deg for c in found],
    }
    event_info = {name: np.concatenate([c.edges[name] for c in found]) for name in EDGE_COLUMNS}
    event_info["event_camera"] = [label for label, c in zip(labels, found) for _ in range(c.edges["frame"].size)]
    attrs = {"flashsync_version": __version__, **{k: str(v) for k, v in dataclasses.asdict(settings).items()}}
    events = make_events(labels, camera_info, event_info, attrs=attrs)
    flicker_columns = {
        variable: ("camera", np.array([getattr(c.flicker, field) for c in found], dtype=np.float64))
        for field, variable in FLICKER_VARIABLES.items()
    }
    return events.assign(clock_columns([c.clock for c in found])).assign(flicker_columns)
