"""One video's detection in time slices while it is decoded: memory flat in the video's length.

Decoding turns frames into row profiles chunk by chunk (:func:`profile_chunks`). Edges are found
slice by slice: slice ``k`` holds frames ``[k S, (k+1) S)`` (``S`` =
:attr:`~flashsync_bayes.detection.settings.DetectorSettings.slice_frames`) and is looked at in a
window of ``W = S + 2M`` frames (:func:`slice_window`): the slice with :data:`MARGIN_FRAMES` ``M``
frames on each side, all that the ambient model and the candidate logic of a frame look at. A
window is detected as soon as its frames are decoded (:func:`windows`), and of its edge
candidates (with the rows their fits need) only those whose frame lies in its slice are kept, so
every frame's candidates come from one window; each candidate is fitted on its own as soon as a
whole batch of them waits (while later frames decode), and all of them together with one blur for
the video once its frames run out. Only the last ``W`` frames' profiles are held. Every window of
a video longer than ``W`` frames has exactly ``W`` (the first and the last reach further into the
video), so JAX compiles their kernels once per frame height; a video of at most ``W`` frames is one
window: a whole-video pass.

The flicker band frequency is searched window by window until one finds it, then shared by all
later windows; the video's :class:`~flashsync_bayes.detection.ambient.Flicker` combines the
windows' fits (:func:`combined_flicker`), or where their bands do not move from frame to frame, is
the first window's bands that creep (:func:`~flashsync_bayes.detection.ambient.creeping_flicker`:
a ruler only, the ambient model does not use them). Frame times are kept for the whole video (8 bytes a frame).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from flashsync_bayes.detection import ambient, candidates, profiles
from flashsync_bayes.detection.ambient import NO_FLICKER, Flicker
from flashsync_bayes.detection.edges import FIT_BATCH, Candidates, FirstFits, candidate_rows, first_fits, fit_candidates
from flashsync_bayes.detection.evidence import Evidence, flash_evidence
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io import video
from flashsync_bayes.timing import estimate_frame_clock, tick_numbers

#: Frames on each side of a slice that detection of the slice's frames looks at: a frame's ambient
#: change is predicted from :data:`~flashsync_bayes.detection.ambient.NEIGHBOURS` frames on each side,
#: and a candidate is judged against those up to :data:`~flashsync_bayes.detection.candidates.TRACK_FRAMES`
#: frames away and against the frame before it (a pulse's return).
MARGIN_FRAMES = ambient.NEIGHBOURS + candidates.TRACK_FRAMES + 1
#: Profile chunks computed ahead while a window is detected (:func:`detect_video`): decoding goes on
#: meanwhile (a window of 1024 720p frames takes ~0.4 s; ffmpeg decodes ~250 frames then), and
#: the chunks are small (a 1080p frame's profiles ~50 kB).
PREFETCH_CHUNKS = 16
#: A video whose decoded frames end this much (ms, or this share of its length if more) before the
#: container's duration is reported as broken off (audio a little longer than video is common).
BROKEN_OFF_MS, BROKEN_OFF_SHARE = 1000.0, 0.05


class Window(NamedTuple):
    """Consecutive frames of a video that detection looks at together.

    Attributes:
        start: index of the first frame in the video.
        frame_time_ms: ``(n,)`` the frames' pts (ms).
        rows: the frames' :class:`~flashsync_bayes.detection.profiles.RowProfiles`, each ``(n, height)`` float32.
    """

    start: int
    frame_time_ms: np.ndarray
    rows: profiles.RowProfiles


class VideoDetection(NamedTuple):
    """What detection finds in one video's frames (what the cache holds).

    Attributes:
        frame_time_ms: ``(n_frames,)`` every decoded frame's pts (ms).
        flicker: the video's :class:`~flashsync_bayes.detection.ambient.Flicker` (floats).
        edges: per-edge columns ``(n_edges,)`` of :func:`~flashsync_bayes.detection.edges.find_edges`,
            ``frame`` (int64) counted in the whole video; leading edges first, each kind by frame.
    """

    frame_time_ms: np.ndarray
    flicker: Flicker
    edges: dict[str, np.ndarray]


# --- decoding: row profiles chunk by chunk -----------------------------------------------------


def profile_chunks(
    path: str,
    settings: DetectorSettings,
    info: video.VideoInfo | None = None,
    *,
    start_ms: float | None = None,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, profiles.RowProfiles]]:
    """``(frame_time_ms (n,), RowProfiles (n, height) float32)`` per chunk of decoded frames, as decoded.

    One ffmpeg run gives pixels and times; ``info`` is the video's probe when the caller has it.
    The first frame's changes are 0 (no frame before it was decoded): the video's first frame, or
    with ``start_ms`` (container ms) the first frame stamped at or after it. Luma codes count from
    the video's black level, as light (its transfer undone, :class:`~flashsync_bayes.detection.profiles.LumaLevels`). Closing
    the iterator stops ffmpeg.
    """
    info = info or video.probe(path)
    black, white, _ = profiles.FULL_RANGE if info.full_range else profiles.VIDEO_RANGE
    levels = profiles.LumaLevels.of(black, white, settings.transfer or info.transfer)
    width = None if settings.width is None else min(settings.width, info.width)
    luma = video.iter_luma_times(path, chunk_frames=settings.chunk_frames, width=width, info=info, start_ms=start_ms)
    state = None
    with contextlib.closing(video.prefetch(luma)) as chunks, tqdm(
        desc=os.path.basename(path), unit="frame", disable=not progress, leave=False
    ) as bar:
        for times, chunk in chunks:
            if not np.all(np.isfinite(times)):
                raise FlashsyncError(f"{path} has frames without timestamps; remux it: ffmpeg -i IN -c copy OUT.mkv")
            frames = jnp.asarray(_padded(chunk, settings.chunk_frames))
            if state is None:
                state = profiles.first_state(frames[0], settings.n_blocks, levels)
            # a short chunk is padded with copies of its last frame, whose state is then that frame's own
            rows, state = profiles.chunk_profiles(frames, state, levels, n_blocks=settings.n_blocks, rank=settings.rank)
            yield times, profiles.RowProfiles(*(np.asarray(field[: times.size]) for field in rows))
            bar.update(times.size)


def _padded(chunk: np.ndarray, n: int) -> np.ndarray:
    """``chunk`` ``(m, ...)`` with its last frame repeated up to ``n`` frames (one compiled shape)."""
    if chunk.shape[0] == n:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], n - chunk.shape[0], axis=0)])


# --- slices and their windows ------------------------------------------------------------------


def window_frames(slice_frames: int) -> int:
    """Frames ``W = S + 2M`` of a detection window for slices of ``slice_frames`` frames."""
    return slice_frames + 2 * MARGIN_FRAMES


def _window_end(index: int, slice_frames: int) -> int:
    """End frame of slice ``index``'s window in a video long enough: ``M`` past the slice, or ``W``."""
    return max(window_frames(slice_frames), (index + 1) * slice_frames + MARGIN_FRAMES)


