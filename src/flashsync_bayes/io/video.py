"""Reading videos through ffmpeg (DESIGN §3): probe, frame times, luma.

Three readers, no numerics:

- ``probe``: size, nominal frame rate, codec, rotation metadata and duration, parsed from
  ``ffmpeg -i FILE``'s stream summary (there is no ffprobe).
- ``frame_times_ms``: the presentation timestamp of every frame in ms, read from the container
  without decoding (``-c copy -f framecrc``), sorted into presentation order, converted with exact
  integer arithmetic from the stream's timebase. Timestamps are the container's own (``-copyts``: a
  file starting at 1.5 s starts at 1500 ms), after the demuxer applied edit lists; packets the
  demuxer marks as discarded (edit lists that cut leading frames) are left out, exactly as the
  decoder leaves out their frames. Containers whose packets lack timestamps (raw ``.h264``, AVI)
  fall back to the decoder's best-effort timestamps (this decodes the file once).
- ``iter_luma``: the luma plane of every decoded frame, in chunks, through a pipe. Frames are not
  auto-rotated (stored row 0 is the first row the sensor read out), never duplicated or dropped
  (``-fps_mode passthrough``), and the luma codes are the plane's own (``extractplanes=y``; no
  range expansion, so video-range 16-235 stays 16-235 and super-white survives).

Frame ``i`` of ``iter_luma`` has timestamp ``frame_times_ms(path)[i]``.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from flashsync_bayes import transfer
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.ffmpeg import ffmpeg_command, last_line, read_exact, run_ffmpeg, stop_process
from flashsync_bayes.io.showinfo import SHOWINFO, PtsLog, check_decoder_end, logged_times_ms

VIDEO_STREAM = "0:V:0"  # first video stream that is not cover art / an attached picture
PKT_FLAG_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD: the demuxer asks the decoder to drop this frame
NO_PTS = -(2**63)  # AV_NOPTS_VALUE as framecrc prints it
PIPE_BYTES = 1 << 20  # requested OS pipe buffer for the luma stream (Linux F_SETPIPE_SZ)
F_SETPIPE_SZ = 1031
LUMA_FILTER = "format=yuv420p|yuvj420p|yuv422p|yuvj422p|yuv444p|yuvj444p|gray,extractplanes=y"
WIDTH_SCALER = "area"  # horizontal-only shrink; equal heights leave rows untouched
#: Seeks land this much (ms) before the wanted start; the frames in between are decoded and left out.
SEEK_MARGIN_MS = 1000.0


class VideoInfo(NamedTuple):
    """What ``probe`` reads from a file's first video stream.

    Fields: ``path`` (str, as given); ``width``, ``height`` (stored pixels, before any rotation);
    ``frame_rate`` (Hz, nominal, see ``probe``); ``frame_period_ms`` (1000 / frame_rate);
    ``codec`` (ffmpeg's decoder name, e.g. "h264"); ``rotation_deg`` (0/90/180/270,
    counter-clockwise display rotation from the display matrix, recorded and never applied);
    ``duration_ms`` (container duration, 10 ms resolution, NaN when unknown); ``full_range``
    (luma codes span 0-255: "pc"/JPEG range, yuvj and gray formats; otherwise video range, black
    at 16 and white at 235, which is what most camera and phone H.264/HEVC carry and what ffmpeg
    assumes where the file does not say); ``start_ms`` (the container's start time, the origin of
    ffmpeg's ``-ss`` seeking; NaN when not printed); ``transfer`` (how its codes encode light,
    :func:`~flashsync_bayes.transfer.transfer_of_tag` of its ``color_trc`` tag: BT.709 unless tagged
    linear or HLG).
    """

    path: str
    width: int
    height: int
    frame_rate: float
    frame_period_ms: float
    codec: str
    rotation_deg: int
    duration_ms: float
    full_range: bool = False
    start_ms: float = float("nan")
    transfer: str = transfer.BT709


def check_file(path) -> str:
    """``path`` as a string, after checking that it names an existing file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FlashsyncError(f"video file not found: {path} (check the path)")
    if not os.path.isfile(path):
        raise FlashsyncError(f"{path} is not a file; pass a video file")
    return path


# ---------------------------------------------------------------------------------------- probe


def _stream_blocks(text: str) -> list[tuple[str, str]]:
    """``(description, block)`` per ``Stream #0:N: Video:`` line (block runs to the next stream)."""
    starts = [m for m in re.finditer(r"^\s*Stream #0:\d+\S*: (\w+): (.*)$", text, re.MULTILINE)]
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return [(m.group(2), text[m.start() : end]) for m, end in zip(starts, ends) if m.group(1) == "Video"]


