"""The warnings ``flashsync sync`` prints beside its table (:func:`flashsync_bayes.cli.report.warn_about`)."""

import warnings
from types import SimpleNamespace

import pytest

from flashsync_bayes import fit
from flashsync_bayes.cli.report import parameter_lines, warn_about
from flashsync_bayes.diagnostics import Diagnostics
from tests.sync_cases import LOCKED, with_flicker_bands


def fitted(method, periods_ms, facts=None, pinned=True):
    """A synchronization as ``warn_about`` reads it: method, frame periods, readout facts, identifiability."""
    cameras = [f"cam{i}" for i in range(len(periods_ms))]
    return SimpleNamespace(
        method=method,
        metadata={"frame_period_ms": list(periods_ms), "facts": list(facts or [None] * len(cameras))},
        identifiability=lambda: {c: {"time_per_row_identified": pinned, "readout_ms_sd": 0.5} for c in cameras},
        diagnostics=lambda: Diagnostics(1.001, 3000.0, 0, 2),
    )


def messages(result) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_about(result)
    return [str(w.message) for w in caught]


PHONES = [1000 / 29.97] * 3


@pytest.mark.parametrize("method", ["laplace", "lsq"])
def test_gaussian_intervals_are_flagged_where_one_frame_rate_leaves_the_readouts_to_wrapped_bands(method):
    (message,) = messages(fitted(method, PHONES))
    assert "one frame rate" in message and method in message and "--method bayes" in message


@pytest.mark.parametrize(
    "result",
    [
        fitted("bayes", PHONES),  # NUTS integrates the non-Gaussian posterior
        fitted("laplace", [1000 / 30, 40.0, 1000 / 60]),  # mixed rates pin every readout
        fitted("laplace", PHONES, facts=[None, "readout 20 ms", None]),  # a fact pins one, and through it the others
        fitted("laplace", [1000 / 29.97]),  # one camera: nothing to synchronize against
    ],
)
def test_no_such_warning_where_the_readouts_rest_on_more(result):
    assert not [m for m in messages(result) if "one frame rate" in m]


def test_readouts_left_open_get_their_own_warning_only():
    (message,) = messages(fitted("laplace", PHONES, pinned=False))
    assert "do not pin the time per row" in message


def test_the_table_names_the_cameras_whose_flicker_bands_served_as_a_ruler(locked):
    """Under 100 Hz lamps the locked 30 fps cameras' moving bands pin their times per row: a line under the table says
    whose bands did and how; without the ruler there is no such line."""
    events, _ = locked
    banded = with_flicker_bands(events, LOCKED, 100.05, 5e-4, seed=3)
    lines = parameter_lines(fit(banded, method="lsq"))
    (ruler_line,) = [line for line in lines if line.startswith("flicker ruler (time per row): ")]
    assert ruler_line.count("flicker bands of 100 Hz lamps, period") == len(LOCKED)
    assert not any(line.startswith("flicker ruler") for line in parameter_lines(fit(banded, method="lsq", flicker_ruler=False)))
