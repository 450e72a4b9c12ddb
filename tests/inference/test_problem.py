"""Tests of inference.problem: which edges and flashes a fit uses, and the coarse shift prior."""

import numpy as np
import pytest

from flashsync_bayes import fit
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference import Priors, prepare_problem
from tests.sync_cases import IDENTIFIABLE, IDENTIFIABLE_WINDOW, assert_accurate


def test_coarse_mapping_of_another_reference_is_used(identifiable):
    """Matching's coarse offsets (here relative to cam1, one camera unlinked) centre the shift prior."""
    events, kept = identifiable
    events = events.copy()
    base = IDENTIFIABLE[1]
    drift = np.array([c.drift / base.drift for c in IDENTIFIABLE])
    shift = np.array([(c.shift_ms - base.shift_ms) / base.drift + 2.0 for c in IDENTIFIABLE])
    shift[2] = np.nan
    events["coarse_drift"] = ("camera", drift)
    events["coarse_shift_ms"] = ("camera", shift)
    problem = prepare_problem(events)
    truth = (IDENTIFIABLE[1].shift_ms - IDENTIFIABLE[0].shift_ms) / IDENTIFIABLE[0].drift
    assert problem.shift_prior_ms[1] == pytest.approx(truth, abs=0.01)
    assert np.isnan(problem.shift_prior_ms[[0, 2]]).all()
    result = fit(events, method="laplace", priors=Priors(shift_sd_ms=5.0))
    assert_accurate(result, IDENTIFIABLE, kept, IDENTIFIABLE_WINDOW)


def test_camera_without_matched_events_is_named(identifiable):
    events, _ = identifiable
    events = events.copy()
    events["flash"] = ("event", np.where(events["event_camera"].values == "cam2", -1, events["flash"].values))
    with pytest.raises(FlashsyncError, match="cam2"):
        fit(events, method="lsq")


def test_single_camera_flashes_are_dropped(identifiable):
    events, _ = identifiable
    events = events.copy()
    flash = events["flash"].values.copy()
    only = flash == flash[0]
    # flash 0 now appears in the first camera only
    flash[only & (events["event_camera"].values != events["event_camera"].values[0])] = -1
    events["flash"] = ("event", flash)
    result = fit(events, method="lsq")
    assert result.n_flashes == 23
    assert flash[0] not in result.idata.posterior["flash"].values
