"""Flash-edge detection accuracy on encoded simulator videos, per frame size, against truth.json.

For every size and seed, :func:`random_setup` draws cameras and flashes, :func:`simulate_recording`
writes H.264 videos (libx264, CRF 23 by default; the default Scene has moving objects, textured
background and slowly varying ambient light) and :func:`detect_events` finds the edges. Each true
leading edge in stored rows of a stored frame is matched to the nearest detected leading edge of
the same frame and polarity within ``--gate`` rows. Printed per size: true edges, recall, false
events (detected leading edges matched to no true edge), row error RMS / max / bias, the fraction
with ``|error| <= 2 row_sd``, the median reported row_sd, and detection speed (frames per second of
a second ``detect_events`` run, so that JAX compilation is not counted; the first run's time is
printed per seed).

Run: ``python simulations/detection_accuracy.py [--sizes 640x360 1280x720] [--seeds 0 1 2]
[--cameras 2] [--duration 8] [--flashes 10] [--crf 23] [--scene indoor_50hz] [--shake-px 3] [--outdir DIR]
[--reuse]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

from flashsync_bayes.detection import detect_events
from flashsync_bayes.simulate import SCENE_PRESETS, random_setup, scene_preset, simulate_recording


def parse_size(text: str) -> tuple[int, int]:
    """``(width, height)`` pixels from ``WIDTHxHEIGHT``."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def simulate(outdir: str, size, seed: int, args) -> dict:
    """Write (or, with ``--reuse``, read) one recording of ``size`` and return its truth dict."""
    truth_path = os.path.join(outdir, "truth.json")
    if args.reuse and os.path.exists(truth_path):
        with open(truth_path) as handle:
            return json.load(handle)
    width, height = size
    cameras, flashes = random_setup(
        args.cameras,
        args.duration,
        args.flashes,
        seed,
        width=width,
        height=height,
        frame_rate=args.frame_rates,
        drop_probability=args.drop_probability,
        rotate_last=True,
    )
    cameras = [dataclasses.replace(c, noise_sigma=args.noise, shake_px=args.shake_px) for c in cameras]
    scene = scene_preset(args.scene, seed=seed)
    return simulate_recording(
        outdir, cameras, flashes, args.duration, seed, crf=args.crf, scene=scene, overwrite=True, progress=False
    )


def match_edges(truth: dict, events, gate_rows: float) -> dict:
    """Hits ``(error rows, row_sd)``, misses and false events of detected leading edges against the truth."""
    errors, sds, n_true, n_false = [], [], 0, 0
    for name, camera in truth["cameras"].items():
        mine = (events["event_camera"].values == name) & (events["edge"].values == "leading")
        frame = events["frame"].values[mine]
        row = events["row"].values[mine]
        row_sd = events["row_sd"].values[mine]
        polarity = events["polarity"].values[mine]
        used = np.zeros(frame.size, bool)
        amplitude = truth["flashes"]["amplitude"]
        for edge in camera["edges"]:
            if edge["status"] != "stored":
                continue
            n_true += 1
            sign = 1 if amplitude[edge["flash"]] > 0 else -1
            candidates = np.flatnonzero((frame == edge["frame"]) & (polarity == sign) & ~used)
            if candidates.size == 0:
                continue
            best = candidates[np.argmin(np.abs(row[candidates] - edge["row"]))]
            if abs(row[best] - edge["row"]) > gate_rows:
                continue
            used[best] = True
            errors.append(row[best] - edge["row"])
            sds.append(row_sd[best])
        n_false += int((~used).sum())
    return {"errors": np.array(errors), "sds": np.array(sds), "n_true": n_true, "n_false": n_false}


