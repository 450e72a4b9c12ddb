"""Each decoded frame's timestamp from the decoding run itself: ffmpeg's ``showinfo`` lines on stderr.

A decoder that writes pixels to stdout reports every frame's pts on stderr when its filter chain
starts with :data:`SHOWINFO` (and ``-copyts`` keeps the container's own timestamps), so one run
gives pixels and times together: no second pass over the file.
"""

from __future__ import annotations

import collections
import io
import queue
import re
import subprocess
import threading
from fractions import Fraction

from flashsync_bayes.errors import FlashsyncError

#: The filters that log each frame: without checksums (they cost time) and without the frame's side data,
#: which showinfo would print in full (x265 and many cameras attach an SEI message of kilobytes to every
#: frame: 4.6 kB of hex a frame doubled the time of decoding 720p HEVC).
SHOWINFO = "sidedata=mode=delete,showinfo=checksum=0"
#: A decoded frame's pts is looked for this long (s) after its pixels arrived before it counts as missing.
PTS_TIMEOUT_S = 30.0
#: Lines of ffmpeg's log (other than per-frame lines) kept for error messages.
LOG_TAIL_LINES = 20

_TIMEBASE = re.compile(rb"showinfo\S* @ \S+\] config in time_base: (\d+)/(\d+)")
_FRAME_PTS = re.compile(rb"showinfo\S* @ \S+\] n: *\d+ pts: *(\S+)")
_FRAME_OTHER = re.compile(rb"showinfo\S* @ \S+\]")


def pts_ms(ticks: bytes, timebase: Fraction | None) -> float:
    """One showinfo pts field in ms (exact, rounded once), NaN where the frame has none (``NOPTS``)."""
    text = ticks.decode()
    if timebase is None or not text.lstrip("-").isdigit():
        return float("nan")
    return float(Fraction(int(text) * 1000) * timebase)


class PtsLog(threading.Thread):
    """Reads ffmpeg's stderr: each frame's pts (ms, NaN if none) into ``pts``, other lines into ``tail``."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        # lines of an unbuffered pipe would be read a byte per system call (~0.3 ms a frame's lines)
        self.stream = stream if isinstance(stream, io.BufferedIOBase) else io.BufferedReader(stream)
        self.pts: queue.Queue = queue.Queue()
        self.tail: collections.deque = collections.deque(maxlen=LOG_TAIL_LINES)

    def run(self) -> None:
        timebase = None
        for line in self.stream:
            if (found := _TIMEBASE.search(line)) is not None and timebase is None:
                timebase = Fraction(int(found.group(1)), int(found.group(2)))
            elif (found := _FRAME_PTS.search(line)) is not None:
                self.pts.put(pts_ms(found.group(1), timebase))
            elif _FRAME_OTHER.search(line) is None:
                self.tail.append(line.decode(errors="replace").strip())
        self.pts.put(None)

    def next_pts(self, path: str) -> float:
        """The pts (ms) ffmpeg reported for the next frame read from ``path``."""
        try:
            value = self.pts.get(timeout=PTS_TIMEOUT_S)
        except queue.Empty:
            value = None
        if value is None:
            raise FlashsyncError(f"ffmpeg reported no timestamp for a frame of {path}; this ffmpeg build is not supported")
        return value

    def last_line(self) -> str:
        """Last non-empty log line other than per-frame information."""
        lines = [line for line in self.tail if line]
        return lines[-1] if lines else "no message from ffmpeg"


def logged_times_ms(stderr: bytes) -> list[float]:
    """Every frame's pts (ms, NaN where none) in a finished run's stderr."""
    found = _TIMEBASE.search(stderr)
    timebase = None if found is None else Fraction(int(found.group(1)), int(found.group(2)))
    return [pts_ms(m.group(1), timebase) for m in _FRAME_PTS.finditer(stderr)]


def check_decoder_end(proc: subprocess.Popen, log: PtsLog, path: str, partial_frame: bool) -> None:
    """Wait for a decoder whose frames ran out; FlashsyncError if it failed or stopped inside a frame."""
    if proc.wait() != 0:
        log.join()
        raise FlashsyncError(f"ffmpeg failed decoding {path}: {log.last_line()}")
    if partial_frame:
        raise FlashsyncError(f"ffmpeg stopped inside a frame of {path}; does the frame size change?")
