"""Peak memory (RSS) of flash detection on one video vs the video's length (target: flat in length).

For each length a ``testsrc2`` video (``--size``, default 1920x1080, 30 fps, H.264 ``-preset
ultrafast``; no flashes needed) is written to a temporary directory, then a fresh child process
runs the steps of ``detect_events`` on it (probe, ``video_profiles``, ``flash_evidence``,
``find_edges``) and reports its peak RSS (``getrusage``) after the profiles and at the end, and
ffmpeg's (VmHWM, polled). It runs twice per length: the first child compiles the JAX kernels for
that length's shapes (its peak includes XLA compiling), the second finds them in the compilation
cache (a temporary directory). Prints MB per minute of video (slope between the shortest and
longest, second runs) and the extrapolation to 60 minutes, next to what the (frames x rows)
float32 profile arrays alone take.

Usage: ``python benchmarks/bench_memory.py [--minutes 1 10 60] [--size 1920x1080] [--json OUT]``
(defaults 1 and 10 minutes: about 10 minutes on 2 cores; 60 needs about an hour more).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import psutil
from benchlib import lavfi_video, load, machine, table, write_json

RATE = 30.0
#: float32 (frames x rows) arrays detection keeps per video (the three fields of RowProfiles).
PROFILE_ARRAYS = 3


def _peak_mb() -> float:
    """This process's peak RSS so far (MB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _watch_children(peaks: list[float], stop: threading.Event) -> None:
    """Keep in ``peaks[0]`` the largest VmHWM (MB) of this process's children (ffmpeg) seen until ``stop``."""
    me = psutil.Process()
    while not stop.wait(0.2):
        for proc in me.children(recursive=True):
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    hwm = next((line.split()[1] for line in status if line.startswith("VmHWM")), "0")
                peaks[0] = max(peaks[0], int(hwm) / 1024)
            except (OSError, psutil.Error):
                pass


def child(path: str, compile_dir: str) -> None:
    """In this (fresh) process: the steps of detect_events on one video, peak RSS (MB) after each; print JSON."""
    from flashsync_bayes.compile_cache import enable_compilation_cache
    from flashsync_bayes.detection import DetectorSettings, find_edges, flash_evidence, video_profiles
    from flashsync_bayes.io import video
    from flashsync_bayes.timing import estimate_frame_clock, tick_numbers

    enable_compilation_cache(compile_dir)
    out = {"rss_after_imports_mb": _peak_mb()}
    peaks, stop = [0.0], threading.Event()
    watcher = threading.Thread(target=_watch_children, args=(peaks, stop), daemon=True)
    watcher.start()
    settings, start = DetectorSettings(), time.perf_counter()
    frame_time_ms, rows = video_profiles(path, settings, progress=False, info=video.probe(path))
    stop.set()
    out |= {"peak_after_profiles_mb": _peak_mb(), "ffmpeg_peak_rss_mb": round(peaks[0], 1)}
    evidence, _ = flash_evidence(rows, tick_numbers(frame_time_ms, estimate_frame_clock(frame_time_ms)), settings)
    find_edges(evidence, settings)
    out |= {"peak_rss_mb": _peak_mb(), "detect_s": round(time.perf_counter() - start, 2), "n_frames": int(frame_time_ms.size)}
    print(json.dumps(out))


def run_child(path: str, compile_dir: str) -> dict:
    """What :func:`child` reports for ``path``, run in a fresh process."""
    done = subprocess.run([sys.executable, __file__, "--child", path, compile_dir], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"child failed on {path}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(minutes: float, size: str, workdir: str, compile_dir: str, twice: bool) -> dict:
    """One row: write the video, run the child on it (twice: the second with the compilations cached)."""
    path = os.path.join(workdir, f"testsrc2_{size}_{minutes:g}min.mp4")
    print(f"writing {minutes:g} min {size} H.264 ultrafast ...", flush=True)
    start = time.perf_counter()
    lavfi_video(path, size, RATE, 60.0 * minutes, "h264", "ultrafast")
    encode_s = time.perf_counter() - start
    print(f"  {encode_s:.0f} s; detecting ...", flush=True)
    row = run_child(path, compile_dir)
    if twice:
        print("  again, with its compilations cached ...", flush=True)
        again = run_child(path, compile_dir)
        row |= {"first_peak_rss_mb": row["peak_rss_mb"], "first_detect_s": row["detect_s"], **again}
    height = int(size.split("x")[1])
    profile_mb = row["n_frames"] * height * 4 * PROFILE_ARRAYS / 2**20
    os.remove(path)
    return {"minutes": minutes, "size": size, **row, "profile_arrays_mb": round(profile_mb, 1),
            "encode_s": round(encode_s, 1), "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def growth(rows: list[dict]) -> dict:
    """MB per minute between the shortest and longest video, and the peak extrapolated to 60 minutes."""
    short, long = min(rows, key=lambda r: r["minutes"]), max(rows, key=lambda r: r["minutes"])
    if long["minutes"] == short["minutes"]:
        return {}
    slope = (long["peak_rss_mb"] - short["peak_rss_mb"]) / (long["minutes"] - short["minutes"])
    at_60 = short["peak_rss_mb"] + slope * (60.0 - short["minutes"])
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    return {"mb_per_minute": round(slope, 1), "extrapolated_60min_mb": round(at_60, 1),
            "peak_ratio_longest_to_shortest": round(ratio, 2), "flat": ratio <= 1.2}  # fmt: skip


def main() -> None:
    """Command line entry: one child process per length; print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", nargs="+", type=float, default=[1.0, 10.0], help="video lengths (default 1 10)")
    parser.add_argument("--size", default="1920x1080", help="frame size WxH (default 1920x1080)")
    parser.add_argument("--once", action="store_true", help="one child per length (peaks include compiling)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    payload = {"benchmark": "memory", "machine": machine(), "settings": vars(args)}
    print(f"load average {load()} on {payload['machine']['cpus']} CPUs")
    with tempfile.TemporaryDirectory() as workdir:
        compile_dir = os.path.join(workdir, "jax")
        rows = [measure(m, args.size, workdir, compile_dir, not args.once) for m in sorted(args.minutes)]
    print(table(rows, ["minutes", "n_frames", "rss_after_imports_mb", "first_peak_rss_mb", "peak_after_profiles_mb",
                       "peak_rss_mb", "ffmpeg_peak_rss_mb", "profile_arrays_mb", "detect_s", "load_1min"]))  # fmt: skip
    summary = growth(rows)
    if summary:
        print(f"growth {summary['mb_per_minute']} MB per minute of video; 60 min extrapolated: "
              f"{summary['extrapolated_60min_mb']} MB; longest/shortest peak x{summary['peak_ratio_longest_to_shortest']} "
              f"(flat: {summary['flat']})")  # fmt: skip
    write_json(args.json, {**payload, "rows": rows, "growth": summary})


if __name__ == "__main__":
    main()
