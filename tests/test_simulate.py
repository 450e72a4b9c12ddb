"""Ground-truth tests of the simulator: flash light per row, rendered frames, written videos, truth.json, CLI.

Videos are decoded here with ffmpeg's ``showinfo`` filter (a path independent of the simulator's
``framecrc`` read-back) and without auto-rotation, so rows are in sensor readout order.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flashsync_bayes import sensors
from flashsync_bayes.cli import main
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.simulate import (
    PULSE_SPAN_DECAYS,
    REFERENCE_CLOCK_NOTE,
    Camera,
    Flashes,
    Scene,
    auto_exposure_gains,
    camera_ambient_light,
    camera_flash_light,
    exposure_gains,
    flash_column_gain,
    leading_edges,
    random_setup,
    render_chunks,
    scene_layout,
    scene_preset,
    simulate_recording,
    window_mask,
    window_mean_sine,
    write_video,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
HEIGHT = 96  # every profile-level camera has this many stored rows, so flash_light compiles once
WIDTH = 160


# ------------------------------------------------------------------------------------ helpers


def decode(path, autorotate=False):
    """Decoded grey frames ``(n, H, W)`` and their pts in ms (from showinfo), in decode output order."""
    command = [FFMPEG, "-hide_banner", "-nostdin"]
    command += [] if autorotate else ["-noautorotate"]
    command += ["-i", str(path), "-vf", "showinfo", "-fps_mode", "passthrough"]
    command += ["-f", "rawvideo", "-pix_fmt", "gray", "-"]
    done = subprocess.run(command, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    log = done.stderr.decode()
    timebase = Fraction(re.search(r"config in time_base: (\d+/\d+)", log).group(1))
    ticks = np.array([int(t) for t in re.findall(r"\] n:\s*\d+ pts:\s*(-?\d+)", log)])
    size = re.search(r" s:(\d+)x(\d+) ", log)
    width, height = int(size.group(1)), int(size.group(2))
    frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, height, width)
    assert frames.shape[0] == ticks.size
    return frames, ticks * float(timebase) * 1000.0, timebase


def rotation_line(path):
    """ffmpeg's display-matrix report for ``path`` or None."""
    log = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    match = re.search(r"rotation of (-?[\d.]+) degrees", log)
    return float(match.group(1)) if match else None


def single_flash(time_ms, decay_ms=0.5, rise_ms=0.0, amplitude=50.0):
    return Flashes(time_ms=[time_ms], decay_ms=[decay_ms], rise_ms=[rise_ms], amplitude=[amplitude])


def flash_time_for_edge(camera, sensor_frame, row):
    """Reference time of a flash whose leading edge is ``row`` (fractional, in [0, L)) of ``sensor_frame``."""
    camera_ms = (sensor_frame + row / camera.total_rows) * camera.frame_period_ms + camera.exposure_ms
    return camera.drift * camera_ms + camera.shift_ms


# --------------------------------------------------------------------------- recorded videos

CAMERAS = [
    Camera(width=WIDTH, height=HEIGHT, total_rows=100, frame_rate=30.0, exposure_ms=8.0),
    Camera(
        width=WIDTH,
        height=HEIGHT,
        total_rows=110,
        frame_rate=30000 / 1001,
        exposure_ms=9.0,
        drift=1 + 30e-6,
        shift_ms=-250.3,
        drop_probability=0.25,
        rotated=True,
    ),
]
FLASHES = Flashes(
    time_ms=[300.7, 640.2, 1010.9, 1200.0, 1500.3],
    decay_ms=[0.3, 0.5, 0.4, 0.3, 0.6],
    rise_ms=[0.0, 0.02, 0.0, 0.01, 0.0],
    amplitude=[70.0, 60.0, 80.0, 70.0, 60.0],
)
DURATION_S = 2.0


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("recording")
    truth = simulate_recording(outdir, CAMERAS, FLASHES, DURATION_S, seed=11, progress=False)
    return outdir, truth


def test_truth_file_matches_returned_dict_and_time_model(recording):
    outdir, truth = recording
    assert json.loads((outdir / "truth.json").read_text()) == truth
    assert truth["flashes_ms"] == pytest.approx(FLASHES.time_ms.tolist(), abs=0)
    assert sorted(truth["cameras"]) == ["cam0.mp4", "cam1.mp4"]
    for name, camera in zip(("cam0.mp4", "cam1.mp4"), CAMERAS):
        cam = truth["cameras"][name]
        assert cam["file"] == name and (outdir / name).exists()
        assert (cam["width"], cam["height"], cam["total_rows"]) == (WIDTH, HEIGHT, camera.total_rows)
        assert cam["time_per_row_ms"] == pytest.approx(camera.drift * camera.frame_period_ms / camera.total_rows)
        assert len(cam["edges"]) == len(FLASHES)
        for edge in cam["edges"]:
            phi = truth["flashes_ms"][edge["flash"]]
            if edge["frame"] >= 0:
                # the documented flat form: the edge row's exposure ends at the flash
                pts = cam["pts_ms"][edge["frame"]]
                predicted = cam["drift"] * (pts + cam["exposure_ms"]) + cam["shift_ms"]
                predicted += edge["row"] * cam["time_per_row_ms"]
                assert predicted == pytest.approx(phi, abs=1e-6)
                assert edge["status"] == ("stored" if edge["row"] < HEIGHT else "hidden")
            else:
                assert edge["status"] in ("dropped", "outside")
    assert truth["cameras"]["cam1.mp4"]["rotation_deg"] == 180
    assert truth["cameras"]["cam0.mp4"]["rotation_deg"] == 0


