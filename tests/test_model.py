"""Tests of model.py and result.py against simulator ground truth.

Accuracy is the synchronized-time error over a grid of frames and rows of every camera,
relative to the reference camera: the truth for camera c is
``t_ref = (drift_c * (p + r * T_c / L_c) + shift_c - shift_ref) / drift_ref``.
All fits of small problems share one padded shape, so each method compiles once per session.
"""

import json
import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import event, given
from hypothesis import strategies as st

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.model import Priors, fit, prepare_problem, solve_lsq
from flashsync_bayes.result import SyncResult
from flashsync_bayes.simulate import Camera, Flashes, simulate_events, stored_frame_times_ms

RMS_LIMIT_MS = 0.1
MAX_LIMIT_MS = 0.5
SHORT_NUTS = {"num_warmup": 200, "num_samples": 400}  # one compiled NUTS shared by all tests


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def simulate(cameras, flash_times_ms, duration_ms, seed, time_noise_ms=None, **kwargs):
    """Matched events (``flash = true_flash``) and kept-frame masks of a simulated recording.

    ``time_noise_ms`` (per camera) adds Gaussian event-time noise σ_c on top of the row noise.
    """
    flashes = Flashes(np.sort(np.asarray(flash_times_ms, dtype=float)), 0.5, 0.0, 100.0)
    events, kept = simulate_events(cameras, flashes, duration_ms, seed, **kwargs)
    events["flash"] = events["true_flash"]
    if time_noise_ms is not None:
        rng = np.random.default_rng(seed + 12345)
        labels = list(events["camera"].values)
        row = events["row"].values.copy()
        for c, camera in enumerate(cameras):
            mine = events["event_camera"].values == labels[c]
            row[mine] += rng.normal(0.0, time_noise_ms[c] / camera.line_period_ms, mine.sum())
        events["row"] = ("event", row)
    return events, kept


def true_time(cameras, c, p, r, ref=0):
    """True reference time (ms) of camera c's (frame time p, row r), relative to camera ``ref``."""
    cam, base = cameras[c], cameras[ref]
    return (cam.drift * (p + r * cam.line_period_ms) + cam.shift_ms - base.shift_ms) / base.drift


def grid_errors(result, cameras, kept, window_ms, ref=0, n_frames=12, n_rows=6, with_sd=False):
    """Errors (ms) of the posterior-mean time over frames (within the flash window) x rows of every camera.

    With ``with_sd`` also the posterior sd (ms) at the same points.
    """
    errors, sds = [], []
    for c, camera in enumerate(cameras):
        pts = stored_frame_times_ms(camera, kept[c])
        world = camera.drift * pts + camera.shift_ms
        inside = pts[(world >= window_ms[0]) & (world <= window_ms[1])]
        p = inside[np.linspace(0, inside.size - 1, n_frames).astype(int)]
        r = np.linspace(0.0, camera.height - 1, n_rows)
        P, R = np.meshgrid(p, r)
        mean, sd = result.time(f"cam{c}", P, R)
        errors.append((mean - true_time(cameras, c, P, R, ref)).ravel())
        sds.append(sd.ravel())
    return (np.concatenate(errors), np.concatenate(sds)) if with_sd else np.concatenate(errors)


def assert_accurate(result, cameras, kept, window_ms, ref=0):
    """Synchronized-time RMS and max error within the limits."""
    errors = grid_errors(result, cameras, kept, window_ms, ref)
    rms, worst = float(np.sqrt(np.mean(errors**2))), float(np.abs(errors).max())
    assert rms < RMS_LIMIT_MS and worst < MAX_LIMIT_MS, (rms, worst)
    return rms, worst


IDENTIFIABLE = [
    Camera(height=720, frame_rate=30.0, exposure_ms=4.0, drift=1 + 40e-6, shift_ms=1500.0),
    Camera(height=1080, frame_rate=25.0, exposure_ms=4.0, drift=1 - 90e-6, shift_ms=-2300.0),
    Camera(height=480, frame_rate=59.94, exposure_ms=4.0, drift=1 + 5e-6, shift_ms=4100.7),
]
IDENTIFIABLE_WINDOW = (8_000.0, 80_000.0)


