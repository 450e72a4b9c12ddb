"""The one module that imports ArviZ: InferenceData of a fit, its netCDF file, R-hat and ESS."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its 1.0 refactor on import
    import arviz as az

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import with_string_labels
from flashsync_bayes.inference import CAMERA_VARIABLES, Posterior
from flashsync_bayes.io.files import atomic_write

InferenceData = az.InferenceData


def inference_data(posterior: Posterior) -> az.InferenceData:
    """InferenceData of a fit: posterior, sample_stats, log_likelihood, observed_data (rows) and constant_data."""
    problem = posterior.problem
    cameras = list(problem.cameras)
    chains, draws = posterior.draws["drift"].shape[:2]
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    post = xr.Dataset(
        {
            name: (("chain", "draw", "camera"), np.asarray(posterior.draws[name], dtype=np.float64))
            for name in CAMERA_VARIABLES
        }
        | {"flash_time_ms": (("chain", "draw", "flash"), np.asarray(posterior.draws["flash_time_ms"], dtype=np.float64))},
        coords=coords | {"camera": cameras, "flash": np.asarray(problem.flash_ids)},
    )
    stats = xr.Dataset(
        {name: (("chain", "draw"), np.asarray(value)) for name, value in posterior.sample_stats.items()}, coords=coords
    )
    event = np.arange(problem.row.size)
    loglik = xr.Dataset(
        {"row": (("chain", "draw", "event"), np.asarray(posterior.log_likelihood))}, coords=coords | {"event": event}
    )
    observed = xr.Dataset({"row": ("event", problem.row)}, coords={"event": event})
    constant = xr.Dataset(
        {
            "frame_time_ms": ("event", problem.frame_time_ms),
            "row_sd": ("event", problem.row_sd),
            "event_camera": ("event", np.asarray([cameras[c] for c in problem.event_camera], dtype=str)),
            "flash": ("event", np.asarray(problem.flash_ids)[problem.event_flash]),
            "event_index": ("event", np.asarray(problem.event_index)),
        },
        coords={"event": event},
    )
    return az.InferenceData(
        posterior=post, sample_stats=stats, log_likelihood=loglik, observed_data=observed, constant_data=constant
    )


#: netCDF group of a saved result that holds the events dataset it was fitted to.
EVENTS_GROUP = "events"


def save_idata(path, idata: az.InferenceData, metadata: Mapping, events: xr.Dataset | None = None) -> None:
    """Write InferenceData with JSON ``metadata`` (attribute ``flashsync``) and the ``events`` to netCDF atomically."""
    groups = {group: getattr(idata, group) for group in idata.groups() if group != EVENTS_GROUP}
    if events is not None:
        groups[EVENTS_GROUP] = events
    copy = az.InferenceData(attrs={"flashsync": json.dumps(dict(metadata))}, **groups)
    atomic_write(path, lambda tmp: copy.to_netcdf(tmp, engine="h5netcdf"))


def load_idata(path) -> tuple[az.InferenceData, dict, xr.Dataset | None]:
    """InferenceData, metadata and events (None in files without them) written by :func:`save_idata`."""
    if not os.path.exists(path):
        raise FlashsyncError(f"result file not found: {path}")
    try:
        with az.rc_context({"data.load": "eager"}):
            idata = az.from_netcdf(os.fspath(path))
    except (OSError, ValueError) as error:
        raise FlashsyncError(f"cannot read sync result {path}: {' '.join(str(error).split())}") from error
    if "flashsync" not in idata.attrs or "posterior" not in idata.groups():
        raise FlashsyncError(f"{path} is not a saved synchronization (write one with: flashsync sync ... --output FILE.nc)")
    metadata = json.loads(idata.attrs["flashsync"])
    groups = {group: with_string_labels(getattr(idata, group)) for group in idata.groups()}
    events = groups.pop(EVENTS_GROUP, None)
    return az.InferenceData(**groups), metadata, events


def rhat_and_ess(data: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """Split R-hat and bulk ESS of every variable of a ``(chain, draw, ...)`` dataset (ArviZ's warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.rhat(data), az.ess(data, method="bulk")
