"""The events dataset (DESIGN §4): build, validate, save and load.

Dims ``camera`` (string labels) and ``event``. Per-camera variables: ``path``, ``width``,
``height``, ``frame_period_ms``, ``n_frames``, ``rotation_deg``. Per-event variables:
``event_camera``, ``frame``, ``frame_time_ms``, ``row``, ``row_sd``, ``polarity``, ``edge``,
``amplitude``, ``flash`` (-1 unmatched). Optional per-camera ``clock_*`` variables hold the
regular frame clock behind each camera's timestamps (:data:`CLOCK_VARIABLES`, NaN where irregular).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.timing import FrameClock, estimate_frame_clock

CAMERA_VARIABLES = {
    "path": str,
    "width": np.int64,
    "height": np.int64,
    "frame_period_ms": np.float64,
    "n_frames": np.int64,
    "rotation_deg": np.int64,
}
EVENT_VARIABLES = {
    "event_camera": str,
    "frame": np.int64,
    "frame_time_ms": np.float64,
    "row": np.float64,
    "row_sd": np.float64,
    "polarity": np.int64,
    "edge": str,
    "amplitude": np.float64,
    "flash": np.int64,
}
EDGE_KINDS = ("leading", "trailing")
#: Per-camera variables of the frame clock, one per :class:`~flashsync_bayes.timing.FrameClock` field.
CLOCK_VARIABLES = {field: f"clock_{field}" for field in FrameClock._fields}


def _as_column(values, dtype) -> np.ndarray:
    """1-D array of ``dtype`` (strings become unicode arrays)."""
    if dtype is str:
        return np.asarray([str(v) for v in np.atleast_1d(np.asarray(values, dtype=object))], dtype=str)
    return np.atleast_1d(np.asarray(values, dtype=dtype))


def make_events(
    cameras: Sequence[str],
    camera_info: Mapping[str, Sequence],
    event_info: Mapping[str, Sequence],
    attrs: Mapping[str, object] | None = None,
) -> xr.Dataset:
    """Events dataset from per-camera columns (in ``cameras`` order) and per-event columns.

    Extra per-event columns in ``event_info`` are kept as additional variables. ``event_info`` may omit ``flash`` (all -1), ``edge`` ("leading"), ``polarity`` (+1) and
    ``amplitude`` (NaN). Events are sorted by camera order, then frame time and row.
    """
    n_events = len(np.atleast_1d(event_info.get("frame", [])))
    defaults = {
        "flash": np.full(n_events, -1),
        "edge": np.full(n_events, "leading"),
        "polarity": np.ones(n_events, dtype=np.int64),
        "amplitude": np.full(n_events, np.nan),
    }
    data_vars = {}
    for name, dtype in CAMERA_VARIABLES.items():
        if name not in camera_info:
            raise FlashsyncError(f"camera variable '{name}' is missing")
        data_vars[name] = ("camera", _as_column(camera_info[name], dtype))
    for name, dtype in EVENT_VARIABLES.items():
        values = event_info.get(name, defaults.get(name))
        if values is None:
            raise FlashsyncError(f"event variable '{name}' is missing")
        column = _as_column(values, dtype) if n_events else np.zeros(0, dtype=dtype if dtype is not str else "<U1")
        data_vars[name] = ("event", column)
    for name in sorted(set(event_info) - set(EVENT_VARIABLES)):
        data_vars[name] = ("event", np.asarray(event_info[name]))
    camera_labels = _as_column(list(cameras), str) if len(cameras) else np.zeros(0, dtype="<U1")
    ds = xr.Dataset(data_vars, coords={"camera": camera_labels}, attrs=dict(attrs or {}))
    ds = sort_events(ds)
    return validate_events(ds)


def sort_events(ds: xr.Dataset) -> xr.Dataset:
    """Events ordered by camera (dataset order), frame time, then row."""
    if ds.sizes["event"] == 0:
        return ds
    camera_rank = {label: i for i, label in enumerate(ds["camera"].values)}
    rank = np.array([camera_rank.get(label, len(camera_rank)) for label in ds["event_camera"].values])
    order = np.lexsort((ds["row"].values, ds["frame_time_ms"].values, rank))
    return ds.isel(event=order)


def check_unique_labels(labels: list[str]) -> None:
    """FlashsyncError naming the camera labels (paths, unless labelled) given more than once."""
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise FlashsyncError(f"camera labels must be unique (each video once); given more than once: {', '.join(repeated)}")


def validate_events(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` unchanged if it is a well-formed events dataset, else raise FlashsyncError."""
    for name in list(CAMERA_VARIABLES) + list(EVENT_VARIABLES):
        if name not in ds:
            raise FlashsyncError(f"events dataset lacks variable '{name}'")
    for name in CAMERA_VARIABLES:
        if ds[name].dims != ("camera",):
            raise FlashsyncError(f"variable '{name}' must have dims ('camera',), has {ds[name].dims}")
    for name in EVENT_VARIABLES:
        if ds[name].dims != ("event",):
            raise FlashsyncError(f"variable '{name}' must have dims ('event',), has {ds[name].dims}")
    labels = [str(c) for c in ds["camera"].values]
    check_unique_labels(labels)
    unknown = sorted(set(map(str, ds["event_camera"].values)) - set(labels))
    if unknown:
        raise FlashsyncError(f"events refer to unknown cameras {unknown}")
    if np.any(ds["height"].values < 1) or np.any(ds["frame_period_ms"].values <= 0):
        raise FlashsyncError("every camera needs height >= 1 and frame_period_ms > 0")
    rows = ds["row"].values
    if np.any(~np.isfinite(rows)) or np.any(~np.isfinite(ds["frame_time_ms"].values)):
        raise FlashsyncError("event rows and frame times must be finite")
    if np.any(~(ds["row_sd"].values > 0)):
        raise FlashsyncError("every event needs row_sd > 0")
    if not set(np.unique(ds["polarity"].values)) <= {-1, 1}:
        raise FlashsyncError("polarity must be +1 or -1")
    bad_edges = set(map(str, np.unique(ds["edge"].values))) - set(EDGE_KINDS)
    if bad_edges:
        raise FlashsyncError(f"edge must be one of {EDGE_KINDS}, got {sorted(bad_edges)}")
    return ds


