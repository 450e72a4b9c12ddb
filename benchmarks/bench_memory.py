"""Peak memory (RSS) of flash detection on one video vs the video's length (target: <= 1 GB and flat in length).

One ``testsrc2`` video (``--size``, default 1920x1080, 30 fps, H.264 ``-preset ultrafast``, no
flashes needed) of the shortest length is encoded; longer ones are that video looped
(``ffmpeg -stream_loop N -c copy``: no encoding). Per length a fresh child process runs
``camera_events`` (what ``detect_events`` does per video: decoding, row profiles and detection
slice by slice) and reports its peak RSS (``getrusage``) and ffmpeg's (VmHWM, polled) apart. The
shortest length runs twice: first with an empty JAX compilation cache (its peak includes XLA
compiling), then with it filled; longer lengths run once with the filled cache (detection windows
have one shape whatever the length). Plain decoding of each file (``ffmpeg -i F -f null -``) is
timed beside it. Prints MB per minute of video (slope between the shortest and longest, warm runs),
next to what the (frames x rows) float32 profile arrays of a whole-video pass would take.

Usage: ``python benchmarks/bench_memory.py [--minutes 1 10 60] [--size 1920x1080] [--slice-frames S ...] [--json OUT]``
(1, 10 and 60 minutes of 1080p take about 20-30 minutes on 2 cores; ``--slice-frames`` with several
values measures each on every length, for choosing the setting).
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
from benchlib import ffmpeg_null, lavfi_video, load, looped_video, machine, table, timed, write_json

RATE = 30.0


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


def child(path: str, compile_dir: str, slice_frames: str) -> None:
    """In this (fresh) process: ``camera_events`` of one video, its peak RSS (MB) and time; print JSON."""
    from flashsync_bayes.compile_cache import enable_compilation_cache
    from flashsync_bayes.detection import DetectorSettings, camera_events

    enable_compilation_cache(compile_dir)
    out = {"rss_after_imports_mb": _peak_mb()}
    peaks, stop = [0.0], threading.Event()
    watcher = threading.Thread(target=_watch_children, args=(peaks, stop), daemon=True)
    watcher.start()
    start = time.perf_counter()
    found = camera_events(path, DetectorSettings(slice_frames=int(slice_frames)))
    stop.set()
    out |= {"peak_rss_mb": _peak_mb(), "ffmpeg_peak_rss_mb": round(peaks[0], 1), "detect_s": round(time.perf_counter() - start, 2),
            "n_frames": found.n_frames, "n_edges": int(found.edges["frame"].size)}  # fmt: skip
    print(json.dumps(out))


def run_child(path: str, compile_dir: str, slice_frames: int) -> dict:
    """What :func:`child` reports for ``path``, run in a fresh process."""
    command = [sys.executable, __file__, "--child", path, compile_dir, str(slice_frames)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"child failed on {path}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_videos(minutes: list[float], size: str, workdir: str) -> dict[float, str]:
    """Path per length: the shortest encoded, the others that one looped (whole multiples of it)."""
    shortest = min(minutes)
    base = os.path.join(workdir, f"testsrc2_{size}_{shortest:g}min.mp4")
    print(f"writing {shortest:g} min {size} H.264 ultrafast ...", flush=True)
    print(f"  {timed(lambda: lavfi_video(base, size, RATE, 60.0 * shortest, 'h264', 'ultrafast')):.0f} s", flush=True)
    paths = {shortest: base}
    for length in sorted(set(minutes) - {shortest}):
        paths[length] = looped_video(base, os.path.join(workdir, f"testsrc2_{size}_{length:g}min.mp4"), round(length / shortest))
    return paths


def measure(minutes: float, path: str, size: str, compile_dir: str, slice_frames: int, cold: bool) -> dict:
    """One row: detection in a child (twice with ``cold``: empty, then filled compilation cache) and plain decoding."""
    from flashsync_bayes.detection.profiles import RowProfiles

    print(f"{minutes:g} min, slice_frames={slice_frames}: detecting ...", flush=True)
    row = run_child(path, compile_dir, slice_frames)
    if cold:
        again = run_child(path, compile_dir, slice_frames)
        row = {**again, "cold_peak_rss_mb": row["peak_rss_mb"], "cold_detect_s": row["detect_s"]}
    print("  plain decoding ...", flush=True)
    decode_s = timed(lambda: ffmpeg_null(path))
    height = int(size.split("x")[1])
    whole_mb = row["n_frames"] * height * 4 * len(RowProfiles._fields) / 2**20  # float32 (frames x rows) each
    return {"minutes": minutes, "size": size, "slice_frames": slice_frames, **row, "decode_s": round(decode_s, 2),
            "detect_x_decode": round(row["detect_s"] / decode_s, 2), "whole_profiles_mb": round(whole_mb, 1),
            "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def growth(rows: list[dict]) -> dict:
    """MB per minute between the shortest and longest video (warm runs), and whether the peak is flat and <= 1 GB."""
    short, long = min(rows, key=lambda r: r["minutes"]), max(rows, key=lambda r: r["minutes"])
    if long["minutes"] == short["minutes"]:
        return {}
    slope = (long["peak_rss_mb"] - short["peak_rss_mb"]) / (long["minutes"] - short["minutes"])
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    peak = max(max(r["peak_rss_mb"], r.get("cold_peak_rss_mb", 0.0)) for r in rows)
    return {"mb_per_minute": round(slope, 2), "peak_ratio_longest_to_shortest": round(ratio, 3), "flat": ratio <= 1.1,
            "largest_peak_mb": peak, "within_1gb": peak <= 1024.0}  # fmt: skip


def main() -> None:
    """Command line entry: one child process per length (and slice size); print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", nargs="+", type=float, default=[1.0, 10.0, 60.0], help="video lengths (default 1 10 60)")
    parser.add_argument("--size", default="1920x1080", help="frame size WxH (default 1920x1080)")
    parser.add_argument("--slice-frames", nargs="+", type=int, help="DetectorSettings.slice_frames (default: its default)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from flashsync_bayes.detection import DetectorSettings

    slices = args.slice_frames or [DetectorSettings().slice_frames]
    payload = {"benchmark": "memory", "machine": machine(), "settings": vars(args)}
    print(f"load average {load()} on {payload['machine']['cpus']} CPUs")
    rows, summaries = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        paths = make_videos(args.minutes, args.size, workdir)
        for slice_frames in slices:
            compile_dir = os.path.join(workdir, f"jax-{slice_frames}")
            mine = [measure(m, paths[m], args.size, compile_dir, slice_frames, m == min(paths)) for m in sorted(paths)]
            rows += mine
            summaries[slice_frames] = growth(mine)
    print(table(rows, ["minutes", "slice_frames", "n_frames", "rss_after_imports_mb", "cold_peak_rss_mb", "peak_rss_mb",
                       "ffmpeg_peak_rss_mb", "whole_profiles_mb", "n_edges", "detect_s", "decode_s", "detect_x_decode",
                       "load_1min"]))  # fmt: skip
    for slice_frames, summary in summaries.items():
        if summary:
            print(f"slice_frames={slice_frames}: {summary['mb_per_minute']} MB per minute of video; longest/shortest peak "
                  f"x{summary['peak_ratio_longest_to_shortest']} (flat: {summary['flat']}); largest peak "
                  f"{summary['largest_peak_mb']} MB (<= 1 GB: {summary['within_1gb']})")  # fmt: skip
    write_json(args.json, {**payload, "rows": rows, "growth": {str(k): v for k, v in summaries.items()}})


if __name__ == "__main__":
    main()
