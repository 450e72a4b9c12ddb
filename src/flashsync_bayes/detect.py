"""Flash detection front door: videos -> row profiles (cached) -> ambient light divided out -> edges -> events.

The numerics live in :mod:`flashsync_bayes.profiles` (row profiles, edge fits) and
:mod:`flashsync_bayes.ambient` (auto-exposure gain, mains flicker); this module streams frames,
keeps the explicit profile cache, picks flash frames and edge candidates, and builds the events
dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from flashsync_bayes import __version__, ambient, profiles, video
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import atomic_write, clock_columns, make_events
from flashsync_bayes.shapes import power_of_two
from flashsync_bayes.timing import estimate_frame_clock

#: Bumped whenever the cached row profiles would come out differently.
PROFILE_FORMAT = 2
#: Share of the frame's rows over which the median change below a leading edge must hold the
#: step (so half of it): a flash lights at least its exposure's rows (1 ms at 24 fps with the
#: least blanking: 2.5 % of the rows), a moving object's edge a few.
MIN_BAND = 0.04
#: Rows within which an opposite step in the next frame counts as the same pulse's return.
RETURN_ROWS = 16
#: A candidate with another of its polarity this many frames away and this share of the rows
#: apart is on a moving object's track, not a flash (see :func:`_off_tracks`).
TRACK_FRAMES = 2
TRACK_ROWS = 0.05
#: Rows a first free fit may move an anchor (see :func:`_centred_anchors`).
MAX_CENTRING_ROWS = profiles.STEP_HALF_WIDTHS[1]
#: Edges whose free fit is less certain than this (rows) do not vote on a video's blur, which is
#: then fixed at the median of the votes; the edge's spread over the quartiles joins its sd.
POOL_MAX_SD = 1.0
BLUR_QUANTILES = (0.25, 0.5, 0.75)
#: Frames scored per JAX call (a fixed shape, so scoring compiles once per frame height).
SCORE_BATCH = 256
#: Per-camera event variables of the flicker fit (:class:`~flashsync_bayes.ambient.Flicker`):
#: band period in rows (NaN without flicker), phase step per frame (cycles), log amplitude.
FLICKER_VARIABLES = {"period_rows": "flicker_period_rows", "phase_step": "flicker_phase_step", "amplitude": "flicker_amplitude"}


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    """Settings of the flash detector.

    Attributes:
        n_blocks: column blocks; their median makes a row's ambient change robust to moving objects.
        rank: a flash must reach at least this many blocks (4 of 16: a quarter of the columns);
            rising edges are sought in the rank-th largest block change, falling ones in the
            rank-th smallest.
        ambient: divide the ambient light's change (auto-exposure gain, mains flicker) out of the
            profiles before looking for flashes.
        width: let ffmpeg shrink wider frames to this many columns first (an area average, as
            the block means are; rows are never resampled); None keeps the stored width.
        chunk_frames: frames decoded and processed per step (bounds memory).
        min_step: a flash must change a row's brightness by at least this fraction (0.01 = 1 %).
        min_snr: a flash step must exceed this many noise sds of a box step.
        spread: ... and the median of all frames' steps by this many robust sds of them.
        quiet_fraction: rows above a leading edge may differ from the frame's ambient change (or
            from no change) by at most this fraction of its gain.
        max_row_sd: edges whose fitted position is less certain than this (rows) are dropped.
        row_sd_floor: rows added in quadrature to every edge's sd for what a fit cannot see:
            lossy codecs shift edges by a fraction of a row (x264 CRF 23: about 0.3 rows RMS, simulations/detection_accuracy.py)
            with residuals that still look clean. Use 0 for raw or lossless video.
    """

    n_blocks: int = 16
    rank: int = 4
    ambient: bool = True
    width: int | None = 256
    chunk_frames: int = 32
    min_step: float = 0.01
    min_snr: float = 10.0
    spread: float = 12.0
    quiet_fraction: float = 0.25
    max_row_sd: float = 3.0
    row_sd_floor: float = 0.3

    def profile_key(self) -> dict:
        """Settings that change the cached row profiles."""
        return {"n_blocks": self.n_blocks, "rank": self.rank, "width": self.width, "format": PROFILE_FORMAT}


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


def compute_profiles(path: str, settings: DetectorSettings, progress: bool = True) -> profiles.RowProfiles:
    """:class:`~flashsync_bayes.profiles.RowProfiles` ``(n_frames, height)`` float32 of every decoded frame.

    The first frame's changes are 0.
    """
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
                previous = profiles.first_state(frames[0], settings.n_blocks)
            rows, last = profiles.chunk_profiles(frames, previous, n_blocks=settings.n_blocks, rank=settings.rank)
            previous = last if n == settings.chunk_frames else None
            out.append([np.asarray(field[:n]) for field in rows])
            bar.update(n)
    if not out:
        return profiles.RowProfiles(*(np.zeros((0, info.height), np.float32) for _ in profiles.RowProfiles._fields))
    return profiles.RowProfiles(*(np.concatenate(column) for column in zip(*out)))


def video_profiles(
    path: str, settings: DetectorSettings, cache_dir: str | None = None, progress: bool = True
) -> tuple[np.ndarray, profiles.RowProfiles]:
    """``(frame_time_ms (n,), RowProfiles (n, height))`` of a video, from the cache when valid."""
    cache_file = _cache_path(path, settings, cache_dir) if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        with np.load(cache_file) as cached:
            return cached["frame_time_ms"], profiles.RowProfiles(*(cached[f] for f in profiles.RowProfiles._fields))
    frame_time_ms = video.frame_times_ms(path)
    rows = compute_profiles(path, settings, progress)
    if rows.median.shape[0] != frame_time_ms.size:
        raise FlashsyncError(
            f"{path}: decoded {rows.median.shape[0]} frames but the container lists {frame_time_ms.size} timestamps"
        )
    if cache_file:
        atomic_write(cache_file, lambda tmp: _save_npz(tmp, frame_time_ms=frame_time_ms, **rows._asdict()))
    return frame_time_ms, rows


def _save_npz(path: str, **arrays) -> None:
    """np.savez to exactly ``path`` (np.savez would append .npz to a name without it)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


