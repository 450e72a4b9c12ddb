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

import jax
import jax.numpy as jnp
import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference.lsq import draw_dof, lsq_draws, solve_lsq
from flashsync_bayes.inference.model_data import lsq_latents, model_data
from flashsync_bayes.inference.problem import Priors, Problem, prepare_problem
from flashsync_bayes.inference.samplers import posterior_quantities, run_laplace, run_nuts
from flashsync_bayes.inference.whitening import latent_draws, whitening_from_lsq

NUTS = "bayes"
LAPLACE = "laplace"
LSQ = "lsq"
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
    """Latent draws of one method.

    Attributes:
        latents: padded latent site values, each ``(chains * draws, ...)``.
        chains: number of chains (1 for independent draws).
        draws: draws per chain.
        sample_stats: sampler statistics, each ``(chains, draws)``.
    """

    latents: dict
    chains: int
    draws: int
    sample_stats: dict


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


def _draw_lsq(key, problem, solution, data, num_warmup, num_samples, num_chains, say) -> Draws:
    """Student-t draws around the least-squares solution (σ at its lsq value)."""
    latents = lsq_latents(problem, solution, data, lsq_draws(key, solution, num_samples))
    return Draws(latents, 1, num_samples, _independent(num_samples))


def _draw_laplace(key, problem, solution, data, num_warmup, num_samples, num_chains, say) -> Draws:
    """Draws of the Laplace approximation at the model's mode; warns when the mode search went wrong."""
    say("Laplace approximation (mode + Hessian)")
    whitening = whitening_from_lsq(problem, solution, data)
    dof = jnp.asarray(draw_dof(solution))
    out = run_laplace(key, data._replace(selection_weight=jnp.asarray(0.0)), whitening, dof, num_samples)
    if not bool(out.converged):
        warnings.warn(
            f"Laplace mode search stopped after {int(out.iterations)} steps without converging; try method='bayes'",
            stacklevel=4,
        )
    elif float(np.min(out.curvature)) < 0:
        warnings.warn(
            "the posterior is not unimodal at the Laplace point (some flash lies between disagreeing edges); "
            "its intervals are rough there, method='bayes' is exact",
            stacklevel=4,
        )
    latents = {k: np.asarray(v) for k, v in latent_draws(out.u, data, whitening).items()}
    return Draws(latents, 1, num_samples, _independent(num_samples))


def _draw_nuts(key, problem, solution, data, num_warmup, num_samples, num_chains, say) -> Draws:
    """NUTS draws of ``num_chains`` chains and their sampler statistics."""
    say(f"NUTS: {num_chains} chains, {num_warmup} warmup + {num_samples} draws each (first run compiles)")
    whitening = whitening_from_lsq(problem, solution, data)
    out = run_nuts(key, data, whitening, num_warmup, num_samples, num_chains)
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
    u = out.u.reshape((num_chains * num_samples, -1))
    latents = {k: np.asarray(v) for k, v in latent_draws(u, data, whitening).items()}
    return Draws(latents, num_chains, num_samples, stats)


#: The inference methods, by name.
SAMPLERS = {NUTS: _draw_nuts, LAPLACE: _draw_laplace, LSQ: _draw_lsq}
METHODS = tuple(SAMPLERS)


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
) -> Posterior:
    """The :class:`Posterior` of all cameras of a matched events dataset.

    Uses the leading edges with ``flash >= 0``; flashes seen by one camera only are dropped.
    ``reference`` (label or path, default the first camera) defines the time axis: its snapped
    frame times, with the frame clock's own uncertainty. ``total_rows`` / ``readout_ms`` (time to
    read all stored rows) / ``frame_period_ms`` map cameras (label or path) to known sensor facts.
    ``method`` is "bayes" (NUTS, ``num_chains`` chains of ``num_samples`` draws), "laplace" or "lsq".
    """
    if method not in METHODS:
        raise FlashsyncError(f"method must be one of {METHODS}, got '{method}'")
    if num_samples < 1 or num_chains < 1 or num_warmup < 0:
        raise FlashsyncError("num_samples and num_chains must be >= 1 and num_warmup >= 0")
    priors = Priors() if priors is None else priors
    say = _reporter(progress)
    problem = prepare_problem(events, reference, total_rows, frame_period_ms, readout_ms)
    n_cam, n_flash, n_ev = len(problem.cameras), problem.flash_ids.size, problem.row.size
    say(f"{n_cam} cameras, {n_flash} flashes, {n_ev} edges; least squares")
    solution = solve_lsq(problem, priors)
    data = model_data(problem, solution, priors)
    sampler = SAMPLERS[method]
    out = sampler(jax.random.PRNGKey(seed), problem, solution, data, num_warmup, num_samples, num_chains, say)
    derived, loglik = posterior_quantities(out.latents, data)
    shape = (out.chains, out.draws)
    draws = {name: derived[site][:, :n_cam].reshape(shape + (n_cam,)) for name, site in CAMERA_SITES.items()}
    draws["flash_time_ms"] = derived["flash_time_ms"][:, :n_flash].reshape(shape + (n_flash,))
    say("done")
    return Posterior(problem, method, priors, draws, out.sample_stats, loglik[:, :n_ev].reshape(shape + (n_ev,)))
