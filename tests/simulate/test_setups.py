"""Random setups draw sensor parameters over the requested ranges."""

from __future__ import annotations

import numpy as np

from flashsync_bayes import sensors
from flashsync_bayes.simulate import random_setup


def test_random_setup_draws_total_rows_and_exposures_over_the_requested_ranges():
    phone = sensors.PRESETS["phone"].rows_ratio
    for rows_ratio, (low, high) in ((None, sensors.ROWS_RATIO_RANGE), ((1.5, 1.6), (1.5, 1.6)), ("phone", phone)):
        cameras, _ = random_setup(60, 10.0, 0, seed=3, width=1920, height=1080, rows_ratio=rows_ratio)
        ratio = np.array([c.total_rows / c.height for c in cameras])
        assert np.all((ratio >= low) & (ratio <= high)), rows_ratio
        assert ratio.min() < low + 0.1 * (high - low) and ratio.max() > high - 0.1 * (high - low), rows_ratio
    cameras, _ = random_setup(60, 10.0, 0, seed=4, frame_rate=[24.0, 60.0], exposure_ms=(1.0, 10.0))
    exposure = np.array([c.exposure_ms for c in cameras])
    period = np.array([c.frame_period_ms for c in cameras])
    assert np.all((exposure >= 1.0) & (exposure <= np.minimum(10.0, period))) and exposure.min() < 1.5
    assert min(c.exposure_ms for c in random_setup(30, 10.0, 0, seed=4)[0]) >= 2.0