# --- from row changes to edges -----------------------------------------------------------------


def _in_batches(kernel, change: np.ndarray):
    """``kernel`` (a JAX function of ``(SCORE_BATCH, rows)``) over all frames of ``change`` in fixed-size batches.

    Returns the kernel's output (an array or a NamedTuple of arrays) for the frames, as NumPy.
    """
    n, rows = change.shape
    parts = []
    for start in range(0, n, SCORE_BATCH):
        batch = change[start : start + SCORE_BATCH]
        padded = np.zeros((SCORE_BATCH, rows), np.float32)
        padded[: batch.shape[0]] = batch
        out = kernel(jnp.asarray(padded))
        parts.append(jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[: batch.shape[0]], out))
    if not parts:
        empty = kernel(jnp.zeros((1, rows), np.float32))
        return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[:0], empty)
    return jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves), *parts)


def score_frames(change: np.ndarray) -> profiles.FrameScores:
    """:func:`profiles.frame_scores` over all frames, in fixed-size batches."""
    return _in_batches(profiles.frame_scores, change)


class Evidence(NamedTuple):
    """What flash detection looks at in one video (relative changes with the ambient change divided out).

    Attributes:
        rising: ``(n_frames, rows)`` change that a quarter of the columns show at least (rises).
        falling: ``(n_frames, rows)`` change that a quarter show at most (falls).
        gain: ``(n_frames,)`` each frame's change of the whole picture (auto-exposure), relative.
    """

    rising: np.ndarray
    falling: np.ndarray
    gain: np.ndarray

    @classmethod
    def of_change(cls, change: np.ndarray) -> Evidence:
        """Evidence of one profile of relative changes ``(n_frames, rows)`` seen across the whole width."""
        return cls(change, change, np.zeros(change.shape[0], change.dtype))

    def profile(self, polarity: int) -> np.ndarray:
        """The profiles in which edges of ``polarity`` (+1 rising, -1 falling) are sought."""
        return self.rising if polarity > 0 else self.falling


