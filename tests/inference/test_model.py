"""Tests of inference.model, the NumPyro model: its likelihood and its prior sample sites."""

import numpy as np

from flashsync_bayes import fit
from flashsync_bayes.inference import Priors, model_data, prepare_problem, solve_lsq, sync_model


def test_numpyro_model_likelihood_matches_the_design(identifiable):
    """The stored per-edge log-likelihood is DESIGN §5's Student-t of each edge's row, written out here."""
    from scipy import stats

    result = fit(identifiable[0], method="laplace", num_samples=20)
    post = result.idata.posterior.isel(chain=0)
    data = result.idata.constant_data
    camera = [result.cameras.index(c) for c in data["event_camera"].values]
    flash = [list(post["flash"].values).index(f) for f in data["flash"].values]
    a = post["time_per_row_ms"].values[:, camera]
    mapped_without_row = post["drift"].values[:, camera] * data["frame_time_ms"].values + post["shift_ms"].values[:, camera]
    loc = (post["flash_time_ms"].values[:, flash] - mapped_without_row) / a
    scale = np.hypot(post["sigma_ms"].values[:, camera] / a, data["row_sd"].values)
    expected = stats.t.logpdf(result.idata.observed_data["row"].values, Priors().nu, loc, scale)
    np.testing.assert_allclose(result.idata.log_likelihood["row"].values[0], expected, rtol=1e-6, atol=1e-6)


def test_model_runs_forwards_with_predictive(identifiable):
    """Priors are sample sites: Predictive draws from the prior and replays posterior draws."""
    import jax
    from numpyro.infer import Predictive

    problem = prepare_problem(identifiable[0])
    data = model_data(problem, solve_lsq(problem))
    prior = Predictive(sync_model, num_samples=400)(jax.random.PRNGKey(0), data)
    fraction = np.asarray(prior["readout_fraction"])[:, :3]
    assert ((fraction > 0) & (fraction < 1)).all()
    mean, sd = Priors().readout_moments()
    # three free cameras: each gets Priors.readout_per_camera(3), wider than the full prior
    alpha, beta = Priors().readout_per_camera(3)
    assert abs(fraction.mean() - alpha / (alpha + beta)) < 0.03 and fraction.std() > sd
    assert prior["row"].shape == (400, data.event_row.shape[0])
