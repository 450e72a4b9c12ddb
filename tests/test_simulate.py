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

from flashsync_bayes.cli import main
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.simulate import (
    PULSE_SPAN_DECAYS,
    Camera,
    Flashes,
    Scene,
    camera_flash_light,
    leading_edges,
    random_setup,
    render_chunks,
    simulate_recording,
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