def test_decoded_pts_equal_truth_with_drops(recording):
    outdir, truth = recording
    n_dropped = 0
    for name, camera in zip(("cam0.mp4", "cam1.mp4"), CAMERAS):
        cam = truth["cameras"][name]
        _, pts_ms, timebase = decode(outdir / name)
        half_tick_ms = 500.0 * float(timebase)
        assert f"1/{timebase.denominator}" == cam["timebase"]
        assert np.sort(pts_ms) == pytest.approx(np.array(cam["pts_ms"]), abs=half_tick_ms)
        # the pts are the sensor times k * T of the kept frames
        kept = np.setdiff1d(np.arange(cam["n_sensor_frames"]), cam["dropped_sensor_frames"])
        assert np.sort(pts_ms) == pytest.approx(kept * camera.frame_period_ms, abs=half_tick_ms)
        assert cam["n_sensor_frames"] == math.ceil(DURATION_S * camera.frame_rate - 1e-9)
        n_dropped += len(cam["dropped_sensor_frames"])
    assert n_dropped >= 5
    assert 0 not in truth["cameras"]["cam1.mp4"]["dropped_sensor_frames"]


def test_rotation_metadata_only_when_asked_and_frames_in_sensor_order(recording):
    outdir, truth = recording
    assert rotation_line(outdir / "cam0.mp4") is None
    assert abs(rotation_line(outdir / "cam1.mp4")) == 180
    camera = CAMERAS[1]
    noise_seed = truth["cameras"]["cam1.mp4"]["noise_seed"]
    rendered = next(render_chunks(camera, FLASHES, Scene(seed=11), [0], noise_seed=noise_seed))[0].astype(float)
    sensor, _, _ = decode(outdir / "cam1.mp4")
    rotated, _, _ = decode(outdir / "cam1.mp4", autorotate=True)
    top = slice(0, 20)
    error_sensor = np.abs(sensor[0, top].astype(float) - rendered[top]).mean()
    error_flipped = np.abs(sensor[0, top].astype(float) - rendered[::-1, ::-1][top]).mean()
    assert error_sensor < 4.0 < error_flipped
    assert np.abs(rotated[0].astype(float) - rendered[::-1, ::-1]).mean() < 4.0


def test_decoded_frames_show_the_flash_band_at_the_true_edge(recording):
    outdir, truth = recording
    checked = 0
    for name, camera in zip(("cam0.mp4", "cam1.mp4"), CAMERAS):
        frames, pts_ms, _ = decode(outdir / name)
        frames = frames[np.argsort(pts_ms, kind="stable")].astype(float)
        cam = truth["cameras"][name]
        line_ms = camera.frame_period_ms / camera.total_rows
        for edge in cam["edges"]:
            if edge["status"] != "stored" or edge["frame"] < 1:
                continue
            j, row = edge["frame"], edge["row"]
            difference = frames[j].mean(axis=1) - frames[j - 1].mean(axis=1)
            above = difference[: max(int(math.floor(row)) - 1, 0)]
            rho = FLASHES.decay_ms[edge["flash"]] / line_ms
            band = np.arange(HEIGHT)
            band = band[(band > row + 3 * rho + 1) & (band < row + camera.exposure_ms / line_ms - 1)]
            assert np.all(np.abs(above) < 3.0), (name, edge)
            if band.size:
                assert np.all(difference[band] > 10.0), (name, edge)
                checked += 1
    assert checked >= 3


def test_same_seed_same_truth_and_frames(tmp_path):
    first = simulate_recording(tmp_path / "a", CAMERAS[1:], FLASHES, 1.0, seed=5, progress=False)
    second = simulate_recording(tmp_path / "b", CAMERAS[1:], FLASHES, 1.0, seed=5, progress=False)
    other = simulate_recording(tmp_path / "c", CAMERAS[1:], FLASHES, 1.0, seed=6, progress=False)
    assert first == second
    frames_a, pts_a, _ = decode(tmp_path / "a" / "cam0.mp4")
    frames_b, pts_b, _ = decode(tmp_path / "b" / "cam0.mp4")
    frames_c, _, _ = decode(tmp_path / "c" / "cam0.mp4")
    assert np.array_equal(frames_a, frames_b) and np.array_equal(pts_a, pts_b)
    assert not np.array_equal(frames_a[:1], frames_c[:1])


