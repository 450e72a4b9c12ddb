"""Flash detection front door: videos -> row changes (cached) -> leading/trailing edges -> events.

The numerics live in :mod:`flashsync_bayes.profiles`; this module streams frames, keeps the
explicit profile cache, picks flash frames and edge candidates, and builds the events dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from flashsync_bayes import __version__, profiles, video
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import atomic_write, clock_columns, make_events
from flashsync_bayes.timing import estimate_frame_clock

#: Bumped whenever the cached row changes would come out differently.
PROFILE_FORMAT = 1
#: Rows within which an opposite step in the next frame counts as the same pulse's return.
RETURN_ROWS = 16
#: Frames scored per JAX call (a fixed shape, so scoring compiles once per frame height).
SCORE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    """Settings of the flash detector.

    Attributes:
        n_blocks: column blocks whose median makes a row's change robust to moving objects.
        width: let ffmpeg shrink wider frames to this many columns first (an area average, as
            the block means are; rows are never resampled); None keeps the stored width.
        chunk_frames: frames decoded and processed per step (bounds memory).
        min_step: a flash must change a row's brightness by at least this fraction (0.01 = 1 %).
        min_snr: a flash step must exceed this many noise sds of a box step.
        spread: ... and the median of all frames' steps by this many robust sds of them.
        quiet_fraction: rows above a leading edge may change by at most this fraction of its gain.
        max_row_sd: edges whose fitted position is less certain than this (rows) are dropped.
        row_sd_floor: rows added in quadrature to every edge's sd for what a fit cannot see:
            lossy codecs shift edges by a fraction of a row (x264 CRF 23: about 0.3 rows RMS)
            with residuals that still look clean. Use 0 for raw or lossless video.
    """

    n_blocks: int = 16
    width: int | None = 256
    chunk_frames: int = 32
    min_step: float = 0.01
    min_snr: float = 10.0
    spread: float = 12.0
    quiet_fraction: float = 0.25
    max_row_sd: float = 3.0
    row_sd_floor: float = 0.2

    def profile_key(self) -> dict:
        """Settings that change the cached row changes."""
        return {"n_blocks": self.n_blocks, "width": self.width, "format": PROFILE_FORMAT}


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


def compute_changes(path: str, settings: DetectorSettings, progress: bool = True) -> np.ndarray:
    """Row changes ``(n_frames, height)`` float32 of every decoded frame (the first frame's are 0)."""
    info = video.probe(path)
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
                previous = profiles.block_means(frames[:1], settings.n_blocks)[0]
            change, last = profiles.chunk_changes(frames, previous, n_blocks=settings.n_blocks)
            previous = last if n == settings.chunk_frames else None
            out.append(np.asarray(change[:n]))
            bar.update(n)
    if not out:
        return np.zeros((0, info.height), np.float32)
    return np.concatenate(out)


def video_changes(
    path: str, settings: DetectorSettings, cache_dir: str | None = None, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(frame_time_ms (n,), row changes (n, height))`` of a video, from the cache when valid."""
    cache_file = _cache_path(path, settings, cache_dir) if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        with np.load(cache_file) as cached:
            return cached["frame_time_ms"], cached["change"]
    frame_time_ms = video.frame_times_ms(path)
    change = compute_changes(path, settings, progress)
    if change.shape[0] != frame_time_ms.size:
        raise FlashsyncError(
            f"{path}: decoded {change.shape[0]} frames but the container lists {frame_time_ms.size} timestamps"
        )
    if cache_file:
        atomic_write(cache_file, lambda tmp: _save_npz(tmp, frame_time_ms=frame_time_ms, change=change))
    return frame_time_ms, change


def _save_npz(path: str, **arrays) -> None:
    """np.savez to exactly ``path`` (np.savez would append .npz to a name without it)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


# --- from row changes to edges -----------------------------------------------------------------


def score_frames(change: np.ndarray) -> profiles.FrameScores:
    """:func:`profiles.frame_scores` over all frames, in fixed-size batches."""
    n, rows = change.shape
    parts = []
    for start in range(0, n, SCORE_BATCH):
        batch = change[start : start + SCORE_BATCH]
        padded = np.zeros((SCORE_BATCH, rows), np.float32)
        padded[: batch.shape[0]] = batch
        scores = profiles.frame_scores(jnp.asarray(padded))
        parts.append([np.asarray(field)[: batch.shape[0]] for field in scores])
    if not parts:
        return profiles.FrameScores(*(np.zeros(0) for _ in profiles.FrameScores._fields))
    return profiles.FrameScores(*(np.concatenate(column) for column in zip(*parts)))


def _leading_edge_anchor(change_row: np.ndarray, polarity: int, threshold: float, half_width: int, settings):
    """Row where the topmost strong step of ``polarity`` reaches half its height, if the rows above are quiet.

    None when there is no such step or the rows above it changed too (the band started earlier).
    A step too close to the top to see quiet rows above it comes back as ``-anchor - 1``: its band
    may start inside the frame or in the hidden rows before it, which only the edge fit can tell.
    """
    steps = polarity * np.asarray(profiles.box_step(jnp.asarray(change_row[None]), half_width))[0]
    strong = np.flatnonzero(steps > 0.5 * threshold)
    if strong.size == 0:
        return None
    first = strong[0]
    run_end = first
    while run_end + 1 < steps.size and steps[run_end + 1] > 0.5 * threshold:
        run_end += 1
    run = steps[first : run_end + 1]
    anchor = first + int(np.argmax(run >= 0.5 * run.max()))
    sharp = profiles.STEP_HALF_WIDTHS[0]
    quiet_rows = change_row[max(anchor - profiles.FIT_ROWS_ABOVE, 0) : max(anchor - 2 * sharp, 0)]
    gain = polarity * np.median(change_row[anchor : anchor + 2 * half_width])
    if gain <= 0:
        return None
    if quiet_rows.size < sharp:
        return -int(anchor) - 1  # at the top: the fit must show that the band starts inside the frame
    if np.abs(np.median(quiet_rows)) > settings.quiet_fraction * gain:
        return None
    return int(anchor)


def _edge_candidates(change: np.ndarray, candidates: np.ndarray, thresholds: np.ndarray, settings):
    """``(frames, anchors, polarity, at_top)`` of leading-edge candidates in the candidate frames.

    Each frame is searched at the box half-widths in turn (sharp first) with their ``thresholds``;
    ``at_top`` marks candidates without quiet rows above them (see :func:`_leading_edge_anchor`).

    A pulse lights rows below its edge in one frame and leaves them in the next: the next frame's
    change then shows an opposite step at the same row with quiet rows above. That return is part
    of the same flash, not a new event, and is skipped.
    """
    accepted: list[tuple[int, int, int]] = []
    for k in candidates:
        for sign in (1, -1):
            anchor = None
            for half_width, threshold in zip(profiles.STEP_HALF_WIDTHS, thresholds):
                anchor = _leading_edge_anchor(change[k], sign, threshold, half_width, settings)
                if anchor is not None:
                    break
            if anchor is None:
                continue
            is_return = any(
                f == k - 1 and p == -sign and abs(max(a, -a - 1) - max(anchor, -anchor - 1)) <= RETURN_ROWS
                for f, a, p in accepted[-4:]
            )
            if not is_return:
                accepted.append((int(k), anchor, sign))
    if not accepted:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, bool),)
    frames, anchors, polarity = (np.array(column, dtype=np.int64) for column in zip(*accepted))
    return frames, np.where(anchors < 0, -anchors - 1, anchors), polarity, anchors < 0


