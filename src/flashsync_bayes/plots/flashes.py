"""The flash chart: detected flash edges per camera on each camera's own clock and after synchronization."""

from __future__ import annotations

import numpy as np
import xarray as xr

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.plots.figure import flash_colours, new_figure

#: Marker, size (pt²) and layer of each edge kind: leading edges on top of trailing ones of the same frame.
EDGE_MARKERS = {"leading": ("o", 30, 4), "trailing": ("v", 20, 3)}


def result_events(result) -> xr.Dataset:
    """The edges a result was fitted to: its events when it kept them, else the fitted leading edges of its InferenceData.

    The fallback holds ``event_camera``, ``frame_time_ms`` (snapped), ``row``, ``row_sd``, ``flash`` and ``edge`` over ``event``.
    """
    events = getattr(result, "events", None)
    if events is not None:
        return events
    data = result.idata.constant_data
    return xr.Dataset(
        {
            "event_camera": ("event", data["event_camera"].values.astype(str)),
            "frame_time_ms": ("event", data["frame_time_ms"].values),
            "row": ("event", result.idata.observed_data["row"].values),
            "row_sd": ("event", data["row_sd"].values),
            "flash": ("event", data["flash"].values),
            "edge": ("event", np.full(data.sizes["event"], "leading")),
        }
    )


def synchronized_times_ms(result, events: xr.Dataset) -> np.ndarray:
    """Posterior-mean reference time (ms) ``(n_events,)`` of each event (:meth:`SyncResult.time`); NaN for cameras not fitted."""
    cameras = events["event_camera"].values.astype(str)
    out = np.full(cameras.size, np.nan)
    for camera in result.cameras:
        mine = cameras == camera
        if mine.any():
            out[mine] = result.time(camera, events["frame_time_ms"].values[mine], events["row"].values[mine])[0]
    return out


def _camera_order(events: xr.Dataset, result) -> list[str]:
    """Camera labels top to bottom: the result's order, else the events' camera coordinate."""
    if result is not None:
        return list(result.cameras)
    if "camera" in events.coords:
        return [str(c) for c in events["camera"].values]
    return list(dict.fromkeys(events["event_camera"].values.astype(str)))


def _draw_edges(ax, x_s: np.ndarray, y: np.ndarray, events: xr.Dataset) -> None:
    """Scatter the edges at ``(x_s, y)``, coloured by flash id, one marker (and legend entry) per edge kind."""
    colours = flash_colours(events["flash"].values)
    kinds = events["edge"].values.astype(str)
    for kind, (marker, size, layer) in EDGE_MARKERS.items():
        mine = (kinds == kind) & np.isfinite(x_s)
        if mine.any():
            style = {"marker": marker, "s": size, "edgecolors": "black", "linewidths": 0.4, "zorder": layer}
            ax.scatter(x_s[mine], y[mine], c=colours[mine], gid=f"{kind} edge", **style)
            ax.scatter([], [], c="white", label=f"{kind} edge", **style)


def _link_flashes(ax, x_s: np.ndarray, y: np.ndarray, events: xr.Dataset) -> None:
    """Join the leading edges of each matched flash across cameras by a vertical line at their mean time."""
    flash = np.asarray(events["flash"].values, dtype=np.int64)
    use = (flash >= 0) & (events["edge"].values.astype(str) == "leading") & np.isfinite(x_s)
    ids = np.unique(flash[use])
    if ids.size == 0:
        return
    x = [x_s[use & (flash == j)].mean() for j in ids]
    low = [y[use & (flash == j)].min() for j in ids]
    high = [y[use & (flash == j)].max() for j in ids]
    ax.vlines(x, low, high, colors=flash_colours(ids), linewidth=1.2, label="same flash", zorder=2)


def _camera_axis(ax, labels: list[str], xlabel: str, title: str) -> None:
    """Cameras as y ticks (first on top), labels, title and legend of one panel."""
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set(xlabel=xlabel, ylabel="camera", title=title)
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, framealpha=0.8)


def flash_chart(events: xr.Dataset | None = None, result=None):
    """Figure of detected flash edges per camera: on each camera's own clock, and after synchronization (with ``result``).

    Top: x is each edge's frame time (s, the camera's own clock). Bottom (only with ``result``):
    x is the synchronized time of the edge's (frame time, row) on the reference clock (s,
    posterior mean); the leading edges of one flash share a colour and are joined by a line.
    ``events`` default: the result's events.
    """
    if events is None and result is None:
        raise FlashsyncError("the flash chart needs an events dataset or a sync result")
    events = result_events(result) if events is None else events
    labels = _camera_order(events, result)
    events = events.isel(event=np.flatnonzero(np.isin(events["event_camera"].values.astype(str), labels)))
    y = np.array([labels.index(c) for c in events["event_camera"].values.astype(str)], dtype=np.float64)
    n_panels = 1 if result is None else 2
    figure, axes = new_figure(n_panels, 1, (9.0, 1.6 + 1.7 * n_panels + 0.25 * len(labels) * n_panels))
    own_s = np.asarray(events["frame_time_ms"].values, dtype=np.float64) / 1000.0
    _draw_edges(axes[0, 0], own_s, y, events)
    _camera_axis(axes[0, 0], labels, "frame time on the camera's own clock (s)", "detected flash edges, each camera's own clock")
    if result is not None:
        synced_s = synchronized_times_ms(result, events) / 1000.0
        _link_flashes(axes[1, 0], synced_s, y, events)
        _draw_edges(axes[1, 0], synced_s, y, events)
        _camera_axis(axes[1, 0], labels, f"synchronized time on {result.reference}'s clock (s)",
                     f"after synchronization ({result.method}); colour: flash")
    n_flashes = np.unique(events["flash"].values[events["flash"].values >= 0]).size
    figure.suptitle(f"flash edges: {events.sizes['event']} edges; cameras: {len(labels)}; matched flashes: {n_flashes}")
    return figure
