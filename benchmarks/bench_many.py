"""Detection of many short videos on one machine: serial vs ``jobs=2`` processes vs a 2-worker dask LocalCluster.

Simulated cameras (``--size``, default 320x180, 30/25 fps, ``--duration`` s, default 10, a few
flashes) are written to a temporary directory; the JAX compilation cache (a temporary directory)
is filled by one untimed serial run first. Then, ``--repeat`` times in turn (A B C D A B C D):
plain ffmpeg decoding of every file one after the other, ``detect_events(jobs=1)``,
``detect_events(jobs=2)`` (a fresh process pool per call, as ``flashsync -j 2`` gets) and
``detect_events(client=...)`` on a ``LocalCluster(n_workers=2, threads_per_worker=1)`` started once
(its start and first, cold-worker call are reported apart). Best times and ratios to decoding.

Usage: ``python benchmarks/bench_many.py [--cameras 8 32] [--size 320x180] [--repeat N] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from benchlib import ffmpeg_null, interleaved, load, machine, table, timed, write_json

from flashsync_bayes.compile_cache import enable_compilation_cache
from flashsync_bayes.detection import detect_events


def simulate(n_cameras: int, outdir: str, args) -> list[str]:
    """Write ``n_cameras`` simulated videos into ``outdir``; returns their paths."""
    from flashsync_bayes.simulate import random_setup, simulate_recording

    width, height = map(int, args.size.split("x"))
    cameras, flashes = random_setup(n_cameras, args.duration, 5, args.seed, width, height, frame_rate=[30.0, 25.0])
    truth = simulate_recording(outdir, cameras, flashes, args.duration, args.seed, progress=False, preset="veryfast")
    return [os.path.join(outdir, name) for name in truth["cameras"]]


def start_cluster():
    """A 2-worker, 1-thread-each LocalCluster and its client, and the seconds they took to start."""
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    return cluster, client, time.perf_counter() - start


def bench_count(paths: list[str], repeat: int) -> dict:
    """One row: best seconds of decode / serial / jobs=2 / dask for ``paths``, and their ratios to decoding."""
    n = len(paths)
    print(f"\n{n} videos: warming the compilation cache ...", flush=True)
    warm_s = timed(lambda: detect_events(paths, progress=False))
    cluster, client, cluster_start_s = start_cluster()
    try:
        dask_first_s = timed(lambda: detect_events(paths, client=client, progress=False))
        functions = {
            "decode": lambda: ffmpeg_null(*paths),
            "serial": lambda: detect_events(paths, progress=False),
            "jobs2": lambda: detect_events(paths, jobs=2, progress=False),
            "dask2": lambda: detect_events(paths, client=client, progress=False),
        }
        timings = interleaved(functions, repeat)
    finally:
        client.close()
        cluster.close()
    best = {name: t["best_s"] for name, t in timings.items()}
    row = {"cameras": n, **{f"{k}_s": v for k, v in best.items()}}
    row |= {f"{k}_x": round(best[k] / best["decode"], 2) for k in ("serial", "jobs2", "dask2")}
    row |= {"first_serial_s": round(warm_s, 2), "cluster_start_s": round(cluster_start_s, 2),
            "dask_first_s": round(dask_first_s, 2), "load_1min": max(t["load_1min"] for t in timings.values()),
            "all_s": {k: t["all_s"] for k, t in timings.items()}}  # fmt: skip
    print(table([row], ["cameras", "decode_s", "serial_s", "jobs2_s", "dask2_s", "serial_x", "jobs2_x", "dask2_x", "load_1min"]))
    return row


def main() -> None:
    """Command line entry: simulate the largest count once, time each count on its first videos."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", nargs="+", type=int, default=[8], help="camera counts (default 8; e.g. 8 32)")
    parser.add_argument("--size", default="320x180", help="frame size WxH (default 320x180)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per video (default 10)")
    parser.add_argument("--seed", type=int, default=5, help="simulation seed (default 5)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the best is reported (default 2)")
    parser.add_argument("--json", help="write the results as JSON here")
    args = parser.parse_args()
    payload = {"benchmark": "many", "machine": machine(), "settings": vars(args)}
    print(f"load average {load()} on {payload['machine']['cpus']} CPUs")
    with tempfile.TemporaryDirectory() as workdir:
        enable_compilation_cache(os.path.join(workdir, "jax"))
        print(f"simulating {max(args.cameras)} cameras ...", flush=True)
        paths = simulate(max(args.cameras), os.path.join(workdir, "videos"), args)
        rows = [bench_count(paths[:n], args.repeat) for n in sorted(args.cameras)]
    print("\nbest wall-clock seconds; x = ratio to plain decoding of the same files one after the other")
    print(table(rows, ["cameras", "decode_s", "serial_s", "jobs2_s", "dask2_s", "serial_x", "jobs2_x", "dask2_x",
                       "cluster_start_s", "dask_first_s", "load_1min"]))  # fmt: skip
    write_json(args.json, {**payload, "rows": rows})


if __name__ == "__main__":
    main()