def test_rendered_frames_do_not_depend_on_batching():
    camera = CAMERAS[1]
    sensor_frames = [0, 1, 2, 5, 6, 9, 10, 11, 30]
    whole = np.concatenate(list(render_chunks(camera, FLASHES, Scene(seed=2), sensor_frames, noise_seed=3)))
    for chunk in (4,):
        parts = list(render_chunks(camera, FLASHES, Scene(seed=2), sensor_frames, noise_seed=3, chunk_frames=chunk))
        assert [p.shape[0] for p in parts][:-1] == [chunk] * (len(parts) - 1)
        assert np.array_equal(np.concatenate(parts), whole)
    single = next(render_chunks(camera, FLASHES, Scene(seed=2), [9], noise_seed=3))
    assert np.array_equal(single[0], whole[5])
    assert whole.dtype == np.uint8 and whole.shape == (len(sensor_frames), HEIGHT, WIDTH)


def test_hundreds_of_drops_keep_exact_timestamps(tmp_path):
    rng = np.random.default_rng(0)
    kept = rng.random(900) >= 0.4
    kept[0] = True
    frames = rng.integers(0, 256, (int(kept.sum()), 16, 16), dtype=np.uint8)
    chunks = (frames[i : i + 100] for i in range(0, frames.shape[0], 100))
    path = tmp_path / "drops.mp4"
    pts_ms = write_video(path, chunks, kept, frame_rate=30000 / 1001, preset="ultrafast")
    decoded, decoded_ms, timebase = decode(path)
    assert (~kept).sum() > 300 and timebase == Fraction(1, 90000)
    expected_ms = np.flatnonzero(kept) * 1001 / 30
    assert np.sort(decoded_ms) == pytest.approx(expected_ms, abs=500.0 * float(timebase))
    assert pts_ms == pytest.approx(expected_ms, abs=1e-9)
    with pytest.raises(FlashsyncError, match="exists"):
        write_video(path, iter([frames]), kept, frame_rate=30000 / 1001)


def test_odd_rate_gets_an_exact_timescale(tmp_path):
    kept = np.ones(20, dtype=bool)
    kept[[3, 4, 11]] = False
    frames = np.zeros((17, 16, 16), dtype=np.uint8)
    pts_ms = write_video(tmp_path / "v.mp4", [frames], kept, frame_rate=23.976, preset="ultrafast")
    _, decoded_ms, timebase = decode(tmp_path / "v.mp4")
    assert timebase.denominator % 90000 == 0 and timebase.denominator % 2997 == 0
    assert np.sort(decoded_ms) == pytest.approx(np.flatnonzero(kept) * 1000 / 23.976, abs=1e-9)
    assert pts_ms == pytest.approx(np.sort(decoded_ms), abs=1e-9)


# ------------------------------------------------------------------------- profile-level light


@given(
    extra_rows=st.integers(0, 96),
    frame_rate=st.sampled_from([24.0, 25.0, 30.0, 30000 / 1001, 60.0]),
    exposure_fraction=st.floats(0.05, 1.0),
    drift_ppm=st.floats(-300.0, 300.0),
    shift_ms=st.floats(-5000.0, 5000.0),
    sensor_frame=st.integers(1, 2000),
    position=st.floats(0.0, 1.0, exclude_max=True),
    decay_ms=st.floats(0.02, 3.0),
    rise_fraction=st.floats(0.0, 0.5),
    amplitude=st.floats(5.0, 200.0),
)
def test_light_starts_right_below_the_analytic_edge(
    extra_rows,
    frame_rate,
    exposure_fraction,
    drift_ppm,
    shift_ms,
    sensor_frame,
    position,
    decay_ms,
    rise_fraction,
    amplitude,
):
    total_rows = HEIGHT + extra_rows
    period_ms = 1000.0 / frame_rate
    camera = Camera(
        width=WIDTH,
        height=HEIGHT,
        total_rows=total_rows,
        frame_rate=frame_rate,
        exposure_ms=exposure_fraction * period_ms,
        drift=1 + drift_ppm * 1e-6,
        shift_ms=shift_ms,
    )
    row = position * total_rows
    assume(abs(row - round(row)) > 1e-3)  # float64 resolves the edge far finer
    flash_ms = flash_time_for_edge(camera, sensor_frame, row)
    flashes = single_flash(flash_ms, decay_ms, rise_fraction * decay_ms, amplitude)
    edges = leading_edges(camera, flashes, np.ones(sensor_frame + 3, dtype=bool))
    assert edges["sensor_frame"][0] == sensor_frame
    assert edges["row"][0] == pytest.approx(row, abs=1e-6)
    assert edges["status"][0] == ("stored" if row < HEIGHT else "hidden")

    frame_ms = (sensor_frame + np.arange(-1, 2)) * period_ms
    light = camera_flash_light(camera, flashes, frame_ms)
    assert light.shape == (3, HEIGHT)
    assert np.all(light >= 0)
    assert np.all(light[0] == 0)  # the frame before the edge saw nothing
    first_lit = int(math.floor(row)) + 1
    lit = np.flatnonzero(light[1] > 0)
    if first_lit < HEIGHT:
        assert lit[0] == first_lit
        # rows whose exposure window contains the onset all get light
        line_ms = period_ms / total_rows
        spans_onset = np.arange(first_lit, min(HEIGHT, math.ceil(row + camera.exposure_ms / line_ms)))
        assert np.all(light[1, spans_onset] > 0)
        # rows whose window holds the whole pulse get its full amplitude
        r = np.arange(HEIGHT)
        pulse_rows = PULSE_SPAN_DECAYS * decay_ms / (camera.drift * line_ms)
        whole = (r > row + pulse_rows) & (r < row + camera.exposure_ms / line_ms)
        assert light[1, whole] == pytest.approx(np.full(whole.sum(), amplitude), rel=1e-9)
    else:
        assert lit.size == 0


