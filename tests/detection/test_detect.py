"""Flash detection on encoded simulator videos (H.264 CRF 23), against the simulator's truth."""

import dataclasses
import os

import numpy as np
import pytest
import xarray as xr

from flashsync_bayes.demo import demo_setup, sync_errors
from flashsync_bayes.detection import DetectorSettings, detect, detect_events
from flashsync_bayes.events import load_events, save_events
from flashsync_bayes.io.video import probe
from flashsync_bayes.pipeline import synchronize
from flashsync_bayes.simulate import Camera, Flashes, random_setup, scene_preset, simulate_recording
from flashsync_bayes.transfer import HLG

pytestmark = pytest.mark.slow


def two_cameras():
    """``(cameras, flashes)``: two 640x360 cameras (one rotated, both dropping frames), 5 s, 6 flashes."""
    return random_setup(2, 5.0, 6, seed=11, drop_probability=0.03, rotate_last=True)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """:func:`two_cameras` in H.264 (x264 CRF 23, BT.709), moving objects."""
    outdir = tmp_path_factory.mktemp("recording")
    cameras, flashes = two_cameras()
    truth = simulate_recording(outdir, cameras, flashes, 5.0, seed=11, progress=False)
    paths = [str(outdir / name) for name in truth["cameras"]]
    events = detect_events(paths, labels=list(truth["cameras"]), progress=False)
    return truth, paths, events


def matched_edges(truth, events):
    """``(errors, row_sds, n_missed, n_false)`` of detected leading edges against the truth."""
    errors, sds, missed, false = [], [], 0, 0
    for name, camera in truth["cameras"].items():
        mine = events.isel(event=np.flatnonzero((events["event_camera"].values == name) & (events["edge"].values == "leading")))
        used = set()
        for edge in camera["edges"]:
            if edge["status"] != "stored":
                continue
            hit = np.flatnonzero(mine["frame"].values == edge["frame"])
            if hit.size != 1:
                missed += 1
                continue
            used.add(int(hit[0]))
            errors.append(float(mine["row"].values[hit[0]]) - edge["row"])
            sds.append(float(mine["row_sd"].values[hit[0]]))
            assert mine["frame_time_ms"].values[hit[0]] == pytest.approx(camera["pts_ms"][edge["frame"]], abs=1e-6)
        false += mine.sizes["event"] - len(used)
    return np.array(errors), np.array(sds), missed, false


def test_every_flash_is_found_once_with_sub_row_accuracy(recording):
    truth, _, events = recording
    errors, sds, missed, false = matched_edges(truth, events)
    assert missed == 0 and false == 0
    assert errors.size >= 8
    # x264 at CRF 23 moves weak edges by a fraction of a row (raw frames: 0.05 rows RMS); the
    # larger study in simulations/detection_accuracy.py measures about 0.3 rows RMS
    assert np.sqrt(np.mean(errors**2)) <= 0.5
    assert np.max(np.abs(errors)) <= 1.0
    assert np.mean(np.abs(errors) <= 2 * sds) >= 0.8


def test_phones_hevc_in_10_bits_of_hlg_light_is_read_as_well(tmp_path):
    """The recording above as phones write it: HEVC (x265, 10 bits) of light coded and tagged HLG."""
    cameras, flashes = two_cameras()
    phones = [dataclasses.replace(camera, codec="hevc", transfer=HLG) for camera in cameras]
    truth = simulate_recording(tmp_path, phones, flashes, 5.0, seed=11, progress=False)
    paths = [str(tmp_path / name) for name in truth["cameras"]]
    assert {(probe(p).codec, probe(p).transfer) for p in paths} == {("hevc", HLG)}
    errors, sds, missed, false = matched_edges(truth, detect_events(paths, labels=list(truth["cameras"]), progress=False))
    assert missed == 0 and false == 0 and errors.size >= 8
    # measured 0.27 rows RMS, largest 0.45 (x264 8-bit of BT.709 light: the test above); read as BT.709 the HLG
    # rises bend and edges go missing (simulations/README.md, other encoders)
    assert np.sqrt(np.mean(errors**2)) <= 0.5
    assert np.max(np.abs(errors)) <= 1.0
    assert np.mean(np.abs(errors) <= 2 * sds) >= 0.8


