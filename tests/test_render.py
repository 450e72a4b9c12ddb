"""Tests of render/ and io/frames.py: synchronized frames, videos and preview against simulator truth.

The videos come from the simulator's cameras and video writer, with frames whose grey level
encodes the stored frame index; the SyncResult is built from the cameras' true parameters, so
no fit runs and every expected frame follows from the truth.
"""

import itertools
import json
import os

import numpy as np
import pytest
import xarray as xr

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.idata import InferenceData
from flashsync_bayes.io.ffmpeg import run_ffmpeg
from flashsync_bayes.io.frames import iter_rgb, write_rgb_video
from flashsync_bayes.io.video import frame_times_ms, probe
from flashsync_bayes.render import (
    FRAMES_JSON,
    draw_label,
    frame_choice,
    label_mask,
    preview_label,
    preview_layout,
    select_frames,
    synchronized_frames,
    write_preview,
    write_synchronized,
)
from flashsync_bayes.render.preview import compose
from flashsync_bayes.result import SyncResult
from flashsync_bayes.simulate import Camera, sensor_frames_kept, stored_frame_times_ms, write_video

#: Reference 25 fps; cam1 30 fps starting later and ending earlier (no frames at both ends);
#: cam2 15 fps (repeated frames), starting 2.5 s earlier (a seek), stored rotated by 90 degrees.
CAMERAS = [
    Camera(width=160, height=96, frame_rate=25.0, drop_probability=0.03),
    Camera(width=160, height=96, frame_rate=30.0, drift=1 + 80e-6, shift_ms=600.0, drop_probability=0.03),
    Camera(width=128, height=96, frame_rate=15.0, drift=1 - 50e-6, shift_ms=-2500.0),
]
DURATION_MS = [4000.0, 2500.0, 6000.0]
ROTATION = [0, 0, 90]
NAMES = ["ref", "cam1", "cam2"]


def grey_level(index) -> np.ndarray:
    """Grey level of stored frame ``index``: neighbouring frames differ by 5 levels."""
    return 24 + (5 * np.asarray(index)) % 150


