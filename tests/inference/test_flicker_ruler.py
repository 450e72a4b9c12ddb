"""Tests of the mains-flicker ruler: which lamps lit the room, which cameras' bands pin their time per row, and the
closed-form precision of the measurements' correlated errors."""

import numpy as np
import pytest

from flashsync_bayes.inference.flicker_ruler import MAINS_RELATIVE_SD, STEP_SD, band_ruler, ruler_precision


def bands(flicker_hz, frame_rate, time_per_row_ms):
    """``(period rows, phase step cycles, frame period ms)`` of lamps at ``flicker_hz`` seen by one camera."""
    frame_period_ms = 1000.0 / frame_rate
    return 1000.0 / (flicker_hz * time_per_row_ms), (flicker_hz * frame_period_ms / 1000.0) % 1.0, frame_period_ms


def ruler_of(flicker_hz, cameras, stored_rows, known=None):
    """The ruler of cameras ``[(frame rate, time per row ms)]`` under lamps at ``flicker_hz``, periods measured to 0.05 %."""
    period, step, frame_period = np.array([bands(flicker_hz, rate, tpr) for rate, tpr in cameras]).T
    return band_ruler(period, 5e-4 * period, step, np.full(period.size, 0.1), frame_period, stored_rows, known)


@pytest.mark.parametrize("flicker_hz", [100.0, 120.0])
def test_the_phase_step_tells_which_lamps_lit_the_room(flicker_hz):
    # bands move by 1/3 a frame at 30 fps under 100 Hz and stand still under 120 Hz; at 25 fps the other way
    # round (0 and 0.8); 59.94 fps sees both move (0.67 and 0.002: that one too slowly)
    cameras = [(30.0, 0.0430), (25.0, 0.0920), (60000 / 1001, 0.0290)]
    ruler = ruler_of(flicker_hz, cameras, [720, 360, 540])
    assert ruler.flicker_hz == flicker_hz
    expected_used = [flicker_hz == 100.0, flicker_hz == 120.0, flicker_hz == 100.0]
    np.testing.assert_array_equal(ruler.used, expected_used)
    used = ruler.used
    np.testing.assert_allclose(ruler.time_per_row_ms[used], np.array(cameras)[used, 1], rtol=1e-12)
    np.testing.assert_allclose(ruler.relative_sd[used], 5e-4)
    assert ruler.notes[0 if flicker_hz == 120.0 else 1].startswith("flicker bands stand nearly still")
    assert all(note.startswith(f"flicker bands of {flicker_hz:.0f} Hz") for note, u in zip(ruler.notes, used) if u)


def test_bands_pin_nothing_where_they_stand_still_fit_both_lamps_or_break_physics():
    # all cameras at 30 fps under 120 Hz: no band moves, no ruler
    assert not ruler_of(120.0, [(30.0, 0.043), (30.0, 0.05)], [720, 720]).used.any()
    # 31.4 fps: frac(100 T) = 0.18 and frac(120 T) = 0.82, the same step read in the other row direction
    frame_rate = 220.0 / 7.0
    ambiguous = ruler_of(100.0, [(frame_rate, 0.043)], [720])
    assert not ambiguous.used.any() and "fits 100 and 120 Hz alike" in ambiguous.notes[0]
    # one camera's step says 100 Hz, the other's 120 Hz: one room cannot have both
    period, step, frame_period = np.array([bands(100.0, 30.0, 0.043), bands(120.0, 25.0, 0.07)]).T
    split = band_ruler(period, 5e-4 * period, step, [0.1, 0.1], frame_period, [720, 480])
    assert not split.used.any() and all("disagree" in note for note in split.notes)
    # a period that would make the time per row longer than a frame period / stored rows (L < R)
    unphysical = ruler_of(100.0, [(30.0, 0.050), (30.0, 0.043)], [720, 720])
    np.testing.assert_array_equal(unphysical.used, [False, True])
    assert "fewer total rows than stored" in unphysical.notes[0]
    # a known sensor fact takes precedence
    known = ruler_of(100.0, [(30.0, 0.043), (30.0, 0.043)], [720, 720], known=[True, False])
    np.testing.assert_array_equal(known.used, [False, True])
    # a step that fits neither lamp: the camera is left out, the others still serve
    period, step, frame_period = np.array([bands(100.0, 30.0, 0.043), bands(100.0, 30.0, 0.040)]).T
    step[1] = 0.55
    odd = band_ruler(period, 5e-4 * period, step, [0.1, 0.1], frame_period, [720, 720])
    np.testing.assert_array_equal(odd.used, [True, False])
    assert "does not fit 100 Hz" in odd.notes[1]
    # bands of 581 rows, 0.93 cycles in 540 rows (60 fps): too long to measure well
    long_bands = ruler_of(100.0, [(30.0, 0.043), (60.0, 0.0172)], [720, 540])
    np.testing.assert_array_equal(long_bands.used, [True, False])
    assert "fewer than 1.0 cycles" in long_bands.notes[1]
    # bands of a hundredth of a percent: a spurious period, not lamps
    faint = band_ruler(period, 5e-4 * period, [1 / 3, 1 / 3], [0.1, 1e-4], frame_period, [720, 720])
    np.testing.assert_array_equal(faint.used, [True, False])
    assert "too faint" in faint.notes[1]
    # unmeasured bands
    none = band_ruler([np.nan, np.nan], [np.nan, np.nan], [0.0, 0.0], [0.0, 0.0], [33.3, 40.0], [720, 720])
    assert not none.used.any() and np.isnan(none.flicker_hz) and none.notes[0] == "no flicker bands measured"