def _fit_windows(change: np.ndarray, frames: np.ndarray, anchors: np.ndarray, polarity: np.ndarray):
    """Fit windows ``(n, window)`` and in-frame weights around each anchor, sign-flipped to rise."""
    offsets = np.arange(-profiles.FIT_ROWS_ABOVE, profiles.FIT_ROWS_BELOW)
    rows = anchors[:, None] + offsets[None, :]
    inside = (rows >= 0) & (rows < change.shape[1])
    values = change[frames[:, None], np.clip(rows, 0, change.shape[1] - 1)] * polarity[:, None]
    return np.where(inside, values, 0.0), inside.astype(np.float64)


def _centred_anchors(change: np.ndarray, frames: np.ndarray, anchors: np.ndarray, polarity: np.ndarray):
    """Anchors moved to the nearest row of a first free edge fit, so every window sits alike on its edge."""
    fit = profiles.fit_edges(*_padded(*_fit_windows(change, frames, anchors, polarity)))
    offset = np.asarray(fit.params)[: frames.size, 2]
    offset = np.where(np.isfinite(offset), np.clip(offset, -profiles.FIT_ROWS_ABOVE, profiles.FIT_ROWS_BELOW), 0.0)
    return np.clip(anchors + np.round(offset).astype(np.int64), 0, change.shape[1] - 1)