def truth_result(cameras, labels, heights=None) -> SyncResult:
    """SyncResult (one posterior draw) holding the cameras' true mapping to the first camera's clock."""
    ref = cameras[0]
    drift = [c.drift / ref.drift for c in cameras]
    shift = [(c.shift_ms - ref.shift_ms) / ref.drift for c in cameras]
    per_row = [c.time_per_row_ms / ref.drift for c in cameras]
    posterior = xr.Dataset(
        {name: (("chain", "draw", "camera"), np.array(v, dtype=np.float64)[None, None])
         for name, v in (("drift", drift), ("shift_ms", shift), ("time_per_row_ms", per_row))},
        coords={"chain": [0], "draw": [0], "camera": labels},
    )  # fmt: skip
    metadata = {
        "cameras": list(labels),
        "paths": list(labels),
        "reference": labels[0],
        "method": "lsq",
        "frame_clocks": {c: None for c in labels},
        "heights": [c.height for c in cameras] if heights is None else heights,
        "frame_period_ms": [c.frame_period_ms for c in cameras],
        "n_flashes": 0,
        "residual_rms_ms": 0.0,
    }
    return SyncResult(InferenceData(posterior=posterior), metadata)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Paths of the three videos (the cameras' labels), their truth result and their frame times (ms)."""
    folder = tmp_path_factory.mktemp("videos")
    paths = []
    for i, (camera, duration, rotation, name) in enumerate(zip(CAMERAS, DURATION_MS, ROTATION, NAMES)):
        kept = sensor_frames_kept(camera, int(duration / camera.frame_period_ms), np.random.default_rng(i))
        stored = np.flatnonzero(kept).size
        frames = np.broadcast_to(grey_level(np.arange(stored))[:, None, None], (stored, camera.height, camera.width))
        path = str(folder / f"{name}.mp4")
        times = write_video(path, [frames.astype(np.uint8)], kept, frame_rate=camera.frame_rate, crf=10,
                            preset="ultrafast", rotation_deg=rotation)  # fmt: skip
        np.testing.assert_allclose(times, stored_frame_times_ms(camera, kept), atol=1e-6)
        paths.append(path)
    times = {p: frame_times_ms(p) for p in paths}
    return paths, truth_result(CAMERAS, paths), times


@pytest.fixture(scope="module")
def synchronized(recording, tmp_path_factory):
    """The synchronized folder of the recording and write_synchronized's return value."""
    paths, result, _ = recording
    outdir = tmp_path_factory.mktemp("synchronized")
    return outdir, write_synchronized(result, paths, outdir)


def child_processes() -> list[str]:
    """Command names of this process's children, running or unreaped (Linux /proc; empty elsewhere)."""
    children = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        if len(fields) == 2 and fields[1].split()[1] == str(os.getpid()):
            children.append(fields[0].split("(", 1)[-1])
    return children


@pytest.fixture(autouse=True)
def no_ffmpeg_left():
    """Every test leaves no ffmpeg running or unreaped."""
    yield
    assert not [name for name in child_processes() if "ffmpeg" in name]


def mean_levels(path, **kwargs) -> np.ndarray:
    """Mean RGB level of every decoded frame of a video, ``(n_frames,)``."""
    return np.array([frame.mean() for _, frame in iter_rgb(path, **kwargs)])


# ------------------------------------------------------------------------------ frame choice


def test_frame_choice_is_drift_free_over_an_hour():
    """1 h of 30 fps reference against 29.97 fps with drift, offset and drops: the nearest frame every time."""
    cameras = [
        Camera(width=1920, height=1080, frame_rate=30.0, drop_probability=0.005),
        Camera(width=1280, height=720, frame_rate=30000 / 1001, drift=1 + 70e-6, shift_ms=-1234.5, drop_probability=0.01),
    ]
    rng = np.random.default_rng(7)
    kept = [sensor_frames_kept(c, int(3_600_000 / c.frame_period_ms), rng) for c in cameras]
    times = [stored_frame_times_ms(c, k) for c, k in zip(cameras, kept)]
    result = truth_result(cameras, ["ref", "cam"])
    choice = frame_choice(result, {"ref": times[0], "cam": times[1]})
    chosen, difference = choice.frame_index["cam"], choice.difference_ms["cam"]
    assert chosen.size == times[0].size == choice.reference_time_ms.size
    # independent truth: middle-row times on the reference clock
    ref, cam = cameras
    target = times[0] + 0.5 * (ref.height - 1) * ref.line_period_ms
    middle = cam.drift * (times[1] + 0.5 * (cam.height - 1) * cam.line_period_ms) + cam.shift_ms
    half = 0.5 * cam.drift * cam.frame_period_ms
    found = chosen >= 0
    np.testing.assert_allclose(middle[chosen[found]] - target[found], difference[found], atol=1e-6)
    assert np.all(np.abs(difference[found]) <= half + 1e-9)
    for step in (-1, 1):  # no neighbour is nearer
        other = np.clip(chosen[found] + step, 0, middle.size - 1)
        assert np.all(np.abs(difference[found]) <= np.abs(middle[other] - target[found]) + 1e-9)
    after = np.clip(np.searchsorted(middle, target[~found]), 0, middle.size - 1)
    before = np.clip(after - 1, 0, middle.size - 1)
    nearest = np.minimum(np.abs(middle[after] - target[~found]), np.abs(middle[before] - target[~found]))
    assert np.all(nearest > half) and 0 < (~found).sum() < 0.05 * chosen.size
    assert np.all(np.diff(chosen[found]) >= 0)
    # streaming the choice over the hour: one item per reference frame, each the chosen one
    consumed = []

    def source():
        for i in range(middle.size):
            consumed.append(i)
            yield i, i

    picked = list(select_frames(chosen, source(), blank=-1))
    assert len(picked) == chosen.size and np.array_equal(np.array(picked), chosen)
    assert consumed[-1] == chosen.max()  # reading stopped at the last chosen frame


def test_select_frames_reuses_repeats_and_rejects_gaps():
    frames = [(0, "a"), (2, "c"), (3, "d")]
    assert list(select_frames([-1, 0, 0, 2, -1, 3, 3], iter(frames), blank=None)) == [None, "a", "a", "c", None, "d", "d"]
    with pytest.raises(FlashsyncError, match="not decoded"):
        list(select_frames([1], iter(frames)))
    with pytest.raises(FlashsyncError, match="ended before"):
        list(select_frames([5], iter(frames)))
    with pytest.raises(FlashsyncError, match="out of order"):
        list(select_frames([2, 0], iter(frames)))


# ---------------------------------------------------------------------------------- reading


@pytest.mark.slow
def test_rgb_frames_carry_the_container_timestamps(recording):
    paths, _, times = recording
    for path in paths:
        decoded = list(iter_rgb(path))
        np.testing.assert_array_equal([pts for pts, _ in decoded], times[path])
        levels = grey_level(np.arange(len(decoded)))  # grey frames come back as grey RGB
        np.testing.assert_allclose([frame.mean() for _, frame in decoded], levels, atol=1.5)
    path = paths[2]
    start = times[path][40] - 0.01
    seeked = list(iter_rgb(path, start_ms=start, size=(64, 48)))
    np.testing.assert_array_equal([pts for pts, _ in seeked], times[path][40:])
    assert seeked[0][1].shape == (48, 64, 3)


# ---------------------------------------------------------------------- synchronized outputs


@pytest.mark.slow
def test_synchronized_dir_holds_the_frame_table(recording, synchronized):
    paths, result, times = recording
    outdir, outputs = synchronized
    assert outputs == {p: str(outdir / f"{n}.mp4") for p, n in zip(paths, NAMES)}
    table = result.frame_table(times)
    record = json.loads((outdir / FRAMES_JSON).read_text())
    assert record["reference"] == paths[0] and record["n_frames"] == times[paths[0]].size
    assert record["reference_pts_ms"] == times[paths[0]].tolist() and record["frame_rate_fraction"] == "25/1"
    for path in paths:
        expected = table["frame_index"].sel(camera=path).values
        assert record["cameras"][path]["frame_index"] == expected.tolist()
        written = frame_times_ms(outputs[path])
        assert written.size == times[paths[0]].size  # exactly the reference's frame count ...
        np.testing.assert_allclose(written, np.arange(written.size) * 40.0, atol=1e-6)  # ... at its 25 fps
        info = probe(outputs[path])
        assert info.frame_rate == 25.0 and info.rotation_deg == ROTATION[paths.index(path)]
    cam1, cam2 = (table["frame_index"].sel(camera=p).values for p in paths[1:])
    assert (cam1 == -1).sum() > 10 and np.any(np.diff(cam2) == 0)  # black frames and repeats both occur


@pytest.mark.slow
def test_synchronized_frames_show_the_chosen_source_frames(recording, synchronized):
    paths, result, times = recording
    _, outputs = synchronized
    table = result.frame_table(times)
    for path in paths:
        chosen = table["frame_index"].sel(camera=path).values
        source, written = mean_levels(path), mean_levels(outputs[path])
        assert written.size == chosen.size
        found = chosen >= 0
        np.testing.assert_allclose(written[found], source[chosen[found]], atol=1.5)
        neighbours = source[np.clip(chosen[found] + 1, 0, source.size - 1)]
        differs = np.abs(neighbours - source[chosen[found]]) > 4  # adjacent frames are told apart
        assert np.all(np.abs(written[found] - neighbours)[differs] > 3)
        assert np.all(written[~found] < 1.0)  # black where no frame lies within half a frame


@pytest.mark.slow
def test_synchronized_frames_generator_follows_the_table(recording):
    paths, result, times = recording
    table = result.frame_table(times)
    decoded = {p: [frame for _, frame in iter_rgb(p)] for p in paths}
    items = list(synchronized_frames(result, paths))
    assert len(items) == times[paths[0]].size
    for k, reference_ms, cameras in items:
        assert reference_ms == table["reference_time_ms"].values[k]
        assert list(cameras) == paths
        for path, (index, difference, rgb) in cameras.items():
            assert index == table["frame_index"].sel(camera=path).values[k]
            if index < 0:
                assert rgb is None and np.isnan(difference)
            else:
                assert difference == table["difference_ms"].sel(camera=path).values[k]
                np.testing.assert_array_equal(rgb, decoded[path][index])
    small = synchronized_frames(result, {paths[0]: paths[0], paths[2]: paths[2]}, size=(32, 24))
    k, _, cameras = next(small)
    assert list(cameras) == [paths[0], paths[2]] and cameras[paths[0]][2].shape == (24, 32, 3)
    small.close()


# ----------------------------------------------------------------------------------- preview


def test_labels_are_drawn():
    assert preview_label("cam1", 3.2149) == "cam1  +3.21 ms" and preview_label("cam1", np.nan) == "cam1  —"
    mask = label_mask("cam1  +3.21 ms", 12)
    assert mask.shape[0] == 12 and mask.max() > 0.9 and mask.mean() > 0.05
    tile = np.full((96, 160, 3), 90, dtype=np.uint8)
    labelled = draw_label(tile.copy(), "cam1  +3.21 ms", 12)
    assert labelled[:16].max() > 240 and np.array_equal(labelled[20:], tile[20:])
    layout = preview_layout({"a": (160, 96), "b": (160, 96), "c": (96, 128)}, max_width=320)
    frames = {c: np.full((h, w, 3), 90, dtype=np.uint8) for c, (w, h) in layout.tiles.items()}
    plain = compose(layout, frames, {c: "" for c in frames}, {})
    shown = compose(layout, frames, {c: preview_label(c, 1.0) for c in frames}, {})
    assert plain.shape[:2] == shown.shape[:2] == layout.size[::-1]
    assert not np.array_equal(plain, shown) and shown[: layout.label_height].max() > 240


def test_preview_layout_fits_the_width():
    layout = preview_layout({f"c{i}": (1920, 1080) for i in range(5)}, max_width=1000)
    assert (layout.columns, layout.rows) == (3, 2)
    width, height = layout.size
    assert width <= 1000 and width % 2 == 0 and height % 2 == 0
    assert all(w <= layout.cell_width and h <= layout.cell_height for w, h in layout.tiles.values())
    with pytest.raises(FlashsyncError, match="max_width"):
        preview_layout({"a": (640, 360)}, max_width=8)


@pytest.mark.slow
def test_preview_montage(recording, tmp_path):
    paths, result, times = recording
    out = write_preview(result, paths, tmp_path / "preview.mp4", max_width=320)
    layout = preview_layout({"ref": (160, 96), "cam1": (160, 96), "cam2": (96, 128)}, max_width=320)
    info = probe(out)
    assert (info.width, info.height) == layout.size == (320, 2 * layout.cell_height)
    written = frame_times_ms(out)
    assert written.size == times[paths[0]].size
    np.testing.assert_allclose(written, np.arange(written.size) * 40.0, atol=1e-6)
    frame = next(iter_rgb(out, start_ms=written[50]))[1]
    label_rows = slice(0, layout.label_height)
    for column in range(2):  # white label text on the grey tiles of the first row
        cell = frame[label_rows, column * layout.cell_width : (column + 1) * layout.cell_width]
        assert cell.max() > 230
    assert frame[layout.cell_height + 4 :, layout.cell_width + 4 :].max() < 8  # the empty fourth cell


# ---------------------------------------------------------------------------------- refusals


@pytest.mark.slow
def test_outputs_are_never_replaced_without_overwrite(recording, synchronized, tmp_path):
    paths, result, _ = recording
    outdir, outputs = synchronized
    before = {p: os.path.getmtime(p) for p in outputs.values()}
    with pytest.raises(FlashsyncError, match="exists; pass overwrite=True"):
        write_synchronized(result, paths, outdir)
    assert before == {p: os.path.getmtime(p) for p in outputs.values()}
    with pytest.raises(FlashsyncError, match="would replace the input video"):
        write_synchronized(result, paths, os.path.dirname(paths[0]), overwrite=True)
    with pytest.raises(FlashsyncError, match="exists; pass overwrite=True"):
        write_preview(result, paths, outputs[paths[0]])
    with pytest.raises(FlashsyncError, match="exists; pass overwrite=True"):
        write_rgb_video(outputs[paths[0]], [np.zeros((4, 4, 3), np.uint8)], frame_rate=25.0)
    decoded = iter_rgb(paths[0])
    mixed = itertools.chain([np.zeros((4, 4, 3), np.uint8)], (frame for _, frame in decoded))
    with pytest.raises(FlashsyncError, match="the first was"):
        write_rgb_video(tmp_path / "mixed.mp4", mixed, frame_rate=25.0)
    decoded.close()
    out = tmp_path / "one.mp4"
    assert write_rgb_video(out, [np.zeros((5, 7, 3), np.uint8)] * 3, frame_rate=30000 / 1001) == 3
    assert (probe(out).width, probe(out).height) == (8, 6)  # odd sizes padded for yuv420p
    # tagged BT.709 on the frames themselves: ffmpeg prints one name where matrix, primaries and transfer agree
    assert "yuv420p(tv, bt709," in run_ffmpeg(["-i", str(out)]).stderr
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp")]


def test_missing_video_is_one_line_naming_the_path(recording, tmp_path):
    paths, result, _ = recording
    missing = str(tmp_path / "nowhere" / "cam9.mp4")
    for call in (
        lambda: write_synchronized(result, [paths[0], missing, paths[2]], tmp_path / "out"),
        lambda: write_preview(result, {paths[0]: paths[0], paths[1]: missing}, tmp_path / "p.mp4"),
        lambda: synchronized_frames(result, [paths[0], paths[1], missing]),
    ):
        with pytest.raises(FlashsyncError) as error:
            call()
        assert missing in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(FlashsyncError, match="reference camera"):
        write_synchronized(result, {paths[1]: paths[1]}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
