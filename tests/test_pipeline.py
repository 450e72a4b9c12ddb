"""The front door's options reach the steps they are for (:mod:`flashsync_bayes.pipeline`)."""

import numpy as np
import pytest

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.pipeline import synchronize, synchronize_events
from flashsync_bayes.simulate import Camera
from tests.matching.test_match import irregular_flashes, record


def test_the_matching_tolerance_reaches_the_matching():
    flash_ms = irregular_flashes(np.random.default_rng(3), 0, 120e3, 4000.0)
    cameras = [Camera(), Camera(shift_ms=700.0, frame_rate=25), Camera(shift_ms=-300.0, drift=1 + 50e-6)]
    events = record(cameras, flash_ms, 120e3, seed=3)
    assert list(synchronize_events(events, method="lsq", tolerance_ms=12.0, progress=False).cameras) == ["cam0", "cam1", "cam2"]
    # a nanosecond asked the matching's vote for 785 TiB; it now refuses what no mapping of guessed rows can meet
    for tiny in (1e-6, -1.0):
        with pytest.raises(FlashsyncError, match="tolerance_ms must be at least 0.1 ms"):
            synchronize_events(events, method="lsq", tolerance_ms=tiny, progress=False)
    with pytest.raises(FlashsyncError, match="tolerance_ms must be at least"):  # before any video is read
        synchronize(["missing.mp4", "other.mp4"], tolerance_ms=0.0)
