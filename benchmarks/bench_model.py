"""Time the model fits: NUTS (compile included, then warm) and Laplace/lsq, for two problem sizes.

Run: ``python benchmarks/bench_model.py [--sizes 4x20 16x200] [--methods lsq laplace bayes]
[--samples 1000] [--cache DIR] [--json OUT]``, e.g. ``--sizes 2x10 8x100 32x500`` for the full grid.
Each size runs in a fresh process so that compile times are cold; prints one line per (size,
method): the first fit (compiles), a repeat with another seed (warm) and their difference, the
compile time. With ``--cache DIR`` JAX's persistent compilation cache is on: run twice, and the second
run shows what a new process pays once the cache holds the compiled sampler.
Targets on 2 CPU cores, 4 cameras x 20 flashes: NUTS <= 15 s, Laplace <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def simulated_events(n_cameras: int, n_flashes: int, seed: int = 0):
    """Matched events of ``n_cameras`` cameras with mixed rasters and frame rates seeing ``n_flashes`` flashes."""
    import numpy as np

    from flashsync_bayes.simulate import Camera, Flashes, simulate_events

    rng = np.random.default_rng(seed)
    heights = (720, 1080, 480, 360)
    rates = (30.0, 25.0, 29.97, 60.0, 24.0, 50.0)
    cameras = [
        Camera(
            height=heights[i % len(heights)],
            frame_rate=rates[i % len(rates)],
            exposure_ms=4.0,
            drift=1.0 + rng.uniform(-1e-4, 1e-4),
            shift_ms=rng.uniform(-20_000.0, 20_000.0),
        )
        for i in range(n_cameras)
    ]
    duration = 60_000.0 + 3_000.0 * n_flashes
    times = np.sort(rng.uniform(25_000.0, duration - 25_000.0, n_flashes))
    events, _ = simulate_events(cameras, Flashes(times, 0.5, 0.0, 100.0), duration, seed)
    events["flash"] = events["true_flash"]
    return events


def run_size(n_cameras: int, n_flashes: int, samples: int, methods=None) -> list[dict]:
    """Timings (s) of each method (default all) for one size, in this process."""
    import warnings

    from flashsync_bayes.inference import METHODS, NUTS
    from flashsync_bayes.pipeline import fit

    events = simulated_events(n_cameras, n_flashes)
    rows = []
    for method in [m for m in reversed(METHODS) if not methods or m in methods]:
        times, cpu = [], []
        for seed in range(2):
            start, start_cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fit(events, method=method, seed=seed, num_warmup=samples // 2, num_samples=samples)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        ess_bulk_min = result.diagnostics().ess_bulk_min if method == NUTS else float("nan")
        rows.append(
            {
                "size": f"{n_cameras}x{n_flashes}",
                "edges": int(result.idata.observed_data.sizes["event"]),
                "method": method,
                "first_s": round(times[0], 2),
                "repeat_s": round(times[1], 2),
                "compile_s": round(times[0] - times[1], 2),
                "first_cpu_s": round(cpu[0], 2),
                "repeat_cpu_s": round(cpu[1], 2),
                "ess_bulk_min": round(ess_bulk_min, 1),
                "residual_rms_ms": round(result.residual_rms_ms, 4),
                "load_1min": round(os.getloadavg()[0], 2),
            }
        )
    return rows


def main(argv=None) -> None:
    """Run each size in its own process and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4x20", "16x200"])
    parser.add_argument("--methods", nargs="+", choices=["lsq", "laplace", "bayes"], help="methods (default all)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--cache", help="JAX compilation cache directory (see compile_cache.enable_compilation_cache)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        n_cameras, n_flashes = map(int, args.one.split("x"))
        start = time.perf_counter()
        import flashsync_bayes.compile_cache
        import flashsync_bayes.inference  # (import cost reported separately)
        import flashsync_bayes.result  # noqa: F401

        if args.cache:
            flashsync_bayes.compile_cache.enable_compilation_cache(args.cache)
        imported = time.perf_counter() - start
        rows = run_size(n_cameras, n_flashes, args.samples, args.methods)
        for row in rows:
            row["import_s"] = round(imported, 2)
        print(json.dumps(rows))
        return
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}; wall-clock seconds (CPU seconds in brackets)")
    print(f"{'size':>7} {'edges':>6} {'method':>8} {'first fit s':>16} {'repeat s':>14} {'compile s':>9} {'ESS min':>8} "
          f"{'rms ms':>8} {'load':>5}")  # fmt: skip
    results = []
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", size, "--samples", str(args.samples)]
            + (["--cache", args.cache] if args.cache else [])
            + (["--methods", *args.methods] if args.methods else []),
            capture_output=True,
            text=True,
            check=True,
        )
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        results += rows
        for row in rows:
            first = f"{row['first_s']:.2f} ({row['first_cpu_s']:.2f})"
            repeat = f"{row['repeat_s']:.2f} ({row['repeat_cpu_s']:.2f})"
            print(
                f"{row['size']:>7} {row['edges']:>6} {row['method']:>8} {first:>16} {repeat:>14} {row['compile_s']:>9} "
                f"{row['ess_bulk_min']:>8} {row['residual_rms_ms']:>8} {row['load_1min']:>5}"
            )
        print(f"{'':>7} (imports {rows[0]['import_s']:.2f} s, not included; first fit includes compilation)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"benchmark": "model", "settings": vars(args), "rows": results}, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
