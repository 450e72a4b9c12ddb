"""Helpers shared by the benchmarks: machine facts, plain ffmpeg decoding, interleaved timing, tables, JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable, Sequence

from flashsync_bayes.io.ffmpeg import ffmpeg_exe

#: x264/x265 encoder names of ``--codec``.
ENCODERS = {"h264": "libx264", "hevc": "libx265"}


def load() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """Facts about this machine and run: date, CPUs, load, Python, platform."""
    return {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "load_start": load(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def has_encoder(name: str) -> bool:
    """Whether imageio-ffmpeg's ffmpeg lists the encoder ``name``."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def lavfi_video(path: str, size: str, rate: float, seconds: float, codec: str = "h264", preset: str = "medium") -> str:
    """Write a ``testsrc2`` video (``size`` WxH, yuv420p) with x264/x265 at ``preset``; returns ``path``."""
    encoder = ENCODERS[codec]
    extra = ["-x265-params", "log-level=error"] if codec == "hevc" else []
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=s={size}:r={rate:g}:d={seconds:g}", "-c:v", encoder, "-preset", preset,
                    "-crf", "23", *extra, "-pix_fmt", "yuv420p", path], check=True)  # fmt: skip
    return path


def looped_video(path: str, out: str, times: int) -> str:
    """Write ``path`` ``times`` times over into ``out`` without encoding (``-stream_loop``, ``-c copy``); returns ``out``."""
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-stream_loop", str(times - 1),
                    "-i", path, "-c", "copy", out], check=True)  # fmt: skip
    return out


def ffmpeg_null(*paths: str) -> int:
    """Decode each file in turn with plain ffmpeg to the null muxer (``ffmpeg -i F -f null -``); returns 0."""
    for path in paths:
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", path,
                        "-map", "0:V:0", "-f", "null", "-"], check=True)  # fmt: skip
    return 0


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_seconds() -> tuple[float, float]:
    """``(this process, its finished children)``: CPU seconds (user + system) used so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def interleaved(functions: dict[str, Callable[[], object]], repeat: int) -> dict[str, dict]:
    """Per name: best and all wall-clock times, running the functions in turn (A B A B ...) ``repeat`` times, and the
    least CPU seconds of this process (``own_cpu_s``) and of its children, ffmpeg (``child_cpu_s``), over the calls:
    unlike wall time on a busy machine, what the work itself costs."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in functions}
    loads = []
    for _ in range(repeat):
        for name, fn in functions.items():
            before = cpu_seconds()
            times[name].append(timed(fn))
            cpu[name].append(tuple(b - a for a, b in zip(before, cpu_seconds())))
        loads.append(os.getloadavg()[0])
    return {
        name: {"best_s": round(min(t), 3), "all_s": [round(x, 3) for x in t], "load_1min": round(max(loads), 2),
               "own_cpu_s": round(min(c[0] for c in cpu[name]), 2), "child_cpu_s": round(min(c[1] for c in cpu[name]), 2)}
        for name, t in times.items()
    }  # fmt: skip


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Rows as a plain text table with the given columns."""
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    """Text of one table cell."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_json(path: str | None, payload: dict) -> None:
    """Write ``payload`` (plus the end load average) as indented JSON to ``path`` when given."""
    if not path:
        return
    payload = {**payload, "load_end": load()}
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2, default=str)
    print(f"wrote {path}")