@pytest.mark.parametrize("row", [HEIGHT - 2.5, HEIGHT + 7.25])
def test_band_wraps_into_the_next_frame(row):
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=120, frame_rate=30.0, exposure_ms=10.0)
    flashes = single_flash(flash_time_for_edge(camera, 40, row), decay_ms=1.0, amplitude=60.0)
    light = camera_flash_light(camera, flashes, np.array([39, 40, 41]) * camera.frame_period_ms)
    assert np.all(light[0] == 0)
    if row < HEIGHT:
        assert np.all(light[1, : int(row) + 1] == 0) and np.all(light[1, int(row) + 1 :] > 0)
    else:
        assert np.all(light[1] == 0)  # the edge is in hidden rows: nothing stored in this frame
    # the top rows of the next frame were still exposing when the flash fired
    assert np.all(light[2, :5] > 0.5 * 60.0)
    edges = leading_edges(camera, flashes, np.ones(50, dtype=bool))
    assert edges["status"][0] == ("stored" if row < HEIGHT else "hidden")


def test_step_change_stays_on_and_a_second_step_switches_it_off():
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=104, frame_rate=25.0, exposure_ms=6.0)
    on_ms = flash_time_for_edge(camera, 10, 30.4)
    off_ms = flash_time_for_edge(camera, 300, 70.6)
    flashes = Flashes(time_ms=[on_ms, off_ms], decay_ms=np.inf, rise_ms=0.0, amplitude=[40.0, -40.0])
    frames = np.array([9, 10, 11, 12, 200, 300, 301, 400])
    light = camera_flash_light(camera, flashes, frames * camera.frame_period_ms)
    assert np.all(light[0] == 0)
    assert np.all(light[1, :31] == 0) and np.all(light[1, 31:] > 0)
    assert np.all(np.diff(light[1, 31:]) >= 0) and light[1, -1] == pytest.approx(40.0)
    assert light[2:5] == pytest.approx(np.full((3, HEIGHT), 40.0))
    assert light[5, :71] == pytest.approx(np.full(71, 40.0)) and np.all(light[5, 71:] < 40.0)
    assert light[6:] == pytest.approx(np.zeros((2, HEIGHT)), abs=1e-9)


# ------------------------------------------------------------------------------ indoor footage


def lamp_mean(start_ms, end_ms, scene, n_samples=2001):
    """Lamp output relative to its mean, averaged over each window by the midpoint rule (reference ms)."""
    fraction = (np.arange(n_samples) + 0.5) / n_samples
    t_s = (start_ms[..., None] + (end_ms - start_ms)[..., None] * fraction) / 1000.0
    omega = 2 * np.pi * 2 * scene.mains_hz
    wave = np.sin(omega * t_s + scene.flicker_phase)
    wave += scene.flicker_harmonic * np.sin(2 * omega * t_s + scene.flicker_harmonic_phase)
    return 1.0 + scene.flicker_modulation * wave.mean(axis=-1)


def render(camera, flashes, scene, sensor_frames, **kwargs):
    """Rendered frames as float, ``(n, H, W)``."""
    chunks = render_chunks(camera, flashes, scene, sensor_frames, noise_seed=3, **kwargs)
    return np.concatenate(list(chunks)).astype(float)


NO_FLASHES = Flashes(time_ms=[], decay_ms=[], rise_ms=[], amplitude=[])


@given(
    start_ms=st.floats(-1e6, 4e6),
    duration_ms=st.floats(0.05, 40.0),
    frequency_hz=st.floats(50.0, 250.0),
    phase=st.floats(0.0, 2 * np.pi),
)
def test_window_mean_sine_is_the_exact_average(start_ms, duration_ms, frequency_hz, phase):
    fraction = (np.arange(4001) + 0.5) / 4001
    t_s = (start_ms + duration_ms * fraction) / 1000.0
    expected = np.mean(np.sin(2 * np.pi * frequency_hz * t_s + phase))
    mean = float(window_mean_sine(start_ms, start_ms + duration_ms, frequency_hz, phase))
    assert mean == pytest.approx(expected, abs=2e-5)
    whole_periods = 3 * 1000.0 / frequency_hz
    assert abs(float(window_mean_sine(start_ms, start_ms + whole_periods, frequency_hz, phase))) < 1e-9


