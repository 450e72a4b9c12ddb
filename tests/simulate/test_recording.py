"""Whole recordings against their ground truth: written videos, truth.json, bad input and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flashsync_bayes.cli import main
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.simulate import (
    REFERENCE_CLOCK_NOTE,
    Camera,
    Scene,
    random_setup,
    render_chunks,
    scene_preset,
    simulate_recording,
    window_mask,
    write_video,
)
from tests.decoding import decode, rotation_line
from tests.simulate.helpers import CAMERAS, DURATION_S, FLASHES, HEIGHT, WIDTH, single_flash


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
    assert {camera["codec"] for camera in truth["cameras"].values()} == {"h264"}
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
    simulate_recording(tmp_path / "c", CAMERAS[1:], FLASHES, 1.0, seed=6, progress=False)
    assert first == second
    frames_a, pts_a, _ = decode(tmp_path / "a" / "cam0.mp4")
    frames_b, pts_b, _ = decode(tmp_path / "b" / "cam0.mp4")
    frames_c, _, _ = decode(tmp_path / "c" / "cam0.mp4")
    assert np.array_equal(frames_a, frames_b) and np.array_equal(pts_a, pts_b)
    assert not np.array_equal(frames_a[:1], frames_c[:1])


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
    with pytest.raises(FlashsyncError, match="codec must be one of h264, hevc"):
        Camera(codec="vp9")
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
    assert {camera["codec"] for camera in truth["cameras"].values()} == {"h264"}

    bad_codec = argv[:-1] + ["--codec", "vp9"]
    for bad in (argv, argv[:-1] + ["--crf", "99"], bad_codec, ["simulate", "--duration", "x", "--outdir", "d"], []):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("flashsync: error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in outdir.iterdir()) == ["cam0.mp4", "cam1.mp4", "truth.json"]
