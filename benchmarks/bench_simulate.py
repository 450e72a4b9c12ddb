"""Simulator speed in frames per second: profile level, full-frame rendering, render + encode, plain x264.

Run: ``python benchmarks/bench_simulate.py [--preset medium] [--crf 23]`` (about a minute on 2 cores).
"plain x264" encodes the same, already rendered frames through the same writer, so the ratio
``encoded / plain`` says how much rendering slows writing a video down.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from flashsync_bayes.io.writer import write_video
from flashsync_bayes.simulate import Scene, camera_flash_light, random_setup, render_chunks, stored_frame_times_ms

SIZES = ((640, 360, 240), (1280, 720, 90))  # width, height, frames to encode
PROFILE_FRAMES = 9000  # five minutes at 30 fps


def _rate(n_frames: int, seconds: float) -> float:
    """Frames per second."""
    return n_frames / seconds


def bench_size(width: int, height: int, n_frames: int, workdir: Path, preset: str, crf: int) -> dict[str, float]:
    """Frames per second of each stage for one camera size."""
    duration_s = PROFILE_FRAMES / 30.0
    cameras, flashes = random_setup(1, duration_s, 60, seed=1, width=width, height=height)
    camera = cameras[0]
    scene = Scene(seed=1)
    kept = np.ones(n_frames, dtype=bool)
    frames = np.arange(n_frames)

    all_times = stored_frame_times_ms(camera, np.ones(PROFILE_FRAMES, dtype=bool))
    camera_flash_light(camera, flashes, all_times)  # compile
    start = time.perf_counter()
    camera_flash_light(camera, flashes, all_times)
    profile = _rate(PROFILE_FRAMES, time.perf_counter() - start)

    for _ in render_chunks(camera, flashes, scene, frames[:2], noise_seed=0):  # compile
        pass
    start = time.perf_counter()
    rendered = np.concatenate(list(render_chunks(camera, flashes, scene, frames, noise_seed=0)))
    render = _rate(n_frames, time.perf_counter() - start)

    start = time.perf_counter()
    chunks = render_chunks(camera, flashes, scene, frames, noise_seed=0)
    write_video(workdir / f"encoded_{width}.mp4", chunks, kept, frame_rate=30.0, crf=crf, preset=preset)
    encoded = _rate(n_frames, time.perf_counter() - start)

    start = time.perf_counter()
    write_video(workdir / f"plain_{width}.mp4", [rendered], kept, frame_rate=30.0, crf=crf, preset=preset)
    plain = _rate(n_frames, time.perf_counter() - start)
    return {"profile": profile, "render": render, "encoded": encoded, "plain": plain}


def main() -> None:
    """Print a table of frames per second for each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium", help="x264 preset (default medium, as simulate_recording)")
    parser.add_argument("--crf", type=int, default=23)
    args = parser.parse_args()
    print(f"x264 preset {args.preset}, crf {args.crf}; frames per second")
    print(f"{'size':>10} {'profile':>10} {'render':>8} {'encoded':>8} {'plain x264':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height, n_frames in SIZES:
            r = bench_size(width, height, n_frames, Path(tmp), args.preset, args.crf)
            print(
                f"{width}x{height:<5} {r['profile']:>10.0f} {r['render']:>8.1f} {r['encoded']:>8.1f} "
                f"{r['plain']:>10.1f} {r['encoded'] / r['plain']:>6.2f}"
            )


if __name__ == "__main__":
    main()