@pytest.fixture(scope="module")
def identifiable():
    """Three cameras with different frame rates and rasters, 24 flashes."""
    times = np.random.default_rng(11).uniform(*IDENTIFIABLE_WINDOW, 24)
    events, kept = simulate(IDENTIFIABLE, times, 90_000.0, seed=3)
    return events, kept


@pytest.fixture(scope="module")
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


# ----------------------------------------------------------------------------------------------
# accuracy
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lsq", "laplace", "bayes"])
def test_accuracy_with_different_frame_rates(fits, identifiable, method):
    result = fits[method]
    rms, worst = assert_accurate(result, IDENTIFIABLE, identifiable[1], IDENTIFIABLE_WINDOW)
    params = result.parameters()
    # the different frame rates pin every camera's time per row
    for c, camera in enumerate(IDENTIFIABLE):
        truth = camera.drift * camera.line_period_ms / IDENTIFIABLE[0].drift
        got = params["time_per_row_ms"].values[c]
        sd = params["time_per_row_ms_sd"].values[c]
        assert sd < 0.005 * truth
        assert abs(got - truth) < 4 * sd + 1e-5 * truth


def test_reference_choice(identifiable):
    events, kept = identifiable
    result = fit(events, method="lsq", reference="cam1.mp4")
    assert result.reference == "cam1"
    params = result.parameters()
    assert params["drift"].sel(camera="cam1") == 1.0 and params["shift_ms"].sel(camera="cam1") == 0.0
    assert_accurate(result, IDENTIFIABLE, kept, IDENTIFIABLE_WINDOW, ref=1)


CAMERA_SETTINGS = st.fixed_dictionaries(
    {
        "frame_rate": st.floats(24.0, 120.0),
        "height": st.integers(240, 2160),
        "rows_ratio": st.floats(1.0, 2.0),
        "drift_ppm": st.floats(-200.0, 200.0),
        "shift_s": st.floats(-60.0, 60.0),
    }
)