def slice_window(index: int, n_frames: int, slice_frames: int) -> tuple[int, int]:
    """Frames ``[start, end)`` of the window in which slice ``index`` (frames ``[index S, (index+1) S)``) is detected.

    ``n_frames`` are the frames decoded when the window is taken: the video's length for its
    last slice. The window has :func:`window_frames` frames where the video has them.
    """
    end = min(_window_end(index, slice_frames), n_frames)
    return max(0, end - window_frames(slice_frames)), end


def windows(
    chunks: Iterable[tuple[np.ndarray, profiles.RowProfiles]], slice_frames: int
) -> Iterator[tuple[Window, tuple[int, int]]]:
    """``(Window, (first, end))`` per slice of a stream of profile chunks: its window and its frames, as soon as decoded.

    Holds only the chunks the windows still to come reach into (at most ``W`` plus a chunk of frames).
    The slices cover every frame once; the last one ends with the stream.
    """
    if int(slice_frames) < 1:
        raise FlashsyncError(f"slice_frames must be at least 1, got {slice_frames}")
    held: list[tuple[np.ndarray, profiles.RowProfiles]] = []
    held_start, n_frames, index = 0, 0, 0
    for times, rows in chunks:
        held.append((times, rows))
        n_frames += times.size
        while _window_end(index, slice_frames) <= n_frames:
            yield _window(held, held_start, slice_window(index, n_frames, slice_frames)), _slice(index, slice_frames)
            index += 1
        while held and held_start + held[0][0].size <= n_frames - window_frames(slice_frames):
            held_start += held.pop(0)[0].size
    if n_frames > index * slice_frames:
        yield _window(held, held_start, slice_window(index, n_frames, slice_frames)), (index * slice_frames, n_frames)