def flash_evidence(rows: profiles.RowProfiles, frame_time_ms: np.ndarray, settings: DetectorSettings):
    """``(Evidence, Flicker)`` of a video's row profiles: the ambient change divided out (see :mod:`ambient`)."""
    n = rows.median.shape[0]
    if not settings.ambient or n < 3:
        flicker, change, level = ambient.NO_FLICKER, np.zeros((n, 4)), np.zeros((n, 4))
    else:
        flicker, change, level = ambient.fit_flicker(rows.median, _frame_ticks(frame_time_ms))
    cycles = jnp.float32(flicker.cycles_per_row)
    relative = [
        np.asarray(ambient.flash_profiles(jnp.asarray(profile), jnp.asarray(change), jnp.asarray(level), cycles))
        for profile in rows
    ]
    gain = np.asarray(ambient.frame_gain(jnp.asarray(relative[0]))) if n else np.zeros(0, np.float32)
    return Evidence(relative[1], relative[2], gain), flicker


def _frame_ticks(frame_time_ms: np.ndarray) -> np.ndarray:
    """Tick numbers ``(n,)`` of frames on their frame clock (the median step where the clock is irregular)."""
    clock = estimate_frame_clock(frame_time_ms)
    if clock is None:
        steps = np.diff(frame_time_ms)
        period = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
        return np.round((frame_time_ms - frame_time_ms[0]) / period).astype(np.int64)
    return np.round((frame_time_ms - clock.origin_ms) / clock.period_ms).astype(np.int64)


def _leading_edge_anchor(profile_row: np.ndarray, polarity: int, threshold: float, half_width: int, gain: float, settings):
    """Row where the topmost strong step of ``polarity`` reaches half its height, if the rows above are quiet.

    Strong: the box step exceeds half the ``threshold`` and the median of the rows below it lies
    that much beyond the rows above (so a thin bright line, e.g. a moving object's edge, is no
    step). Quiet: within ``quiet_fraction`` of the step's gain of no change, or of the frame's ambient
    ``gain`` change. None when there is no such step or the rows above it changed too (the band
    started earlier). A step too close to the top to see quiet rows above it comes back as
    ``-anchor - 1``: its band may start inside the frame or in the hidden rows before it, which
    only the edge fit can tell.
    """
    steps = polarity * np.asarray(profiles.box_step(jnp.asarray(profile_row[None]), half_width))[0]
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
    quiet_rows = profile_row[max(anchor - profiles.FIT_ROWS_ABOVE, 0) : max(anchor - 2 * sharp, 0)]
    at_top = quiet_rows.size < sharp
    baseline = gain if at_top else float(np.median(quiet_rows))
    band_rows = max(2 * half_width, int(np.ceil(MIN_BAND * profile_row.size)))
    step_gain = polarity * (np.median(profile_row[anchor : anchor + band_rows]) - baseline)
    if step_gain < 0.5 * threshold:  # a band, not a moving object's edge a few rows high
        return None
    if at_top:
        return -int(anchor) - 1  # the fit must show that the band starts inside the frame
    if not _quiet(baseline, gain, settings.quiet_fraction * step_gain):
        return None
    return int(anchor)


def _quiet(level, gain, tolerance):
    """Whether ``level`` lies within ``tolerance`` of no change or of the frame's ambient ``gain`` change."""
    return np.minimum(np.abs(level), np.abs(level - gain)) <= tolerance


