"""Writing grey frames as H.264 or HEVC mp4 through ffmpeg, with exact per-frame timestamps read back as truth.

Every sensor frame is piped into ffmpeg (zeros for dropped ones); a filter script drops them and,
with jitter, sets each stored frame's pts, so dropped frames leave gaps (variable frame rate).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from flashsync_bayes import transfer
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.ffmpeg import check_ffmpeg, close_encoder, ffmpeg_command, log_last_line
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.io.timestamps import container_timescale, jittered_ticks, video_rate
from flashsync_bayes.io.video import frame_ticks

#: The codecs a simulated camera can record with, and ffmpeg's encoder options for each: H.264 (x264, 8 bits)
#: as most cameras write it, and HEVC (x265, 10 bits) as phones do.
CODEC_OPTIONS = {
    "h264": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "hevc": ["-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error", "-tag:v", "hvc1"],
}
#: Every codec of :data:`CODEC_OPTIONS`, the default first.
CODECS = tuple(CODEC_OPTIONS)


def check_codec(codec) -> str:
    """``codec`` if it is one of :data:`CODECS`, else FlashsyncError."""
    if codec not in CODEC_OPTIONS:
        raise FlashsyncError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    return codec


class _Encoding(NamedTuple):
    """How one file is encoded: exact rate, timescale (ticks per s), codec and its settings, progress bar, transfer tag."""

    rate: Fraction
    timescale: int
    codec: str
    crf: int
    preset: str
    progress: bool
    description: str | None
    transfer_name: str


class _Timestamps(NamedTuple):
    """The intended pts of the stored frames and the ffmpeg settings that write them.

    Attributes:
        target, per_tick: intended ticks as exact ratios ``target / per_tick`` (object array of ints).
        script: filter script that drops the dropped frames (and sets jittered pts).
        encoder_options: extra ffmpeg output options.
    """

    target: np.ndarray
    per_tick: int
    script: str
    encoder_options: list[str]


def _lookup_expression(variable: str, starts, ends, values, default: str = "0") -> str:
    """ffmpeg expression worth ``values[i]`` where ``starts[i] <= variable <= ends[i]``, else ``default``.

    The intervals (sorted, disjoint, integers) are arranged as a balanced binary search tree of
    ``if(lt(x,a), left, if(gt(x,b), right, value))``: ffmpeg's ``if`` evaluates lazily, so each
    frame costs O(log intervals) and the nesting depth stays logarithmic (a flat sum of ~100 terms
    fails).
    """

    def tree(lo: int, hi: int) -> str:
        if lo >= hi:
            return default
        mid = (lo + hi) // 2
        left, right = tree(lo, mid), tree(mid + 1, hi)
        return f"if(lt({variable},{starts[mid]}),{left},if(gt({variable},{ends[mid]}),{right},{values[mid]}))"

    return tree(0, len(starts))


def _dropped_expression(dropped: np.ndarray) -> str:
    """ffmpeg expression that is 1 for frame numbers ``n`` in ``dropped`` and 0 otherwise (runs of drops)."""
    dropped = np.unique(np.asarray(dropped, dtype=np.int64))
    if dropped.size == 0:
        return "0"
    breaks = np.flatnonzero(np.diff(dropped) > 1)
    starts = np.concatenate([dropped[:1], dropped[breaks + 1]])
    ends = np.concatenate([dropped[breaks], dropped[-1:]])
    return _lookup_expression("n", starts, ends, ["1"] * starts.size)


def check_crf(crf) -> None:
    """FlashsyncError unless ``crf`` (the encoder's constant rate factor) is an integer in [0, 51]."""
    if not (isinstance(crf, (int, np.integer)) and 0 <= crf <= 51):
        raise FlashsyncError(f"crf must be an integer in [0, 51], got {crf!r}")


def _check_arguments(path: str, kept: np.ndarray, crf, rotation_deg, pts_jitter_ms, overwrite: bool) -> None:
    """FlashsyncError for arguments of :func:`write_video` it cannot write."""
    if kept.ndim != 1 or kept.size == 0 or not kept[0]:
        raise FlashsyncError("kept must be a non-empty mask over sensor frames whose first frame is kept")
    check_crf(crf)
    if rotation_deg not in (0, 90, 180, 270):
        raise FlashsyncError(f"rotation_deg must be 0, 90, 180 or 270, got {rotation_deg!r}")
    if not (math.isfinite(pts_jitter_ms) and pts_jitter_ms >= 0):
        raise FlashsyncError(f"pts_jitter_ms must be >= 0, got {pts_jitter_ms!r}")
    if os.path.exists(path) and not overwrite:
        raise FlashsyncError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")


def _timestamps(
    kept: np.ndarray, frame_rate: float, rate: Fraction, timescale: int, jitter_ms: float, kind: str, seed: int
) -> _Timestamps:
    """The pts every stored frame of ``kept`` should get, and how ffmpeg is told to write them."""
    kept_index = np.flatnonzero(kept)
    select = f"select='not({_dropped_expression(np.flatnonzero(~kept))})'"
    if jitter_ms > 0:  # the intended ticks are integers, set per stored frame with setpts
        ticks = jittered_ticks(kept_index * (1000.0 / frame_rate), timescale, jitter_ms=jitter_ms, kind=kind, seed=seed)
        lookup = _lookup_expression("N", range(ticks.size), range(ticks.size), ticks.tolist())
        script = f"{select},settb=1/{timescale},setpts='{lookup}'"
        return _Timestamps(ticks.astype(object), 1, script, ["-enc_time_base:v", "filter"])
    # intended ticks k * timescale / rate, a ratio of integers; the muxer rounds them
    return _Timestamps(kept_index.astype(object) * (timescale * rate.denominator), rate.numerator, select, [])


def write_video(
    path,
    frame_chunks: Iterable[np.ndarray],
    kept,
    *,
    frame_rate: float,
    crf: int = 23,
    preset: str = "medium",
    rotation_deg: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    description: str | None = None,
    timestamps: str = "exact",
    pts_jitter_ms: float = 0.0,
    pts_jitter: str = "uniform",
    jitter_seed: int = 0,
    transfer_name: str = transfer.BT709,
    codec: str = CODECS[0],
) -> np.ndarray:
    """Encode stored frames as H.264 or HEVC mp4; returns every stored frame's read-back pts (ms), ``(n_stored,)``.

    ``frame_chunks`` yields uint8 arrays ``(n, height, width)`` holding the stored frames in order;
    ``kept`` is the boolean mask over sensor frames (the first must be kept). Sensor frame ``k``
    starts at ``k / frame_rate``; its container timestamp is that time in the timebase of
    ``timestamps`` (:data:`~flashsync_bayes.io.timestamps.TIMESTAMP_TIMESCALES`): "exact"
    (``1 / video_timescale``, every pts exact), "quicktime" (1/600 s, as phones write) or "ms"
    (whole milliseconds), rounded to the nearest tick by ffmpeg's mp4 muxer. With
    ``pts_jitter_ms > 0`` each pts first gets a random offset (``pts_jitter``, seeded by
    ``jitter_seed``; see :func:`~flashsync_bayes.io.timestamps.jittered_ticks`). Dropped frames
    leave gaps (variable frame rate). ``rotation_deg`` is written as display-matrix metadata only;
    frames stay in sensor order. ``transfer_name`` says how the frames' codes encode light; it is tagged in the
    file (``color_trc``), not applied. ``codec`` is one of :data:`CODECS` ("h264": x264, 8 bits; "hevc": x265,
    10 bits as phones record), ``crf`` and ``preset`` on that encoder's own scale (at the same CRF x265 spends fewer
    bits: 3-5x fewer at 28 than x264 at 23 on simulated scenes). The file appears atomically and only if its
    timestamps read back within half a tick of the intended times; what was read back is returned.
    """
    path = os.fspath(path)
    kept = np.asarray(kept, dtype=bool)
    _check_arguments(path, kept, crf, rotation_deg, pts_jitter_ms, overwrite)
    rate = video_rate(frame_rate)
    timescale = container_timescale(rate, timestamps)
    intended = _timestamps(kept, frame_rate, rate, timescale, pts_jitter_ms, pts_jitter, jitter_seed)
    encoding = _Encoding(
        rate, timescale, codec=check_codec(codec), crf=int(crf), preset=preset, progress=progress,
        description=description, transfer_name=transfer.check_transfer(transfer_name),
    )  # fmt: skip
    written = []  # the ticks read back from the finished file

    def write(tmp_path: str) -> None:
        ticks = _write_file(tmp_path, path, frame_chunks, np.flatnonzero(kept), encoding, intended, rotation_deg)
        written.append(ticks)

    atomic_write(path, write)
    return (written[0] * 1000) / timescale


def _write_file(
    tmp_path: str, path: str, frame_chunks, kept_index, encoding: _Encoding, intended: _Timestamps, rotation_deg: int
) -> np.ndarray:
    """Encode (and rotate) into ``tmp_path``; returns the ticks read back, checked against ``intended``."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(tmp_path), prefix=".tmp-") as work:
        encoded = os.path.join(work, "encoded.mp4") if rotation_deg else tmp_path
        script = os.path.join(work, "filter.txt")
        with open(script, "w") as handle:
            # the transfer tag rides on the frames (an encoder's -color_trc yields to the frames' own, unset)
            handle.write(f"{intended.script},setparams=color_trc={encoding.transfer_name}")
        _encode(encoded, frame_chunks, kept_index, encoding, script, intended.encoder_options)
        if rotation_deg:
            rotate = ["-display_rotation", str(rotation_deg), "-i", encoded, "-c", "copy"]
            timescale = ["-video_track_timescale", str(encoding.timescale)]
            check_ffmpeg(["-loglevel", "error", "-y", *rotate, *timescale, "-f", "mp4", tmp_path])
        return _read_back(tmp_path, path, encoding.timescale, intended)


def _read_back(tmp_path: str, path: str, timescale: int, intended: _Timestamps) -> np.ndarray:
    """The pts ticks of the file at ``tmp_path``; FlashsyncError unless within half a tick of ``intended``."""
    timebase, ticks = frame_ticks(tmp_path)
    target, per_tick = intended.target, intended.per_tick
    if (
        timebase != Fraction(1, timescale)
        or ticks.size != target.size
        or np.any(2 * np.abs(ticks.astype(object) * per_tick - target) > per_tick)
    ):
        raise FlashsyncError(
            f"ffmpeg wrote other timestamps than intended to {path} (timebase {timebase}, "
            f"{ticks.size} frames for {target.size}); this ffmpeg build is not supported"
        )
    return ticks


def _stored_frames(frame_chunks: Iterable[np.ndarray], kept_index: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    """Every stored frame, uint8 ``(height, width)``, with the number of dropped sensor frames before it.

    FlashsyncError for batches that are not ``(n, height, width)``, odd or changing sizes, and more
    or fewer frames than ``kept_index`` (the sensor indices of the stored frames) holds.
    """
    size = None
    stored = 0  # stored frames consumed
    written = 0  # sensor frames accounted for
    for chunk in frame_chunks:
        chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
        if chunk.ndim != 3:
            raise FlashsyncError(f"frame batches must be (n, height, width) uint8, got shape {chunk.shape}")
        if size is None:
            size = chunk.shape[1:]
            if size[0] % 2 or size[1] % 2:
                raise FlashsyncError(f"4:2:0 video needs even frame sizes, got {size[1]}x{size[0]}")
        if chunk.shape[1:] != size:
            raise FlashsyncError(f"frame size changed from {size[1]}x{size[0]} to {chunk.shape[2]}x{chunk.shape[1]}")
        if stored + chunk.shape[0] > kept_index.size:
            raise FlashsyncError(f"got more frames than the {kept_index.size} stored frames of kept")
        for frame in chunk:
            target = int(kept_index[stored])
            yield frame, target - written
            stored += 1
            written = target + 1
    if stored != kept_index.size:
        raise FlashsyncError(f"got {stored} frames for the {kept_index.size} stored frames of kept")


def _encoder_command(path: str, height: int, width: int, encoding: _Encoding, script: str, options) -> list[str]:
    """ffmpeg command reading raw grey sensor frames from stdin and writing ``encoding.codec`` mp4 to ``path``."""
    rate = encoding.rate
    return ffmpeg_command(
        "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}",
        "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
        "-/vf", script, "-fps_mode", "passthrough", *options,
        *CODEC_OPTIONS[encoding.codec], "-preset", encoding.preset, "-crf", str(encoding.crf),
        "-video_track_timescale", str(encoding.timescale), "-f", "mp4", path,
    )  # fmt: skip


def _encode(path: str, frame_chunks, kept_index, encoding: _Encoding, script: str, options) -> None:
    """Pipe every sensor frame (zeros for dropped ones) into ffmpeg, which drops and encodes them."""
    process = bar = None
    with tempfile.TemporaryFile() as log:
        try:
            for frame, n_dropped in _stored_frames(frame_chunks, kept_index):
                if process is None:
                    command = _encoder_command(path, *frame.shape, encoding, script, options)
                    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                    if encoding.progress:
                        total = int(kept_index[-1]) + 1
                        bar = tqdm(total=total, desc=encoding.description, unit="frame", file=sys.stderr)
                blank = bytes(frame.size) if n_dropped else b""
                for _ in range(n_dropped):
                    process.stdin.write(blank)
                process.stdin.write(frame.data)
                if bar is not None:
                    bar.update(n_dropped + 1)
            process.stdin.close()
            code = process.wait()
        except (BrokenPipeError, FlashsyncError) as error:
            close_encoder(process)
            if isinstance(error, FlashsyncError):
                raise
            raise FlashsyncError(f"ffmpeg failed while encoding {path}: {log_last_line(log)}") from error
        finally:
            if bar is not None:
                bar.close()
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            raise FlashsyncError(f"ffmpeg failed while encoding {path}: {log_last_line(log)}")
