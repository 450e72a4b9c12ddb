"""End-to-end ``flashsync sync`` of simulated videos vs plain ffmpeg decoding of the same files, cold to warm.

Setups: "four" (default: 4 simulated cameras at 30/25 fps, ``--size``, ``--duration`` s,
``--flashes`` flashes) and "demo" (the three cameras, 12 s and 16 flashes of ``flashsync demo``,
seed 1). Per method, each run a fresh ``flashsync sync VIDEOS --method M --no-progress -q`` process:

- cold: empty JAX compilation cache (``XDG_CACHE_HOME`` pointed at a new directory), no profile cache;
- compiled: the same compilation cache, now filled, and the profile cache filled on the way;
- warm: both caches filled (best of two runs): the "warm re-run of the demo's sync <= 5 s" target.

Plain decoding (``ffmpeg -i F -f null -`` of every file in turn) runs before each of them (A B A B);
the best is the baseline (target: cold sync of 4 videos <= 1.4x). A last warm process times its
phases inside (imports, detection from the cache, matching, fit) and repeats them in the same
process, which shows what tracing and compiling still cost after the caches ("start + imports":
interpreter start and every import, from the process's creation time; "exit": the parent's wall
time of the process minus all the phases of both rounds, i.e. what follows until the process is gone; the
process ends as ``flashsync`` does, without the interpreter's final garbage collection).

Usage: ``python benchmarks/bench_sync.py [--setup four demo] [--method laplace bayes] [--size 1280x720]
[--duration 60] [--repeat N] [--json OUT]`` (about 10 minutes with the defaults on 2 busy cores).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

from benchlib import ffmpeg_null, load, machine, table, timed, write_json

FLASHSYNC = os.path.join(os.path.dirname(sys.executable), "flashsync")


def simulate(setup: str, outdir: str, args) -> list[str]:
    """Write the videos of ``setup`` into ``outdir``; returns their paths."""
    from flashsync_bayes.demo import demo_setup
    from flashsync_bayes.simulate import random_setup, simulate_recording

    if setup == "demo":
        cameras, flashes = demo_setup(1, 12.0, n_flashes=16)
        truth = simulate_recording(outdir, cameras, flashes, 12.0, 1, progress=False)
    else:
        width, height = map(int, args.size.split("x"))
        cameras, flashes = random_setup(4, args.duration, args.flashes, args.seed, width, height, frame_rate=[30.0, 25.0])
        truth = simulate_recording(outdir, cameras, flashes, args.duration, args.seed, progress=False, preset=args.preset)
    return [os.path.join(outdir, name) for name in truth["cameras"]]


def sync(paths: list[str], method: str, xdg: str, cache_dir: str | None) -> float:
    """Wall-clock seconds of one ``flashsync sync`` process with the compilation cache under ``xdg``."""
    env = {k: v for k, v in os.environ.items() if k != "FLASHSYNC_NO_COMPILE_CACHE"} | {"XDG_CACHE_HOME": xdg}
    cache = ["--cache-dir", cache_dir] if cache_dir else ["--no-cache"]
    cmd = [FLASHSYNC, "sync", *paths, "--method", method, "--no-progress", "-q", *cache]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return seconds


def one_round(paths: list[str], method: str, workdir: str, times: dict) -> None:
    """Decode, cold, decode, compiled, decode, warm, warm: appends each wall time to ``times``."""
    xdg, profiles = tempfile.mkdtemp(dir=workdir), tempfile.mkdtemp(dir=workdir)
    steps = [("decode", lambda: ffmpeg_null(*paths)), ("cold", lambda: sync(paths, method, xdg, None)),
             ("decode", lambda: ffmpeg_null(*paths)), ("compiled", lambda: sync(paths, method, xdg, profiles)),
             ("decode", lambda: ffmpeg_null(*paths)), ("warm", lambda: sync(paths, method, xdg, profiles)),
             ("warm", lambda: sync(paths, method, xdg, profiles))]  # fmt: skip
    for name, step in steps:
        times.setdefault(name, []).append(round(timed(step), 3))
        times.setdefault("load", []).append(round(os.getloadavg()[0], 2))
    times["xdg"], times["profiles"] = xdg, profiles


def breakdown(paths: list[str], method: str, xdg: str, profiles: str) -> dict:
    """Phases of a warm run timed inside a fresh process (``--phases``), with the process's own wall time."""
    env = os.environ | {"XDG_CACHE_HOME": xdg}
    cmd = [sys.executable, __file__, "--phases", method, profiles, *paths]
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    phases = json.loads(out.strip().splitlines()[-1])
    inside = sum(phases.values())  # both rounds
    return {"process_s": round(wall, 3), **phases, "exit_s": round(wall - inside, 3)}


