"""End-to-end synchronization accuracy on encoded simulator videos, per inference method, against truth.json.

Each seed simulates four cameras with different frame rates and sizes (the last rotated by 180°
in its metadata, all dropping a few frames), encodes them with libx264, and runs the whole
pipeline once: :func:`detect_events` -> :func:`match_events` -> :func:`fit` with each method
(bayes, laplace, lsq). The synchronized time of every stored frame of every camera at 9 rows
(first to last; the error is affine in the row, so the max over all rows is among them) is
compared with the truth, which aligns exposure ends as the flash edges do (DESIGN §2). Printed
per seed and method: error RMS and max (ms), mean and largest posterior sd (ms), the largest
|error| / sd, the share of points whose 90 % interval holds the truth, and the fit time.

Run: ``python simulations/sync_accuracy.py [--seeds 0 1] [--duration 10] [--flashes 10]
[--crf 23] [--codec hevc] [--scene indoor_50hz] [--timestamps quicktime] [--frame-rate 29.97] [--no-flicker-ruler]
[--outdir DIR] [--reuse]``. With a scene, the flicker ruler's verdict per camera is printed after the first fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

from flashsync_bayes.demo import truth_reference_time_ms
from flashsync_bayes.detection import detect_events
from flashsync_bayes.diagnostics import problems
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference import METHODS, NUTS
from flashsync_bayes.io.writer import CODECS
from flashsync_bayes.matching import match_events
from flashsync_bayes.pipeline import fit, linked_cameras
from flashsync_bayes.simulate import SCENE_PRESETS, random_setup, scene_preset, simulate_recording

#: (width, height, frame rate) of the simulated cameras; the last one is rotated.
CAMERAS = ((1280, 720, 30.0), (640, 360, 25.0), (960, 540, 60.0), (640, 480, 29.97))
#: Rows per frame at which the error is evaluated (first to last row).
N_ROWS = 9


def simulate(outdir: str, seed: int, args) -> dict:
    """Write (or, with ``--reuse``, read) one recording of :data:`CAMERAS` and return its truth dict."""
    truth_path = os.path.join(outdir, "truth.json")
    if args.reuse and os.path.exists(truth_path):
        with open(truth_path) as handle:
            return json.load(handle)
    rates = [args.frame_rate or rate for _, _, rate in CAMERAS]
    cameras, flashes = random_setup(
        len(CAMERAS),
        args.duration,
        args.flashes,
        seed,
        frame_rate=rates,
        drop_probability=args.drop_probability,
        rotate_last=True,
        max_drift_ppm=args.max_drift_ppm,
    )
    sized = []
    for camera, (width, height, _) in zip(cameras, CAMERAS):
        total_rows = int(round(camera.total_rows * height / camera.height))
        sized.append(dataclasses.replace(camera, width=width, height=height, total_rows=total_rows, codec=args.codec))
    return simulate_recording(outdir, sized, flashes, args.duration, seed, crf=args.crf, overwrite=True, progress=False,
                              scene=scene_preset(args.scene, seed=seed), timestamps=args.timestamps)  # fmt: skip


def evaluate(result, truth: dict) -> dict:
    """Errors, posterior sds and 90 % coverage (ms) over every stored frame x :data:`N_ROWS` rows of every camera
    synchronized (matching may leave cameras out, as ``flashsync sync`` does)."""
    reference = result.reference
    errors, sds, covered = [], [], []
    for name, camera in truth["cameras"].items():
        if name not in result.cameras:
            continue
        pts = np.asarray(camera["pts_ms"])
        rows = np.linspace(0.0, camera["height"] - 1.0, N_ROWS)
        p, r = (a.ravel() for a in np.meshgrid(pts, rows, indexing="ij"))
        # the result is asked with the container's timestamps, the truth is the sensor's clock
        sensor = np.meshgrid(np.asarray(camera["sensor_time_ms"]), rows, indexing="ij")[0].ravel()
        true_ms = truth_reference_time_ms(truth, name, reference, sensor, r)
        mean, sd = result.time(name, p, r)
        draws = result.time_draws(name, p, r)
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        errors.append(mean - true_ms)
        sds.append(sd)
        covered.append((low <= true_ms) & (true_ms <= high))
    errors, sds, covered = (np.concatenate(x) for x in (errors, sds, covered))
    ratio = np.abs(errors) / np.maximum(sds, 1e-9)
    ratio[(errors == 0) & (sds == 0)] = 0.0  # the reference camera's row 0
    return {
        "rms_ms": float(np.sqrt(np.mean(errors**2))),
        "max_ms": float(np.abs(errors).max()),
        "mean_sd_ms": float(np.mean(sds)),
        "max_sd_ms": float(np.max(sds)),
        "max_z": float(ratio.max()),
        "coverage_90": float(np.mean(covered)),
        "n_points": int(errors.size),
    }


def main(argv=None) -> int:
    """Simulate, synchronize with every method and print the error table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="recording seeds")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each camera records")
    parser.add_argument("--flashes", type=int, default=10, help="flashes per recording")
    parser.add_argument("--drop-probability", type=float, default=0.01, help="chance a frame is dropped")
    parser.add_argument("--max-drift-ppm", type=float, default=100.0, help="largest clock drift (ppm)")
    parser.add_argument("--crf", type=int, default=23, help="the encoder's CRF (0-51)")
    parser.add_argument("--codec", default=CODECS[0], choices=CODECS, help="h264 (x264, 8 bits) or hevc (x265, 10 bits)")
    parser.add_argument("--scene", default="clean", choices=sorted(SCENE_PRESETS), help="scene preset (lighting)")
    parser.add_argument("--timestamps", default="exact", choices=["exact", "quicktime", "ms"], help="container timestamps")
    parser.add_argument("--frame-rate", type=float, help="one frame rate for all cameras (phones; default: mixed)")
    parser.add_argument(
        "--no-flicker-ruler", dest="flicker_ruler", action="store_false", help="fit without the flicker bands' ruler"
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="inference methods")
    parser.add_argument("--outdir", help="keep the videos here (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="reuse recordings already in --outdir")
    args = parser.parse_args(argv)

    cameras = ", ".join(f"{w}x{h}@{args.frame_rate or r:g}" for w, h, r in CAMERAS)
    print(
        f"cameras {cameras} (last rotated), {args.duration:g} s, {args.flashes} flashes, "
        f"drop {args.drop_probability}, {args.codec} CRF {args.crf}, scene {args.scene}, timestamps {args.timestamps}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="flashsync-sync-") as scratch:
        root = args.outdir or scratch
        for seed in args.seeds:
            outdir = os.path.join(root, f"seed{seed}")
            started = time.perf_counter()
            truth = simulate(outdir, seed, args)
            names = list(truth["cameras"])
            paths = [os.path.join(outdir, name) for name in names]
            events = detect_events(paths, labels=names, progress=False)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    matched = linked_cameras(match_events(events))
                except FlashsyncError as error:
                    print(f"seed {seed}: matching failed: {error}", flush=True)
                    continue
            leading = matched["edge"].values == "leading"
            print(
                f"seed {seed}: simulated and detected in {time.perf_counter() - started:.0f} s; "
                f"{int(leading.sum())} leading edges, {int((matched['flash'].values >= 0).sum())} matched to "
                f"{matched.attrs['n_flashes']} flashes (truth: {len(truth['flashes_ms'])}); "
                f"dropped frames {[len(c['dropped_sensor_frames']) for c in truth['cameras'].values()]}"
                + "".join(f"; {name} left out" for name in names if name not in matched["camera"].values),
                flush=True,
            )
            for warning in caught:
                print(f"  warning: {warning.message}")
            for method in args.methods:
                started = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        result = fit(matched, method=method, seed=seed, flicker_ruler=args.flicker_ruler)
                    except FlashsyncError as error:
                        print(f"  {method}: failed: {error}", flush=True)
                        continue
                seconds = time.perf_counter() - started
                row = {"seed": seed, "method": method, "fit_s": seconds, **evaluate(result, truth)}
                row["warnings"] = [str(w.message) for w in caught]
                if method == NUTS:
                    diagnostics = result.diagnostics()
                    row["diagnostics"] = (
                        f"R-hat {diagnostics.r_hat_max:.3f}, ESS {diagnostics.ess_bulk_min:.0f}, "
                        f"{diagnostics.divergences} divergences"
                    )
                    if problems(diagnostics):
                        row["warnings"].append("NUTS diagnostics: " + "; ".join(problems(diagnostics)))
                rows.append(row)
                print(f"  {method}: fitted in {seconds:.1f} s", flush=True)
                if method == args.methods[0]:
                    print("  flicker ruler: " + "; ".join(result.flicker_ruler["notes"]), flush=True)

    print(
        f"\n{'seed':>4} {'method':>8} {'rms_ms':>8} {'max_ms':>8} {'mean_sd':>8} {'max_sd':>8} "
        f"{'max_z':>6} {'cover90':>8} {'fit_s':>6}"
    )
    for row in rows:
        print(
            f"{row['seed']:>4} {row['method']:>8} {row['rms_ms']:>8.4f} {row['max_ms']:>8.4f} "
            f"{row['mean_sd_ms']:>8.4f} {row['max_sd_ms']:>8.4f} {row['max_z']:>6.2f} {row['coverage_90']:>8.3f} "
            f"{row['fit_s']:>6.1f}"
        )
    for row in rows:
        notes = ([row["diagnostics"]] if "diagnostics" in row else []) + row["warnings"]
        if notes:
            print(f"seed {row['seed']} {row['method']}: " + "; ".join(notes))
    print(f"points per seed: every stored frame x {N_ROWS} rows of every camera; truth aligns exposure ends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