def test_flicker_bands_have_the_mains_period_and_move_by_f_times_T():
    scene = Scene(ambient_variation=0.0, mains_hz=50.0, flicker_modulation=0.3, flicker_phase=0.4)
    short = Camera(width=WIDTH, height=HEIGHT, total_rows=200, frame_rate=30.0, exposure_ms=1.0)
    frames_ms = np.array([12, 13]) * short.frame_period_ms
    # a 10 ms exposure holds exactly one 100 Hz period in every row: no bands at all
    long = Camera(width=WIDTH, height=HEIGHT, total_rows=200, frame_rate=30.0, exposure_ms=10.0)
    hidden = camera_ambient_light(long, scene, frames_ms)
    assert hidden == pytest.approx(np.full((2, HEIGHT), 90.0), abs=1e-9)
    bands = camera_ambient_light(short, scene, frames_ms)
    period_rows = (1000.0 / 100.0) / short.time_per_row_ms
    assert period_rows == pytest.approx(60.0)
    assert bands[:, 60:] == pytest.approx(bands[:, :36], abs=1e-9)
    # from frame to frame the phase advances by 2π f T = 2π (3 + 1/3): the pattern moves up 20 rows
    assert (100.0 * short.frame_period_ms / 1000.0) % 1.0 * period_rows == pytest.approx(20.0)
    assert bands[1, :76] == pytest.approx(bands[0, 20:], abs=1e-9)
    amplitude = 90.0 * 0.3 * np.sinc(100.0 * 1e-3)  # the 1 ms window averages the sine a little
    assert 0.5 * (bands.max() - bands.min()) == pytest.approx(amplitude, rel=2e-3)


def test_cameras_see_the_flicker_of_the_reference_clock():
    scene = scene_preset("indoor_60hz", seed=7, ambient_variation=0.0)
    assert scene.flicker_harmonic > 0 and abs(scene.mains_hz - 60.0) <= 0.05
    cameras = [
        Camera(width=WIDTH, height=HEIGHT, total_rows=130, frame_rate=30000 / 1001, exposure_ms=2.0,
               drift=1 + 150e-6, shift_ms=3.6e6 + 12.345),
        Camera(width=WIDTH, height=HEIGHT, total_rows=171, frame_rate=25.0, exposure_ms=4.5,
               drift=1 - 80e-6, shift_ms=3.6e6 - 7.5),
    ]  # fmt: skip
    for camera in cameras:
        k = np.array([0, 1, 777])
        light = camera_ambient_light(camera, scene, k * camera.frame_period_ms)
        start_cam = k[:, None] * camera.frame_period_ms + np.arange(HEIGHT)[None, :] * camera.line_period_ms
        start_ref = camera.drift * start_cam + camera.shift_ms
        end_ref = camera.drift * (start_cam + camera.exposure_ms) + camera.shift_ms
        assert light == pytest.approx(scene.ambient * lamp_mean(start_ref, end_ref, scene), rel=2e-5)
        assert np.ptp(light) > 10.0


def test_rendered_frames_show_flicker_bands_only_for_short_exposures():
    steady = Scene(seed=4, ambient_variation=0.0)
    flicker = Scene(seed=4, ambient_variation=0.0, flicker_modulation=0.3, flicker_phase=1.0)
    for exposure_ms in (1.0, 10.0):
        camera = Camera(width=WIDTH, height=HEIGHT, total_rows=200, frame_rate=30.0, exposure_ms=exposure_ms)
        rows = render(camera, NO_FLASHES, flicker, [3]).mean(axis=2)
        ratio = rows / render(camera, NO_FLASHES, steady, [3]).mean(axis=2)
        expected = camera_ambient_light(camera, flicker, [3 * camera.frame_period_ms]) / 90.0
        assert ratio == pytest.approx(expected, abs=0.01)
        assert np.ptp(expected) > 0.5 if exposure_ms == 1.0 else np.ptp(expected) < 1e-9