@given(
    settings=st.lists(CAMERA_SETTINGS, min_size=2, max_size=4),
    n_flashes=st.integers(5, 40),
    miss=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**16),
)
def test_accuracy_property(settings, n_flashes, miss, seed):
    """NUTS errors stay within the posterior's own uncertainty; where the data pin the mapping, within the bounds.

    A few flashes of a coarse, slow sensor (240 rows at 24 fps are 0.17 ms per row) cannot pin
    the time per row to 0.1 ms over the whole frame; the posterior then says so, and the test
    checks that it is honest (errors within 5 sd) instead of the fixed bounds. Total rows span
    real sensors (L/R 1.0-2.0, FACTS.md), up to the boundary L = R.
    """
    cameras = [
        Camera(
            width=64,
            height=s["height"],
            total_rows=int(round(s["height"] * s["rows_ratio"])),
            frame_rate=s["frame_rate"],
            exposure_ms=4.0,
            drift=1 + 1e-6 * s["drift_ppm"],
            shift_ms=1000.0 * s["shift_s"],
        )
        for s in settings
    ]
    duration = 150_000.0
    shifts = [c.shift_ms for c in cameras]
    window = (max(shifts) + 1_000.0, min(shifts) + duration * 0.9998 - 1_000.0)
    times = np.random.default_rng(seed).uniform(*window, n_flashes)
    events, kept = simulate(cameras, times, duration, seed, miss_probability=miss)
    try:
        problem = prepare_problem(events)
    except FlashsyncError:
        return  # a camera saw no shared flash: nothing to synchronize
    # enough edges to determine each camera's drift, shift and time per row
    if np.bincount(problem.event_camera, minlength=len(cameras)).min() < 4:
        return
    # identifiable: all frame rates differ (their phases slip through every offset), else the
    # total rows are given as known facts
    rates = np.sort([c.frame_rate for c in cameras])
    facts = None if np.diff(rates).min() >= 0.5 else {f"cam{c}": cam.total_rows for c, cam in enumerate(cameras)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(events, method="bayes", total_rows=facts, seed=seed, **SHORT_NUTS)
    errors, sd = grid_errors(result, cameras, kept, window, with_sd=True)
    assert np.max(np.abs(errors) / np.maximum(sd, 0.002)) < 5.0
    if np.sqrt(np.mean(sd**2)) < 0.03:
        event("data pin the mapping: bounds asserted")
        rms, worst = float(np.sqrt(np.mean(errors**2))), float(np.abs(errors).max())
        assert rms < RMS_LIMIT_MS and worst < MAX_LIMIT_MS, (rms, worst)


def test_total_rows_known_with_one_frame_rate():
    cameras = [
        Camera(height=720, frame_rate=30.0, exposure_ms=4.0, shift_ms=0.0),
        Camera(height=720, frame_rate=30.0, exposure_ms=4.0, drift=1 + 2e-6, shift_ms=-100 * 1000 / 30 + 0.5),
    ]
    times = np.random.default_rng(2).uniform(5_000.0, 55_000.0, 20)
    events, kept = simulate(cameras, times, 60_000.0, seed=4)
    facts = {"cam0": 750, "cam1.mp4": 750}
    for method in ("lsq", "laplace"):
        result = fit(events, method=method, total_rows=facts)
        assert_accurate(result, cameras, kept, (5_000.0, 55_000.0))
        np.testing.assert_allclose(result.parameters()["total_rows"].values, [750, 750])


# ----------------------------------------------------------------------------------------------
# identifiability
# ----------------------------------------------------------------------------------------------


#: Three 720p30 cameras of real sensors (L/R 1.39, 1.32, 1.53) with locked frame phases: frame
#: offsets of under a ms, so no flash band crosses a frame boundary, and no drift.
LOCKED = [
    Camera(height=720, total_rows=1000, frame_rate=30.0, exposure_ms=4.0, shift_ms=0.0),
    Camera(height=720, total_rows=950, frame_rate=30.0, exposure_ms=4.0, shift_ms=-2000 * 1000 / 30 + 0.6),
    Camera(height=720, total_rows=1100, frame_rate=30.0, exposure_ms=4.0, shift_ms=1500 * 1000 / 30 - 0.4),
]
LOCKED_WINDOW = (70_000.0, 110_000.0)


@pytest.fixture(scope="module")
def locked():
    """Events and kept-frame masks of the :data:`LOCKED` cameras, 25 flashes."""
    times = np.random.default_rng(1).uniform(*LOCKED_WINDOW, 25)
    return simulate(LOCKED, times, 200_000.0, seed=2)


def test_locked_phases_leave_time_per_row_open_and_say_so(locked):
    events, kept = locked
    result = fit(events, method="bayes", **SHORT_NUTS)
    tpr = result.idata.posterior["time_per_row_ms"].values.reshape(-1, 3)
    truth = np.array([c.line_period_ms for c in LOCKED])
    # the width comes from the readout prior, not from the data: ten % of the value and more
    assert (tpr.std(0) > 0.1 * tpr.mean(0)).all()
    low, high = np.quantile(tpr, [0.005, 0.995], axis=0)
    assert ((low < truth) & (truth < high)).all()
    # the ratios of the times per row are pinned, their common scale is not
    ratio = tpr[:, 1] / tpr[:, 0]
    assert ratio.std() < 0.003 * ratio.mean() and ratio.mean() == pytest.approx(truth[1] / truth[0], rel=0.003)
    pinned = result.identifiability()
    for camera in result.cameras:
        assert pinned[camera]["time_per_row_identified"] is False
        assert pinned[camera]["reason"].startswith("not pinned") and pinned[camera]["readout_ms_sd"] > 1.0
    errors, sd = grid_errors(result, LOCKED, kept, LOCKED_WINDOW, with_sd=True)
    assert np.max(np.abs(errors) / np.maximum(sd, 1e-6)) < 3.0  # ms off at the far rows, and the sds say so
    assert result.to_json()["cameras"]["cam1.mp4"]["time_per_row_identified"] is False


def test_a_readout_time_pins_every_locked_camera(locked):
    """One camera's datasheet readout time (R T / L) pins its time per row, the ratios pin the others."""
    events, kept = locked
    readout = {"cam0": LOCKED[0].height * LOCKED[0].line_period_ms}
    result = fit(events, method="bayes", readout_ms=readout, **SHORT_NUTS)
    rms, _ = assert_accurate(result, LOCKED, kept, LOCKED_WINDOW)
    assert rms < 0.05
    pinned = result.identifiability()
    assert pinned["cam0"]["reason"] == "readout time given"
    assert all(v["time_per_row_identified"] for v in pinned.values())
    np.testing.assert_allclose(result.parameters()["total_rows"].values, [c.total_rows for c in LOCKED], rtol=3e-3)


def test_locked_phases_lsq_reports_the_width(locked):
    events, _ = locked
    params = fit(events, method="lsq").parameters()
    assert (params["time_per_row_ms_sd"] > 0.05 * params["time_per_row_ms"]).all()


# ----------------------------------------------------------------------------------------------
# result object: io, json, lookups, diagnostics
# ----------------------------------------------------------------------------------------------


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
}


