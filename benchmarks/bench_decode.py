"""Decode and profile throughput: plain ffmpeg to null vs ``iter_luma`` and row-profile extraction.

Row-profile extraction (``detection.compute_profiles``, the per-frame work of flash detection) is
timed with ffmpeg shrinking frames to the default 256 columns and at full width; "ambient +
edges" is the rest of detection on those profiles (the flicker and auto-exposure model,
thresholds, candidates and sub-row edge fits, ``detection.flash_evidence`` + ``detection.find_edges``);
``detect_events`` is all of it with the timestamps. Ratios are against plain ffmpeg decoding of
the same file in the same run (target for 1280x720 H.264: detection at most ~1.3).

Usage: ``python benchmarks/bench_decode.py [VIDEO] [--repeat N] [--duration S]``. Without VIDEO
a 1280x720, 30 fps H.264 CRF 23 ``testsrc2`` video of S seconds (default 60) is written to a
temporary directory first. Prints the best of N wall-clock times per reader and its ratio to
plain ffmpeg decoding.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flashsync_bayes.detection import DetectorSettings, compute_profiles, detect_events, find_edges, flash_evidence
from flashsync_bayes.io import video
from flashsync_bayes.io.ffmpeg import ffmpeg_exe
from flashsync_bayes.timing import estimate_frame_clock, tick_numbers


def make_test_video(directory: Path, duration_s: float) -> str:
    """Path of a fresh 1280x720, 30 fps H.264 CRF 23 test pattern video of ``duration_s`` seconds."""
    out = directory / "testsrc2_720p.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=s=1280x720:r=30:d={duration_s:g}", "-c:v", "libx264", "-crf", "23",
                    "-pix_fmt", "yuv420p", str(out)], check=True)  # fmt: skip
    return str(out)


def ffmpeg_null(path: str) -> int:
    """Frames decoded by plain ffmpeg to the null muxer (count not parsed: returns 0)."""
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", path,
                    "-map", "0:V:0", "-f", "null", "-"], check=True)  # fmt: skip
    return 0


def luma_frames(path: str, width: int | None = None) -> int:
    """Frames streamed by ``iter_luma`` (consumed, not kept)."""
    return sum(len(chunk) for chunk in video.iter_luma(path, width=width))


def best_time(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall-clock seconds over ``repeat`` runs and the frame count of the last run."""
    times, frames = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        frames = fn()
        times.append(time.perf_counter() - start)
    return min(times), frames


def run(path: str, repeat: int) -> None:
    """Prints probe info and the timing table for ``path``."""
    info = video.probe(path)
    n_frames = len(video.frame_times_ms(path))
    print(f"{path}: {info.width}x{info.height} {info.codec} {info.frame_rate:.3f} fps, {n_frames} frames")
    settings = DetectorSettings()
    rows = compute_profiles(path, settings, progress=False)
    frame_times = video.frame_times_ms(path)
    ticks = tick_numbers(frame_times, estimate_frame_clock(frame_times))
    readers = {
        "ffmpeg -f null": lambda: ffmpeg_null(path),
        "iter_luma": lambda: luma_frames(path),
        f"iter_luma width={settings.width}": lambda: luma_frames(path, settings.width),
        f"row profiles width={settings.width}": lambda: len(compute_profiles(path, settings, progress=False).median),
        "row profiles full width": lambda: len(compute_profiles(path, DetectorSettings(width=None), progress=False).median),
        "ambient + edges": lambda: len(find_edges(flash_evidence(rows, ticks, settings)[0], settings)["row"]),
        "detect_events": lambda: detect_events([path], progress=False).sizes["event"],
        "frame_times_ms": lambda: len(video.frame_times_ms(path)),
        "probe": lambda: (video.probe(path), 0)[1],
    }
    base = None
    for name, fn in readers.items():
        seconds, frames = best_time(fn, repeat)
        base = base or seconds
        rate = f"{n_frames / seconds:8.1f} frames/s" if name != "probe" else " " * 17
        print(f"{name:22s} {seconds:7.3f} s  {rate}  x{seconds / base:5.2f} of ffmpeg -f null")


def main() -> None:
    """Command line entry: benchmark VIDEO or a generated 720p test video."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="video file (default: generate a 720p test video)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader; the best is reported")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the generated test video")
    args = parser.parse_args()
    if args.video:
        run(args.video, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(make_test_video(Path(tmp), args.duration), args.repeat)


if __name__ == "__main__":
    main()
