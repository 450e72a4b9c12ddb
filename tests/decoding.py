"""Decoding written videos in tests, through ffmpeg's ``showinfo`` filter.

A path independent of the writer's own ``framecrc`` read-back, without auto-rotation (rows in sensor
readout order) unless asked.
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction

import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def decode(path, autorotate=False):
    """Decoded grey frames ``(n, H, W)`` and their pts in ms (from showinfo), in decode output order."""
    command = [FFMPEG, "-hide_banner", "-nostdin"]
    command += [] if autorotate else ["-noautorotate"]
    command += ["-i", str(path), "-vf", "showinfo", "-fps_mode", "passthrough"]
    command += ["-f", "rawvideo", "-pix_fmt", "gray", "-"]
    done = subprocess.run(command, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    log = done.stderr.decode()
    timebase = Fraction(re.search(r"config in time_base: (\d+/\d+)", log).group(1))
    ticks = np.array([int(t) for t in re.findall(r"\] n:\s*\d+ pts:\s*(-?\d+)", log)])
    size = re.search(r" s:(\d+)x(\d+) ", log)
    width, height = int(size.group(1)), int(size.group(2))
    frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, height, width)
    assert frames.shape[0] == ticks.size
    return frames, ticks * float(timebase) * 1000.0, timebase


def rotation_line(path):
    """ffmpeg's display-matrix report for ``path`` or None."""
    log = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    match = re.search(r"rotation of (-?[\d.]+) degrees", log)
    return float(match.group(1)) if match else None
