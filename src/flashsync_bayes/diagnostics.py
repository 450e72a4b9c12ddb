"""Convergence diagnostics of MCMC draws: split R-hat, bulk ESS and divergences of the camera parameters."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from flashsync_bayes.idata import rhat_and_ess

#: A split R-hat above this is a problem ...
RHAT_LIMIT = 1.01
#: ... and so is a bulk ESS below this many draws per chain.
ESS_PER_CHAIN = 100
#: Camera parameters checked; flash times are nuisance parameters (their max R-hat over hundreds
#: of flashes would mostly measure Monte Carlo noise of a single chain).
CHECKED = ("drift", "shift_ms", "time_per_row_ms", "readout_fraction")


class Diagnostics(NamedTuple):
    """Diagnostics of a fit's draws.

    Attributes:
        r_hat_max: largest split R-hat of the camera parameters (NaN for independent draws).
        ess_bulk_min: smallest bulk ESS of the camera parameters (draws; NaN for independent draws).
        divergences: number of divergent transitions.
        chains: number of chains.
    """

    r_hat_max: float
    ess_bulk_min: float
    divergences: int
    chains: int


def _varying(posterior: xr.Dataset) -> xr.Dataset:
    """The entries of :data:`CHECKED` that vary across draws, each over its own ``<name>_entry`` dimension."""
    varying = {}
    for name in CHECKED:
        spread = posterior[name].std(("chain", "draw")).values
        scale = np.abs(posterior[name].mean(("chain", "draw")).values)
        keep = spread > 1e-12 * np.maximum(scale, 1.0)
        if keep.any():
            picked = posterior[name].isel(camera=np.flatnonzero(keep)).drop_vars("camera")
            varying[name] = picked.rename({"camera": f"{name}_entry"})
    return xr.Dataset(varying)


def _split_one_chain(data: xr.Dataset) -> xr.Dataset:
    """One chain as two: its halves (split R-hat needs at least two chains in ArviZ)."""
    half = data.sizes["draw"] // 2
    second = data.isel(draw=slice(half, 2 * half)).assign_coords(draw=np.arange(half))
    return xr.concat([data.isel(draw=slice(0, half)), second], dim="chain").assign_coords(chain=[0, 1])


def _extreme(values: xr.Dataset, pick) -> float:
    """``pick`` (np.nanmax or np.nanmin) over all entries of all variables, NaN where none is finite."""
    flat = np.concatenate([np.ravel(values[v].values) for v in values.data_vars]) if values.data_vars else np.array([])
    return float(pick(flat)) if np.isfinite(flat).any() else float("nan")


def diagnostics(idata, mcmc: bool = True) -> Diagnostics:
    """:class:`Diagnostics` of InferenceData draws; R-hat and ESS only where ``mcmc`` (NUTS), else NaN.

    One chain is split in halves for R-hat.
    """
    stats = idata.sample_stats
    divergences = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
    chains = int(idata.posterior.sizes["chain"])
    if not mcmc:
        return Diagnostics(float("nan"), float("nan"), divergences, chains)
    data = _varying(idata.posterior)
    if chains == 1:
        data = _split_one_chain(data)
    rhat, ess = rhat_and_ess(data)
    return Diagnostics(_extreme(rhat, np.nanmax), _extreme(ess, np.nanmin), divergences, chains)


def problems(found: Diagnostics) -> list[str]:
    """What is wrong with MCMC diagnostics, one phrase each ("R-hat 1.05 > 1.01"); empty when nothing is."""
    out = []
    if found.r_hat_max > RHAT_LIMIT:
        out.append(f"R-hat {found.r_hat_max:.3f} > {RHAT_LIMIT}")
    if found.ess_bulk_min < ESS_PER_CHAIN * found.chains:
        out.append(f"bulk ESS {found.ess_bulk_min:.0f} < {ESS_PER_CHAIN * found.chains}")
    if found.divergences > 0:
        out.append(f"{found.divergences} divergent transitions")
    return out
