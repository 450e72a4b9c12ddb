"""Flash detection front door: videos -> row profiles (cached) -> ambient light divided out -> edges -> events.

The numerics live in :mod:`~flashsync_bayes.detection.profiles` (row profiles, scores),
:mod:`~flashsync_bayes.detection.ambient` (auto-exposure gain, mains flicker),
:mod:`~flashsync_bayes.detection.candidates` and :mod:`~flashsync_bayes.detection.edges`; this
module streams frames, keeps the explicit profile cache, finds one video's events
(:func:`camera_events`) and builds the events dataset of many (run by :mod:`.distribute`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from flashsync_bayes import __version__
from flashsync_bayes.detection import profiles
from flashsync_bayes.detection.ambient import Flicker
from flashsync_bayes.detection.distribute import in_process, map_videos
from flashsync_bayes.detection.edges import find_edges
from flashsync_bayes.detection.evidence import flash_evidence
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import clock_columns, make_events
from flashsync_bayes.io import video
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.timing import FrameClock, estimate_frame_clock, tick_numbers

#: Per-camera event variables of the flicker fit (:class:`~flashsync_bayes.detection.ambient.Flicker`):
#: band period in rows (NaN without flicker), phase step per frame (cycles), log amplitude.
FLICKER_VARIABLES = {"period_rows": "flicker_period_rows", "phase_step": "flicker_phase_step", "amplitude": "flicker_amplitude"}
#: Per-event columns of :attr:`CameraEvents.edges`.
EDGE_COLUMNS = ("frame", "frame_time_ms", "row", "row_sd", "polarity", "edge", "amplitude")


# --- row changes of a whole video, with the explicit cache -------------------------------------


def _cache_path(path: str, settings: DetectorSettings, cache_dir: str) -> str:
    """Cache file for one video: named by a hash of its identity (path, size, mtime) and settings."""
    stat = os.stat(path)
    identity = {
        "path": os.path.abspath(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        **settings.profile_key(),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(cache_dir, f"{stem}.{digest}.profiles.npz")


def compute_profiles(
    path: str, settings: DetectorSettings, progress: bool = True, info: video.VideoInfo | None = None
) -> tuple[np.ndarray, profiles.RowProfiles]:
    """``(frame_time_ms (n,), RowProfiles (n, height) float32)`` of every decoded frame, from one decoding run.

    Each frame's time is its pts as the decoder reports it (no separate pass over the file); the
    first frame's changes are 0; ``info`` is the video's probe when the caller has it. Luma codes
    count from the video's black level (16 in video range, 0 in full range;
    :class:`~flashsync_bayes.detection.profiles.LumaLevels`).
    """
    info = info or video.probe(path)
    levels = profiles.FULL_RANGE if info.full_range else profiles.VIDEO_RANGE
    width = None if settings.width is None else min(settings.width, info.width)
    chunks = video.prefetch(video.iter_luma_times(path, chunk_frames=settings.chunk_frames, width=width, info=info))
    out, times, previous = [], [], None
    with tqdm(desc=os.path.basename(path), unit="frame", disable=not progress, leave=False) as bar:
        for chunk_times, chunk in chunks:
            n = chunk.shape[0]
            if n < settings.chunk_frames:
                pad = np.repeat(chunk[-1:], settings.chunk_frames - n, axis=0)
                chunk = np.concatenate([chunk, pad])
            frames = jnp.asarray(chunk)
            if previous is None:
                previous = profiles.first_state(frames[0], settings.n_blocks, levels)
            rows, last = profiles.chunk_profiles(frames, previous, levels, n_blocks=settings.n_blocks, rank=settings.rank)
            previous = last if n == settings.chunk_frames else None
            out.append([np.asarray(field[:n]) for field in rows])
            times.append(chunk_times)
            bar.update(n)
    if not out:
        raise FlashsyncError(f"{path} has no video frames that ffmpeg can decode")
    frame_time_ms = _checked_times(path, np.concatenate(times), info)
    return frame_time_ms, profiles.RowProfiles(*(np.concatenate(column) for column in zip(*out)))


def video_profiles(
    path: str,
    settings: DetectorSettings,
    cache_dir: str | None = None,
    progress: bool = True,
    info: video.VideoInfo | None = None,
) -> tuple[np.ndarray, profiles.RowProfiles]:
    """``(frame_time_ms (n,), RowProfiles (n, height))`` of a video, from the cache when valid.

    ``info`` is the video's :func:`~flashsync_bayes.io.video.probe`, when the caller has it (else probed here).
    """
    cache_file = _cache_path(path, settings, cache_dir) if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        with np.load(cache_file) as cached:
            return cached["frame_time_ms"], profiles.RowProfiles(*(cached[f] for f in profiles.RowProfiles._fields))
    frame_time_ms, rows = compute_profiles(path, settings, progress, info)
    if cache_file:
        atomic_write(cache_file, lambda tmp: _save_npz(tmp, frame_time_ms=frame_time_ms, **rows._asdict()))
    return frame_time_ms, rows


#: A video whose decoded frames end this much (ms, or this share of its length if more) before the
#: container's duration is reported as broken off (audio a little longer than video is common).
BROKEN_OFF_MS, BROKEN_OFF_SHARE = 1000.0, 0.05


def _checked_times(path: str, frame_time_ms: np.ndarray, info: video.VideoInfo) -> np.ndarray:
    """The decoded frames' pts (ms), after checking that every frame has one; warns of a file that breaks off."""
    if not np.all(np.isfinite(frame_time_ms)):
        raise FlashsyncError(f"{path} has frames without timestamps; remux it: ffmpeg -i IN -c copy OUT.mkv")
    decoded_ms = float(frame_time_ms[-1] - frame_time_ms[0]) + info.frame_period_ms
    missing_ms = info.duration_ms - decoded_ms
    if np.isfinite(missing_ms) and missing_ms > max(BROKEN_OFF_MS, BROKEN_OFF_SHARE * info.duration_ms):
        warnings.warn(
            f"{path} breaks off after frame {frame_time_ms.size} at {decoded_ms / 1000:.1f} s of the "
            f"{info.duration_ms / 1000:.1f} s its container lists (a truncated file?); using the frames up to there",
            stacklevel=3,
        )
    return frame_time_ms


def _save_npz(path: str, **arrays) -> None:
    """np.savez to exactly ``path`` (np.savez would append .npz to a name without it)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


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
    """:class:`CameraEvents` of one video: probe, row profiles (cached), frame clock, evidence, edges."""
    info = video.probe(path)
    frame_time_ms, rows = video_profiles(path, settings, cache_dir, progress, info)
    clock = estimate_frame_clock(frame_time_ms)
    evidence, flicker = flash_evidence(rows, tick_numbers(frame_time_ms, clock), settings)
    edges = {name: np.asarray(column) for name, column in find_edges(evidence, settings).items()}
    edges["frame"] = edges["frame"].astype(np.int64)
    edges["frame_time_ms"] = np.asarray(frame_time_ms)[edges["frame"]]
    return CameraEvents(info, int(frame_time_ms.size), clock, Flicker(*map(float, flicker)), edges)


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

    ``labels`` name the cameras (default: the paths as given). With ``cache_dir`` the row profiles
    of each video are stored there and reused until the video or the profile settings change.
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
    if len(set(labels)) != len(labels):
        raise FlashsyncError(f"camera labels must be unique, got {labels}")
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
