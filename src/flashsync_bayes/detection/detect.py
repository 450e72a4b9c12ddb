"""Flash detection front door: videos -> row profiles (cached) -> ambient light divided out -> edges -> events.

The numerics live in :mod:`~flashsync_bayes.detection.profiles` (row profiles, scores),
:mod:`~flashsync_bayes.detection.ambient` (auto-exposure gain, mains flicker),
:mod:`~flashsync_bayes.detection.candidates` and :mod:`~flashsync_bayes.detection.edges`; this
module streams frames, keeps the explicit profile cache and builds the events dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from flashsync_bayes import __version__
from flashsync_bayes.detection import profiles
from flashsync_bayes.detection.edges import find_edges
from flashsync_bayes.detection.evidence import flash_evidence
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import clock_columns, make_events
from flashsync_bayes.io import video
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.timing import estimate_frame_clock, tick_numbers

#: Per-camera event variables of the flicker fit (:class:`~flashsync_bayes.detection.ambient.Flicker`):
#: band period in rows (NaN without flicker), phase step per frame (cycles), log amplitude.
FLICKER_VARIABLES = {"period_rows": "flicker_period_rows", "phase_step": "flicker_phase_step", "amplitude": "flicker_amplitude"}


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
) -> profiles.RowProfiles:
    """:class:`~flashsync_bayes.detection.profiles.RowProfiles` ``(n_frames, height)`` float32 of every decoded frame.

    The first frame's changes are 0; ``info`` is the video's probe when the caller has it. Luma codes count from the video's black level (16 in video
    range, 0 in full range; :class:`~flashsync_bayes.detection.profiles.LumaLevels`).
    """
    info = info or video.probe(path)
    levels = profiles.FULL_RANGE if info.full_range else profiles.VIDEO_RANGE
    width = None if settings.width is None else min(settings.width, info.width)
    chunks = video.prefetch(video.iter_luma(path, chunk_frames=settings.chunk_frames, width=width))
    out, previous = [], None
    with tqdm(desc=os.path.basename(path), unit="frame", disable=not progress, leave=False) as bar:
        for chunk in chunks:
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
            bar.update(n)
    if not out:
        return profiles.RowProfiles(*(np.zeros((0, info.height), np.float32) for _ in profiles.RowProfiles._fields))
    return profiles.RowProfiles(*(np.concatenate(column) for column in zip(*out)))


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
    frame_time_ms = video.frame_times_ms(path)
    rows = compute_profiles(path, settings, progress, info)
    frame_time_ms = _decoded_frames(path, frame_time_ms, rows.median.shape[0])
    if cache_file:
        atomic_write(cache_file, lambda tmp: _save_npz(tmp, frame_time_ms=frame_time_ms, **rows._asdict()))
    return frame_time_ms, rows


def _decoded_frames(path: str, frame_time_ms: np.ndarray, n_decoded: int) -> np.ndarray:
    """The timestamps (ms) of the ``n_decoded`` frames: a file that breaks off (truncated) is used up to the break."""
    if n_decoded > frame_time_ms.size or n_decoded == 0:
        raise FlashsyncError(f"{path}: decoded {n_decoded} frames but the container lists {frame_time_ms.size} timestamps")
    if n_decoded < frame_time_ms.size:
        warnings.warn(
            f"{path} breaks off after frame {n_decoded} of the {frame_time_ms.size} it lists (a truncated file?); "
            "using the frames up to there",
            stacklevel=3,
        )
    return frame_time_ms[:n_decoded]


def _save_npz(path: str, **arrays) -> None:
    """np.savez to exactly ``path`` (np.savez would append .npz to a name without it)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


# --- the front door ----------------------------------------------------------------------------


def detect_events(
    paths: Sequence[str],
    settings: DetectorSettings | None = None,
    *,
    labels: Sequence[str] | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Events dataset (DESIGN §4) of the flashes visible in each video; ``flash`` is -1 (unmatched).

    ``labels`` name the cameras (default: the paths as given). With ``cache_dir`` the row profiles
    of each video are stored there and reused until the video or the profile settings change.
    Per camera the events also carry what the flicker fit learnt (:data:`FLICKER_VARIABLES`).
    """
    settings = settings or DetectorSettings()
    paths = [os.fspath(p) for p in paths]
    labels = list(labels) if labels is not None else list(paths)
    if not paths:
        raise FlashsyncError("no videos given")
    if len(set(labels)) != len(labels):
        raise FlashsyncError(f"camera labels must be unique, got {labels}")
    camera_info = {name: [] for name in ("path", "width", "height", "frame_period_ms", "n_frames", "rotation_deg")}
    clocks, flickers = [], []
    columns = {name: [] for name in ("event_camera", "frame", "frame_time_ms", "row", "row_sd", "polarity", "edge", "amplitude")}
    for label, path in tqdm(list(zip(labels, paths)), desc="videos", unit="video", disable=not progress or len(paths) < 2):
        info = video.probe(path)
        frame_time_ms, rows = video_profiles(path, settings, cache_dir, progress, info)
        clock = estimate_frame_clock(frame_time_ms)
        evidence, flicker = flash_evidence(rows, tick_numbers(frame_time_ms, clock), settings)
        edges = find_edges(evidence, settings)
        flickers.append(flicker)
        for name, value in zip(camera_info, (path, info.width, info.height, info.frame_period_ms, frame_time_ms.size, info.rotation_deg)):
            camera_info[name].append(value)
        clocks.append(clock)
        frames = edges["frame"].astype(np.int64)
        columns["event_camera"] += [label] * frames.size
        columns["frame"].append(frames)
        columns["frame_time_ms"].append(frame_time_ms[frames])
        for name in ("row", "row_sd", "polarity", "edge", "amplitude"):
            columns[name].append(edges[name])
    event_info = {k: (v if k == "event_camera" else np.concatenate(v)) for k, v in columns.items()}
    attrs = {"flashsync_version": __version__, **{k: str(v) for k, v in dataclasses.asdict(settings).items()}}
    events = make_events(labels, camera_info, event_info, attrs=attrs)
    flicker_columns = {
        variable: ("camera", np.array([getattr(f, field) for f in flickers], dtype=np.float64))
        for field, variable in FLICKER_VARIABLES.items()
    }
    return events.assign(clock_columns(clocks)).assign(flicker_columns)