def _padded(windows: np.ndarray, weights: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Fit windows and weights padded to a power-of-two count (at least 8): fits compile for few shapes."""
    n = windows.shape[0]
    pad = ((0, max(8, 1 << (n - 1).bit_length()) - n), (0, 0))
    return jnp.asarray(np.pad(windows, pad)), jnp.asarray(np.pad(weights, pad, constant_values=1.0))


def _fit_with_shared_blur(windows: np.ndarray, weights: np.ndarray, pool: np.ndarray, floor_rows: float):
    """``(params, edge_sd, trailing, trailing_sd)`` of edge fits with the blur shared by a video.

    The codec and optics blur rows the same way in every frame of a video, while a single edge
    cannot tell blur from the pulse's shape well. With three or more edges in ``pool`` (a mask)
    each is fitted freely first; the final fit fixes the blur at the median of those, and the
    spread of the edge over the 10-90 % range of their blurs joins its sd. ``floor_rows`` is
    added in quadrature.
    """
    n = windows.shape[0]
    windows, weights = _padded(windows, weights)
    size = windows.shape[0]
    free = profiles.fit_edges(windows, weights)
    spread = np.zeros(size)
    fit = free
    if np.sum(pool) >= 3:
        low, mid, high = np.quantile(np.exp(np.asarray(free.params)[:n, 4][pool]), [0.1, 0.5, 0.9])
        fits = [profiles.fit_edges(windows, weights, jnp.full(size, blur)) for blur in (low, mid, high)]
        fit = fits[1]
        spread = np.std([np.asarray(f.params)[:, 2] for f in fits], axis=0)
    params = np.asarray(fit.params)[:n]
    edge_sd = np.sqrt(np.asarray(fit.edge_sd)[:n] ** 2 + spread[:n] ** 2 + floor_rows**2)
    trailing_sd = np.sqrt(np.asarray(fit.trailing_sd)[:n] ** 2 + spread[:n] ** 2 + floor_rows**2)
    return params, edge_sd, np.asarray(fit.trailing)[:n], trailing_sd


def find_edges(change: np.ndarray, settings: DetectorSettings) -> dict[str, np.ndarray]:
    """Leading (and, where visible, trailing) edges in row changes ``(n_frames, rows)``.

    Returns per-edge columns: ``frame``, ``row``, ``row_sd``, ``polarity``, ``edge``, ``amplitude``.
    """
    empty = {k: np.zeros(0) for k in ("frame", "row", "row_sd", "polarity", "amplitude")}
    empty["edge"] = np.zeros(0, dtype=str)
    if change.shape[0] < 2:
        return empty
    scores = score_frames(change)
    thresholds = np.asarray(profiles.flash_thresholds(scores.step, scores.noise, settings.min_snr, settings.spread, settings.min_step))
    candidates = np.flatnonzero(np.any(np.abs(scores.step) > thresholds, axis=1))
    frames, anchors, polarity, at_top = _edge_candidates(change, candidates, thresholds, settings)
    if not frames.size:
        return empty
    anchors = _centred_anchors(change, frames, anchors, polarity)
    windows, weights = _fit_windows(change, frames, anchors, polarity)
    params, edge_sd, trailing, trailing_sd = _fit_with_shared_blur(windows, weights, ~at_top, settings.row_sd_floor)
    row = anchors + params[:, 2]
    good = np.isfinite(row) & (edge_sd < settings.max_row_sd) & (row > 0) & (row < change.shape[1]) & (params[:, 1] > 0)
    quiet_above = np.abs(params[:, 0]) < settings.quiet_fraction * params[:, 1]
    good &= ~at_top | (quiet_above & (row > 2 * edge_sd))
    lead = {
        "frame": frames[good],
        "row": row[good],
        "row_sd": edge_sd[good],
        "polarity": polarity[good],
        "amplitude": (polarity * params[:, 1])[good],
        "edge": np.full(good.sum(), "leading"),
    }
    trail_row = anchors + trailing
    in_window = trailing < profiles.FIT_ROWS_BELOW - 2 * profiles.STEP_HALF_WIDTHS[0]
    seen = good & in_window & (trail_row < change.shape[1] - 2) & (trailing_sd < settings.max_row_sd)
    trail = {
        "frame": frames[seen],
        "row": trail_row[seen],
        "row_sd": trailing_sd[seen],
        "polarity": -polarity[seen],
        "amplitude": (-polarity * params[:, 1])[seen],
        "edge": np.full(seen.sum(), "trailing"),
    }
    return {key: np.concatenate([lead[key], trail[key]]) for key in lead}


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

    ``labels`` name the cameras (default: the paths as given). With ``cache_dir`` the row changes
    of each video are stored there and reused until the video or the profile settings change.
    """
    settings = settings or DetectorSettings()
    paths = [os.fspath(p) for p in paths]
    labels = list(labels) if labels is not None else list(paths)
    if not paths:
        raise FlashsyncError("no videos given")
    if len(set(labels)) != len(labels):
        raise FlashsyncError(f"camera labels must be unique, got {labels}")
    camera_info = {name: [] for name in ("path", "width", "height", "frame_period_ms", "n_frames", "rotation_deg")}
    clocks = []
    columns = {name: [] for name in ("event_camera", "frame", "frame_time_ms", "row", "row_sd", "polarity", "edge", "amplitude")}
    for label, path in tqdm(list(zip(labels, paths)), desc="videos", unit="video", disable=not progress or len(paths) < 2):
        info = video.probe(path)
        frame_time_ms, change = video_changes(path, settings, cache_dir, progress)
        edges = find_edges(change, settings)
        for name, value in zip(camera_info, (path, info.width, info.height, info.frame_period_ms, frame_time_ms.size, info.rotation_deg)):
            camera_info[name].append(value)
        clocks.append(estimate_frame_clock(frame_time_ms))
        frames = edges["frame"].astype(np.int64)
        columns["event_camera"] += [label] * frames.size
        columns["frame"].append(frames)
        columns["frame_time_ms"].append(frame_time_ms[frames])
        for name in ("row", "row_sd", "polarity", "edge", "amplitude"):
            columns[name].append(edges[name])
    event_info = {k: (v if k == "event_camera" else np.concatenate(v)) for k, v in columns.items()}
    attrs = {"flashsync_version": __version__, **{k: str(v) for k, v in dataclasses.asdict(settings).items()}}
    events = make_events(labels, camera_info, event_info, attrs=attrs)
    return events.assign(clock_columns(clocks))