def _rate(desc: str, unit: str) -> float | None:
    """Rate printed before ``unit`` ("fps" or "tbr") in a stream description, in Hz."""
    m = re.search(rf"([\d.]+)(k?) {unit}\b", desc)
    return None if m is None else float(m.group(1)) * (1000.0 if m.group(2) else 1.0)


def _snap_ntsc(rate: float) -> float:
    """``rate`` snapped to ``n * 1000 / 1001`` Hz when its 2-decimal printout matches one."""
    n = round(rate * 1.001)
    return n * 1000 / 1001 if rate != round(rate) and abs(rate * 1.001 - n) < 0.006 else rate


def _nominal_rate(desc: str) -> float:
    """Nominal frame rate in Hz: 'tbr' unless absent or over 1.5x the average 'fps'."""
    tbr, fps = _rate(desc, "tbr"), _rate(desc, "fps")
    if tbr is not None and (fps is None or tbr <= 1.5 * fps):
        return _snap_ntsc(tbr)
    if fps is None:
        raise FlashsyncError("ffmpeg reports no frame rate for this video; remux it: ffmpeg -i IN -c copy OUT.mkv")
    return _snap_ntsc(fps)


def _rotation_deg(block: str) -> int:
    """Counter-clockwise display rotation in {0, 90, 180, 270} from a stream's display matrix."""
    m = re.search(r"rotation of (-?[\d.]+) degrees", block, re.IGNORECASE)
    return 0 if m is None else int(90 * round(float(m.group(1)) / 90)) % 360


def _duration_ms(text: str) -> float:
    """Container duration in ms from the 'Duration: HH:MM:SS.ss' line, NaN when 'N/A'."""
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if m is None:
        return float("nan")
    return 1000.0 * (3600 * int(m.group(1)) + 60 * int(m.group(2)) + float(m.group(3)))


def _start_ms(text: str) -> float:
    """Container start time in ms from the 'Duration: ..., start: S' line, NaN when absent."""
    m = re.search(r"Duration: .*?, start: (-?\d+(?:\.\d+)?)", text)
    return float("nan") if m is None else 1000.0 * float(m.group(1))


def _full_range(desc: str) -> bool:
    """Whether a stream summary's pixel format holds full-range luma (``yuvj*``, ``gray*``, or ``(pc, ...)``)."""
    return re.search(r"\b(?:yuvj\w*|gray\w*|\w+\((?:pc|jpeg)\b)", desc) is not None


def _transfer_tag(desc: str) -> str | None:
    """The ``color_trc`` tag in a stream summary's pixel format, e.g. ``yuv420p(tv, bt709, progressive)`` (one name
    where matrix, primaries and transfer agree) or ``yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67)``; None if untagged."""
    fmt = re.search(r"\b\w+\(([^()]*)\)", desc)
    if fmt is None:
        return None
    for field in (f.strip() for f in fmt.group(1).split(",")):
        if "/" in field:
            return field.split("/")[-1]
        if field in transfer.TRANSFERS:
            return field
    return None


def _parse_probe(path: str, text: str) -> VideoInfo:
    """``VideoInfo`` from the stderr of ``ffmpeg -i FILE``."""
    if "Input #0" not in text:
        raise FlashsyncError(f"cannot read {path} as a video: {last_line(text)}")
    blocks = [(d, b) for d, b in _stream_blocks(text) if "(attached pic)" not in d]
    if not blocks:
        raise FlashsyncError(f"{path} has no video stream; pass a video file")
    desc, block = blocks[0]
    size = re.search(r"(?:^|[ ,])(\d+)x(\d+)(?=[ ,\[]|$)", desc)
    if size is None:
        raise FlashsyncError(f"ffmpeg reports no frame size for {path}; the file may be damaged")
    rate = _nominal_rate(desc)
    return VideoInfo(
        path=path,
        width=int(size.group(1)),
        height=int(size.group(2)),
        frame_rate=rate,
        frame_period_ms=1000.0 / rate,
        codec=re.match(r"\w+", desc).group(0),
        rotation_deg=_rotation_deg(block),
        duration_ms=_duration_ms(text),
        full_range=_full_range(desc),
        start_ms=_start_ms(text),
        transfer=transfer.transfer_of_tag(_transfer_tag(desc)),
    )


def probe(path) -> VideoInfo:
    """Size, nominal frame rate (Hz), codec, rotation (deg CCW) and duration (ms) of the first video stream.

    ``frame_rate`` is the stream's nominal rate: ffmpeg's ``tbr`` (r_frame_rate, e.g. 29.97 for a
    file with drops whose average ``fps`` is 28.97), snapped to ``n*1000/1001`` when the printed two
    decimals match; the average ``fps`` is used where ``tbr`` is missing or over 1.5x the average
    (a timebase-like '90k tbr' of variable-rate phone files, or an interlaced field rate). A file
    whose average is not its nominal rate (Matroska remuxed from a file with drops) reads as average.
    """
    path = check_file(path)
    return _parse_probe(path, run_ffmpeg(["-i", path]).stderr)