def test_bands_that_creep_pin_where_they_travel_far_enough_over_their_lag():
    # 30 fps under 120.06 Hz lamps: a step of 0.002 cycles a frame, nothing between two frames, a sixth of a cycle
    # over 149 (the lever |1 - e^{2πi s n}| 1.7): the lamps are the 120 Hz ones, as 0.002 fits frac(120 T) = 0
    cameras = [(30.0, 0.0430), (30.0, 0.0320)]
    period, _, frame_period = np.array([bands(120.06, rate, tpr) for rate, tpr in cameras]).T
    step, sd = np.full(2, 0.002), 2e-3 * period
    creeping = band_ruler(period, sd, step, [0.1, 0.1], frame_period, [720, 720], lag_frames=[149.0, 149.0])
    assert creeping.used.all() and creeping.flicker_hz == 120.0
    np.testing.assert_allclose(creeping.time_per_row_ms, np.array(cameras)[:, 1] * 120.06 / 120.0, rtol=1e-12)
    assert all(note.endswith("(they creep: measured over 149 frames)") for note in creeping.notes)
    # the same measured over one frame: they stand
    standing = band_ruler(period, sd, step, [0.1, 0.1], frame_period, [720, 720])
    assert not standing.used.any() and "stand nearly still (phase step 0.0020" in standing.notes[0]
    # over 20 frames they travel 0.04 cycles (lever 0.25): too little
    short = band_ruler(period, sd, step, [0.1, 0.1], frame_period, [720, 720], lag_frames=[20.0, 149.0])
    np.testing.assert_array_equal(short.used, [False, True])


def test_the_reference_camera_s_phase_step_measures_the_lamps_frequency():
    # lamps 0.08 % off 100 Hz (a generator would be further off): f T = 3 + step on the reference camera's clock
    cameras = [(30.0, 0.0430), (25.0, 0.0320), (60.0, 0.0200)]
    period, step, frame_period = np.array([bands(100.08, rate, tpr) for rate, tpr in cameras]).T
    sd = 5e-4 * period
    measured = band_ruler(period, sd, step, np.full(3, 0.1), frame_period, [720, 720, 540], reference=0)
    assert measured.flicker_hz == 100.0 and measured.measured_hz == pytest.approx(100.08, rel=1e-12)
    np.testing.assert_allclose(measured.time_per_row_ms[[0, 2]], np.array(cameras)[[0, 2], 1], rtol=1e-12)
    assert measured.measured_relative_sd == pytest.approx(STEP_SD / (100.08 / 30.0))
    assert measured.frequency_variance(MAINS_RELATIVE_SD) == measured.measured_relative_sd**2
    # without a reference (or where its bands do not serve) the nominal frequency, to the mains' 0.1 %
    nominal = band_ruler(period, sd, step, np.full(3, 0.1), frame_period, [720, 720, 540])
    assert np.isnan(nominal.measured_hz) and nominal.frequency_variance(MAINS_RELATIVE_SD) == MAINS_RELATIVE_SD**2
    np.testing.assert_allclose(nominal.time_per_row_ms[[0, 2]], np.array(cameras)[[0, 2], 1] * 1.0008, rtol=1e-12)
    standing = band_ruler(period, sd, step, np.full(3, 0.1), frame_period, [720, 720, 540], reference=1)  # 25 fps
    assert np.isnan(standing.measured_hz) and standing.used[[0, 2]].all()


def test_the_precision_inverts_the_measurements_covariance():
    rng = np.random.default_rng(0)
    sd = rng.uniform(1e-4, 3e-3, 6)
    weight = np.where([True, True, False, True, False, True], 1.0 / sd**2, 0.0)
    tau2 = 1e-6
    precision = ruler_precision(weight, tau2)
    used = weight > 0
    covariance = np.diag(sd[used] ** 2) + tau2
    np.testing.assert_allclose(precision[np.ix_(used, used)] * 1e-6, np.linalg.inv(covariance) * 1e-6, rtol=1e-9)
    assert not precision[~used].any() and not precision[:, ~used].any()