def _slice(index: int, slice_frames: int) -> tuple[int, int]:
    """Frames ``[first, end)`` of slice ``index``."""
    return index * slice_frames, (index + 1) * slice_frames


def _window(held: list, held_start: int, frames: tuple[int, int]) -> Window:
    """The :class:`Window` of frames ``[start, end)`` from the held chunks, which start at frame ``held_start``."""
    start, end = frames
    return Window(start, *_concatenated(held, start - held_start, end - held_start))


def _concatenated(parts: list, first: int, end: int) -> tuple[np.ndarray, profiles.RowProfiles]:
    """``(frame_time_ms, RowProfiles)`` of frames ``[first, end)`` of profile chunks ``parts`` joined in order."""
    times = np.concatenate([t for t, _ in parts])[first:end]
    return times, profiles.RowProfiles(*(np.concatenate(field)[first:end] for field in zip(*(r for _, r in parts))))


# --- detection, window by window ---------------------------------------------------------------


def window_ticks(frame_time_ms: np.ndarray, first_tick: int | None = None) -> np.ndarray:
    """Tick numbers ``(n,)`` int64 of a window's frames on the window's own frame clock.

    Counted from ``first_tick`` at the window's first frame, so that windows continue one count;
    None keeps :func:`~flashsync_bayes.timing.tick_numbers`' (the first window's, a whole video's).
    """
    ticks = tick_numbers(frame_time_ms, estimate_frame_clock(frame_time_ms))
    return ticks if first_tick is None else ticks - ticks[0] + first_tick


def window_evidence(
    window: Window, settings: DetectorSettings, first_tick: int | None = None, cycles_per_row: float | None = None
):
    """``(Evidence, Flicker, ticks)`` of a window (see :func:`~flashsync_bayes.detection.evidence.flash_evidence`)."""
    ticks = window_ticks(window.frame_time_ms, first_tick)
    evidence, flicker = flash_evidence(window.rows, ticks, settings, cycles_per_row)
    return evidence, flicker, ticks


def candidates_in(evidence: Evidence, start: int, frames: tuple[int, int], settings: DetectorSettings) -> Candidates:
    """:class:`~flashsync_bayes.detection.edges.Candidates` of a window starting at frame ``start`` whose frames
    lie in ``[first, end)``, frames counted in the video."""
    found = candidate_rows(evidence, settings)
    frame = found.frame + start
    return found.where((frame >= frames[0]) & (frame < frames[1]), start)


#: Windows searched for bands that creep (~0.1 s each where there are none: a clean scene would pay it in every one).
CREEP_WINDOWS = 2


