"""The front door of inference: matched events -> posterior draws, by one of :data:`METHODS`.

* ``"lsq"``: the paper's joint least squares (:mod:`~flashsync_bayes.inference.lsq`), Student-t
  draws around it.
* ``"laplace"``: the mode of the NumPyro model and draws from the inverse Hessian there.
* ``"bayes"`` (default): NUTS started at the least-squares solution.

Each method is a function in :data:`SAMPLERS` with the same arguments, returning :class:`Draws`.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from flashsync_bayes import export_cache
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference.lsq import draw_dof, lsq_draws, seeded_student_noise, solve_lsq
from flashsync_bayes.inference.model_data import lsq_latents, model_data
from flashsync_bayes.inference.problem import Priors, Problem, prepare_problem
from flashsync_bayes.inference.ruler_check import checked_ruler
from flashsync_bayes.inference.samplers import laplace_posterior, nuts_posterior, posterior_quantities
from flashsync_bayes.inference.whitening import whitening_from_lsq
from flashsync_bayes.methods import LAPLACE, LSQ, METHODS, NUTS
from flashsync_bayes.shapes import power_of_two

#: Reported per-camera variables and the model's deterministic sites they come from.
CAMERA_SITES = {
    "drift": "drift_used",
    "shift_ms": "shift_ms",
    "total_rows": "total_rows",
    "time_per_row_ms": "time_per_row_ms",
    "readout_fraction": "readout_fraction_used",
    "sigma_ms": "sigma_ms",
}
CAMERA_VARIABLES = tuple(CAMERA_SITES)


class Draws(NamedTuple):
    """What one method's draws mean, padded.

    Attributes:
        derived: the model's deterministic sites (:data:`~flashsync_bayes.inference.model.DERIVED_SITES`),
            each ``(chains * draws, ...)``.
        log_likelihood: ``(chains * draws, E)`` log-likelihood of each padded edge's row.
        chains: number of chains (1 for independent draws).
        draws: draws per chain.
        sample_stats: sampler statistics, each ``(chains, draws)``.
    """

    derived: dict
    log_likelihood: np.ndarray
    chains: int
    draws: int
    sample_stats: dict


def _numpy(derived: dict, loglik) -> tuple[dict, np.ndarray]:
    """Device arrays of :func:`~flashsync_bayes.inference.samplers.posterior_quantities` as NumPy arrays."""
    return {k: np.asarray(v) for k, v in derived.items()}, np.asarray(loglik)


class Posterior(NamedTuple):
    """A fit's draws without padding, and what produced them.

    Attributes:
        problem: the :class:`~flashsync_bayes.inference.problem.Problem` fitted.
        method: one of :data:`METHODS`.
        priors: the :class:`~flashsync_bayes.inference.problem.Priors` used.
        draws: :data:`CAMERA_VARIABLES` ``(chain, draw, camera)`` and ``flash_time_ms``
            ``(chain, draw, flash)`` (ms, reference clock; rows for ``total_rows``).
        sample_stats: sampler statistics, each ``(chain, draw)``.
        log_likelihood: ``(chain, draw, event)`` log-likelihood of each edge's row.
    """

    problem: Problem
    method: str
    priors: Priors
    draws: dict
    sample_stats: dict
    log_likelihood: np.ndarray


def _independent(num_samples: int) -> dict:
    """Sample stats ``(1, num_samples)`` of independent draws: none diverge."""
    return {"diverging": np.zeros((1, num_samples), dtype=bool)}


def _draw_lsq(seed, problem, solution, data, num_warmup, num_samples, num_chains, say) -> Draws:
    """Student-t draws around the least-squares solution (σ at its lsq value)."""
    size = solution.vector.size  # drawn for a power of two of unknowns: one program serves nearby sizes
    noise = export_cache.call(seeded_student_noise, seed, draw_dof(solution), num_draws=num_samples, size=power_of_two(size))
    latents = lsq_latents(problem, solution, data, lsq_draws(solution, noise[:, :size]))
    derived, loglik = _numpy(*export_cache.call(posterior_quantities, latents, data))
    return Draws(derived, loglik, 1, num_samples, _independent(num_samples))


def _draw_laplace(seed, problem, solution, data, num_warmup, num_samples, num_chains, say) -> Draws:
    """Draws of the Laplace approximation at the model's mode; warns when the mode search went wrong."""
    say("Laplace approximation (mode + Hessian)")
    whitening = whitening_from_lsq(problem, solution, data)
    out, derived, loglik = export_cache.call(laplace_posterior, seed, data, whitening, draw_dof(solution), num_draws=num_samples)
    if not bool(out.converged):
        warnings.warn(
            f"Laplace mode search stopped after {int(out.iterations)} steps without converging; try method='bayes'",
            stacklevel=4,
        )
    elif float(np.min(np.asarray(out.curvature))) < 0:
        warnings.warn(
            "the posterior is not unimodal at the Laplace point (some flash lies between disagreeing edges); "
            "its intervals are rough there, method='bayes' is exact",
            stacklevel=4,
        )
    return Draws(*_numpy(derived, loglik), 1, num_samples, _independent(num_samples))