def test_flash_lights_only_its_columns_and_the_window_saturates():
    scene = Scene(seed=9, n_objects=0, flash_coverage=0.5, flash_falloff=0.3, window_luminance=400.0)
    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=110, frame_rate=30.0, exposure_ms=8.0)
    gain = flash_column_gain(scene, WIDTH)
    lit = gain > 0
    assert abs(lit.sum() - 0.5 * WIDTH) <= 2 and np.all(np.diff(np.flatnonzero(lit)) == 1)
    inside = gain[np.flatnonzero(lit)[2:-2]]
    assert np.all((inside >= 0.7 - 1e-12) & (inside <= 1.3 + 1e-12)) and np.ptp(inside) > 0.2
    u0, u1 = scene_layout(scene).flash_u
    assert u1 - u0 == pytest.approx(0.5)

    flash = single_flash(flash_time_for_edge(camera, 5, 30.5), amplitude=250.0)
    flashed = render(camera, flash, scene, [4, 5, 6])
    plain = render(camera, NO_FLASHES, scene, [4, 5, 6])
    assert np.array_equal(flashed[:, :, ~lit], plain[:, :, ~lit])  # the flash adds nothing there
    band = slice(34, 30 + int(camera.exposure_ms / camera.line_period_ms) - 3)
    difference = flashed[1, band][:, gain > 0.9] - plain[1, band][:, gain > 0.9]
    assert np.all(difference > 20.0)
    assert np.any(flashed[1, band][:, lit] == 255) and not np.any(plain[:, band][:, :, lit] == 255)

    mask = window_mask(scene, WIDTH, HEIGHT)
    window = mask == 1.0
    assert window.sum() > 200 and not np.any(lit[window.any(axis=0)])
    assert np.all(flashed[:, window] == 255) and np.all(plain[:, window] == 255)


def test_auto_exposure_gain_is_one_without_flashes_dips_after_a_flash_and_recovers():
    assert np.array_equal(auto_exposure_gains(np.zeros(50), strength=0.2, rate=0.5, delay_frames=2), np.ones(50))
    excess = np.zeros(40)
    excess[10] = 0.5
    for delay in (1, 2):
        gains = auto_exposure_gains(excess, strength=0.2, rate=0.5, delay_frames=delay)
        assert np.all(gains[: 10 + delay] == 1.0)
        assert gains[10 + delay] == pytest.approx(1.5**-0.5)
        assert gains.min() >= 0.8 and abs(gains[-1] - 1.0) < 1e-3
    excess[10] = 20.0
    assert auto_exposure_gains(excess, strength=0.2, rate=0.5, delay_frames=1).min() == pytest.approx(0.8)

    camera = Camera(width=WIDTH, height=HEIGHT, total_rows=110, frame_rate=30.0, exposure_ms=8.0, noise_sigma=0.0)
    scene = Scene(seed=1, ae_strength=0.2, ae_delay_frames=1)
    flash = single_flash(flash_time_for_edge(camera, 10, 20.5), amplitude=80.0)
    gains = exposure_gains(camera, flash, scene, 40)
    assert np.all(gains[:11] == 1.0) and gains[11] == pytest.approx(0.8)
    assert np.all(np.diff(gains[11:]) >= 0) and abs(gains[-1] - 1.0) < 1e-3
    assert np.array_equal(exposure_gains(camera, NO_FLASHES, scene, 40), np.ones(40))
    assert np.array_equal(exposure_gains(camera, flash, Scene(seed=1), 40), np.ones(40))

    # one gain scales the whole frame; frames do not depend on what is rendered with them
    frames = render(camera, flash, scene, [10, 11, 12])
    unity = render(camera, flash, scene, [10, 11, 12], gains=np.ones(13))
    assert np.array_equal(frames[0], unity[0])
    assert np.all(np.abs(frames[1] - 0.8 * unity[1]) <= 0.9)
    assert np.array_equal(render(camera, flash, scene, [12])[0], frames[2])


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


@pytest.mark.parametrize("timestamps, timescale", [("quicktime", 600), ("ms", 1000)])
def test_phone_timestamps_are_rounded_to_their_timebase(tmp_path, timestamps, timescale):
    kept = np.ones(80, dtype=bool)
    kept[[7, 8, 30]] = False
    frames = np.zeros((int(kept.sum()), 16, 16), dtype=np.uint8)
    path = tmp_path / "v.mp4"
    pts_ms = write_video(path, [frames], kept, frame_rate=30000 / 1001, preset="ultrafast", timestamps=timestamps)
    _, decoded_ms, timebase = decode(path)
    decoded_ms = np.sort(decoded_ms)
    assert timebase == Fraction(1, timescale) and pts_ms == pytest.approx(decoded_ms, abs=1e-9)
    ticks = decoded_ms * timescale / 1000.0
    assert ticks == pytest.approx(np.round(ticks), abs=1e-6)
    error_ms = decoded_ms - np.flatnonzero(kept) * 1001 / 30
    assert np.all(np.abs(error_ms) <= 500.0 / timescale + 1e-9) and np.abs(error_ms).max() > 250.0 / timescale


