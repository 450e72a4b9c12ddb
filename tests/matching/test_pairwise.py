"""Tests of matching.pairwise: one camera pair's clock relation from event times alone."""

import numpy as np
import pytest

from flashsync_bayes.matching import MatchSettings, match_pair

#: 3 ms tolerance, 500 ppm largest drift, 4 pairs at least.
SETTINGS = MatchSettings(tolerance_ms=3.0, max_slope=5e-4, min_matches=4)


def test_match_pair_recovers_offset_and_drift_and_rejects_unrelated_times():
    rng = np.random.default_rng(12)
    y = np.sort(rng.uniform(0, 600e3, 80))
    x = np.sort(np.concatenate([1.0002 * y[10:] + 123456.0, rng.uniform(0, 900e3, 15)]))
    ones = np.ones
    pair = match_pair(x, ones(x.size, int), y, ones(y.size, int), SETTINGS)
    assert pair.status == "linked" and pair.n_matched == 70
    assert pair.drift == pytest.approx(1.0002, abs=1e-9) and pair.shift_ms == pytest.approx(123456.0, abs=1e-3)
    unrelated = np.sort(rng.uniform(0, 600e3, 80))
    assert match_pair(unrelated, ones(80, int), y, ones(80, int), SETTINGS).status == "unlinked"
