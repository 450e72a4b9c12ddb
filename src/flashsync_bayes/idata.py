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
from flashsync_bayes.events import atomic_write
from flashsync_bayes.inference import CAMERA_VARIABLES, Posterior

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


def save_idata(path, idata: az.InferenceData, metadata: Mapping) -> None:
    """Write InferenceData with JSON ``metadata`` (attribute ``flashsync``) to a netCDF file atomically."""
    copy = az.InferenceData(
        attrs={"flashsync": json.dumps(dict(metadata))},
        **{group: getattr(idata, group) for group in idata.groups()},
    )
    atomic_write(path, lambda tmp: copy.to_netcdf(tmp, engine="h5netcdf"))


def load_idata(path) -> tuple[az.InferenceData, dict]:
    """InferenceData and metadata written by :func:`save_idata` (camera labels as str)."""
    if not os.path.exists(path):
        raise FlashsyncError(f"result file not found: {path}")
    try:
        with az.rc_context({"data.load": "eager"}):
            idata = az.from_netcdf(os.fspath(path))
        metadata = json.loads(idata.attrs["flashsync"])
    except (OSError, ValueError, KeyError) as error:
        raise FlashsyncError(f"cannot read sync result {path}: {error}") from error
    groups = {}
    for group in idata.groups():
        ds = getattr(idata, group)
        if "camera" in ds.coords:
            ds = ds.assign_coords(camera=ds["camera"].values.astype(str))
        if "event_camera" in ds:
            ds["event_camera"] = ds["event_camera"].astype(str)
        groups[group] = ds
    return az.InferenceData(**groups), metadata


def rhat_and_ess(data: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """Split R-hat and bulk ESS of every variable of a ``(chain, draw, ...)`` dataset (ArviZ's warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.rhat(data), az.ess(data, method="bulk")