def _draw_nuts(seed, problem, solution, data, num_warmup, num_samples, num_chains, say) -> Draws:
    """NUTS draws of ``num_chains`` chains and their sampler statistics."""
    say(f"NUTS: {num_chains} chains, {num_warmup} warmup + {num_samples} draws each (first run compiles)")
    whitening = whitening_from_lsq(problem, solution, data)
    run = dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains)
    out, derived, loglik = export_cache.call(nuts_posterior, seed, data, whitening, **run)
    num_steps = np.asarray(out.num_steps)
    stats = {
        "lp": -np.asarray(out.potential_energy),
        "diverging": np.asarray(out.diverging),
        "n_steps": num_steps,
        "tree_depth": np.floor(np.log2(np.maximum(num_steps, 1))).astype(np.int64) + 1,
        "acceptance_rate": np.asarray(out.accept_prob),
        "energy": np.asarray(out.energy),
        "step_size": np.asarray(out.step_size),
    }
    return Draws(*_numpy(derived, loglik), num_chains, num_samples, stats)


#: The inference methods, by name.
SAMPLERS = {NUTS: _draw_nuts, LAPLACE: _draw_laplace, LSQ: _draw_lsq}


def _reporter(progress: bool):
    """A function printing a progress message with the seconds since now to stderr, or doing nothing."""
    started = time.perf_counter()

    def say(message):
        if progress:
            print(f"[flashsync fit {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    return say


def fit(
    events,
    reference=None,
    method: str = NUTS,
    total_rows: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    readout_ms: Mapping[str, float] | None = None,
    seed: int = 0,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    progress: bool = False,
    priors: Priors | None = None,
    flicker_ruler: bool = True,
) -> Posterior:
    """The :class:`Posterior` of all cameras of a matched events dataset.

    Uses the leading edges with ``flash >= 0``; flashes seen by one camera only are dropped.
    ``reference`` (label or path, default the first camera) defines the time axis: its snapped
    frame times, with the frame clock's own uncertainty. ``total_rows`` / ``readout_ms`` (time to
    read all stored rows) / ``frame_period_ms`` map cameras (label or path) to known sensor facts.
    ``method`` is "bayes" (NUTS, ``num_chains`` chains of ``num_samples`` draws), "laplace" or "lsq".
    With ``flicker_ruler`` the mains-flicker bands the events carry pin the times per row where they
    can (:mod:`~flashsync_bayes.inference.flicker_ruler`), unless the flashes contradict them
    (:mod:`~flashsync_bayes.inference.ruler_check`).
    """
    if method not in METHODS:
        raise FlashsyncError(f"method must be one of {METHODS}, got '{method}'")
    if num_samples < 1 or num_chains < 1 or num_warmup < 0:
        raise FlashsyncError("num_samples and num_chains must be >= 1 and num_warmup >= 0")
    priors = Priors() if priors is None else priors
    say = _reporter(progress)
    problem = checked_ruler(prepare_problem(events, reference, total_rows, frame_period_ms, readout_ms, flicker_ruler), priors)
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    say(f"{n_cam} cameras, {n_flash} flashes, {n_ev} edges; least squares")
    solution = solve_lsq(problem, priors)
    data = model_data(problem, solution, priors)
    sampler = SAMPLERS[method]
    out = sampler(np.int64(seed), problem, solution, data, num_warmup, num_samples, num_chains, say)
    derived, loglik = out.derived, out.log_likelihood
    shape = (out.chains, out.draws)
    draws = {name: derived[site][:, :n_cam].reshape(shape + (n_cam,)) for name, site in CAMERA_SITES.items()}
    draws["flash_time_ms"] = derived["flash_time_ms"][:, :n_flash].reshape(shape + (n_flash,))
    say("done")
    return Posterior(problem, method, priors, draws, out.sample_stats, loglik[:, :n_ev].reshape(shape + (n_ev,)))