@pytest.mark.parametrize("kind, bound_ms", [("uniform", 2.0), ("gaussian", 6.0)])
def test_jittered_timestamps_read_back_as_written(tmp_path, kind, bound_ms):
    kept = np.ones(60, dtype=bool)
    kept[[5, 20, 21]] = False
    frames = np.zeros((int(kept.sum()), 16, 16), dtype=np.uint8)
    path = tmp_path / "v.mp4"
    pts_ms = write_video(
        path, [frames], kept, frame_rate=30.0, preset="ultrafast", timestamps="ms", pts_jitter_ms=2.0, pts_jitter=kind
    )
    _, decoded_ms, _ = decode(path)
    decoded_ms = np.sort(decoded_ms)
    assert pts_ms == pytest.approx(decoded_ms, abs=1e-9) and np.all(np.diff(decoded_ms) > 0)
    assert decoded_ms == pytest.approx(np.round(decoded_ms), abs=1e-9)
    error_ms = decoded_ms - np.flatnonzero(kept) * 1000 / 30
    assert np.all(np.abs(error_ms) <= bound_ms + 0.5) and np.std(error_ms) > 0.6
    with pytest.raises(FlashsyncError, match="jitter"):
        write_video(tmp_path / "w.mp4", [frames], kept, frame_rate=30.0, timestamps="ms", pts_jitter_ms=30.0)
    assert not (tmp_path / "w.mp4").exists()


def test_indoor_recording_with_quicktime_timestamps_keeps_sensor_times(tmp_path):
    cameras = [
        Camera(width=WIDTH, height=HEIGHT, total_rows=150, frame_rate=30000 / 1001, exposure_ms=8.0),
        Camera(width=WIDTH, height=HEIGHT, total_rows=130, frame_rate=25.0, exposure_ms=6.0, drift=1 - 40e-6,
               shift_ms=-120.7, drop_probability=0.1, rotated=True),
    ]  # fmt: skip
    flashes = single_flash(700.1, decay_ms=0.4, amplitude=80.0)  # one flash: the kernel compiled above serves
    scene = scene_preset("indoor_50hz", seed=2, n_objects=0)  # nothing passes in front of the window
    truth = simulate_recording(
        tmp_path, cameras, flashes, 1.5, seed=3, scene=scene, progress=False, preset="ultrafast", timestamps="quicktime"
    )
    assert json.loads((tmp_path / "truth.json").read_text()) == truth
    assert truth["reference_clock"] == REFERENCE_CLOCK_NOTE and "drift * sensor_time_ms" in REFERENCE_CLOCK_NOTE
    assert truth["scene"]["flicker_modulation"] == 0.3 and truth["scene_layout"]["window"] is not None
    mask = window_mask(scene, WIDTH, HEIGHT) == 1.0
    dipped = 0
    for name, camera in zip(("cam0.mp4", "cam1.mp4"), cameras):
        cam = truth["cameras"][name]
        kept = np.setdiff1d(np.arange(cam["n_sensor_frames"]), cam["dropped_sensor_frames"])
        sensor_ms, pts_ms = np.array(cam["sensor_time_ms"]), np.array(cam["pts_ms"])
        assert cam["timestamps"] == "quicktime" and cam["timebase"] == "1/600"
        assert sensor_ms == pytest.approx(kept * camera.frame_period_ms, abs=1e-9)
        assert pts_ms * 0.6 == pytest.approx(np.round(pts_ms * 0.6), abs=1e-6)
        assert np.all(np.abs(pts_ms - sensor_ms) <= 1000.0 / 1200.0 + 1e-9)
        frames, decoded_ms, _ = decode(tmp_path / name)
        assert np.sort(decoded_ms) == pytest.approx(pts_ms, abs=1e-9)
        for edge in cam["edges"]:  # the time model runs on sensor time
            predicted = cam["drift"] * (edge["sensor_time_ms"] + cam["exposure_ms"]) + cam["shift_ms"]
            assert predicted + edge["row"] * cam["time_per_row_ms"] == pytest.approx(flashes.time_ms[edge["flash"]])
        gains = np.array(cam["exposure_gain"])
        assert gains.size == pts_ms.size and np.all((gains >= 0.85) & (gains <= 1 / 0.85))
        dipped += np.sum(gains < 0.95)
        assert np.all(frames[:, mask] >= 250)  # the window stays saturated through the codec
    assert dipped >= 2


# ----------------------------------------------------------------------------- bad input, CLI


def test_bad_input_raises_flashsync_error(tmp_path):
    good = CAMERAS[0]
    with pytest.raises(FlashsyncError, match="even"):
        simulate_recording(tmp_path, [Camera(width=161, height=96)], FLASHES, 1.0, seed=0, progress=False)
    with pytest.raises(FlashsyncError, match="crf"):
        simulate_recording(tmp_path, [good], FLASHES, 1.0, seed=0, crf=60, progress=False)
    with pytest.raises(FlashsyncError, match="duration"):
        simulate_recording(tmp_path, [good], FLASHES, 0.0, seed=0, progress=False)
    with pytest.raises(FlashsyncError, match="seed"):
        simulate_recording(tmp_path, [good], FLASHES, 1.0, seed=-1, progress=False)
    with pytest.raises(FlashsyncError, match="cameras"):
        simulate_recording(tmp_path, [], FLASHES, 1.0, seed=0, progress=False)
    with pytest.raises(FlashsyncError, match="fraction"):
        simulate_recording(tmp_path, [Camera(width=16, height=16, frame_rate=math.pi)], FLASHES, 1.0, seed=0)
    with pytest.raises(FlashsyncError, match="first frame"):
        write_video(tmp_path / "x.mp4", [np.zeros((1, 16, 16), np.uint8)], [False, True], frame_rate=30.0)
    with pytest.raises(FlashsyncError, match="ffmpeg failed"):
        write_video(tmp_path / "x.mp4", [np.zeros((2, 16, 16), np.uint8)], [True, True], frame_rate=30.0, preset="nope")
    with pytest.raises(FlashsyncError, match="do not fit"):
        random_setup(2, 1.0, 100, seed=0)
    with pytest.raises(FlashsyncError):
        Scene(ambient_variation=1.5)
    assert list(tmp_path.iterdir()) == []  # failures leave no files behind