def summary(size_label: str, parts: list[dict], speeds: list[float]) -> str:
    """One table line for a size from the per-seed matches and detection speeds (frames/s)."""
    errors = np.concatenate([p["errors"] for p in parts])
    sds = np.concatenate([p["sds"] for p in parts])
    n_true = sum(p["n_true"] for p in parts)
    n_false = sum(p["n_false"] for p in parts)
    recall = errors.size / max(n_true, 1)
    if errors.size:
        rms, worst, bias = np.sqrt(np.mean(errors**2)), np.abs(errors).max(), errors.mean()
        within, median_sd = np.mean(np.abs(errors) <= 2 * sds), np.median(sds)
    else:
        rms = worst = bias = within = median_sd = float("nan")
    return (
        f"{size_label:>10} {n_true:>5} {recall:>7.3f} {n_false:>6} {rms:>9.3f} {worst:>9.3f} {bias:>+9.3f} "
        f"{within:>9.3f} {median_sd:>9.3f} {np.median(speeds):>8.0f}"
    )


def main(argv=None) -> int:
    """Simulate, detect and print the accuracy table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"], help="WIDTHxHEIGHT sizes")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="recording seeds")
    parser.add_argument("--cameras", type=int, default=2, help="cameras per recording")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds each camera records")
    parser.add_argument("--flashes", type=int, default=10, help="flashes per recording")
    parser.add_argument("--frame-rates", type=float, nargs="+", default=[30.0, 25.0], help="fps per camera (cycled)")
    parser.add_argument("--drop-probability", type=float, default=0.02, help="chance a frame is dropped")
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise sd (grey levels)")
    parser.add_argument("--crf", type=int, default=23, help="x264 CRF (0-51)")
    parser.add_argument("--shake-px", type=float, default=0.0, help="RMS shake of handheld cameras (pixels; 0: tripod)")
    parser.add_argument("--scene", default="clean", choices=sorted(SCENE_PRESETS), help="scene preset (lighting)")
    parser.add_argument("--gate", type=float, default=8.0, help="largest |row error| of a hit (rows)")
    parser.add_argument("--outdir", help="keep the videos here (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="reuse recordings already in --outdir")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="flashsync-detection-") as scratch:
        root = args.outdir or scratch
        print(
            f"{args.cameras} cameras x {args.duration:g} s, {args.flashes} flashes, fps {args.frame_rates}, "
            f"CRF {args.crf}, drop {args.drop_probability}, scene {args.scene}, shake {args.shake_px:g} px, seeds {args.seeds}",
            flush=True,
        )
        lines = []
        for size_text in args.sizes:
            size = parse_size(size_text)
            parts, speeds = [], []
            for seed in args.seeds:
                outdir = os.path.join(root, size_text, f"seed{seed}")
                started = time.perf_counter()
                truth = simulate(outdir, size, seed, args)
                simulated = time.perf_counter() - started
                names = list(truth["cameras"])
                paths = [os.path.join(outdir, name) for name in names]
                # the first run compiles new shapes; the second one, timed, reuses them
                started = time.perf_counter()
                detect_events(paths, labels=names, progress=False)
                cold = time.perf_counter() - started
                started = time.perf_counter()
                events = detect_events(paths, labels=names, progress=False)
                seconds = time.perf_counter() - started
                n_frames = sum(len(c["pts_ms"]) for c in truth["cameras"].values())
                speeds.append(n_frames / seconds)
                part = match_edges(truth, events, args.gate)
                parts.append(part)
                print(
                    f"  {size_text} seed {seed}: simulated in {simulated:.0f} s; {n_frames} frames detected in "
                    f"{seconds:.1f} s ({n_frames / seconds:.0f} frames/s; first run {cold:.1f} s); "
                    f"{part['errors'].size}/{part['n_true']} edges found, {part['n_false']} false",
                    flush=True,
                )
            lines.append(summary(size_text, parts, speeds))
        print(
            f"\n{'size':>10} {'edges':>5} {'recall':>7} {'false':>6} {'rms_row':>9} {'max_row':>9} {'bias_row':>9} "
            f"{'in_2sd':>9} {'med_sd':>9} {'frames/s':>8}"
        )
        print("\n".join(lines))
        print("frames/s: median over seeds of frames per second of a second detect_events run (shapes compiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
