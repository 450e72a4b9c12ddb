"""Colour frames through ffmpeg pipes: RGB frames with their timestamps in, H.264 mp4 out.

- ``iter_rgb``: every decoded frame as uint8 RGB ``(height, width, 3)`` with its presentation
  timestamp in ms, both from one ffmpeg run (``showinfo`` reports the pts on stderr while the
  pixels come through stdout). Frames are in presentation order, never duplicated or dropped
  (``-fps_mode passthrough``) and timestamps are the container's own (``-copyts``), so frame ``i``
  of a whole-file read has timestamp ``io.video.frame_times_ms(path)[i]``. ``start_ms`` seeks
  (``-ss`` before ``-i``, a little early) and leaves out frames stamped before it.
- ``write_rgb_video``: RGB frames to an H.264 mp4 (yuv420p, BT.709 video range) at a constant
  frame rate, written atomically; odd sizes are padded by one black row or column.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.ffmpeg import close_encoder, ffmpeg_command, log_last_line, read_exact, stop_process
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.io.showinfo import SHOWINFO, PtsLog, check_decoder_end
from flashsync_bayes.io.timestamps import video_rate, video_timescale
from flashsync_bayes.io.video import VIDEO_STREAM, VideoInfo, probe, seek_seconds

#: Colour handling of written videos: RGB converted with the BT.709 matrix to video range, and tagged so on
#: the frames (``setparams``: encoder options such as ``-color_trc`` yield to the frames' own, unset tags).
ENCODE_FILTER = (
    "pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
)



# ------------------------------------------------------------------------------------- reading


def _output_size(info: VideoInfo, size, autorotate: bool) -> tuple[int, int]:
    """``(width, height)`` in pixels of the frames ``iter_rgb`` yields."""
    if size is not None:
        width, height = (int(v) for v in size)
        if width < 1 or height < 1:
            raise FlashsyncError(f"frame size must be positive pixels, got {size!r}")
        return width, height
    turned = autorotate and info.rotation_deg in (90, 270)
    return (info.height, info.width) if turned else (info.width, info.height)


def _rgb_command(path: str, seek_s: float, size: tuple[int, int], autorotate: bool) -> list[str]:
    """ffmpeg command streaming raw RGB24 frames to stdout and each frame's pts (``showinfo``) to stderr."""
    seek = ["-ss", f"{seek_s:.6f}"] if seek_s > 0 else []
    rotate = [] if autorotate else ["-noautorotate"]
    vf = f"{SHOWINFO},scale={size[0]}:{size[1]}:flags=area"
    return ffmpeg_command("-nostats", "-loglevel", "info", "-copyts", *rotate, *seek, "-i", path,
                          "-map", VIDEO_STREAM, "-an", "-sn", "-dn", "-vf", vf, "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-")  # fmt: skip