def test_bad_indoor_options_raise_flashsync_error(tmp_path):
    for bad in (
        {"flash_coverage": 0.0},
        {"flash_falloff": 1.0},
        {"flicker_modulation": 0.9, "flicker_harmonic": 0.2},
        {"ae_strength": 1.0},
        {"ae_delay_frames": 0},
        {"ae_strength": 0.2, "ambient": 0.0},
        {"window_luminance": -1.0},
    ):
        with pytest.raises(FlashsyncError):
            Scene(**bad)
    with pytest.raises(FlashsyncError, match="known: clean"):
        scene_preset("outdoor")
    with pytest.raises(FlashsyncError, match="no field"):
        scene_preset("indoor_50hz", flicker=0.3)
    assert scene_preset("clean", seed=4) == Scene(seed=4)
    assert scene_preset("indoor_60hz", seed=4, flash_coverage=0.4).flash_coverage == 0.4
    with pytest.raises(FlashsyncError, match="rows_ratio"):
        random_setup(2, 1.0, 0, seed=0, rows_ratio=(0.9, 1.2))
    with pytest.raises(FlashsyncError, match="sensor preset"):
        random_setup(2, 1.0, 0, seed=0, rows_ratio="tablet")
    with pytest.raises(FlashsyncError, match="do not fit"):
        random_setup(2, 1.0, 0, seed=0, exposure_ms=(40.0, 50.0))
    frames = np.zeros((2, 16, 16), np.uint8)
    with pytest.raises(FlashsyncError, match="timestamps"):
        write_video(tmp_path / "x.mp4", [frames], [True, True], frame_rate=30.0, timestamps="mkv")
    with pytest.raises(FlashsyncError, match="jitter"):
        write_video(tmp_path / "x.mp4", [frames], [True, True], frame_rate=30, pts_jitter_ms=1, pts_jitter="poisson")
    with pytest.raises(FlashsyncError, match="jitter"):
        simulate_recording(tmp_path, CAMERAS, FLASHES, 1.0, seed=0, timestamps="ms", pts_jitter_ms=40.0)
    assert list(tmp_path.iterdir()) == []  # failures leave no files behind


def test_existing_outputs_need_overwrite(tmp_path):
    cameras = [Camera(width=16, height=16, exposure_ms=5.0)]
    flashes = single_flash(500.0)
    simulate_recording(tmp_path, cameras, flashes, 1.0, seed=0, progress=False, preset="ultrafast")
    before = (tmp_path / "truth.json").read_text()
    with pytest.raises(FlashsyncError, match="overwrite"):
        simulate_recording(tmp_path, cameras, flashes, 1.0, seed=1, progress=False)
    assert (tmp_path / "truth.json").read_text() == before
    truth = simulate_recording(
        tmp_path, cameras, flashes, 1.0, seed=1, overwrite=True, progress=False, preset="ultrafast"
    )
    assert json.loads((tmp_path / "truth.json").read_text()) == truth and truth["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam0.mp4", "truth.json"]


def test_cli_simulate_writes_files_and_reports_errors_in_one_line(tmp_path, capsys):
    outdir = tmp_path / "sim"
    argv = ["simulate", "--cameras", "2", "--duration", "1", "--flashes", "3", "--seed", "4", "--outdir", str(outdir)]
    argv += ["--width", str(WIDTH), "--height", str(HEIGHT), "--drop-probability", "0.1"]
    argv += ["--rotate-last", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "cam0.mp4" in out and "cam1.mp4" in out and "truth.json" in out
    truth = json.loads((outdir / "truth.json").read_text())
    assert len(truth["flashes_ms"]) == 3 and truth["cameras"]["cam1.mp4"]["rotation_deg"] == 180
    assert abs(rotation_line(outdir / "cam1.mp4")) == 180

    for bad in (argv, argv[:-1] + ["--crf", "99"], ["simulate", "--duration", "x", "--outdir", "d"], []):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("flashsync: error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in outdir.iterdir()) == ["cam0.mp4", "cam1.mp4", "truth.json"]
