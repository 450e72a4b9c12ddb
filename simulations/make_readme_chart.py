"""Regenerate docs/flash_chart.png: the flash chart of a simulated three-camera recording, for the README.

Simulates the demo's cameras (:func:`flashsync_bayes.demo.demo_setup`: 30, 25 and 50 fps, dropped
frames, one rotated), writes the videos, detects and matches the flashes, synchronizes them
(least squares by default) and draws the detected edges on each camera's clock and after alignment.

    .venv/bin/python simulations/make_readme_chart.py [--out docs/flash_chart.png] [--seed 1] [--method lsq]
"""

from __future__ import annotations

import argparse
import os
import tempfile

from flashsync_bayes.demo import demo_setup
from flashsync_bayes.detection import detect_events
from flashsync_bayes.matching import match_events
from flashsync_bayes.pipeline import fit
from flashsync_bayes.plots import write_plots
from flashsync_bayes.simulate import simulate_recording

#: Seconds recorded and flashes fired.
DURATION_S = 12.0
N_FLASHES = 12


def make_chart(out: str, seed: int, method: str) -> str:
    """Simulate, detect, match and fit a recording and write its flash chart to ``out``; returns ``out``."""
    cameras, flashes = demo_setup(seed, DURATION_S, N_FLASHES)
    with tempfile.TemporaryDirectory() as outdir:
        truth = simulate_recording(outdir, cameras, flashes, DURATION_S, seed, progress=False)
        paths = [os.path.join(outdir, name) for name in truth["cameras"]]
        events = detect_events(paths, labels=list(truth["cameras"]), progress=False)
        matched = match_events(events)
        result = fit(matched, method=method, progress=False)
        write_plots([f"flashes={out}"], result=result, events=matched)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "flash_chart.png"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--method", default="lsq", choices=("lsq", "laplace", "bayes"))
    args = parser.parse_args()
    path = make_chart(os.path.normpath(args.out), args.seed, args.method)
    print(f"{path}: {os.path.getsize(path) / 1024:.0f} kB")


if __name__ == "__main__":
    main()