def iter_rgb(path, *, start_ms: float | None = None, size=None, autorotate: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """``(pts_ms, frame)`` per decoded frame: pts float (container ms, NaN if none), frame uint8 ``(height, width, 3)`` RGB.

    ``start_ms`` leaves out frames stamped before it (container ms; seeks there first).
    ``size`` ``(width, height)`` in pixels scales every frame (area average). Frames keep their
    stored orientation unless ``autorotate``. ffmpeg is reaped when the frames run out, on error
    and on ``close()``.
    """
    info = probe(path)
    out_size = _output_size(info, size, autorotate)
    return _rgb_frames(path, seek_seconds(info, start_ms), start_ms, out_size, autorotate)


def _rgb_frames(path: str, seek_s: float, start_ms, size: tuple[int, int], autorotate: bool):
    """Generator behind ``iter_rgb``: runs ffmpeg, pairs pixels with pts, always reaps the process."""
    frame_bytes = size[0] * size[1] * 3
    cmd = _rgb_command(path, seek_s, size, autorotate)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    log = PtsLog(proc.stderr)
    log.start()
    try:
        while True:
            frame = np.empty((size[1], size[0], 3), dtype=np.uint8)
            got = read_exact(proc.stdout, memoryview(frame.reshape(-1)))
            if got < frame_bytes:
                break
            pts_ms = log.next_pts(path)
            if start_ms is not None and not np.isfinite(pts_ms):
                raise FlashsyncError(f"{path} has frames without timestamps; it cannot be read from a start time")
            if start_ms is None or pts_ms >= float(start_ms) - 1e-6:
                yield pts_ms, frame
        check_decoder_end(proc, log, path, got > 0)
    finally:
        stop_process(proc)
        log.join()
        proc.stderr.close()


# ------------------------------------------------------------------------------------- writing


def output_rate(frame_rate: float) -> Fraction:
    """Exact frame rate (Hz) for a written video: the simple fraction of ``frame_rate`` (denominator <= 1001)."""
    try:
        return video_rate(float(frame_rate))
    except FlashsyncError:  # an average rate of a variable-rate file: the nearest simple fraction
        rate = Fraction(float(frame_rate)).limit_denominator(1001)
        if rate <= 0:
            raise FlashsyncError(f"frame rate must be positive, got {frame_rate}") from None
        return rate


def _encoder_command(path: str, width: int, height: int, rate: Fraction, crf: int, preset: str, rotation_deg: int):
    """ffmpeg command reading raw RGB24 frames from stdin and writing H.264 yuv420p mp4 at ``rate`` to ``path``."""
    rotate = ["-display_rotation", str(rotation_deg)] if rotation_deg else []
    return ffmpeg_command(
        "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-framerate", f"{rate.numerator}/{rate.denominator}", *rotate, "-noautorotate", "-i", "pipe:0",
        "-vf", ENCODE_FILTER, "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
        "-video_track_timescale", str(video_timescale(rate)), "-f", "mp4", path,
    )  # fmt: skip


def check_writable(path, overwrite: bool) -> str:
    """``path`` as a string; FlashsyncError if it exists and ``overwrite`` is false, or is a folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise FlashsyncError(f"{path} is a folder; give a file name to write")
    if os.path.exists(path) and not overwrite:
        raise FlashsyncError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    return path


def write_rgb_video(
    path,
    frames: Iterable[np.ndarray],
    *,
    frame_rate: float,
    crf: int = 18,
    preset: str = "veryfast",
    rotation_deg: int = 0,
    overwrite: bool = False,
) -> int:
    """Encode uint8 RGB frames ``(height, width, 3)`` as H.264 mp4 at constant ``frame_rate`` (Hz); returns the count.

    Frame ``k`` gets the timestamp ``k / frame_rate`` (rate as an exact simple fraction, e.g.
    30000/1001). ``rotation_deg`` is written as display metadata only. The file appears atomically
    (nothing is left on failure); an existing file is replaced only with ``overwrite``.
    """
    path = check_writable(path, overwrite)
    if rotation_deg not in (0, 90, 180, 270):
        raise FlashsyncError(f"rotation_deg must be 0, 90, 180 or 270, got {rotation_deg!r}")
    rate = output_rate(frame_rate)
    written = []
    atomic_write(path, lambda tmp: written.append(_encode(tmp, path, frames, rate, int(crf), preset, rotation_deg)))
    return written[0]


def _encode(tmp_path: str, path: str, frames, rate: Fraction, crf: int, preset: str, rotation_deg: int) -> int:
    """Pipe every frame into ffmpeg writing ``tmp_path``; returns the number of frames written."""
    process, shape, count = None, None, 0
    with tempfile.TemporaryFile() as log:
        try:
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                if shape is None:
                    shape = _check_frame_shape(frame.shape, path)
                    command = _encoder_command(tmp_path, shape[1], shape[0], rate, crf, preset, rotation_deg)
                    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                elif frame.shape != shape:
                    raise FlashsyncError(f"frame {count} to write to {path} is {frame.shape}, the first was {shape}")
                process.stdin.write(frame.data)
                count += 1
            if process is None:
                raise FlashsyncError(f"no frames to write to {path}")
            process.stdin.close()
            if process.wait() != 0:
                raise FlashsyncError(f"ffmpeg failed while encoding {path}: {log_last_line(log)}")
        except BrokenPipeError as error:
            raise FlashsyncError(f"ffmpeg failed while encoding {path}: {log_last_line(log)}") from error
        finally:
            close_encoder(process, kill=True)
    return count


def _check_frame_shape(shape: tuple, path: str) -> tuple:
    """``shape`` if it is an RGB frame's ``(height, width, 3)``; FlashsyncError otherwise."""
    if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
        raise FlashsyncError(f"frames to write to {path} must be (height, width, 3) RGB, got shape {shape}")
    return shape