def test_to_json_has_exactly_the_design_keys(fits):
    result = fits["laplace"]
    out = result.to_json({"cam0": "videos/a.mp4", "cam1": "videos/b.mp4", "cam2": "videos/c.mp4"})
    assert set(out) == {"reference", "method", "cameras", "n_flashes", "residual_rms_ms"}
    assert out["reference"] == "videos/a.mp4" and out["method"] == "laplace"
    assert list(out["cameras"]) == ["videos/a.mp4", "videos/b.mp4", "videos/c.mp4"]
    for values in out["cameras"].values():
        assert set(values) == JSON_CAMERA_KEYS
        assert values["frame_clock"] is None
        assert values["time_per_row_identified"] is True and values["time_per_row_reason"].startswith("pinned")
    assert out["cameras"]["videos/a.mp4"]["drift"] == 1.0 and out["cameras"]["videos/a.mp4"]["shift_ms"] == 0.0
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
    assert ref_mean == 1000.0 and ref_sd == 0.0


def test_diagnostics(fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 400 draws: R-hat is noisy near 1.01
        diagnostics = fits["bayes"].diagnostics()
    assert diagnostics["divergences"] == 0 and diagnostics["chains"] == 2
    assert diagnostics["r_hat_max"] < 1.03 and diagnostics["ess_bulk_min"] > 150
    assert np.isnan(fits["laplace"].diagnostics()["r_hat_max"])
    broken = SyncResult(fits["bayes"].idata.copy(), fits["bayes"].metadata)
    broken.idata.sample_stats["diverging"][0, :3] = True
    with pytest.warns(UserWarning, match="3 divergent"):
        assert broken.diagnostics()["divergences"] == 3


def test_posterior_layout(fits):
    idata = fits["bayes"].idata
    post = idata.posterior
    for name in ("drift", "shift_ms", "total_rows", "time_per_row_ms", "readout_fraction", "sigma_ms"):
        assert post[name].dims == ("chain", "draw", "camera")
    assert post["flash_time_ms"].dims == ("chain", "draw", "flash")
    assert list(post["camera"].values) == ["cam0", "cam1", "cam2"]
    assert (post["drift"].sel(camera="cam0") == 1).all()
    assert idata.log_likelihood["row"].sizes["event"] == idata.observed_data["row"].size
    assert np.isfinite(idata.log_likelihood["row"].values).all()


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

    from flashsync_bayes.model import model_data, sync_model

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


def test_lsq_and_model_start_agree(identifiable):
    events, _ = identifiable
    problem = prepare_problem(events)
    solution = solve_lsq(problem)
    assert problem.flash_ids.size == 24
    assert np.sqrt(np.mean(solution.residual_ms**2)) < 0.02


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------


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


def test_bad_arguments(identifiable):
    events, _ = identifiable
    with pytest.raises(FlashsyncError, match="nope"):
        fit(events, reference="nope", method="lsq")
    with pytest.raises(FlashsyncError, match="method"):
        fit(events, method="mcmc")
    with pytest.raises(FlashsyncError, match="at least its 720"):
        fit(events, method="lsq", total_rows={"cam0": 700})
    with pytest.raises(FlashsyncError, match="no longer than its frame period"):
        fit(events, method="lsq", readout_ms={"cam0": 40.0})
    with pytest.raises(FlashsyncError, match="either the total rows or the readout time"):
        fit(events, method="lsq", readout_ms={"cam0": 20.0}, total_rows={"cam0.mp4": 900})
    with pytest.raises(FlashsyncError, match="positive"):
        fit(events, method="lsq", frame_period_ms={"cam1": 0})
    one = events.isel(camera=[0], event=np.flatnonzero(events["event_camera"].values == "cam0"))
    with pytest.raises(FlashsyncError, match="two cameras"):
        fit(one, method="lsq")
