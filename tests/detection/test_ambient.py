"""Detection under real lighting: the flicker fit against the simulator's lamps, and flash edges
found in rendered frames of the indoor presets (mains flicker, partial flashes, a saturated
window, auto-exposure, moving objects), against the simulator's exact leading edges.

Shapes are fixed (:data:`HEIGHT` rows, :data:`WIDTH` columns, a fixed frame count) so that JAX
compiles the kernels once.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flashsync_bayes import detection
from flashsync_bayes.detection import ambient, profiles
from flashsync_bayes.simulate import (
    Camera,
    Flashes,
    leading_edges,
    render_chunks,
    scene_preset,
    stored_frame_times_ms,
)
from flashsync_bayes.timing import estimate_frame_clock, tick_numbers

HEIGHT, WIDTH = 360, 128
FRAME_RATES = (24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60000 / 1001, 60.0)
#: Edges closer than this to the top or bottom row show too little band to count as fully visible.
MARGIN_ROWS = 8
#: One flash long after the frames rendered: the lamps alone.
NO_FLASH = Flashes(np.array([1e12]), np.array([0.5]), 0.0, np.array([50.0]))


def rendered_profiles(camera: Camera, flashes: Flashes, scene, n_frames: int, seed: int):
    """``(RowProfiles, pts_ms)`` of ``n_frames`` rendered frames (no codec), as detection computes them."""
    frames = jnp.asarray(np.concatenate(list(render_chunks(camera, flashes, scene, np.arange(n_frames), noise_seed=seed))))
    levels = profiles.LumaLevels.of(0.0, 255.0, camera.transfer)  # rendered frames span 0-255, coded as the camera codes
    rows, _ = profiles.chunk_profiles(frames, profiles.first_state(frames[0], 16, levels), levels, n_blocks=16, rank=4)
    return profiles.RowProfiles(*(np.asarray(r) for r in rows)), stored_frame_times_ms(camera, np.ones(n_frames, bool))


@settings(max_examples=8)
@given(
    frame_rate=st.sampled_from(FRAME_RATES),
    preset=st.sampled_from(["indoor_50hz", "indoor_60hz"]),
    rows_ratio=st.floats(1.04, 2.0),
    exposure_ms=st.floats(1.0, 10.0),
    modulation=st.floats(0.1, 0.3),
    seed=st.integers(0, 2**16),
)
def test_flicker_fit_measures_band_period_and_phase_step(frame_rate, preset, rows_ratio, exposure_ms, modulation, seed):
    camera = Camera(width=64, height=HEIGHT, total_rows=int(HEIGHT * rows_ratio), frame_rate=frame_rate,
                    exposure_ms=min(exposure_ms, 1000.0 / frame_rate))  # fmt: skip
    scene = scene_preset(preset, seed=seed, n_objects=0, flicker_modulation=modulation, ae_strength=0.0)
    rows, pts = rendered_profiles(camera, NO_FLASH, scene, 120, seed)
    flicker, _, _ = ambient.fit_flicker(rows.median, tick_numbers(pts, estimate_frame_clock(pts)))
    light_hz = 2.0 * scene.mains_hz
    true_step = (light_hz / frame_rate) % 1.0
    # bands of one frame relative to the last: amplitude after integrating over the exposure, times |1 - ρ|
    seen = modulation * abs(np.sinc(light_hz * camera.exposure_ms / 1000.0)) * 2 * abs(np.sin(np.pi * true_step))
    true_period = 1000.0 / light_hz / camera.line_period_ms
    # bands that barely change between frames (a frame period near a whole number of flicker
    # periods, or an exposure that averages them out) cannot be measured from frame changes
    # and a band period longer than the frame leaves too little of a cycle to measure to 2 %
    assume(seen > 0.03 and true_period < 0.75 * HEIGHT)
    assert flicker.cycles_per_row > 0, "visible flicker bands were not found"
    assert flicker.period_rows == pytest.approx(true_period, rel=0.02)
    assert min(abs(flicker.phase_step - true_step), 1 - abs(flicker.phase_step - true_step)) < 0.01


def test_the_band_period_s_error_says_how_well_it_was_measured():
    """The period's standard error (a ruler for the time per row) matches its errors against the lamps' truth.

    Cameras drawn over FACTS ranges whose bands move between frames (the ruler's condition); errors
    here run from 0.01 % to ~1 % (periods near the frame height), and the sds must follow them.
    """
    rng = np.random.default_rng(2)
    z = []
    for seed in range(16):
        frame_rate, preset = float(rng.choice(FRAME_RATES)), str(rng.choice(["indoor_50hz", "indoor_60hz"]))
        rows_ratio, exposure_ms, modulation = rng.uniform(1.2, 1.7), rng.uniform(1.0, 10.0), rng.uniform(0.1, 0.3)
        camera = Camera(width=64, height=HEIGHT, total_rows=int(HEIGHT * rows_ratio), frame_rate=frame_rate,
                        exposure_ms=min(exposure_ms, 1000.0 / frame_rate))  # fmt: skip
        scene = scene_preset(preset, seed=seed, flicker_modulation=modulation)
        rows, pts = rendered_profiles(camera, NO_FLASH, scene, 120, seed)
        flicker, _, _ = ambient.fit_flicker(rows.median, tick_numbers(pts, estimate_frame_clock(pts)))
        if flicker.cycles_per_row <= 0 or abs(1.0 - np.exp(2j * np.pi * flicker.phase_step)) < ambient.MIN_LEVER:
            continue
        true_period = 1000.0 / (2.0 * scene.mains_hz) / camera.line_period_ms
        z.append((flicker.period_rows - true_period) / flicker.period_rows_sd)
    z = np.array(z)
    assert z.size >= 6
    assert np.max(np.abs(z)) < 3.5
    assert 0.3 < np.sqrt(np.mean(z**2)) < 2.0


#: Frame rates near a divisor of the lamps' flicker, where the bands creep (the mains a few hundredths of a Hz off).
CREEPING = ((30.0, "indoor_60hz"), (25.0, "indoor_50hz"), (24.0, "indoor_60hz"), (60.0, "indoor_60hz"))


def test_bands_that_creep_are_measured_over_many_frames_with_an_honest_error():
    """30 fps under 120 Hz, 25 under 100 Hz, ...: the bands move 0.0001-0.003 cycles a frame, nothing one frame's
    change shows. Over 10 s (300 frames) the change over a lag of up to 149 frames measures their period where they
    travel far enough; its error must follow the errors against the lamps' truth, and lamps on exactly 60 Hz mains
    (bands that stand) give nothing."""
    rng = np.random.default_rng(5)
    z, found = [], 0
    for seed in range(16):
        frame_rate, preset = CREEPING[seed % len(CREEPING)]
        rows_ratio, exposure_ms, modulation = rng.uniform(1.2, 1.7), rng.uniform(1.0, 10.0), rng.uniform(0.1, 0.3)
        camera = Camera(width=64, height=HEIGHT, total_rows=int(HEIGHT * rows_ratio), frame_rate=frame_rate,
                        exposure_ms=min(exposure_ms, 1000.0 / frame_rate))  # fmt: skip
        scene = scene_preset(preset, seed=seed, flicker_modulation=modulation)
        rows, pts = rendered_profiles(camera, NO_FLASH, scene, 300, seed)
        ticks = tick_numbers(pts, estimate_frame_clock(pts))
        assert not ambient.fit_flicker(rows.median, ticks)[0].moves
        flicker = ambient.creeping_flicker(rows.median, ticks)
        true_step = 2.0 * scene.mains_hz / frame_rate
        # bands that travel a fifth of a cycle over 149 frames, at a level of 5 % after the exposure's average
        level = modulation * abs(np.sinc(2.0 * scene.mains_hz * camera.exposure_ms / 1000.0))
        clear = ambient.band_lever(true_step, 149) >= 1.2 and level >= 0.05
        if flicker.cycles_per_row <= 0:
            assert not clear
            continue
        found += 1
        assert flicker.moves and flicker.lag_frames > 1
        assert abs((flicker.phase_step - true_step + 0.5) % 1.0 - 0.5) < 5e-4
        true_period = 1000.0 / (2.0 * scene.mains_hz) / camera.line_period_ms
        z.append((flicker.period_rows - true_period) / flicker.period_rows_sd)
    z = np.array(z)
    assert found >= 4
    assert np.max(np.abs(z)) < 3.5
    assert 0.3 < np.sqrt(np.mean(z**2)) < 2.0
    camera = Camera(width=64, height=HEIGHT, total_rows=500, frame_rate=30.0, exposure_ms=3.0)
    standing = scene_preset("indoor_60hz", seed=1, mains_hz=60.0, flicker_modulation=0.3)
    rows, pts = rendered_profiles(camera, NO_FLASH, standing, 300, 1)
    assert ambient.creeping_flicker(rows.median, tick_numbers(pts, estimate_frame_clock(pts))) == ambient.NO_FLICKER


def test_flicker_bands_longer_than_the_frame_are_measured_with_their_harmonic():
    """A 60 fps phone under 50 Hz lamps with a short exposure: bands of 420 rows in a 360-row frame (0.86 cycles).
    A single sinusoid's best frequency there leaned up to 14 % off (seeds 3-6: 362, 407, 433, 389 rows), leaving up to
    a third of the flicker in the frames; the pair (ν, 2ν) that frames are fitted with finds 427, 410, 434, 421 rows
    and leaves 6-11 %."""
    camera = Camera(width=64, height=HEIGHT, total_rows=700, frame_rate=60.0, exposure_ms=1.2)
    for seed in (3, 4, 5, 6):
        scene = scene_preset("indoor_50hz", seed=seed, n_objects=0, flicker_modulation=0.2, ae_strength=0.0)
        rows, pts = rendered_profiles(camera, NO_FLASH, scene, 120, 3)
        flicker, change, _ = ambient.fit_flicker(rows.median, tick_numbers(pts, estimate_frame_clock(pts)))
        true_period = 1000.0 / (2.0 * scene.mains_hz) / camera.line_period_ms
        assert 1.1 * HEIGHT < true_period < 1.2 * HEIGHT
        assert flicker.period_rows == pytest.approx(true_period, rel=0.04)
        predicted = np.asarray(ambient.flicker_rows(jnp.asarray(change), jnp.float32(flicker.cycles_per_row), HEIGHT))
        left = rows.median[20:100] - predicted[20:100]
        assert np.median(np.ptp(left, axis=1)) < 0.15 * np.median(np.ptp(rows.median[20:100], axis=1))


@pytest.mark.parametrize(
    "total_rows, frame_rate, exposure_ms, preset",  # 3.0, 3.5 and 1.7 cycles a frame
    [(500, 24.0, 1.5, "indoor_50hz"), (500, 25.0, 1.5, "indoor_60hz"), (500, 50.0, 1.2, "indoor_60hz")],
)
def test_an_led_driver_s_square_wave_is_divided_out_with_its_third_harmonic(total_rows, frame_rate, exposure_ms, preset):
    """An LED driver that switches its current flickers as a square wave: its third harmonic is a third of the
    fundamental, and a 1.2-1.5 ms exposure keeps most of it. Where it moves from frame to frame (the frame period
    no whole number of its periods), a model of ν and 2ν left 20-38 % of the flicker's change in the frames; with 3ν
    6-10 % is left (the fifth harmonic, unmodelled, and noise)."""
    camera = Camera(width=64, height=HEIGHT, total_rows=total_rows, frame_rate=frame_rate, exposure_ms=exposure_ms)
    for seed in (3, 4):
        scene = scene_preset(preset, seed=seed, n_objects=0, flicker_modulation=0.25, ae_strength=0.0, flicker_square=1.0)
        rows, pts = rendered_profiles(camera, NO_FLASH, scene, 120, 3)
        flicker, change, _ = ambient.fit_flicker(rows.median, tick_numbers(pts, estimate_frame_clock(pts)))
        true_period = 1000.0 / (2.0 * scene.mains_hz) / camera.line_period_ms
        assert flicker.period_rows == pytest.approx(true_period, rel=0.01)
        predicted = np.asarray(ambient.flicker_rows(jnp.asarray(change), jnp.float32(flicker.cycles_per_row), HEIGHT))
        left = rows.median[20:100] - predicted[20:100]
        assert np.median(np.ptp(left, axis=1)) < 0.12 * np.median(np.ptp(rows.median[20:100], axis=1))


def indoor_case(rng, n_frames: int, n_flashes: int):
    """A camera, flashes and indoor scene drawn over the real ranges (FACTS.md)."""
    frame_rate = float(rng.choice(FRAME_RATES))
    period_ms = 1000.0 / frame_rate
    camera = Camera(
        width=WIDTH,
        height=HEIGHT,
        total_rows=int(HEIGHT * rng.uniform(1.04, 2.0)),
        frame_rate=frame_rate,
        exposure_ms=float(rng.uniform(1.0, min(10.0, period_ms))),
    )
    gaps = 6 * period_ms + rng.exponential(10 * period_ms, n_flashes)
    times = 8 * period_ms + np.cumsum(gaps)
    times = times[times < (n_frames - 4) * period_ms]
    flashes = Flashes(times, rng.uniform(0.2, 1.0, times.size), 0.0, rng.uniform(30.0, 80.0, times.size))
    scene = scene_preset(
        str(rng.choice(["indoor_50hz", "indoor_60hz"])),
        seed=int(rng.integers(2**16)),
        flash_coverage=float(rng.uniform(0.4, 1.0)),
        ae_strength=float(rng.uniform(0.0, 0.2)),
        flicker_modulation=float(rng.uniform(0.0, 0.3)),
    )
    return camera, flashes, scene


def score(camera, flashes, edges, n_frames):
    """``(n_visible, n_found, n_false, errors)``: fully visible true leading edges, those found, and extra events."""
    truth = leading_edges(camera, flashes, np.ones(n_frames, bool))
    stored = truth["status"] == "stored"
    visible = stored & (truth["row"] >= MARGIN_ROWS) & (truth["row"] <= camera.height - MARGIN_ROWS)
    lead = edges["edge"] == "leading"
    used, errors = set(), []
    for j in np.flatnonzero(stored):
        hit = np.flatnonzero(lead & (edges["frame"] == truth["frame"][j]) & (edges["polarity"] == 1))
        used.update(int(h) for h in hit)
        if hit.size == 1 and visible[j]:
            errors.append(edges["row"][hit[0]] - truth["row"][j])
    n_false = int(np.count_nonzero(lead)) - len(used)
    return int(visible.sum()), len(errors), n_false, np.array(errors)


def test_flashes_under_indoor_light_are_found_without_false_events():
    """12 recordings drawn over the real ranges (FACTS.md), aggregated over their ~60 fully visible flashes.

    Issue targets: recall >= 98 %, no false events, RMS <= 0.5 rows.
    """
    rng = np.random.default_rng(2026)
    n_frames = 320
    visible = found = false = 0
    errors = []
    settings = detection.DetectorSettings.lossless()  # no codec
    for k in range(12):
        camera, flashes, scene = indoor_case(rng, n_frames, 7)
        rows, pts = rendered_profiles(camera, flashes, scene, n_frames, seed=k)
        evidence, _ = detection.flash_evidence(rows, tick_numbers(pts, estimate_frame_clock(pts)), settings)
        n_visible, n_found, n_false, case_errors = score(camera, flashes, detection.find_edges(evidence, settings), n_frames)
        visible, found, false = visible + n_visible, found + n_found, false + n_false
        errors.extend(case_errors)
    errors = np.array(errors)
    assert visible >= 50
    # the targets; measured on BT.709-coded frames 58/58 found, no false event, RMS 0.48 rows
    # (0.46 on frames of light itself, before cameras' transfer curves were simulated), bias +0.33, max
    # 1.33; 48 other cases (seed 7): 215/215 found, no false event, RMS 0.36 rows (0.42), bias
    # +0.21 rows (mostly partial flashes: the quarter-quantile of the blocks, simulations/README.md); seeds
    # 11, 13, 17, 19 (fresh draws, stop 24): 850/857, RMS 0.33-0.47 (seed 11 was 204/208 and 0.99 rows before
    # the fixes that draw called for), 2 false events, none since the median leaves out a saturated window (stop 25);
    # seed 11 0.44 -> 0.31 rows since the edge fit keeps its robustly best start (stop 27)
    assert found / visible >= 0.98
    assert false == 0
    assert np.sqrt(np.mean(errors**2)) <= 0.5
    assert np.max(np.abs(errors)) <= 2.0


def test_objects_moving_beside_a_saturated_window_under_strong_flicker_make_no_events():
    """A fresh draw's false events (stop 25): 50 Hz lamps at 24 % modulation seen with a 1.9 ms exposure change the light
    by up to ±40 % between frames, while the window (6 of 16 blocks, beside the 44 % of the columns a flash would light)
    stays saturated. Counted in the blocks' median, the window let two blocks of a moving object move it by half their
    change, which the ambient model left in the frames: bands of 3-4 % that passed for flashes (three here)."""
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=712, frame_rate=30000 / 1001, exposure_ms=1.86)
    scene = scene_preset("indoor_50hz", seed=62457, flicker_modulation=0.244, ae_strength=0.0, flash_coverage=0.44)
    rows, pts = rendered_profiles(camera, NO_FLASH, scene, 320, 6)
    settings = detection.DetectorSettings.lossless()
    evidence, _ = detection.flash_evidence(rows, tick_numbers(pts, estimate_frame_clock(pts)), settings)
    edges = detection.find_edges(evidence, settings)
    assert edges["frame"].size == 0


def test_flashes_beside_a_window_of_daylight_under_flickering_lamps_are_found_without_false_events():
    """Daylight through a window does not flicker. Where the window spans the ``rank`` blocks that the rising profile
    reads, those blocks changed by none of the lamps' bands, and the profile showed the bands wherever the window was
    (rising where the lamps darkened, falling where they brightened): false events, and thresholds above most flashes.
    Each block's own share of the flicker is now taken off (:func:`~flashsync_bayes.detection.ambient.lamp_share_divided`);
    before, none of these 16 flashes was found. No moving objects here: one passing in front of such a window can
    still make an event (two in these cases with the preset's objects; simulations/README.md)."""
    cases = [  # (frame rate, total rows, exposure ms), preset, scene seed, modulation, flash coverage, window light
        ((30.0, 509, 2.38), "indoor_50hz", 17697, 0.21, 0.62, 229.0),
        ((50.0, 418, 5.20), "indoor_60hz", 3582, 0.18, 0.42, 184.0),
        ((25.0, 701, 3.07), "indoor_60hz", 40835, 0.28, 0.50, 124.0),
    ]
    settings = detection.DetectorSettings.lossless()
    times = 500.0 + 650.0 * np.arange(8)
    flashes = Flashes(times, np.full(8, 0.6), 0.0, np.full(8, 50.0))
    visible = found = false = 0
    errors = []
    for k, ((frame_rate, total_rows, exposure_ms), preset, seed, modulation, coverage, window) in enumerate(cases):
        camera = Camera(width=WIDTH, height=HEIGHT, total_rows=total_rows, frame_rate=frame_rate, exposure_ms=exposure_ms)
        scene = scene_preset(preset, seed=seed, n_objects=0, flicker_modulation=modulation, flash_coverage=coverage,
                             window_luminance=window)  # fmt: skip
        rows, pts = rendered_profiles(camera, flashes, scene, 320, seed=k)
        evidence, _ = detection.flash_evidence(rows, tick_numbers(pts, estimate_frame_clock(pts)), settings)
        n_visible, n_found, n_false, case_errors = score(camera, flashes, detection.find_edges(evidence, settings), 320)
        visible, found, false = visible + n_visible, found + n_found, false + n_false
        errors.extend(case_errors)
    errors = np.array(errors)
    assert visible >= 12
    assert found == visible and false == 0
    assert np.sqrt(np.mean(errors**2)) <= 0.5


def test_each_block_s_own_share_of_the_flicker_is_taken_off_and_saturated_blocks_stay_the_median():
    """Blocks changing by ``s f`` (lamps and daylight mixed in share ``s``; 0 for a window, 1 again where an object
    covers it for 32 frames) around a median changing by ``f``: after the division each changes by ``f`` within its
    noise (but for a run or two where the object comes and goes: a share is the median of 9 runs' fits, 36 frames), the
    rank statistics are those of the divided blocks, and blocks stored as the median (saturated) stay so. Where every
    block's share is the median's, the rows are left as they are."""
    rng = np.random.default_rng(5)
    n, rows, n_blocks = 120, 48, 16
    phase = 2 * np.pi * (0.02 * np.arange(rows)[None, :] + 0.3 * np.arange(n)[:, None])
    f = (0.2 * np.sin(phase)).astype(np.float32)
    share = np.ones((n, rows, n_blocks), np.float32)
    share[:, 10:30, 1:5] = 0.0  # a window of daylight
    share[:, 10:30, 6] = 0.5
    share[40:72, 10:30, 2] = 1.0  # an object in front of the window
    noise = 0.01 * rng.standard_normal((n, rows, n_blocks))
    gain = 0.05 * rng.standard_normal((n, 1, 1))
    blocks = (gain + share * f[..., None] + noise).astype(np.float16)
    median = np.median(blocks.astype(np.float32), axis=-1)
    blocks[:, 35:40, 9] = median[:, 35:40].astype(np.float16)  # saturated
    ordered_in = np.sort(blocks.astype(np.float32), axis=-1)
    rows_in = profiles.RowProfiles(*(jnp.asarray(v) for v in (median, ordered_in[..., -4], ordered_in[..., 3], blocks)))
    out = ambient.lamp_share_divided(rows_in, jnp.asarray(f), 4)
    divided = np.asarray(out.blocks, np.float32)
    left = divided - (gain + f[..., None])
    assert np.sqrt(np.mean(left[:, :, :9] ** 2)) < 0.015  # the noise: 0.01, and the median's
    assert np.percentile(np.abs(left), 99.5) < 0.05
    assert np.abs(left[48:64, 10:30, 2]).max() < 0.05  # the object's share followed, its first and last runs aside
    assert np.sqrt(np.mean((blocks.astype(np.float32) - (gain + f[..., None]))[:, 10:30, 1:5] ** 2)) > 0.1  # before
    np.testing.assert_array_equal(divided[:, 35:40, 9], blocks[:, 35:40, 9].astype(np.float32))
    ordered = np.sort(np.asarray(out.blocks, np.float32), axis=-1)
    np.testing.assert_allclose(np.asarray(out.upper), ordered[..., -4], atol=2e-3)
    np.testing.assert_allclose(np.asarray(out.lower), ordered[..., 3], atol=2e-3)
    np.testing.assert_array_equal(np.asarray(out.median), median)
    lamps_only = (gain + f[..., None] + noise).astype(np.float16)  # every block's share 1: left as it is
    rows_lamps = profiles.RowProfiles(*(jnp.asarray(v) for v in (median, median, median, lamps_only)))
    assert ambient.lamp_share_divided(rows_lamps, jnp.asarray(f), 4) is rows_lamps
