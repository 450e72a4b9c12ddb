"""Tests of inference.lsq, the joint least squares."""

import numpy as np

from flashsync_bayes import fit
from flashsync_bayes.inference import prepare_problem, solve_lsq


def test_lsq_and_model_start_agree(identifiable):
    events, _ = identifiable
    problem = prepare_problem(events)
    solution = solve_lsq(problem)
    assert problem.flash_ids.size == 24
    assert np.sqrt(np.mean(solution.residual_ms**2)) < 0.02


def test_locked_phases_lsq_reports_the_width(locked):
    events, _ = locked
    params = fit(events, method="lsq").parameters()
    assert (params["time_per_row_ms_sd"] > 0.05 * params["time_per_row_ms"]).all()