def test_events_carry_camera_facts_and_round_trip(recording, tmp_path):
    truth, paths, events = recording
    assert list(events["camera"].values) == list(truth["cameras"])
    assert list(events["path"].values) == paths
    for name, camera in truth["cameras"].items():
        info = events.sel(camera=name)
        assert int(info["rotation_deg"]) == camera["rotation_deg"]
        assert int(info["n_frames"]) == len(camera["pts_ms"])
        assert int(info["height"]) == camera["height"]
        assert float(info["clock_period_ms"]) == pytest.approx(camera["frame_period_ms"], rel=1e-9)
    save_events(events, tmp_path / "events.nc")
    xr.testing.assert_identical(load_events(tmp_path / "events.nc"), events)


def test_video_without_flashes_gives_no_events(tmp_path):
    camera = Camera(width=320, height=180)
    no_flashes = Flashes(time_ms=np.zeros(0), decay_ms=np.zeros(0), rise_ms=np.zeros(0), amplitude=np.zeros(0))
    simulate_recording(tmp_path, [camera], no_flashes, 3.0, seed=2, progress=False)
    events = detect_events([str(tmp_path / "cam0.mp4")], progress=False)
    assert events.sizes["event"] == 0
    assert events.sizes["camera"] == 1


def test_detection_cache_is_reused_and_invalidated(recording, tmp_path, monkeypatch):
    _, paths, _ = recording
    cache = tmp_path / "cache"
    first = detect_events(paths[:1], cache_dir=str(cache), progress=False)
    files = sorted(os.listdir(cache))
    assert len(files) == 1
    assert os.path.getsize(cache / files[0]) < 20_000  # frame times, flicker and edges: no per-frame profiles

    def no_detection(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(detect, "detect_video", no_detection)
    again = detect_events(paths[:1], cache_dir=str(cache), progress=False)
    xr.testing.assert_identical(first, again)
    monkeypatch.undo()
    detect_events(paths[:1], DetectorSettings(n_blocks=8), cache_dir=str(cache), progress=False)
    assert len(os.listdir(cache)) == 2  # other profile settings: a new cache entry
    detect_events(paths[:1], DetectorSettings(min_snr=11.0), cache_dir=str(cache), progress=False)
    assert len(os.listdir(cache)) == 3  # any other setting of detection too
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    detect_events(paths[:1], cache_dir=str(cache), progress=False)
    assert len(os.listdir(cache)) == 4  # a changed video is not served from the old entry


@pytest.fixture(scope="module")
def indoor_recording(tmp_path_factory):
    """The demo's three cameras (30, 25, 50 fps) under 50 Hz lamps (100 Hz flicker, 30 %), flashes
    lighting 65 % of the picture beside a saturated window, auto-exposure dips, QuickTime timestamps."""
    outdir = tmp_path_factory.mktemp("indoor")
    cameras, flashes = demo_setup(seed=8, duration_s=8.0, n_flashes=14)
    scene = scene_preset("indoor_50hz", seed=8)
    truth = simulate_recording(outdir, cameras, flashes, 8.0, seed=8, scene=scene, progress=False, timestamps="quicktime")
    paths = {name: str(outdir / name) for name in truth["cameras"]}
    return truth, paths, str(tmp_path_factory.mktemp("indoor-cache"))


def test_indoor_flashes_are_found_on_encoded_video(indoor_recording):
    """Flicker, AE and a saturated window in H.264 (video-range luma): flashes found, few false events."""
    truth, paths, cache = indoor_recording
    events = detect_events(list(paths.values()), labels=list(paths), cache_dir=cache, progress=False)
    errors, sds, missed, false = matched_edges(truth, events)
    # measured (BT.709-coded video): 36 of 37 stored edges found (the other 5 rows from the bottom), 0 false
    # events, 0.60 rows RMS (bias +0.28: the codec lowers the ramps of slow rises, most of the 50 fps camera's
    # 9-33-row rises; simulations/README.md), 97 % within 2 sd (seed 9 alike: 25 of 26, 0 false, 0.57 rows,
    # 100 %); before video-range luma was read from its black level, 8 of 13 edges of the 30 fps camera were
    # missed, and before a faint change near a flash had to match its height to count as a moving edge's track,
    # a 30 % flash of the 50 fps camera was
    assert errors.size >= 30
    assert errors.size / (errors.size + missed) >= 0.94 and false == 0
    assert np.sqrt(np.mean(errors**2)) <= 0.7
    assert np.mean(np.abs(errors) <= 2 * sds) >= 0.94


def test_indoor_light_sync_on_encoded_video(indoor_recording):
    """Synchronized times under flicker, partial flashes and AE: accurate where identified, honest everywhere."""
    truth, paths, cache = indoor_recording
    result = synchronize(list(paths.values()), method="laplace", cache_dir=cache, progress=False)
    errors = sync_errors(result, truth, paths)
    identified = result.time_per_row_identified
    assert any(identified.values())
    for name, label in paths.items():
        error = errors[name]["error_ms"]
        if identified[label]:
            assert np.sqrt(np.mean(error**2)) < 0.05, name
        assert np.mean(np.abs(error) <= 3 * errors[name]["sd_ms"] + 1e-6) >= 0.9, name


@pytest.fixture(scope="module")
def phones_under_lamps(tmp_path_factory):
    """The demo's three cameras all at 30 fps (phones) under 50 Hz lamps, QuickTime timestamps: the flashes alone
    pin only the ratios of their times per row; the lamps' 100 Hz bands move a third of a period a frame."""
    outdir = tmp_path_factory.mktemp("phones")
    cameras, flashes = demo_setup(seed=8, duration_s=8.0, n_flashes=14)
    cameras = [dataclasses.replace(c, frame_rate=30.0) for c in cameras]
    scene = scene_preset("indoor_50hz", seed=8)
    truth = simulate_recording(outdir, cameras, flashes, 8.0, seed=8, scene=scene, progress=False, timestamps="quicktime")
    paths = {name: str(outdir / name) for name in truth["cameras"]}
    return truth, paths, str(tmp_path_factory.mktemp("phones-cache"))


def test_moving_flicker_bands_pin_phones_at_one_frame_rate(phones_under_lamps):
    """The bands' period is a ruler for each camera's time per row: every camera pinned, synchronized to < 0.05 ms;
    without it the same videos leave the common time per row open.

    Measured (laplace): 0.005, 0.010, 0.009 ms RMS, total rows 419.1, 323.1, 694.0 for 419, 323, 693; without the
    ruler ~2 ms, readouts ±3-6 ms. Seed 9 alike but for one camera at 0.056 ms RMS, its posterior sd 0.06 ms (its
    shift rests on 9 edges): all its rows within 3 sd."""
    truth, paths, cache = phones_under_lamps
    result = synchronize(list(paths.values()), method="laplace", cache_dir=cache, progress=False)
    errors = sync_errors(result, truth, paths)
    pinned = result.identifiability()
    for name, label in paths.items():
        assert pinned[label]["time_per_row_identified"] and "its flicker bands" in pinned[label]["reason"], name
        error = errors[name]["error_ms"]
        assert np.sqrt(np.mean(error**2)) < 0.05, name
        assert np.mean(np.abs(error) <= 3 * errors[name]["sd_ms"] + 1e-6) >= 0.9, name
    rows = result.parameters()["total_rows"].values
    truth_rows = [truth["cameras"][name]["total_rows"] for name in paths]
    np.testing.assert_allclose(rows, truth_rows, rtol=0.005)
    unruled = synchronize(list(paths.values()), method="lsq", cache_dir=cache, progress=False, flicker_ruler=False)
    assert not all(unruled.time_per_row_identified.values())
