"""Detection slice by slice while decoding: windows cover every frame, memory does not grow with the
video's length, and the edges equal those of one window over the whole video."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashsync_bayes.detection import DetectorSettings, ambient, detect_video, frame_evidence, stream, video_detection
from flashsync_bayes.detection.edges import KEPT_OFFSETS, Candidates, first_fits, fit_candidates
from flashsync_bayes.detection.profiles import RowProfiles
from flashsync_bayes.io import video
from flashsync_bayes.simulate import Camera, Flashes, random_setup, scene_preset, simulate_recording

M = stream.MARGIN_FRAMES
PERIOD_MS = 1000.0 / 30.0
#: A slice size that cuts the test videos (120 frames) into two windows.
SMALL = DetectorSettings(slice_frames=64)
#: One window over any test video: the whole-video pass.
WHOLE = DetectorSettings(slice_frames=10**6)


def synthetic_chunks(n_frames: int, chunk_sizes, rows: int = 4, seed: int | None = None):
    """Profile chunks of ``n_frames`` frames (each frame's profiles hold its index, or noise with ``seed``), made lazily."""
    rng = None if seed is None else np.random.default_rng(seed)
    start, k = 0, 0
    while start < n_frames:
        n = min(chunk_sizes[k % len(chunk_sizes)], n_frames - start)
        index = np.arange(start, start + n)
        if rng is None:
            fields = [np.repeat(index[:, None], rows, axis=1).astype(np.float32)] * len(RowProfiles._fields)
        else:
            fields = [rng.normal(0.0, 0.002, (n, rows)).astype(np.float32) for _ in RowProfiles._fields]
        yield index * PERIOD_MS, RowProfiles(*fields)
        start, k = start + n, k + 1


@given(
    n_frames=st.integers(1, 400),
    slice_frames=st.integers(1, 80),
    chunk_sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
)
def test_slices_cover_every_frame_once_in_windows_of_one_size(n_frames, slice_frames, chunk_sizes):
    width = stream.window_frames(slice_frames)
    covered = []
    for window, (first, end) in stream.windows(synthetic_chunks(n_frames, chunk_sizes), slice_frames):
        frames = window.start + np.arange(window.frame_time_ms.size)
        assert frames.size == min(n_frames, width)  # one shape: one compilation per frame height
        np.testing.assert_array_equal(window.rows.median[:, 0], frames)
        np.testing.assert_array_equal(window.frame_time_ms, frames * PERIOD_MS)
        assert frames[0] <= max(first - M, 0) and frames[-1] >= min(end + M, n_frames) - 1  # the margins
        for frame in (first, end - 1):  # the window a plot of one of its frames decodes again
            assert stream.slice_window(frame // slice_frames, n_frames, slice_frames) == (frames[0], frames[-1] + 1)
        covered += range(first, end)
    assert covered == list(range(n_frames))


def _peak_traced_bytes(run) -> int:
    """Peak bytes traced by tracemalloc while ``run()`` runs."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_held_does_not_grow_with_the_videos_length():
    """Detection of 4 and of 16 windows' worth of noise profiles peaks alike (a video's frame times, 8 bytes a
    frame, are all that grows); holding every frame's profiles would add 0.5 kB a frame per profile here."""
    settings, rows = DetectorSettings(slice_frames=64), 128

    def detect(n_windows):
        chunks = synthetic_chunks(n_windows * 64, [32], rows=rows, seed=n_windows)
        return stream.detect_windows(stream.windows(chunks, settings.slice_frames), settings)

    detect(2)  # compile and fill JAX's caches first
    short, long = (_peak_traced_bytes(lambda n=n: detect(n)) for n in (4, 16))
    extra_frames = 12 * 64
    profiles_bytes = extra_frames * rows * 4 * len(RowProfiles._fields)
    assert long - short < 0.2 * profiles_bytes, (short, long)


def banded_chunks(n_frames: int, rows: int, period_rows: float, step: float, seed: int):
    """One chunk of profiles whose median is the change of flicker bands (``period_rows``, amplitude 0.1) whose
    phase advances ``step`` cycles a frame, plus noise."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * (np.arange(rows)[None] / period_rows + step * np.arange(-1, n_frames)[:, None])
    level = 0.1 * np.cos(phase)
    median = (np.diff(level, axis=0) + rng.normal(0.0, 0.002, (n_frames, rows))).astype(np.float32)
    blocks = np.repeat(median[..., None], 16, axis=-1).astype(np.float16)
    yield np.arange(n_frames) * PERIOD_MS, RowProfiles(median, median + 0.01, median - 0.01, blocks)


@pytest.mark.parametrize("step, lag", [(0.003, True), (1 / 3, False), (0.0, None)])
def test_the_video_keeps_moving_bands_or_else_bands_that_creep(step, lag):
    """Bands that move between frames are measured from one frame's change; bands that creep 0.003 cycles a frame
    (30 fps under 120.09 Hz) from the change over many frames; bands that stand give nothing to measure."""
    found = stream.detect_windows(stream.windows(banded_chunks(300, 240, 80.0, step, seed=1), 10**6), WHOLE).flicker
    if lag is None:
        assert found.cycles_per_row == 0
        return
    assert found.moves and (found.lag_frames > 1) == lag
    assert found.period_rows == pytest.approx(80.0, abs=3 * found.period_rows_sd)
    assert found.period_rows_sd < 0.01 * 80.0


# --- on encoded videos ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boundary_video(tmp_path_factory):
    """160x120, 4 s at 30 fps (120 frames), two flashes: in frame 20 and in frame 64, the first frame of
    the second 64-frame slice and so in the margin of the first window too."""
    outdir = tmp_path_factory.mktemp("boundary")
    camera = Camera(width=160, height=120, total_rows=160, frame_rate=30.0, exposure_ms=4.0)
    # a leading edge at row r of frame k: the flash fires when that row's exposure ends
    times = np.array([20 * PERIOD_MS + 40 * camera.line_period_ms + 4.0, 64 * PERIOD_MS + 60 * camera.line_period_ms + 4.0])
    flashes = Flashes(time_ms=times, decay_ms=np.full(2, 0.5), rise_ms=np.zeros(2), amplitude=np.full(2, 60.0))
    truth = simulate_recording(outdir, [camera], flashes, 4.0, seed=3, progress=False)
    assert [edge["frame"] for edge in truth["cameras"]["cam0.mp4"]["edges"]] == [20, 64]
    return str(outdir / "cam0.mp4")


@pytest.mark.slow
def test_streamed_edges_equal_the_whole_video_pass_across_a_slice_boundary(boundary_video):
    whole, streamed = detect_video(boundary_video, WHOLE), detect_video(boundary_video, SMALL)
    assert stream.slice_window(1, 120, 64) == (20, 120) and stream.slice_window(0, 120, 64) == (0, 100)
    np.testing.assert_array_equal(streamed.frame_time_ms, whole.frame_time_ms)
    assert list(whole.edges["frame"]) == [20, 64, 20, 64]  # leading, then trailing edges
    assert streamed.flicker == whole.flicker == ambient.NO_FLICKER
    for name, column in whole.edges.items():
        if column.dtype.kind == "f":
            np.testing.assert_allclose(streamed.edges[name], column, rtol=0, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(streamed.edges[name], column, err_msg=name)


@pytest.mark.slow
def test_a_window_decoded_from_a_seek_is_the_one_detection_saw(boundary_video, tmp_path, monkeypatch):
    chunks = stream.profile_chunks(boundary_video, SMALL)
    (_, _), (last, _) = stream.windows(chunks, SMALL.slice_frames)
    frame_time_ms, starts = video.frame_times_ms(boundary_video), []
    decoded = stream._decoded
    monkeypatch.setattr(stream, "_decoded", lambda *args: starts.append(args[3]) or decoded(*args))
    seen = stream.frame_window(boundary_video, 64, SMALL, frame_time_ms)
    assert starts == [frame_time_ms[19]]  # decoded from a seek to the frame before the window, once
    assert seen.start == last.start == 20
    np.testing.assert_array_equal(seen.frame_time_ms, last.frame_time_ms)
    for mine, detections in zip(seen.rows, last.rows):
        np.testing.assert_array_equal(mine, detections)
    cache = str(tmp_path / "cache")
    video_detection(boundary_video, SMALL, cache)
    monkeypatch.setattr(video, "frame_times_ms", lambda path: pytest.fail("frame times read although cached"))
    evidence, start = frame_evidence(boundary_video, 64, SMALL, cache)
    assert start == 20 and evidence.rising.shape == (100, 120)
    assert evidence.rising[64 - start, 66] > 0.2 > abs(evidence.rising[64 - start, 40])  # the band below row 60


@pytest.fixture(scope="module")
def flicker_video(tmp_path_factory):
    """160x120, 4 s at 30 fps under 50 Hz lamps (flicker, auto-exposure, partial flashes), 10 flashes."""
    outdir = tmp_path_factory.mktemp("flicker")
    cameras, flashes = random_setup(1, 4.0, 10, seed=8, width=160, height=120)
    simulate_recording(outdir, cameras, flashes, 4.0, seed=8, scene=scene_preset("indoor_50hz", seed=8), progress=False)
    return str(outdir / "cam0.mp4")


@pytest.mark.slow
def test_streamed_detection_shares_the_flicker_band_and_finds_the_same_edges(flicker_video, monkeypatch):
    whole = detect_video(flicker_video, WHOLE)
    searches = []
    search = ambient.band_frequency
    monkeypatch.setattr(ambient, "band_frequency", lambda median: searches.append(median.shape) or search(median))
    streamed = detect_video(flicker_video, SMALL)
    assert searches == [(stream.window_frames(64), 120)]  # found in the first window, handed to the second
    assert whole.flicker.cycles_per_row > 0
    assert streamed.flicker.cycles_per_row == pytest.approx(whole.flicker.cycles_per_row, rel=5e-3)
    assert streamed.flicker.phase_step == pytest.approx(whole.flicker.phase_step, abs=0.01)
    for name in ("frame", "polarity", "edge"):
        np.testing.assert_array_equal(streamed.edges[name], whole.edges[name])
    # the flicker fit and the blur shared by the edges (and its spread, in row_sd) come from each
    # window's frames, so rows differ a little (measured: 0.31 rows, 0.37 of the two sds at most)
    difference = np.abs(streamed.edges["row"] - whole.edges["row"])
    sd = np.hypot(streamed.edges["row_sd"], whole.edges["row_sd"])
    assert difference.max() <= 0.5 and np.all(difference <= 0.5 * sd)


def test_candidates_fitted_in_batches_as_the_windows_find_them_fit_as_all_at_once():
    """A video's candidates are fitted on their own in whole batches while later frames decode; the fits, and the edges
    fitted with the video's shared blur from them, are those of fitting all candidates at the end."""
    rng = np.random.default_rng(3)
    n = 37
    edge, decay = rng.uniform(-3.0, 3.0, n), rng.uniform(1.0, 6.0, n)
    below = np.maximum(KEPT_OFFSETS[None, :] - edge[:, None], 0.0)
    rows = rng.uniform(0.1, 0.6, (n, 1)) * -np.expm1(-below / decay[:, None]) + 0.01 * rng.standard_normal((n, KEPT_OFFSETS.size))
    found = Candidates(np.arange(n) * 7, np.full(n, 200), np.ones(n, np.int64), np.zeros(n, bool), rng.random(n) < 0.5,
                       np.zeros(n), rows, np.ones_like(rows), 480)  # fmt: skip
    queue = stream._FirstFitQueue()
    for part in np.split(np.arange(n), [5, 25, 28]):  # windows finding 5, 20, 3 and 9 candidates
        queue.add(found.where(np.isin(np.arange(n), part)))
    assert [c.frame.size for c, _ in queue.fitted] == [16, 16]  # two whole batches before the end
    joined, first = queue.finished()
    whole = first_fits(found)
    assert np.array_equal(joined.frame, found.frame) and np.array_equal(first.shift, whole.shift)
    assert all(np.array_equal(a, b) for a, b in zip(first.free, whole.free))
    settings = DetectorSettings()
    streamed, at_once = fit_candidates(joined, settings, first), fit_candidates(found, settings)
    assert streamed["frame"].size > 0 and all(np.array_equal(streamed[k], at_once[k]) for k in at_once)
