"""One flash edge up close: the row profile of its frame (change since the frame before) with the fitted edges."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.plots.figure import new_figure

#: Rows shown above and below the leading edge in the zoomed panel.
ZOOM_ROWS = (6, 10)
#: Line colour of each edge kind.
EDGE_COLOURS = {"leading": "C3", "trailing": "C2"}


def event_profile(video_path, frame: int, polarity: int = 1, settings=None, cache_dir=None) -> np.ndarray:
    """Relative brightness change ``(height,)`` of ``frame`` against the frame before, as detection saw it.

    Detection's own steps on the window of frames it looked at ``frame`` in
    (:func:`~flashsync_bayes.detection.frame_evidence`: only that window is decoded; frame times
    from ``cache_dir`` when detection cached them there): row profiles with the ambient change
    divided out; the rising (``polarity`` +1) or falling profile. ``settings`` must be the
    detector's (default :class:`~flashsync_bayes.detection.DetectorSettings`).
    """
    from flashsync_bayes.detection import frame_evidence

    if frame < 1:
        raise FlashsyncError(f"{video_path}: frame {frame} has no frame before it")
    evidence, start = frame_evidence(os.fspath(video_path), frame, settings, cache_dir)
    return np.asarray(evidence.profile(polarity)[frame - start], dtype=np.float64)


def default_edge_event(events: xr.Dataset) -> int:
    """Position of the event to show up close: the leading edge with the smallest row sd."""
    leading = np.flatnonzero(events["edge"].values.astype(str) == "leading")
    if leading.size == 0:
        raise FlashsyncError("no leading flash edge to plot")
    return int(leading[np.argmin(events["row_sd"].values[leading])])


def frame_events(events: xr.Dataset, index: int) -> xr.Dataset:
    """The events of the camera and frame of event ``index`` (its leading and trailing edges)."""
    camera = events["event_camera"].values[index]
    same = (events["event_camera"].values == camera) & (events["frame"].values == events["frame"].values[index])
    return events.isel(event=np.flatnonzero(same))


def _mark_edges(ax, edges: xr.Dataset) -> None:
    """A line at each fitted edge row and a band of ± its sd (rows)."""
    for row, sd, kind in zip(edges["row"].values, edges["row_sd"].values, edges["edge"].values.astype(str)):
        colour = EDGE_COLOURS.get(kind, "C4")
        ax.axvline(row, color=colour, lw=1.0, label=f"{kind} edge: row {row:.2f}")
        ax.axvspan(row - sd, row + sd, color=colour, alpha=0.25, lw=0, label=f"± sd {sd:.2f} rows")


def _zoom(ax, profile_pct: np.ndarray, row: float) -> None:
    """Limit ``ax`` to :data:`ZOOM_ROWS` around ``row``, the y range to the profile there."""
    low, high = row - ZOOM_ROWS[0], row + ZOOM_ROWS[1]
    inside = profile_pct[max(int(low), 0) : max(int(np.ceil(high)) + 1, 1)]
    if inside.size:
        pad = 0.1 * max(float(np.ptp(inside)), 1e-6)
        ax.set_ylim(float(inside.min()) - pad, float(inside.max()) + pad)
    ax.set_xlim(low, high)


def edge_chart(profile, edges: xr.Dataset, focus: int | None = None, title: str | None = None):
    """Figure of a frame's row profile ``(height,)`` (relative change since the previous frame) with its fitted edges ± sd.

    ``edges`` are that frame's events (:func:`frame_events`); left the whole frame, right a zoom
    around edge ``focus`` (position in ``edges``; default its first leading edge).
    """
    profile_pct = 100.0 * np.asarray(profile, dtype=np.float64)
    if edges.sizes["event"] == 0:
        raise FlashsyncError("the edge chart needs at least one edge of the frame")
    kinds = edges["edge"].values.astype(str)
    if focus is None:
        focus = int(np.flatnonzero(kinds == "leading")[0]) if "leading" in kinds else 0
    figure, axes = new_figure(1, 2, (9.0, 3.8), width_ratios=(2, 1))
    rows = np.arange(profile_pct.size)
    for ax in axes[0]:
        ax.plot(rows, profile_pct, color="C0", lw=0.9, marker=".", ms=3, label="row profile")
        ax.axhline(0.0, color="grey", lw=0.6)
        _mark_edges(ax, edges)
        ax.set(xlabel="row (readout order)", ylabel="change since previous frame (%)")
    _zoom(axes[0, 1], profile_pct, float(edges["row"].values[focus]))
    camera, frame = str(edges["event_camera"].values[0]), int(edges["frame"].values[0])
    axes[0, 0].set_title(title or f"{camera}, frame {frame}: row profile, fitted edges")
    axes[0, 1].set_title(f"zoom: {kinds[focus]} edge ± 1 sd")
    axes[0, 0].legend(loc="upper right", fontsize=7, framealpha=0.8)
    return figure


def event_edge_chart(events: xr.Dataset, index: int | None = None, settings=None, cache_dir=None):
    """:func:`edge_chart` of event ``index`` (default :func:`default_edge_event`), its profile recomputed from its video."""
    index = default_edge_event(events) if index is None else int(index)
    edges = frame_events(events, index)
    camera = str(events["event_camera"].values[index])
    path = str(events["path"].sel(camera=camera).values)
    polarity = int(events["polarity"].values[index]) * (1 if str(events["edge"].values[index]) == "leading" else -1)
    profile = event_profile(path, int(events["frame"].values[index]), polarity, settings, cache_dir)
    focus = int(np.flatnonzero(edges["row"].values == events["row"].values[index])[0])
    return edge_chart(profile, edges, focus)
