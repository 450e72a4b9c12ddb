"""Shared test configuration: a repeatable hypothesis profile, and simulated recordings fitted once per session."""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from flashsync_bayes import fit
from tests.sync_cases import IDENTIFIABLE, IDENTIFIABLE_WINDOW, LOCKED, LOCKED_WINDOW, SHORT_NUTS, simulate

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=20,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# in-process CLI runs must not write JAX's compilation cache into the user's home
# (tests/test_cli.py checks the default in a subprocess with its own cache directory)
os.environ.setdefault("FLASHSYNC_NO_COMPILE_CACHE", "1")


@pytest.fixture(scope="session")
def identifiable():
    """Three cameras with different frame rates and rasters, 24 flashes."""
    times = np.random.default_rng(11).uniform(*IDENTIFIABLE_WINDOW, 24)
    events, kept = simulate(IDENTIFIABLE, times, 90_000.0, seed=3)
    return events, kept


@pytest.fixture(scope="session")
def fits(identifiable):
    """One fit per method of the identifiable recording."""
    events, _ = identifiable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "lsq": fit(events, method="lsq"),
            "laplace": fit(events, method="laplace"),
            "bayes": fit(events, method="bayes", **SHORT_NUTS),
        }


@pytest.fixture(scope="session")
def locked():
    """Events and kept-frame masks of the :data:`~tests.sync_cases.LOCKED` cameras, 25 flashes."""
    times = np.random.default_rng(1).uniform(*LOCKED_WINDOW, 25)
    return simulate(LOCKED, times, 200_000.0, seed=2)
