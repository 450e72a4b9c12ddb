"""Tests of the compiled programs of inference: the whitened density, padding to shape buckets, stored exports."""

import importlib
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import potential_energy

from flashsync_bayes import export_cache, fit
from flashsync_bayes.inference import model_data, prepare_problem, solve_lsq, sync_model
from flashsync_bayes.inference.model_data import site_slices
from flashsync_bayes.inference.whitening import RidgeTransform, whitened_potential, whitening_from_lsq

#: The module (the package's attribute of that name is its function).
model_data_module = importlib.import_module("flashsync_bayes.inference.model_data")


def _whitened(identifiable, **minimum):
    """``(data, whitening)`` of the identifiable recording, padded with at least ``minimum`` sizes."""
    problem = prepare_problem(identifiable[0])
    solution = solve_lsq(problem)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in minimum.items():
            patch.setattr(model_data_module, name, value)
        data = model_data(problem, solution)
    return data, whitening_from_lsq(problem, solution, data)


def _points(size: int, n: int = 4):
    """``n`` whitened points ``(size,)``: the centre and standard normal draws."""
    rng = np.random.default_rng(0)
    return [jnp.zeros(size)] + [jnp.asarray(rng.normal(size=size)) for _ in range(n - 1)]


def test_whitened_density_counts_the_jacobian_once(identifiable):
    """-log p(u) = -log p(x(u)) - log|det dx/du|: the change of variables, with the Jacobian of the whole map once."""
    data, whitening = _whitened(identifiable)
    transform = RidgeTransform(whitening)
    slices = site_slices(data)
    for u in _points(whitening.loc.shape[0]):
        x = transform(u)
        model_energy = potential_energy(sync_model, (data,), {}, {name: x[part] for name, part in slices.items()})
        _, log_det = jnp.linalg.slogdet(jax.jacfwd(transform)(u))
        np.testing.assert_allclose(whitened_potential(u, data, whitening), model_energy - log_det, rtol=1e-10)


def test_padded_events_change_nothing(identifiable):
    """More masked padding events leave the posterior density where it was, at every point."""
    data, whitening = _whitened(identifiable)
    more, more_whitening = _whitened(identifiable, MIN_EVENTS=4 * data.event_row.shape[0])
    assert more.event_row.shape[0] > data.event_row.shape[0]
    np.testing.assert_array_equal(whitening.loc, more_whitening.loc)
    for u in _points(whitening.loc.shape[0]):
        np.testing.assert_allclose(whitened_potential(u, more, more_whitening), whitened_potential(u, data, whitening), rtol=1e-12)


def _fit(events, method, **minimum):
    """Fit with the problem padded to at least ``minimum`` sizes (model_data's MIN_* constants)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, value in minimum.items():
            patch.setattr(model_data_module, name, value)
        return fit(events, method=method, num_samples=400)


def test_lsq_draws_do_not_depend_on_the_bucket(identifiable):
    """The same draws whatever the padding of cameras, flashes and events."""
    small = _fit(identifiable[0], "lsq").idata
    large = _fit(identifiable[0], "lsq", MIN_CAMERAS=8, MIN_FLASHES=128, MIN_EVENTS=1024).idata
    for group in ("posterior", "log_likelihood"):
        for name, value in getattr(small, group).items():
            np.testing.assert_allclose(getattr(large, group)[name].values, value.values, rtol=1e-9, err_msg=name)


def test_laplace_posterior_does_not_depend_on_the_bucket(identifiable):
    """Padding cameras and events moves the Laplace posterior by no more than its Monte Carlo noise."""
    small = _fit(identifiable[0], "laplace").idata.posterior
    large = _fit(identifiable[0], "laplace", MIN_CAMERAS=8, MIN_EVENTS=1024).idata.posterior
    for name in ("shift_ms", "drift", "time_per_row_ms"):
        sd = small[name].std(("chain", "draw")).values
        moved = np.abs(large[name].mean(("chain", "draw")).values - small[name].mean(("chain", "draw")).values)
        assert (moved <= 0.25 * sd + 1e-12).all(), name
        np.testing.assert_allclose(large[name].std(("chain", "draw")).values, sd, rtol=0.2, atol=1e-12)


@pytest.fixture
def stored_programs(tmp_path):
    """JAX's compilation cache (and with it the stored exports) on in ``tmp_path`` for one test."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    export_cache._LOADED.clear()
    try:
        yield os.path.join(str(tmp_path), export_cache.SUBDIRECTORY)
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        export_cache._LOADED.clear()


@pytest.mark.parametrize("method", ["lsq", "laplace"])
def test_stored_programs_give_the_same_numbers(identifiable, stored_programs, method):
    """A fit from exported programs, written or read back from disk (or damaged there), equals the direct one."""
    events = identifiable[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_cache, "directory", lambda: None)
        direct = _fit(events, method).idata.posterior
    exported = _fit(events, method).idata.posterior
    files = sorted(os.listdir(stored_programs))
    assert files and all(name.endswith(".jaxexport") for name in files)
    export_cache._LOADED.clear()
    read_back = _fit(events, method).idata.posterior
    for name in files:
        with open(os.path.join(stored_programs, name), "wb") as handle:
            handle.write(b"damaged")
    export_cache._LOADED.clear()
    rewritten = _fit(events, method).idata.posterior
    assert sorted(os.listdir(stored_programs)) == files
    for other in (exported, read_back, rewritten):
        for name, value in direct.items():
            np.testing.assert_array_equal(other[name].values, value.values, err_msg=name)