class _FirstFitQueue:
    """A video's candidates as its windows find them, each fitted on its own (:func:`~flashsync_bayes.detection.edges.first_fits`)
    as soon as a whole batch of them waits: while later frames are decoded rather than all after the last one."""

    def __init__(self):
        self.waiting: list[Candidates] = []
        self.fitted: list[tuple[Candidates, FirstFits]] = []
        self.n_rows = 0  # the frames' rows, from the first window's candidates

    def add(self, found: Candidates) -> None:
        """Queue a window's candidates; fit the whole batches that wait."""
        self.n_rows = found.n_rows
        self.waiting.append(found)
        waiting = Candidates.joined(self.waiting, self.n_rows)
        ready = waiting.frame.size - waiting.frame.size % FIT_BATCH
        if ready:
            order = np.arange(waiting.frame.size)
            batch = waiting.where(order < ready)
            self.fitted.append((batch, first_fits(batch)))
            self.waiting = [waiting.where(order >= ready)]

    def finished(self) -> tuple[Candidates, FirstFits | None]:
        """All the video's candidates, in order, and their first fits (None without candidates)."""
        rest = Candidates.joined(self.waiting, self.n_rows)
        parts = self.fitted + ([(rest, first_fits(rest))] if rest.frame.size else [])
        if not parts:
            return rest, None
        return Candidates.joined([c for c, _ in parts], self.n_rows), FirstFits.joined([f for _, f in parts])