def phases(method: str, cache_dir: str, paths: list[str]) -> None:
    """In this process: time start + imports, detection (profile cache), matching and fit, twice; print JSON."""
    import psutil

    start, since_start = time.perf_counter(), time.time() - psutil.Process().create_time()
    from flashsync_bayes import compile_cache
    from flashsync_bayes.detection import detect_events
    from flashsync_bayes.matching import match_events
    from flashsync_bayes.pipeline import fit, linked_cameras

    compile_cache.enable_compilation_cache()
    out = {"start_imports_s": since_start + time.perf_counter() - start}
    for suffix in ("", "_again"):
        start = time.perf_counter()
        events = detect_events(paths, cache_dir=cache_dir, progress=False)
        out[f"detect{suffix}_s"], start = time.perf_counter() - start, time.perf_counter()
        matched = linked_cameras(match_events(events))
        out[f"match{suffix}_s"], start = time.perf_counter() - start, time.perf_counter()
        fit(matched, method=method, progress=False)
        out[f"fit{suffix}_s"] = time.perf_counter() - start
    print(json.dumps({k: round(v, 3) for k, v in out.items()}), flush=True)
    gc.freeze()  # as the flashsync program does before it exits (flashsync_bayes.cli.run)


def bench_setup(setup: str, args, workdir: str) -> tuple[list[dict], list[dict]]:
    """Timing rows and warm breakdown rows of every method for one setup."""
    outdir = tempfile.mkdtemp(dir=workdir)
    print(f"\nsimulating '{setup}' ...", flush=True)
    paths = simulate(setup, outdir, args)
    rows, parts = [], []
    for method in args.method:
        times: dict = {}
        for _ in range(args.repeat):
            one_round(paths, method, workdir, times)
        best = {k: min(times[k]) for k in ("decode", "cold", "compiled", "warm")}
        rows.append({"setup": setup, "videos": len(paths), "method": method, **{f"{k}_s": v for k, v in best.items()},
                     "cold_x": round(best["cold"] / best["decode"], 2), "compiled_x": round(best["compiled"] / best["decode"], 2),
                     "warm_x": round(best["warm"] / best["decode"], 2), "load_max": max(times["load"]),
                     "all_s": {k: times[k] for k in ("decode", "cold", "compiled", "warm")}})  # fmt: skip
        parts.append({"setup": setup, "method": method, **breakdown(paths, method, times["xdg"], times["profiles"])})
        print(table(rows[-1:], ["setup", "method", "decode_s", "cold_s", "compiled_s", "warm_s", "cold_x", "load_max"]), flush=True)
    return rows, parts


def targets(rows: list[dict]) -> list[dict]:
    """The two end-to-end targets: cold sync of 4 videos <= 1.4x decoding; warm re-run of the demo <= 5 s."""
    out = []
    for row in rows:
        if row["setup"] == "four":
            out.append({"target": f"cold sync of 4 videos <= 1.4x decode ({row['method']})", "value": row["cold_x"],
                        "met": row["cold_x"] <= 1.4})  # fmt: skip
        if row["setup"] == "demo":
            out.append({"target": f"warm re-run of the demo's sync <= 5 s ({row['method']})", "value": row["warm_s"],
                        "met": row["warm_s"] <= 5.0})  # fmt: skip
    return out


def main() -> None:
    """Command line entry: simulate, time, print tables, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", nargs="+", choices=["four", "demo"], default=["four", "demo"])
    parser.add_argument("--method", nargs="+", choices=["lsq", "laplace", "bayes"], default=["laplace", "bayes"])
    parser.add_argument("--size", default="640x360", help="frame size of the 'four' setup (default 640x360)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the 'four' setup (default 60)")
    parser.add_argument("--flashes", type=int, default=20, help="flashes of the 'four' setup (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'four' setup (default 0)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the 'four' setup (default veryfast)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of cold/compiled/warm per method (default 1)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--phases", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases:
        phases(args.phases[0], args.phases[1], args.phases[2:])
        return
    payload = {"benchmark": "sync", "machine": machine(), "settings": vars(args)}
    print(f"load average {load()} on {payload['machine']['cpus']} CPUs")
    rows, parts = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for setup in args.setup:
            got = bench_setup(setup, args, workdir)
            rows, parts = rows + got[0], parts + got[1]
    print("\nbest wall-clock seconds; x = ratio to plain decoding of the same files in the same run")
    print(table(rows, ["setup", "videos", "method", "decode_s", "cold_s", "compiled_s", "warm_s", "cold_x", "warm_x", "load_max"]))
    print("\nwarm run timed inside one process (s; *_again: the same calls repeated in that process)")
    print(table(parts, ["setup", "method", "process_s", "start_imports_s", "detect_s", "match_s", "fit_s", "exit_s",
                        "detect_again_s", "fit_again_s"]))  # fmt: skip
    checks = targets(rows)
    print("\n" + table(checks, ["target", "value", "met"]))
    write_json(args.json, {**payload, "rows": rows, "warm_breakdown": parts, "targets": checks})


if __name__ == "__main__":
    main()