def camera_position(labels: Sequence[str], paths: Sequence[str], key, what: str = "camera") -> int:
    """Index of the camera named by its label or its path; FlashsyncError naming ``what`` otherwise."""
    labels, paths, key = [str(c) for c in labels], [str(p) for p in paths], str(key)
    if key in labels:
        return labels.index(key)
    if key in paths:
        return paths.index(key)
    raise FlashsyncError(f"{what} names unknown camera '{key}'; cameras are {labels}")


def camera_index(events: xr.Dataset, key, what: str = "camera") -> int:
    """Index of the events' camera named by its label or its path; FlashsyncError naming ``what`` otherwise."""
    return camera_position(events["camera"].values, events["path"].values, key, what)


def event_camera_indices(labels: Sequence[str], event_labels) -> np.ndarray:
    """Camera index (int64, into ``labels``) of each event's camera label, shape of ``event_labels``."""
    camera_of = {str(label): i for i, label in enumerate(labels)}
    return np.array([camera_of[str(c)] for c in event_labels], dtype=np.int64)


def clock_columns(clocks: Sequence[FrameClock | None]) -> dict[str, tuple[str, np.ndarray]]:
    """Per-camera ``clock_*`` variables (float64, NaN for cameras without a regular clock) to assign."""
    return {
        variable: ("camera", np.array([np.nan if k is None else float(getattr(k, field)) for k in clocks]))
        for field, variable in CLOCK_VARIABLES.items()
    }


def frame_clocks(events: xr.Dataset) -> list[FrameClock | None]:
    """Per camera the frame clock stored in the events, None where irregular.

    Datasets that carry only ``clock_origin_ms`` and ``clock_period_ms`` (older files) get clocks
    without uncertainty. Datasets without clock variables (other detectors) get the clock the
    events' own frame times imply (:func:`sparse_frame_clocks`).
    """
    if CLOCK_VARIABLES["origin_ms"] not in events:
        return sparse_frame_clocks(events)
    n = events.sizes["camera"]
    columns = {}
    for field, variable in CLOCK_VARIABLES.items():
        present = variable in events and events[variable].dims == ("camera",)
        default = np.full(n, np.nan) if field in ("origin_ms", "period_ms") else np.zeros(n)
        columns[field] = np.asarray(events[variable].values, dtype=np.float64) if present else default
    clocks = []
    for c in range(n):
        values = {field: float(columns[field][c]) for field in columns}
        usable = np.isfinite(values["origin_ms"]) and values["period_ms"] > 0
        clocks.append(FrameClock(**{k: (v if np.isfinite(v) else 0.0) for k, v in values.items()}) if usable else None)
    return clocks




def sparse_frame_clocks(events: xr.Dataset) -> list[FrameClock | None]:
    """Per camera the regular clock behind its events' frame times (ms), None where they do not imply one.

    Events are sparse (the frames with flashes, seconds to minutes apart, with rounding and dropped
    frames between them), so the search starts from the camera's nominal ``frame_period_ms``.
    """
    labels = [str(c) for c in events["camera"].values]
    owner = event_camera_indices(labels, events["event_camera"].values)
    times = np.asarray(events["frame_time_ms"].values, dtype=np.float64)
    periods = np.asarray(events["frame_period_ms"].values, dtype=np.float64)
    return [estimate_frame_clock(np.unique(times[owner == c]), periods[c]) for c in range(len(labels))]


def save_events(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write an events dataset to netCDF (h5netcdf) atomically."""
    validate_events(ds)
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def with_string_labels(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its label variables (camera, path, event_camera, edge) as str, as netCDF may return them as bytes/objects."""
    for name, dtype in {**CAMERA_VARIABLES, **EVENT_VARIABLES}.items():
        if name in ds and dtype is str:
            ds[name] = ds[name].astype(str)
    if "camera" in ds.coords:
        ds = ds.assign_coords(camera=ds["camera"].astype(str))
    return ds


def load_events(path: str | os.PathLike) -> xr.Dataset:
    """Read an events dataset written by :func:`save_events`, or the events kept in a saved sync result."""
    if not os.path.exists(path):
        raise FlashsyncError(f"events file not found: {path}")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as opened:
            ds = opened.load()
        if "event_camera" not in ds and "flashsync" in ds.attrs:  # a result of `flashsync sync --output`
            with xr.open_dataset(path, engine="h5netcdf", group="events") as opened:
                ds = opened.load()
    except (OSError, ValueError) as error:
        raise FlashsyncError(f"cannot read events file {path}: {' '.join(str(error).split())}") from error
    return validate_events(with_string_labels(ds))
