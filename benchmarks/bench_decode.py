"""Decode and profile throughput: plain ffmpeg to null vs ``iter_luma``, row-profile extraction and detection.

Row-profile extraction (``detection.profile_chunks`` consumed, the per-frame work of flash
detection, one ffmpeg run for frames and timestamps) is timed with ffmpeg shrinking frames to the
default 256 columns and at full width; "ambient + edges" is the rest of detection on those profiles
held in memory (``detection.stream``: evidence and edges window by window); ``detect_events`` is
all of it (the two overlap there: detection runs while ffmpeg decodes). Every
reader runs once before timing (JAX compilation excluded), then the readers run in turn
(A B C A B C ...) ``--repeat`` times and the best time of each is reported with its ratio to plain
ffmpeg decoding of the same file in the same run (target for 1280x720 H.264: detect_events <= 1.15x).

Usage: ``python benchmarks/bench_decode.py [VIDEO] [--codec h264 hevc] [--size 1280x720 1920x1080]
[--duration S] [--repeat N] [--quick] [--json OUT]``. Without VIDEO a ``testsrc2`` video (30 fps,
CRF 23) per codec and size is written to a temporary directory first.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import ENCODERS, ffmpeg_null, has_encoder, interleaved, lavfi_video, load, machine, table, write_json

from flashsync_bayes.detection import DetectorSettings, detect_events, profile_chunks, stream
from flashsync_bayes.io import video

BASE = "ffmpeg -f null"
PROFILES = "profile_chunks"
DETECT = "detect_events"


def luma_frames(path: str, width: int | None = None) -> int:
    """Frames streamed by ``iter_luma`` (consumed, not kept)."""
    return sum(len(chunk) for chunk in video.iter_luma(path, width=width))


def profile_frames(path: str, settings: DetectorSettings) -> int:
    """Frames whose row profiles ``profile_chunks`` computes (consumed, not kept)."""
    return sum(times.size for times, _ in profile_chunks(path, settings))


def readers(path: str, quick: bool) -> dict:
    """Name -> function of everything timed on ``path`` (the three key ones with ``quick``)."""
    settings = DetectorSettings()
    key = {
        BASE: lambda: ffmpeg_null(path),
        PROFILES: lambda: profile_frames(path, settings),
        DETECT: lambda: detect_events([path], progress=False),
    }
    if quick:
        return key
    chunks = list(profile_chunks(path, settings))
    return {
        **key,
        "iter_luma": lambda: luma_frames(path),
        f"iter_luma width={settings.width}": lambda: luma_frames(path, settings.width),
        "profile_chunks full width": lambda: profile_frames(path, DetectorSettings(width=None)),
        "ambient + edges": lambda: stream.detect_windows(stream.windows(iter(chunks), settings.slice_frames), settings),
        "frame_times_ms": lambda: video.frame_times_ms(path),
        "probe": lambda: video.probe(path),
    }


def bench_file(path: str, repeat: int, quick: bool, label: str) -> list[dict]:
    """Timing rows of every reader on ``path`` (warmed up once each, then interleaved)."""
    info = video.probe(path)
    n_frames = len(video.frame_times_ms(path))
    print(f"\n{label}: {path}: {info.width}x{info.height} {info.codec} {info.frame_rate:.3f} fps, {n_frames} frames")
    functions = readers(path, quick)
    for fn in functions.values():
        fn()  # compile and warm the file cache
    timings = interleaved(functions, repeat)
    base = timings[BASE]["best_s"]
    rows = []
    for name, timing in timings.items():
        seconds = timing["best_s"]
        rows.append({"video": label, "reader": name, "best_s": seconds, "frames_per_s": round(n_frames / seconds, 1),
                     "x_decode": round(seconds / base, 3), "all_s": timing["all_s"], "load_1min": timing["load_1min"],
                     "own_cpu_s": timing["own_cpu_s"], "ffmpeg_cpu_s": timing["child_cpu_s"]})  # fmt: skip
    print(table(rows, ["reader", "best_s", "frames_per_s", "x_decode", "own_cpu_s", "ffmpeg_cpu_s", "load_1min"]))
    return rows


def cpu_ratio(row: dict, base: dict) -> float:
    """All the CPU seconds of a reader's row (ours and ffmpeg's) over those of plain decoding's row ``base``."""
    return round((row["own_cpu_s"] + row["ffmpeg_cpu_s"]) / max(base["own_cpu_s"] + base["ffmpeg_cpu_s"], 1e-9), 3)


def ratios(rows: list[dict]) -> list[dict]:
    """Per video: profile_chunks / decode and detect_events / decode (with the 1.15 target), in wall time and in CPU
    seconds (``detect_cpu_x``: the work, steadier than wall time on a shared machine; on a machine with cores to
    spare the wall time falls towards the decoder's own)."""
    out = []
    for label in dict.fromkeys(r["video"] for r in rows):
        mine = {r["reader"]: r for r in rows if r["video"] == label}
        detect = mine[DETECT]["x_decode"]
        out.append({"video": label, "profiles_x": mine[PROFILES]["x_decode"], "detect_x": detect,
                    "detect_cpu_x": cpu_ratio(mine[DETECT], mine[BASE]),
                    "target_detect_x": 1.15, "met": detect <= 1.15})  # fmt: skip
    return out


def generated(directory: Path, args) -> list[tuple[str, str]]:
    """(label, path) of a test video per requested codec and size; codecs the ffmpeg lacks are skipped."""
    videos = []
    for codec in args.codec:
        if not has_encoder(ENCODERS[codec]):
            print(f"{codec}: imageio-ffmpeg's ffmpeg has no {ENCODERS[codec]} encoder; skipped")
            continue
        for size in args.size:
            preset = args.preset or ("fast" if codec == "hevc" else "medium")
            path = str(directory / f"testsrc2_{size}_{codec}.mp4")
            print(f"writing {args.duration:g} s {size} {codec} ({ENCODERS[codec]} -preset {preset}) ...", flush=True)
            videos.append((f"{size} {codec}", lavfi_video(path, size, 30.0, args.duration, codec, preset)))
    return videos


def main() -> None:
    """Command line entry: benchmark VIDEO or generated test videos; print tables, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="video file (default: generate test videos)")
    parser.add_argument("--codec", nargs="+", choices=sorted(ENCODERS), default=["h264"], help="codecs (default h264)")
    parser.add_argument("--size", nargs="+", default=["1280x720"], help="WxH sizes, e.g. 1280x720 1920x1080")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of each generated video (default 60)")
    parser.add_argument("--preset", help="encoder preset (default: medium for h264, fast for hevc)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best is reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="time only plain decode, profile_chunks and detect_events")
    parser.add_argument("--json", help="write the results as JSON here")
    args = parser.parse_args()
    payload = {"benchmark": "decode", "machine": machine(), "settings": vars(args)}
    print(f"load average {load()} on {payload['machine']['cpus']} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        videos = [("file", args.video)] if args.video else generated(Path(tmp), args)
        rows = [row for label, path in videos for row in bench_file(path, args.repeat, args.quick, label)]
    summary = ratios(rows)
    print("\nratios to plain decoding of the same file (best of each, same run):")
    print(table(summary, ["video", "profiles_x", "detect_x", "detect_cpu_x", "target_detect_x", "met"]))
    write_json(args.json, {**payload, "rows": rows, "ratios": summary})


if __name__ == "__main__":
    main()
