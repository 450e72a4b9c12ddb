"""Tests of result.py: JSON, netCDF round trip, time and frame lookups; fits from tests/conftest.py."""

import json

import numpy as np
import pytest
import xarray as xr

from flashsync_bayes import SyncResult, fit
from flashsync_bayes.simulate import stored_frame_times_ms
from tests.sync_cases import IDENTIFIABLE, IDENTIFIABLE_WINDOW, SHORT_NUTS, assert_accurate, true_time

JSON_CAMERA_KEYS = {
    "drift",
    "drift_sd",
    "shift_ms",
    "shift_ms_sd",
    "time_per_row_ms",
    "time_per_row_ms_sd",
    "total_rows",
    "total_rows_sd",
    "frame_period_ms",
    "frame_clock",
    "time_per_row_identified",
    "time_per_row_reason",
    "readout_ms",
    "readout_ms_sd",
    "flicker_bands",
}


def test_to_json_has_exactly_the_design_keys(fits):
    result = fits["laplace"]
    out = result.to_json({"cam0": "videos/a.mp4", "cam1": "videos/b.mp4", "cam2": "videos/c.mp4"})
    assert set(out) == {"reference", "method", "cameras", "n_flashes", "residual_rms_ms", "cameras_left_out"}
    assert out["cameras_left_out"] == []
    assert out["reference"] == "videos/a.mp4" and out["method"] == "laplace"
    assert list(out["cameras"]) == ["videos/a.mp4", "videos/b.mp4", "videos/c.mp4"]
    for values in out["cameras"].values():
        assert set(values) == JSON_CAMERA_KEYS
        # no clock variables in the events: the clock comes from their own (exact) frame times
        assert values["frame_clock"]["period_ms"] == pytest.approx(values["frame_period_ms"], rel=1e-9)
        assert values["time_per_row_identified"] is True and values["time_per_row_reason"].startswith("pinned")
        assert values["flicker_bands"] == "the events carry no flicker band measurements"
    assert out["cameras"]["videos/a.mp4"]["drift"] == pytest.approx(1.0, abs=1e-12)
    assert out["cameras"]["videos/a.mp4"]["shift_ms"] == pytest.approx(0.0, abs=1e-9)
    assert out["n_flashes"] == 24 and 0 < out["residual_rms_ms"] < 0.05
    json.dumps(out)  # plain JSON types only
    assert list(result.to_json()["cameras"]) == ["cam0.mp4", "cam1.mp4", "cam2.mp4"]


def test_frame_clock_is_used_and_reported(identifiable):
    events, _ = identifiable
    events = events.copy()
    period = events["frame_period_ms"].values
    events["clock_origin_ms"] = ("camera", np.zeros(3))
    events["clock_period_ms"] = ("camera", np.where(np.arange(3) == 1, period, np.nan))
    jittered = events["frame_time_ms"].values + np.where(events["event_camera"].values == "cam1", 0.4, 0.0)
    events["frame_time_ms"] = ("event", jittered)
    result = fit(events, method="lsq")
    out = result.to_json()
    clock = out["cameras"]["cam1.mp4"]["frame_clock"]
    assert clock["period_ms"] == period[1] and clock["origin_ms"] == 0.0
    assert out["cameras"]["cam0.mp4"]["frame_clock"] is None
    # times are asked with raw pts and snapped the same way
    assert_accurate(result, IDENTIFIABLE, identifiable[1], IDENTIFIABLE_WINDOW)


@pytest.mark.parametrize("method", ["laplace", "bayes"])
def test_save_load_round_trip(fits, tmp_path, method):
    result = fits[method]
    path = tmp_path / "sync.nc"
    result.save(path)
    loaded = SyncResult.load(path)
    assert loaded.cameras == result.cameras and loaded.reference == result.reference
    assert loaded.method == method and loaded.frame_clocks == result.frame_clocks
    xr.testing.assert_allclose(loaded.parameters(), result.parameters())
    p, r = np.array([10_000.0, 50_000.0]), np.array([0.0, 700.0])
    for camera in result.cameras:
        np.testing.assert_array_equal(loaded.time(camera, p, r)[0], result.time(camera, p, r)[0])
    assert loaded.to_json() == result.to_json()
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"):
        assert group in loaded.idata.groups()
    assert loaded.idata.log_likelihood["row"].shape == result.idata.log_likelihood["row"].shape
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_locate_inverts_time(fits, identifiable):
    result = fits["laplace"]
    _, kept = identifiable
    pts = stored_frame_times_ms(IDENTIFIABLE[1], kept[1])
    frame = np.array([500, 900, 1400])
    row = np.array([3.5, 500.0, 1070.25])
    t, _ = result.time("cam1", pts[frame], row)
    found, found_row = result.locate("cam1", t, pts)
    np.testing.assert_array_equal(found, frame)
    np.testing.assert_allclose(found_row, row, atol=1e-6)


def test_frame_table_matches_truth(fits, identifiable):
    result = fits["bayes"]
    _, kept = identifiable
    frames = {f"cam{c}": stored_frame_times_ms(cam, kept[c]) for c, cam in enumerate(IDENTIFIABLE)}
    table = result.frame_table(frames)
    assert table["frame_index"].dims == ("frame", "camera")
    ref_pts = frames["cam0"]
    ref_mid = true_time(IDENTIFIABLE, 0, ref_pts, 0.5 * (IDENTIFIABLE[0].height - 1))
    for c, camera in enumerate(IDENTIFIABLE):
        mid = true_time(IDENTIFIABLE, c, frames[f"cam{c}"], 0.5 * (camera.height - 1))
        nearest = np.abs(mid[None, :] - ref_mid[:, None]).argmin(axis=1)
        difference = mid[nearest] - ref_mid
        half = 0.5 * camera.drift * camera.frame_period_ms
        clear = np.abs(np.abs(difference) - half) > 0.05  # not at the edge of the half-period window
        expected = np.where(np.abs(difference) <= half, nearest, -1)
        got = table["frame_index"].sel(camera=f"cam{c}").values
        np.testing.assert_array_equal(got[clear], expected[clear])
        ok = clear & (expected >= 0)
        np.testing.assert_allclose(table["difference_ms"].sel(camera=f"cam{c}").values[ok], difference[ok], atol=0.05)
    assert (table["frame_index"].sel(camera="cam0").values == np.arange(ref_pts.size)).all()


def test_time_uncertainty_and_draws(fits):
    result = fits["bayes"]
    mean, sd = result.time("cam2", np.full((2, 3), 40_000.0), np.array([0.0, 240.0, 479.0]))
    assert mean.shape == sd.shape == (2, 3)
    assert (sd > 0).all() and (sd < 0.05).all()
    draws = result.time_draws("cam2", 40_000.0, 240.0)
    assert draws.shape == (2 * SHORT_NUTS["num_samples"],)  # two chains
    assert draws.mean() == pytest.approx(mean[0, 1], abs=1e-9)
    ref_mean, ref_sd = result.time("cam0", 1000.0, 0.0)
    assert ref_mean == pytest.approx(1000.0, abs=1e-9) and ref_sd == 0.0  # the reference is the time axis
