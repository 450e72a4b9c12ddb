"""The built-in demo: simulate a multi-camera recording, synchronize it, compare with the truth."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter

import numpy as np

from flashsync_bayes.inference import NUTS
from flashsync_bayes.pipeline import synchronize
from flashsync_bayes.simulate import random_setup, simulate_recording
from flashsync_bayes.timing import reference_time_ms

#: Demo cameras: (width, height, frame rate); different rates make every sensor identifiable.
DEMO_CAMERAS = ((640, 360, 30.0), (480, 270, 25.0), (640, 360, 50.0))


def truth_reference_time_ms(truth: dict, camera: str, reference: str, frame_time_ms, row) -> np.ndarray:
    """True synchronized time (ms, reference clock) of rows of frames of ``camera`` (truth.json).

    ``frame_time_ms`` are the frames' sensor times (truth's ``sensor_time_ms``), which equal the
    container timestamps unless those were rounded or jittered.

    Flash edges mark the end of a row's exposure, so synchronization aligns exposure ends
    (DESIGN §2): the result is the exposure start of the reference row whose exposure ends when
    the given row's does. With equal exposures this is the same as aligning starts.
    """
    cam, ref = truth["cameras"][camera], truth["cameras"][reference]
    end_p = np.asarray(frame_time_ms) + cam["exposure_ms"]
    end_ms = reference_time_ms(end_p, row, cam["drift"], cam["shift_ms"], cam["time_per_row_ms"])
    return (end_ms - ref["shift_ms"]) / ref["drift"] - ref["exposure_ms"]


def sync_errors(result, truth: dict, paths: dict[str, str], n_frames: int = 50) -> dict[str, dict]:
    """Per camera: errors (ms) of the synchronized time over a grid of frames and rows, and their sds.

    ``paths`` maps truth.json camera names to the result's camera labels.
    """
    names = {label: name for name, label in paths.items()}
    reference = names[result.reference]
    out = {}
    for name, label in paths.items():
        camera = truth["cameras"][name]
        chosen = np.linspace(0, len(camera["pts_ms"]) - 1, n_frames).astype(int)
        rows = np.linspace(0, camera["height"] - 1, 9)
        # the result is asked with the container's timestamps, the truth is the sensor's clock
        pts_grid, row_grid = np.meshgrid(np.asarray(camera["pts_ms"])[chosen], rows, indexing="ij")
        sensor_grid, _ = np.meshgrid(np.asarray(camera["sensor_time_ms"])[chosen], rows, indexing="ij")
        mean, sd = result.time(label, pts_grid.ravel(), row_grid.ravel())
        error = mean - truth_reference_time_ms(truth, name, reference, sensor_grid.ravel(), row_grid.ravel())
        out[name] = {"error_ms": error, "sd_ms": sd}
    return out


def demo_setup(seed: int, duration_s: float = 10.0, n_flashes: int = 10):
    """Three cameras of :data:`DEMO_CAMERAS` (the last rotated, all dropping a few frames) and flashes."""
    rates = [rate for _, _, rate in DEMO_CAMERAS]
    cameras, flashes = random_setup(
        len(DEMO_CAMERAS), duration_s, n_flashes, seed, frame_rate=rates, drop_probability=0.01, rotate_last=True
    )
    sized = []
    for camera, (width, height, _) in zip(cameras, DEMO_CAMERAS):
        total_rows = int(round(camera.total_rows * height / camera.height))
        sized.append(dataclasses.replace(camera, width=width, height=height, total_rows=total_rows))
    return sized, flashes


def shared_flashes(truth: dict) -> int:
    """Number of simulated flashes whose leading edge is stored in at least two cameras' videos (truth)."""
    seen = Counter()
    for camera in truth["cameras"].values():
        seen.update({edge["flash"] for edge in camera["edges"] if edge["status"] == "stored"})
    return sum(1 for count in seen.values() if count >= 2)


def run_demo(outdir: str, seed: int = 1, method: str = NUTS, progress: bool = True, overwrite: bool = False) -> str:
    """Simulate into ``outdir`` (existing videos there only replaced with ``overwrite``), synchronize, report the errors."""
    duration_s = 12.0
    cameras, flashes = demo_setup(seed, duration_s, n_flashes=16)
    truth = simulate_recording(outdir, cameras, flashes, duration_s, seed, progress=progress, overwrite=overwrite)
    paths = {name: os.path.join(outdir, name) for name in truth["cameras"]}
    result = synchronize(list(paths.values()), method=method, seed=seed, progress=progress)
    errors = sync_errors(result, truth, paths)
    lines = [
        f"demo: {len(cameras)} cameras, {len(flashes)} flashes simulated ({shared_flashes(truth)} of them seen by two or "
        f"more cameras; the fit used {result.n_flashes}), {duration_s:g} s, method {method}"
    ]
    lines.append(f"{'camera':<10} {'size':>9} {'fps':>5} {'RMS error ms':>13} {'max error ms':>13} {'mean sd ms':>11}")
    all_errors, all_sds = [], []
    for name, camera in truth["cameras"].items():
        error, sd = errors[name]["error_ms"], errors[name]["sd_ms"]
        all_errors.append(error)
        all_sds.append(sd)
        lines.append(
            f"{name:<10} {camera['width']:>4}x{camera['height']:<4} {1000 / camera['frame_period_ms']:>5.1f} "
            f"{np.sqrt(np.mean(error**2)):>13.4f} {np.max(np.abs(error)):>13.4f} {np.mean(sd):>11.4f}"
        )
    error, sd = np.concatenate(all_errors), np.concatenate(all_sds)
    inside = np.mean(np.abs(error) <= 1.645 * np.maximum(sd, 1e-12))
    lines.append(
        f"all: RMS {np.sqrt(np.mean(error**2)):.4f} ms, max {np.max(np.abs(error)):.4f} ms, "
        f"{100 * inside:.0f} % within the 90 % interval"
    )
    return "\n".join(lines)
