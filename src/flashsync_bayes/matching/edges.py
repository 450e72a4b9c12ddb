"""Leading edges of an events dataset with their approximate times in their own camera's clock."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from flashsync_bayes.events import event_camera_indices


class LeadingEdges(NamedTuple):
    """The leading edges being matched, all arrays of shape (n,).

    Attributes:
        index: position of each edge in the events dataset.
        camera: camera index (dataset order).
        frame_time_ms: frame timestamp p (ms, camera clock).
        row: sub-row edge position.
        polarity: +1 rising, -1 falling.
        own_time_ms: approximate event time in its camera's clock (ms).
    """

    index: np.ndarray
    camera: np.ndarray
    frame_time_ms: np.ndarray
    row: np.ndarray
    polarity: np.ndarray
    own_time_ms: np.ndarray


def approximate_times_ms(frame_time_ms, row, frame_period_ms, total_rows) -> np.ndarray:
    """Event times in their camera's clock (ms), ``frame_time_ms + row * frame_period_ms / total_rows``."""
    period = np.asarray(frame_period_ms, dtype=np.float64)
    return np.asarray(frame_time_ms, dtype=np.float64) + np.asarray(row, dtype=np.float64) * period / total_rows


def leading_edges(events: xr.Dataset, rows_total: np.ndarray) -> LeadingEdges:
    """The leading edges of ``events`` with their approximate own-clock times, given total rows per camera ``(C,)``."""
    index = np.flatnonzero(events["edge"].values == "leading")
    camera = event_camera_indices(events["camera"].values, events["event_camera"].values[index])
    frame_time = events["frame_time_ms"].values[index].astype(np.float64)
    row = events["row"].values[index].astype(np.float64)
    periods = events["frame_period_ms"].values.astype(np.float64)
    own = approximate_times_ms(frame_time, row, periods[camera], rows_total[camera])
    polarity = events["polarity"].values[index].astype(np.int64)
    return LeadingEdges(index, camera, frame_time, row, polarity, own)


def camera_order(edges: LeadingEdges, c: int) -> np.ndarray:
    """Indices into ``edges`` of camera ``c``'s edges sorted by own-clock time, shape (n_c,)."""
    idx = np.flatnonzero(edges.camera == c)
    return idx[np.argsort(edges.own_time_ms[idx], kind="stable")]
