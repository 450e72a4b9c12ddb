"""Samplers of the whitened posterior: NUTS and the Laplace approximation, pure and jitted per padded shape.

* :func:`run_nuts`: NUTS started at the lsq solution (u = 0, i.e. every site at its lsq value and
  σ at its lsq estimate), later chains overdispersed.
* :func:`run_laplace`: damped-Newton MAP of the same model from the lsq point, with σ held at the
  lsq estimate (a joint mode of σ and one latent time per flash underestimates σ), and draws from
  the inverse Hessian there (Student-t as for lsq). Fast, but its intervals ignore the uncertainty
  of σ and of per-camera noise differences: they are somewhat too narrow when the event-time
  noise dominates (see the calibration numbers in the tests).

A fit runs one compiled program per method: :func:`nuts_posterior` or :func:`laplace_posterior`
(sampler, latent draws, derived sites and log-likelihood together), :func:`posterior_quantities`
for lsq draws. They take NumPy arrays of padded shapes (:mod:`.model_data`), so nearby problem
sizes share them; :func:`flashsync_bayes.export_cache.call` keeps them traced on disk.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer import Predictive, log_likelihood
from numpyro.infer.hmc import hmc

from flashsync_bayes.export_cache import serializable
from flashsync_bayes.inference.lsq import student_noise
from flashsync_bayes.inference.model import DERIVED_SITES, ModelData, sync_model
from flashsync_bayes.inference.model_data import site_slices
from flashsync_bayes.inference.whitening import Whitening, latent_draws, whitened_potential

#: Later chains start at ``OVERDISPERSION`` times a standard normal draw in whitened coordinates,
#: i.e. spread wider than the lsq approximation, so that R-hat can reveal a ridge left unexplored.
OVERDISPERSION = 1.5


@serializable
class NutsDraws(NamedTuple):
    """NUTS output, every field ``(chains, draws, ...)``.

    Attributes:
        u: whitened coordinates ``(chains, draws, K)``.
        potential_energy: negative log posterior density (up to a constant) of each draw.
        diverging: whether the transition diverged (bool).
        num_steps: leapfrog steps of the transition.
        accept_prob: mean acceptance probability of the transition.
        energy: Hamiltonian energy of the transition.
        step_size: leapfrog step size in use.
    """

    u: jax.Array
    potential_energy: jax.Array
    diverging: jax.Array
    num_steps: jax.Array
    accept_prob: jax.Array
    energy: jax.Array
    step_size: jax.Array


@partial(jax.jit, static_argnames=("num_warmup", "num_samples", "num_chains"))
def run_nuts(rng_key, data: ModelData, whitening: Whitening, num_warmup: int, num_samples: int, num_chains: int) -> NutsDraws:
    """NUTS in whitened coordinates, chains vectorized; warmup and sampling in one ``lax.scan``.

    The first chain starts at the lsq solution (u = 0), the others overdispersed (see
    :data:`OVERDISPERSION`). Compiles once per padded shape.
    """
    potential = partial(whitened_potential, data=data, whitening=whitening)
    size = whitening.loc.shape[0]

    def one_chain(key, u0):
        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        key_init, key_run = jax.random.split(key)
        state = init_kernel(u0, num_warmup, rng_key=key_init, max_tree_depth=8, target_accept_prob=0.85)

        def step(s, _):
            s = sample_kernel(s)
            return s, NutsDraws(s.z, s.potential_energy, s.diverging, s.num_steps, s.accept_prob, s.energy, s.adapt_state.step_size)

        _, trace = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
        return jax.tree_util.tree_map(lambda v: v[num_warmup:], trace)

    key_start, key_chains = jax.random.split(rng_key)
    spread = OVERDISPERSION * (jnp.arange(num_chains) > 0)[:, None]
    starts = spread * jax.random.normal(key_start, (num_chains, size))
    return jax.vmap(one_chain)(jax.random.split(key_chains, num_chains), starts)


@serializable
class LaplaceDraws(NamedTuple):
    """Laplace output.

    Attributes:
        u: whitened draws ``(num_draws, K)``.
        iterations: () Newton iterations taken.
        converged: () whether the search stopped by itself (bool).
        curvature: eigenvalues ``(K,)`` of the Hessian at the mode (negative at a saddle).
    """
    u: jax.Array
    iterations: jax.Array
    converged: jax.Array
    curvature: jax.Array


@partial(jax.jit, static_argnames=("num_draws",))
def run_laplace(rng_key, data: ModelData, whitening: Whitening, dof, num_draws: int) -> LaplaceDraws:
    """Mode by damped Newton in whitened coordinates and Student-t draws from the inverse Hessian there.

    The noise σ stays at its lsq value (u = 0 on its coordinates): a joint mode of σ and one latent
    time per flash would shrink σ by up to √2 when flashes are seen by two cameras (Neyman-Scott),
    and the intervals with it. Draws are multivariate Student-t with ``dof`` degrees of freedom, as
    for a linear model whose noise scale is estimated. Each iteration evaluates energy, gradient and
    Hessian once, at the proposed point; a rejected proposal raises the damping.
    """
    size = whitening.loc.shape[0]
    sigma = site_slices(data)["sigma_rows"]
    free = jnp.ones(size).at[sigma].set(0.0)
    eye = jnp.eye(size)

    def value_and_gradient(u):
        value, gradient = jax.value_and_grad(whitened_potential)(u, data, whitening)
        return gradient * free, (value, gradient * free)

    evaluate = jax.jacfwd(value_and_gradient, has_aux=True)

    def restricted(h):
        return h * free[:, None] * free[None, :] + jnp.diag(1.0 - free)

    def cond(state):
        return (state[5] < 60) & ~state[6]

    def body(state):
        u, energy, g, h, lam, it, _ = state
        step = -jnp.linalg.solve(restricted(h) + lam * eye, g)
        # converged when the Newton model promises no gain above the rounding noise of the energy
        done = (it > 0) & (-0.5 * jnp.dot(g, step) < 1e-9 * (1.0 + jnp.abs(energy)))
        h_new, (energy_new, g_new) = evaluate(u + step)
        accept = jnp.isfinite(energy_new) & jnp.all(jnp.isfinite(g_new)) & (energy_new <= energy + 1e-12 * jnp.abs(energy)) & ~done
        keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        lam = jnp.where(accept, jnp.maximum(lam / 10.0, 1e-12), lam * 10.0)
        return keep(u + step, u), keep(energy_new, energy), keep(g_new, g), keep(h_new, h), lam, it + 1, done

    # the first iteration takes a zero step and so evaluates the starting point
    start = (jnp.zeros(size), jnp.asarray(jnp.inf), jnp.zeros(size), eye, jnp.asarray(1e-4), jnp.asarray(0), jnp.asarray(False))
    u, _, _, h, _, iterations, converged = jax.lax.while_loop(cond, body, start)
    values, vectors = jnp.linalg.eigh(restricted(0.5 * (h + h.T)))
    # at a saddle (a flash between two Student-t modes) use |curvature|: the Gaussian then spans
    # both modes instead of exploding along the negative direction
    curvature = jnp.maximum(jnp.abs(values), 1e-3)
    noise = student_noise(rng_key, dof, num_draws, size)
    draws = u + ((noise / jnp.sqrt(curvature)) @ vectors.T) * free
    return LaplaceDraws(draws, iterations, converged, values)


def _quantities(latents: dict, data: ModelData):
    """Derived sites (:data:`DERIVED_SITES`, each ``(n, ...)``) and row log-likelihood ``(n, E)`` of latent draws (traced)."""
    predictive = Predictive(sync_model, posterior_samples=latents, return_sites=list(DERIVED_SITES))
    return predictive(jax.random.PRNGKey(0), data), log_likelihood(sync_model, latents, data)["row"]


@jax.jit
def posterior_quantities(latents: dict, data: ModelData) -> tuple[dict, jax.Array]:
    """Derived sites (:data:`DERIVED_SITES`, each ``(n, ...)``) and the row log-likelihood ``(n, E)`` of latent draws."""
    return _quantities(latents, data)


@partial(jax.jit, static_argnames=("num_warmup", "num_samples", "num_chains"))
def nuts_posterior(seed, data: ModelData, whitening: Whitening, num_warmup: int, num_samples: int, num_chains: int):
    """:func:`run_nuts` with the key ``jax.random.PRNGKey(seed)`` and what its draws mean, in one compiled program.

    Returns ``(NutsDraws, derived sites, row log-likelihood)``, the last two as in
    :func:`posterior_quantities` with the chains' draws one after the other.
    """
    out = run_nuts(jax.random.PRNGKey(seed), data, whitening, num_warmup, num_samples, num_chains)
    u = out.u.reshape((num_chains * num_samples, -1))
    return (out, *_quantities(latent_draws(u, data, whitening), data))


@partial(jax.jit, static_argnames=("num_draws",))
def laplace_posterior(seed, data: ModelData, whitening: Whitening, dof, num_draws: int):
    """:func:`run_laplace` (joint mode: no selection term, see the model) with the key ``PRNGKey(seed)``, and what its draws mean.

    One compiled program; returns ``(LaplaceDraws, derived sites, row log-likelihood)`` as :func:`nuts_posterior`.
    """
    out = run_laplace(jax.random.PRNGKey(seed), data._replace(selection_weight=jnp.zeros_like(data.selection_weight)), whitening, dof, num_draws)
    return (out, *_quantities(latent_draws(out.u, data, whitening), data))
