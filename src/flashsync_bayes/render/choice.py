"""Which frame of every camera goes with each reference frame, and those frames decoded once, in order.

The choice is the result's synchronized frame table (:meth:`SyncResult.frame_table`): for each
reference frame the camera frame whose middle row is nearest in synchronized time, none (-1)
where no frame lies within half of the camera's frame period. Frames are chosen by timestamps,
so an hour of 29.97 fps against 30 fps, drift and dropped frames leave no accumulated error.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple, TypeVar

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_position
from flashsync_bayes.io.frames import iter_rgb
from flashsync_bayes.io.video import check_file
from flashsync_bayes.io.video import frame_times_ms as read_frame_times_ms

#: A decoded frame's pts matches a container timestamp when within this many ms.
PTS_TOLERANCE_MS = 1e-3

Item = TypeVar("Item")


class FrameChoice(NamedTuple):
    """The frames of every camera chosen for the reference frames.

    Attributes:
        reference: label of the reference camera.
        reference_time_ms: reference time of each reference frame's middle row (ms), ``(n_frames,)``.
        frame_index: per camera label, its chosen frame per reference frame (int64, -1 none), ``(n_frames,)``.
        difference_ms: per camera label, chosen frame minus reference frame in reference ms (NaN none), ``(n_frames,)``.
    """

    reference: str
    reference_time_ms: np.ndarray
    frame_index: dict[str, np.ndarray]
    difference_ms: dict[str, np.ndarray]


def frame_choice(result, frame_times_ms: Mapping[str, np.ndarray]) -> FrameChoice:
    """Chosen frames of the cameras in ``frame_times_ms`` (label or path -> pts in ms; the reference is required)."""
    table = result.frame_table(frame_times_ms)
    labels = [str(c) for c in table["camera"].values]
    index, difference = table["frame_index"].values, table["difference_ms"].values
    return FrameChoice(
        reference=result.reference,
        reference_time_ms=np.asarray(table["reference_time_ms"].values, dtype=np.float64),
        frame_index={c: np.asarray(index[:, i], dtype=np.int64) for i, c in enumerate(labels)},
        difference_ms={c: np.asarray(difference[:, i], dtype=np.float64) for i, c in enumerate(labels)},
    )


def video_paths(result, paths: Mapping[str, str] | Sequence[str] | None = None, *, need_reference: bool = True) -> dict:
    """Existing video file per camera label, in the result's camera order.

    ``paths`` maps cameras (label or path as given to synchronize) to files, or lists the files in
    camera order; default: the paths the result was fitted from. FlashsyncError naming a missing file.
    """
    labels, fitted = result.cameras, list(result.metadata["paths"])
    if paths is None:
        files = dict(zip(labels, fitted))
    elif isinstance(paths, Mapping):
        given = {labels[camera_position(labels, fitted, key, "paths")]: os.fspath(v) for key, v in paths.items()}
        files = {c: given[c] for c in labels if c in given}
    else:
        listed = [os.fspath(p) for p in paths]
        if len(listed) != len(labels):
            raise FlashsyncError(f"give {len(labels)} video paths (one per camera, in camera order), got {len(listed)}")
        files = dict(zip(labels, listed))
    if need_reference and result.reference not in files:
        raise FlashsyncError(f"the video of the reference camera '{result.reference}' is needed; add it to the paths")
    return {c: check_file(path) for c, path in files.items()}


def camera_frame_times(result, files: Mapping[str, str], given: Mapping[str, np.ndarray] | None = None) -> dict:
    """Frame times (pts, ms, float64) per camera label of ``files``: ``given`` (label or path keys) or read from the files."""
    labels, fitted = result.cameras, list(result.metadata["paths"])
    known = {labels[camera_position(labels, fitted, k, "frame_times_ms")]: v for k, v in (given or {}).items()}
    out = {c: np.asarray(known[c] if c in known else read_frame_times_ms(path), dtype=np.float64) for c, path in files.items()}
    if result.reference in known and result.reference not in out:
        out[result.reference] = np.asarray(known[result.reference], dtype=np.float64)
    return out


def select_frames(chosen, indexed: Iterable[tuple[int, Item]], blank=None, source: str = "the video") -> Iterator:
    """Per entry of ``chosen`` (frame indices, -1 none) the item of ``indexed`` with that index, or ``blank``.

    ``indexed`` yields ``(index, item)`` with increasing indices (gaps allowed) and is read once:
    repeated indices reuse the last item, and reading stops (``indexed`` is closed) after the last
    chosen frame. The chosen indices other than -1 must not decrease.
    """
    source_items = iter(indexed)
    current_index, current = -1, None
    try:
        for want in np.asarray(chosen, dtype=np.int64).tolist():
            if want < 0:
                yield blank
                continue
            if want < current_index:
                raise FlashsyncError(f"frames of {source} are chosen out of order ({want} after {current_index})")
            while current_index < want:
                step = next(source_items, None)
                if step is None:
                    raise FlashsyncError(f"{source} ended before its frame {want}; was it changed since it was synchronized?")
                current_index, current = step
            if current_index != want:
                raise FlashsyncError(f"frame {want} of {source} was not decoded; was it changed since it was synchronized?")
            yield current
    finally:
        getattr(source_items, "close", lambda: None)()


def indexed_frames(frames: Iterable[tuple[float, Item]], frame_times_ms: np.ndarray, path: str) -> Iterator:
    """``(index, frame)`` for decoded ``(pts_ms, frame)``: the index of the frame's pts among ``frame_times_ms`` (sorted ms).

    Frames without a pts (NaN) take the index after the previous one.
    """
    previous = -1
    try:
        for pts_ms, frame in frames:
            index = previous + 1
            if np.isfinite(pts_ms):
                index += int(np.searchsorted(frame_times_ms[index:], pts_ms - PTS_TOLERANCE_MS))
                if index >= frame_times_ms.size or abs(frame_times_ms[index] - pts_ms) > PTS_TOLERANCE_MS:
                    raise FlashsyncError(
                        f"a decoded frame of {path} at {pts_ms:.3f} ms is not among its frame times; "
                        "give the file's own timestamps (io.video.frame_times_ms)"
                    )
            previous = index
            yield index, frame
    finally:
        getattr(frames, "close", lambda: None)()


def camera_frames(path: str, frame_times: np.ndarray, chosen: np.ndarray, *, size=None, blank=None) -> Iterator:
    """Per entry of ``chosen`` the decoded uint8 RGB frame ``(height, width, 3)`` of one video, or ``blank`` for -1.

    Decodes the file once, from its first chosen frame (a seek) to its last; ``size`` is ``(width, height)`` pixels.
    """
    valid = chosen[chosen >= 0]
    if valid.size == 0:
        return itertools.repeat(blank, chosen.size)
    decoded = iter_rgb(path, start_ms=float(frame_times[valid.min()]), size=size)
    return select_frames(chosen, indexed_frames(decoded, frame_times, path), blank, path)


def close_all(iterators: Iterable) -> None:
    """Close every iterator that can be closed (generators reaping their ffmpeg)."""
    for iterator in iterators:
        getattr(iterator, "close", lambda: None)()


def synchronized_frames(result, paths=None, frame_times_ms: Mapping[str, np.ndarray] | None = None, *, size=None):
    """Synchronized image sources: per reference frame ``(k, reference_time_ms, {camera: (index, difference_ms, rgb)})``.

    ``k`` counts reference frames; ``reference_time_ms`` is its middle row's reference time (ms);
    per camera label (as in the result) the chosen frame's index (-1 none), its time minus the
    reference frame's (reference ms, NaN none) and its uint8 RGB pixels ``(height, width, 3)`` in
    stored orientation, None where no frame lies within half a frame period. ``paths``: see
    :func:`video_paths`; cameras left out are left out here, but the reference's video is needed
    unless ``frame_times_ms`` (label or path -> pts in ms) holds its frame times. Frame times
    default to the files' own (:func:`flashsync_bayes.io.video.frame_times_ms`). ``size`` ``(width,
    height)`` in pixels, or a mapping camera -> size, scales the frames. Each video is decoded once,
    in order; a repeated frame is the same array object (copy before changing it). Returns a
    generator; close it to stop the decoders early.
    """
    files = video_paths(result, paths, need_reference=frame_times_ms is None)
    times = camera_frame_times(result, files, frame_times_ms)
    choice = frame_choice(result, times)
    sizes = {c: (size.get(c) if isinstance(size, Mapping) else size) for c in files}
    return choice_frames(choice, files, times, sizes)


def choice_frames(choice: FrameChoice, files: dict, times: dict, sizes: dict) -> Iterator:
    """Items of :func:`synchronized_frames` for ``choice``; ``files``, ``times``, ``sizes`` per camera label.

    Closes every decoder on exit.
    """
    streams = {c: camera_frames(files[c], times[c], choice.frame_index[c], size=sizes[c]) for c in files}
    try:
        for k, reference_ms in enumerate(choice.reference_time_ms.tolist()):
            yield (
                k,
                reference_ms,
                {
                    c: (int(choice.frame_index[c][k]), float(choice.difference_ms[c][k]), next(stream))
                    for c, stream in streams.items()
                },
            )
    finally:
        close_all(streams.values())