def _edge_candidates(evidence: Evidence, settings: DetectorSettings):
    """``(frames, anchors, polarity, at_top)`` of leading-edge candidates, sorted by frame.

    Steps are scored and found on profiles smoothed by a running median over rows (thin lines,
    such as a moving object's edge, drop out). Frames whose strongest box step exceeds the
    thresholds are searched at the box half-widths in turn (sharp first); ``at_top`` marks candidates without quiet rows above them (see
    :func:`_leading_edge_anchor`).

    A pulse lights rows below its edge in one frame and leaves them in the next, and a light
    switched on in one frame lights the rows above its edge in the next: the next frame then shows
    an opposite step at or below the first one's edge. That is the same event, not a new one, and
    is skipped.
    """
    found: list[tuple[int, int, int]] = []
    for polarity in (1, -1):
        profile = _in_batches(profiles.row_median_filter, evidence.profile(polarity))
        scores = score_frames(profile)
        thresholds = np.asarray(
            profiles.flash_thresholds(scores.step, scores.noise, settings.min_snr, settings.spread, settings.min_step)
        )
        for k in np.flatnonzero(np.any(np.abs(scores.step) > thresholds, axis=1)):
            for half_width, threshold in zip(profiles.STEP_HALF_WIDTHS, thresholds):
                anchor = _leading_edge_anchor(profile[k], polarity, threshold, half_width, evidence.gain[k], settings)
                if anchor is not None:
                    found.append((int(k), anchor, polarity))
                    break
    accepted: list[tuple[int, int, int]] = []
    for k, anchor, polarity in _off_tracks(found, evidence.rising.shape[1]):
        row = max(anchor, -anchor - 1)
        continues = any(f == k - 1 and p == -polarity and row >= max(a, -a - 1) - RETURN_ROWS for f, a, p in accepted)
        if not continues:
            accepted.append((k, anchor, polarity))
    if not accepted:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, bool),)
    frames, anchors, polarity = (np.array(column, dtype=np.int64) for column in zip(*accepted))
    return frames, np.where(anchors < 0, -anchors - 1, anchors), polarity, anchors < 0


def _off_tracks(found: list[tuple[int, int, int]], n_rows: int) -> list[tuple[int, int, int]]:
    """Candidates ``(frame, anchor, polarity)`` sorted, without those on a track of a moving edge.

    An object moving across the picture sweeps a band of rows in frame after frame, a little
    further on each time; a flash lights one frame (its band returns, or a switched light fills
    in, with the opposite polarity in the next). Candidates with another of the same polarity
    within :data:`TRACK_FRAMES` frames and ``TRACK_ROWS * n_rows`` rows are on such a track.
    """
    found = sorted(found)
    if not found:
        return found
    frame, anchor, polarity = (np.array(column) for column in zip(*found))
    row = np.where(anchor < 0, -anchor - 1, anchor)
    near = (
        (np.abs(frame[:, None] - frame[None, :]) <= TRACK_FRAMES)
        & (frame[:, None] != frame[None, :])
        & (polarity[:, None] == polarity[None, :])
        & (np.abs(row[:, None] - row[None, :]) <= TRACK_ROWS * n_rows)
    )
    return [candidate for candidate, on_track in zip(found, near.any(axis=1)) if not on_track]


def _fit_windows(evidence: Evidence, frames: np.ndarray, anchors: np.ndarray, polarity: np.ndarray):
    """Fit windows ``(n, window)`` and in-frame weights around each anchor, sign-flipped to rise."""
    offsets = np.arange(-profiles.FIT_ROWS_ABOVE, profiles.FIT_ROWS_BELOW)
    n_rows = evidence.rising.shape[1]
    rows = anchors[:, None] + offsets[None, :]
    inside = (rows >= 0) & (rows < n_rows)
    index = (frames[:, None], np.clip(rows, 0, n_rows - 1))
    values = np.where(polarity[:, None] > 0, evidence.rising[index], -evidence.falling[index])
    return np.where(inside, values, 0.0).astype(np.float64), inside.astype(np.float64)


def _centred_anchors(evidence: Evidence, frames: np.ndarray, anchors: np.ndarray, polarity: np.ndarray):
    """Anchors moved to the nearest row of a first free edge fit, so every window sits alike on its edge.

    The box step puts an anchor within a few rows of its edge; a fit that lands further away
    (at another band in the window) leaves the anchor where it was.
    """
    fit = profiles.fit_edges(*_padded(*_fit_windows(evidence, frames, anchors, polarity)))
    offset = np.asarray(fit.params)[: frames.size, 2]
    near = np.isfinite(offset) & (np.abs(offset) <= MAX_CENTRING_ROWS)  # a far one fitted something else
    offset = np.where(near, offset, 0.0)
    return np.clip(anchors + np.round(offset).astype(np.int64), 0, evidence.rising.shape[1] - 1)