# ---------------------------------------------------------------------------------- frame times


def _ticks_to_ms(ticks: np.ndarray, timebase: Fraction) -> np.ndarray:
    """Exact ``ticks * timebase`` in ms, rounded once to float64; shape of ``ticks``."""
    num, den = timebase.numerator * 1000, timebase.denominator
    ticks = np.asarray(ticks, dtype=np.int64)
    if ticks.size == 0 or int(np.abs(ticks).max()) * num < 2**53:
        return (ticks * num) / den  # exact integer numerator, one float division
    return np.array([float(Fraction(int(t) * num, den)) for t in ticks], dtype=np.float64)


def _packet_flags(fields: list[str]) -> int:
    """Packet flags of one framecrc line's fields (absent 'F=' means keyframe only)."""
    for field in fields[6:]:
        if field.strip().startswith("F="):
            return int(field.strip()[2:], 16)
    return 1


def _parse_framecrc(text: str) -> tuple[Fraction, np.ndarray]:
    """Timebase and pts (int64, decode order) of the packets framecrc lists, discarded ones left out."""
    tb = re.search(r"^#tb 0: (\d+)/(\d+)", text, re.MULTILINE)
    if tb is None:
        raise FlashsyncError("ffmpeg listed no video packets; the file may be damaged")
    pts = [
        int(fields[2])
        for fields in (line.split(",") for line in text.splitlines() if line and not line.startswith("#"))
        if not _packet_flags(fields) & PKT_FLAG_DISCARD
    ]
    return Fraction(int(tb.group(1)), int(tb.group(2))), np.array(pts, dtype=np.int64)


def _map_error(path: str, stderr: str) -> FlashsyncError:
    """FlashsyncError for a failed ffmpeg run on ``path``."""
    if "matches no streams" in stderr:
        return FlashsyncError(f"{path} has no video stream; pass a video file")
    return FlashsyncError(f"ffmpeg failed on {path}: {last_line(stderr)}")


def _decoded_frame_times_ms(path: str) -> np.ndarray:
    """Decoder's best-effort pts of every frame in ms (output order); decodes the whole file."""
    proc = run_ffmpeg(["-copyts", "-i", path, "-map", VIDEO_STREAM, "-vf", SHOWINFO,
                       "-fps_mode", "passthrough", "-f", "null", "-"])  # fmt: skip
    if proc.returncode != 0:
        raise _map_error(path, proc.stderr)
    times = np.array(logged_times_ms(proc.stderr.encode()), dtype=np.float64)
    if not np.all(np.isfinite(times)):
        raise FlashsyncError(f"{path} has frames without timestamps; remux it: ffmpeg -i IN -c copy OUT.mkv")
    return times


def frame_ticks(path) -> tuple[Fraction, np.ndarray]:
    """Container timebase (s per tick) and every frame's pts in ticks (int64, presentation order).

    Read from the packets without decoding; frames without a timestamp are ``NO_PTS``.
    """
    path = check_file(path)
    proc = run_ffmpeg(["-loglevel", "error", "-copyts", "-i", path, "-map", VIDEO_STREAM,
                       "-c", "copy", "-f", "framecrc", "-"])  # fmt: skip
    if proc.returncode != 0:
        raise _map_error(path, proc.stderr)
    timebase, pts = _parse_framecrc(proc.stdout.decode(errors="replace"))
    if pts.size == 0:
        raise FlashsyncError(f"{path} has no video frames")
    return timebase, np.sort(pts, kind="stable")


def frame_times_ms(path) -> np.ndarray:
    """Presentation timestamp of every frame in ms (float64, shape (n_frames,), presentation order)."""
    timebase, pts = frame_ticks(path)
    if np.any(pts == NO_PTS):
        return _decoded_frame_times_ms(check_file(path))
    return _ticks_to_ms(pts, timebase)


# ------------------------------------------------------------------------------------------ luma


def seek_seconds(info: VideoInfo, start_ms: float | None) -> float:
    """ffmpeg's input ``-ss`` (s) to decode ``info``'s video from container time ``start_ms`` (ms) on.

    :data:`SEEK_MARGIN_MS` early; 0 (no seek) without ``start_ms`` or a known container start.
    """
    if start_ms is None or not np.isfinite(info.start_ms):
        return 0.0
    return max(0.0, (float(start_ms) - info.start_ms - SEEK_MARGIN_MS) / 1000.0)


