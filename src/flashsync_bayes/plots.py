"""Figures of a synchronization: event residuals per camera and the posterior of the sensor facts."""

from __future__ import annotations

import numpy as np

from flashsync_bayes.io.files import atomic_write


def plot_sync(result, path: str) -> None:
    """Write a figure (format from the file name) of residuals over time and time-per-row posteriors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    residuals = result.event_residuals()
    draws = result.idata.posterior["time_per_row_ms"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for camera in result.cameras:
        mine = residuals["event_camera"].values == camera
        left.plot(residuals["reference_time_ms"].values[mine] / 1000.0, residuals["residual_ms"].values[mine] * 1000, "o", ms=4, label=camera)
        right.hist(1000 * np.ravel(draws.sel(camera=camera).values), bins=40, histtype="step", label=camera)
    left.axhline(0.0, color="grey", lw=0.8)
    left.set(xlabel="reference time (s)", ylabel="edge residual (µs)", title="flash edges after synchronization")
    right.set(xlabel="time per row (µs)", ylabel="posterior draws", title="time per sensor row")
    left.legend(fontsize=7)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.rsplit(".", 1)[-1]))
    plt.close(fig)