def _padded(windows: np.ndarray, weights: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Fit windows and weights padded to a power-of-two count (at least 8): fits compile for few shapes."""
    n = windows.shape[0]
    pad = ((0, power_of_two(n, 8) - n), (0, 0))
    return jnp.asarray(np.pad(windows, pad)), jnp.asarray(np.pad(weights, pad, constant_values=1.0))


def _fit_with_shared_blur(windows: np.ndarray, weights: np.ndarray, pool: np.ndarray, floor_rows: float):
    """``(params, edge_sd, trailing, trailing_sd)`` of edge fits with the blur shared by a video.

    The codec and optics blur rows the same way in every frame of a video, while a single edge
    cannot tell blur from the pulse's shape well. Each edge is fitted freely first; with three or
    more edges in ``pool`` (a mask) whose free fits place them within :data:`POOL_MAX_SD` rows, the
    final fit fixes the blur at the median of those, and the spread of the edge over the
    :data:`BLUR_QUANTILES` range of their blurs joins its sd. ``floor_rows`` is
    added in quadrature.
    """
    n = windows.shape[0]
    windows, weights = _padded(windows, weights)
    size = windows.shape[0]
    free = profiles.fit_edges(windows, weights)
    spread = np.zeros(size)
    fit = free
    pool = pool & (np.asarray(free.edge_sd)[:n] < POOL_MAX_SD)
    if np.sum(pool) >= 3:
        low, mid, high = np.quantile(np.exp(np.asarray(free.params)[:n, 4][pool]), BLUR_QUANTILES)
        fits = [profiles.fit_edges(windows, weights, jnp.full(size, blur)) for blur in (low, mid, high)]
        fit = fits[1]
        spread = np.std([np.asarray(f.params)[:, 2] for f in fits], axis=0)
    params = np.asarray(fit.params)[:n]
    edge_sd = np.sqrt(np.asarray(fit.edge_sd)[:n] ** 2 + spread[:n] ** 2 + floor_rows**2)
    trailing_sd = np.sqrt(np.asarray(fit.trailing_sd)[:n] ** 2 + spread[:n] ** 2 + floor_rows**2)
    return params, edge_sd, np.asarray(fit.trailing)[:n], trailing_sd


def find_edges(evidence: Evidence | np.ndarray, settings: DetectorSettings) -> dict[str, np.ndarray]:
    """Leading (and, where visible, trailing) edges in a video's :class:`Evidence` (or one profile ``(n, rows)``).

    Returns per-edge columns: ``frame``, ``row``, ``row_sd``, ``polarity``, ``edge``, ``amplitude``.
    """
    if not isinstance(evidence, Evidence):
        evidence = Evidence.of_change(np.asarray(evidence))
    empty = {k: np.zeros(0) for k in ("frame", "row", "row_sd", "polarity", "amplitude")}
    empty["edge"] = np.zeros(0, dtype=str)
    n_frames, n_rows = evidence.rising.shape
    if n_frames < 2:
        return empty
    frames, anchors, polarity, at_top = _edge_candidates(evidence, settings)
    if not frames.size:
        return empty
    anchors = _centred_anchors(evidence, frames, anchors, polarity)
    windows, weights = _fit_windows(evidence, frames, anchors, polarity)
    params, edge_sd, trailing, trailing_sd = _fit_with_shared_blur(windows, weights, ~at_top, settings.row_sd_floor)
    row = anchors + params[:, 2]
    below = n_rows - row  # rows of the band in view: a few at the bottom could be anything
    good = np.isfinite(row) & (edge_sd < settings.max_row_sd) & (row > 0) & (below >= 2 * profiles.STEP_HALF_WIDTHS[0])
    good &= params[:, 1] > 0
    quiet_above = _quiet(params[:, 0], polarity * evidence.gain[frames], settings.quiet_fraction * params[:, 1])
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
    seen = good & in_window & (trail_row < n_rows - 2) & (trailing_sd < settings.max_row_sd)
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
        frame_time_ms, rows = video_profiles(path, settings, cache_dir, progress)
        evidence, flicker = flash_evidence(rows, frame_time_ms, settings)
        edges = find_edges(evidence, settings)
        flickers.append(flicker)
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
    flicker_columns = {
        variable: ("camera", np.array([getattr(f, field) for f in flickers], dtype=np.float64))
        for field, variable in FLICKER_VARIABLES.items()
    }
    return events.assign(clock_columns(clocks)).assign(flicker_columns)