def _luma_command(path: str, out_width: int | None, seek_s: float = 0.0) -> list[str]:
    """ffmpeg command streaming raw 8-bit luma frames (rows in stored order) to stdout, each frame's pts to stderr."""
    vf = f"{SHOWINFO},{LUMA_FILTER}"
    if out_width is not None:
        vf += f",scale={out_width}:ih:flags={WIDTH_SCALER}"
    seek = ["-ss", f"{seek_s:.6f}"] if seek_s > 0 else []
    return ffmpeg_command("-nostats", "-loglevel", "info", "-copyts", "-noautorotate", *seek, "-i", path,
                          "-map", VIDEO_STREAM, "-an", "-sn", "-dn", "-vf", vf, "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-")  # fmt: skip


def _enlarge_pipe(stream) -> None:
    """Ask the OS for a larger pipe buffer (Linux only; silently keeps the default elsewhere)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _check_width(width, info: VideoInfo) -> int | None:
    """Output width in pixels, or None to keep the stored width."""
    if width is None or int(width) == info.width:
        return None
    if not 1 <= int(width) <= info.width:
        raise FlashsyncError(f"width must be between 1 and the video's width {info.width}, got {width}")
    return int(width)


def iter_luma(path, chunk_frames: int = 64, width: int | None = None) -> Iterator[np.ndarray]:
    """Luma codes as uint8 chunks of shape (n <= chunk_frames, height, width or stored width), stored row order.

    ``width`` shrinks each row (area average); rows are never resampled. ffmpeg is reaped when the
    chunks run out, on error and on ``close()``; wrap in ``contextlib.closing`` to stop it at once
    when the consuming loop may raise.
    """
    return (luma for _, luma in iter_luma_times(path, chunk_frames, width))


def iter_luma_times(
    path, chunk_frames: int = 64, width: int | None = None, info: VideoInfo | None = None, start_ms: float | None = None
):
    """``(frame_time_ms (n,), luma (n, height, width))`` chunks as :func:`iter_luma`, with each frame's pts.

    Times (ms, float64, NaN for a frame without one) come from the same ffmpeg run, so a file is
    read once; they equal :func:`frame_times_ms` of a whole file. ``info`` is the video's probe
    when the caller has it. ``start_ms`` (container ms) seeks there first (:func:`seek_seconds`)
    and leaves out the frames stamped before it; the first chunk may then hold fewer frames.
    """
    info = info or probe(path)
    if int(chunk_frames) < 1:
        raise FlashsyncError(f"chunk_frames must be at least 1, got {chunk_frames}")
    out_width = _check_width(width, info)
    return _luma_chunks(info, int(chunk_frames), out_width, start_ms)


def _from_start(times: np.ndarray, luma: np.ndarray, start_ms: float | None, path: str):
    """``(times, luma)`` of the frames stamped at or after ``start_ms`` (ms; all without it)."""
    if start_ms is None:
        return times, luma
    if not np.all(np.isfinite(times)):
        raise FlashsyncError(f"{path} has frames without timestamps; it cannot be read from a start time")
    keep = times >= float(start_ms) - 1e-6
    return (times, luma) if keep.all() else (times[keep], luma[keep])


def _luma_chunks(info: VideoInfo, chunk_frames: int, out_width: int | None, start_ms: float | None = None):
    """Generator behind ``iter_luma_times``: runs ffmpeg, yields (times, chunk), always reaps the process."""
    shape = (chunk_frames, info.height, out_width or info.width)
    frame_bytes = shape[1] * shape[2]
    cmd = _luma_command(info.path, out_width, seek_seconds(info, start_ms))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    log = PtsLog(proc.stderr)
    log.start()
    try:
        _enlarge_pipe(proc.stdout)
        while True:
            chunk = np.empty(shape, dtype=np.uint8)
            got = read_exact(proc.stdout, memoryview(chunk.reshape(-1)))
            n_frames, rest = divmod(got, frame_bytes)
            if n_frames:
                times = np.array([log.next_pts(info.path) for _ in range(n_frames)], dtype=np.float64)
                times, luma = _from_start(times, chunk if n_frames == chunk_frames else chunk[:n_frames], start_ms, info.path)
                if times.size:
                    yield times, luma
            if got < chunk.nbytes:
                break
        check_decoder_end(proc, log, info.path, rest > 0)
    finally:
        stop_process(proc)
        log.join()
        proc.stderr.close()


def prefetch(chunks: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """Items of ``chunks`` read ahead (up to ``depth``) in a background thread.

    Decoding (ffmpeg and the pipe) then overlaps with the caller's work on earlier chunks.
    Errors reach the caller; stopping early closes ``chunks`` (and so reaps ffmpeg).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as error:  # handed to the consumer
            items.put(error)
        finally:
            getattr(chunks, "close", lambda: None)()
            items.put(done)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