def detect_windows(slices: Iterable[tuple[Window, tuple[int, int]]], settings: DetectorSettings) -> VideoDetection:
    """:class:`VideoDetection` of the slices :func:`windows` yields, each detected in its window.

    The flicker band frequency found in one window is handed to all later ones; tick numbers
    continue from window to window through the frames they share. Bands that creep are sought
    in the first :data:`CREEP_WINDOWS` windows whose bands do not move until one finds them. The
    candidates are fitted on their own in whole batches as the windows find them, and all of them
    together, sharing the video's blur, at the end (:func:`~flashsync_bayes.detection.edges.fit_candidates`).
    """
    cycles, creeping, previous, flickers, times = None, NO_FLICKER, None, [], []
    queue, creep_searches = _FirstFitQueue(), 0
    for window, frames in slices:
        first_tick = None if previous is None else int(previous[1][window.start - previous[0]])
        evidence, flicker, ticks = window_evidence(window, settings, first_tick, cycles)
        if cycles is None and flicker.cycles_per_row > 0:
            cycles = flicker.cycles_per_row
        if not (flicker.moves or creeping.moves) and creep_searches < CREEP_WINDOWS:
            creeping, creep_searches = ambient.creeping_flicker(np.asarray(window.rows.median), ticks), creep_searches + 1
        previous = (window.start, ticks)
        flickers.append(flicker)
        queue.add(candidates_in(evidence, window.start, frames, settings))
        times.append(window.frame_time_ms[frames[0] - window.start : frames[1] - window.start].copy())
        del window, evidence
        release_freed_memory()
    frame_time_ms = np.concatenate(times) if times else np.zeros(0)
    found, first = queue.finished()
    edges = fit_candidates(found, settings, first)
    flicker = combined_flicker(flickers)
    return VideoDetection(frame_time_ms, flicker if flicker.moves or not creeping.moves else creeping, edges)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, None where the C library has none (macOS, Windows, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory() -> None:
    """Hand the heap memory freed so far back to the operating system (glibc; elsewhere nothing).

    glibc keeps freed blocks of a few MB in its heap (its mmap threshold rises with the blocks
    freed), so every window's arrays would leave the heap a little larger: the resident memory
    would grow with the number of windows, i.e. with the video's length (measured: 1080p, +190 MB
    over six windows without this, none with it).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def combined_flicker(flickers: list[Flicker]) -> Flicker:
    """The video's :class:`~flashsync_bayes.detection.ambient.Flicker` from its windows' fits (floats).

    The band frequency the windows shared and its error (from the first, which found it); the
    circular mean of the phase steps and the median of the amplitudes of the windows that fitted
    it; one window's fit as it is.
    """
    fitted = [f for f in flickers if f.cycles_per_row > 0]
    if not fitted:
        return NO_FLICKER
    first = Flicker(*map(float, fitted[0]))
    if len(fitted) == 1:
        return first
    step = ambient.turn_cycles(np.mean(np.exp(2j * np.pi * np.array([f.phase_step for f in fitted]))))
    return first._replace(phase_step=step, amplitude=float(np.median([f.amplitude for f in fitted])))


# --- one video ---------------------------------------------------------------------------------


def detect_video(
    path: str, settings: DetectorSettings, info: video.VideoInfo | None = None, progress: bool = False
) -> VideoDetection:
    """:class:`VideoDetection` of one video, decoded once and detected slice by slice (memory flat in length)."""
    info = info or video.probe(path)
    profiled = profile_chunks(path, settings, info, progress=progress)
    with contextlib.closing(video.prefetch(profiled, depth=PREFETCH_CHUNKS)) as chunks:
        found = detect_windows(windows(chunks, settings.slice_frames), settings)
    if not found.frame_time_ms.size:
        raise FlashsyncError(f"{path} has no video frames that ffmpeg can decode")
    _warn_if_broken_off(path, found.frame_time_ms, info)
    return found


def _warn_if_broken_off(path: str, frame_time_ms: np.ndarray, info: video.VideoInfo) -> None:
    """Warn of a file whose decoded frames (pts in ms) end well before its container's duration."""
    decoded_ms = float(frame_time_ms[-1] - frame_time_ms[0]) + info.frame_period_ms
    missing_ms = info.duration_ms - decoded_ms
    if np.isfinite(missing_ms) and missing_ms > max(BROKEN_OFF_MS, BROKEN_OFF_SHARE * info.duration_ms):
        warnings.warn(
            f"{path} breaks off after frame {frame_time_ms.size} at {decoded_ms / 1000:.1f} s of the "
            f"{info.duration_ms / 1000:.1f} s its container lists (a truncated file?); using the frames up to there",
            stacklevel=4,
        )


def frame_window(
    path: str, frame: int, settings: DetectorSettings, frame_time_ms: np.ndarray, info: video.VideoInfo | None = None
) -> Window:
    """The :class:`Window` in which detection looked at ``frame``, decoded from a seek to the frame before it.

    ``frame_time_ms`` are every frame's pts (ms; :func:`~flashsync_bayes.io.video.frame_times_ms`
    or detection's); only the window (and the second before it) is decoded. Where the seek does not
    land on the listed frames, the video is decoded from its start up to the window instead.
    """
    n_frames = frame_time_ms.size
    if not 0 <= frame < n_frames:
        raise FlashsyncError(f"{path}: frame {frame} is not among its {n_frames} frames")
    start, end = slice_window(frame // settings.slice_frames, n_frames, settings.slice_frames)
    before = max(start - 1, 0)  # the frame before the window, against which its first frame changed
    seeks = [float(frame_time_ms[before]), None] if before > 0 else [None]
    for start_ms in seeks:
        first = before if start_ms is not None else 0
        times, rows = _decoded(path, settings, info, start_ms, end - first)
        if np.array_equal(times, frame_time_ms[first:end]):
            skip = start - first
            return Window(start, times[skip:], profiles.RowProfiles(*(field[skip:] for field in rows)))
    raise FlashsyncError(f"{path}: decoding does not give the frames its timestamps list; remux it: ffmpeg -i IN -c copy OUT.mkv")


def _decoded(path: str, settings: DetectorSettings, info, start_ms: float | None, n_frames: int):
    """``(frame_time_ms, RowProfiles)`` of the first ``n_frames`` frames from ``start_ms`` on (fewer at the video's end)."""
    parts, count = [], 0
    with contextlib.closing(profile_chunks(path, settings, info, start_ms=start_ms)) as chunks:
        for chunk in chunks:
            parts.append(chunk)
            count += chunk[0].size
            if count >= n_frames:
                break
    if not parts:
        return np.zeros(0), None
    return _concatenated(parts, 0, n_frames)
