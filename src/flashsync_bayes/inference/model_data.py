"""The padded arrays :func:`~flashsync_bayes.inference.model.sync_model` reads, and lsq values in its sites.

JAX compiles once per array shape: events, flashes and cameras are padded to powers of two (at
least ``MIN_EVENTS``, ``MIN_FLASHES``, ``MIN_CAMERAS``) with masks, so fits of similar size reuse
the compiled sampler and optimiser. The arrays are NumPy: building them runs no JAX operation.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from flashsync_bayes.inference.lsq import LsqSolution, lsq_natural
from flashsync_bayes.inference.model import INERT_DRIFT_SD, INERT_OFFSET_SD_MS, LATENT_SITES, ModelData
from flashsync_bayes.inference.problem import Priors, Problem, camera_priors
from flashsync_bayes.shapes import power_of_two

MIN_EVENTS = 256
MIN_FLASHES = 64
MIN_CAMERAS = 4
#: Prior of the readout fractions that nothing depends on (cameras with a known fact, padding):
#: far from 0 and 1, where a sampler exploring it would meet the steep ends of SoftClipTransform.
INERT_READOUT_PRIOR = (20.0, 20.0)


def _pad(values, size: int, fill) -> np.ndarray:
    """``values`` followed by ``fill`` up to ``size`` entries."""
    values = np.asarray(values)
    out = np.full(size, fill, dtype=values.dtype)
    out[: values.size] = values
    return out


def model_data(problem: Problem, solution: LsqSolution, priors: Priors = Priors()) -> ModelData:
    """Padded :class:`ModelData` of a problem; priors centred with the lsq solution where no coarse value exists."""
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    pc, pf, pe = power_of_two(n_cam, MIN_CAMERAS), power_of_two(n_flash, MIN_FLASHES), power_of_two(n_ev, MIN_EVENTS)
    prior = camera_priors(problem, priors)
    lsq_drift = 1.0 + solution.drift_scaled / problem.time_scale_ms
    offset_loc = np.where(
        np.isfinite(prior.offset_loc_ms), prior.offset_loc_ms, solution.offset_ms - prior.offset_lever_ms * (lsq_drift - 1)
    )
    known = np.isfinite(problem.fixed_total_rows)
    ruler = problem.ruler
    x = problem.frame_time_ms - problem.camera_centre_ms[problem.event_camera]
    f64 = partial(np.asarray, dtype=np.float64)
    return ModelData(
        event_camera=np.asarray(_pad(problem.event_camera, pe, 0)),
        event_flash=np.asarray(_pad(problem.event_flash, pe, 0)),
        event_x_ms=f64(_pad(x, pe, 0.0)),
        event_row=f64(_pad(problem.row, pe, 0.0)),
        event_row_sd=f64(_pad(problem.row_sd, pe, 1.0)),
        event_mask=np.asarray(np.arange(pe) < n_ev),
        stored_rows=f64(_pad(problem.stored_rows, pc, 100.0)),
        frame_period_ms=f64(_pad(problem.frame_period_ms, pc, 10.0)),
        reference=np.asarray(problem.reference),
        flash_mask=np.asarray(np.arange(pf) < n_flash),
        selection_weight=f64(1.0),
        fixed_mapping=np.asarray(_pad(prior.drift_sd <= 0, pc, True)),
        known_readout=np.asarray(_pad(known, pc, False)),
        readout_value=f64(_pad(np.where(known, problem.stored_rows / np.where(known, problem.fixed_total_rows, 1.0), 0.8), pc, 0.8)),
        camera_centre_ms=f64(_pad(problem.camera_centre_ms, pc, problem.centre_ms)),
        centre_ms=f64(problem.centre_ms),
        drift_sd=f64(_pad(np.where(prior.drift_sd > 0, prior.drift_sd, INERT_DRIFT_SD), pc, INERT_DRIFT_SD)),
        offset_loc_ms=f64(_pad(offset_loc, pc, 0.0)),
        offset_lever_ms=f64(_pad(prior.offset_lever_ms, pc, 0.0)),
        offset_sd_ms=f64(_pad(np.where(prior.drift_sd > 0, prior.offset_sd_ms, INERT_OFFSET_SD_MS), pc, INERT_OFFSET_SD_MS)),
        readout_prior=f64(_readout_priors(priors, _pad(~known, pc, False))),
        sigma_rate=f64(1.0 / priors.sigma_rows),
        flash_loc_ms=f64(_pad(solution.flash_ms, pf, 0.0)),
        nu=f64(priors.nu),
        ruler_time_per_row_ms=f64(_pad(np.where(ruler.used, ruler.time_per_row_ms, 1.0), pc, 1.0)),
        ruler_weight=f64(_pad(ruler.weight, pc, 0.0)),
        mains_variance=f64(ruler.frequency_variance(priors.mains_relative_sd)),
    )



def _readout_priors(priors: Priors, free: np.ndarray) -> np.ndarray:
    """Beta parameters ``(C, 2)`` of the readout fractions: the per-camera prior where free, else inert."""
    per_camera = priors.readout_per_camera(int(np.sum(free)))
    return np.where(free[:, None], np.asarray(per_camera), np.asarray(INERT_READOUT_PRIOR))


def site_slices(data: ModelData) -> dict[str, slice]:
    """Position of each latent site in the flat unconstrained vector (:data:`LATENT_SITES` order)."""
    sizes = [data.stored_rows.shape[0]] * 4 + [data.flash_loc_ms.shape[0]]
    ends = np.cumsum(sizes)
    return {name: slice(int(end - size), int(end)) for name, size, end in zip(LATENT_SITES, sizes, ends)}


def lsq_latents(problem: Problem, solution: LsqSolution, data: ModelData, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Padded latent site values ``(n, ...)`` of packed lsq vectors ``(n, P)`` (σ at its lsq value)."""
    natural = lsq_natural(problem, solution, vectors)
    n_cam, n = len(problem.cameras), vectors.shape[0]
    pc, pf = data.stored_rows.shape[0], data.flash_loc_ms.shape[0]
    known = np.isfinite(problem.fixed_total_rows)
    readout = natural["time_per_row_ms"] * problem.stored_rows / (natural["drift"] * problem.frame_period_ms)
    prior = np.asarray(data.readout_prior)
    mean_q = prior[:, 0] / prior.sum(axis=1)
    values = {
        "drift": natural["drift"],
        "offset_ms": natural["offset_ms"],
        "readout_fraction": np.where(known, mean_q[:n_cam], readout),
        "sigma_rows": solution.sigma_ms / natural["time_per_row_ms"],
        "flash_ms": natural["flash_ms"],
    }
    fills = {"drift": 1.0, "offset_ms": 0.0, "readout_fraction": mean_q, "sigma_rows": 1.0 / float(data.sigma_rate)}
    out = {}
    for name, value in values.items():
        size = pf if name == "flash_ms" else pc
        padded = np.broadcast_to(fills.get(name, 0.0), (n, size)).copy()
        padded[:, : value.shape[1]] = value
        out[name] = padded
    return out
