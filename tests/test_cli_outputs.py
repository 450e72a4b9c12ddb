"""The command line's promises: outputs checked before any work, nothing lost, errors in the user's words,
results saved and shown again (``report``), and fits from an events file (``fit``) against simulator truth."""

import json
import os
import stat

import numpy as np
import pytest

from flashsync_bayes import SyncResult
from flashsync_bayes.cli import main
from flashsync_bayes.events import load_events, save_events
from flashsync_bayes.io.ffmpeg import check_ffmpeg
from flashsync_bayes.timing import tick_numbers
from tests.sync_cases import IDENTIFIABLE, IDENTIFIABLE_WINDOW, grid_errors


def plain_video(path, seconds=1.0, size="64x48", faststart=False, noise=0):
    """A grey H.264 video without flashes (no simulator needed: nothing happens in it but pixel ``noise``)."""
    flags = ["-movflags", "+faststart"] if faststart else []
    check_ffmpeg(["-loglevel", "error", "-f", "lavfi", "-i", f"color=c=gray:size={size}:rate=30", "-t", str(seconds),
                  "-vf", f"noise=alls={noise}:allf=t", "-pix_fmt", "yuv420p", *flags, str(path)])  # fmt: skip
    return str(path)


def run(argv, capsys):
    """Exit code, stdout and stderr of ``flashsync argv``."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, message):
    assert code == 2
    assert err.startswith("flashsync: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err


@pytest.fixture
def saved(fits, tmp_path):
    """A fitted result (lsq, with its events) saved to run.nc."""
    path = tmp_path / "run.nc"
    fits["lsq"].save(path)
    return path


def test_existing_outputs_are_refused_before_any_decoding(tmp_path, capsys):
    # the "videos" are not videos: reaching the decoder would fail with another message
    videos = [str(tmp_path / name) for name in ("a.mp4", "b.mp4")]
    for video in videos:
        open(video, "wb").write(b"not a video")
    kept = tmp_path / "sync.json"
    kept.write_text("earlier result")
    code, _, err = run(["sync", *videos, "--json", str(kept)], capsys)
    assert_one_line_error(code, err, "exists; choose another name or pass --overwrite")
    assert kept.read_text() == "earlier result"
    cases = [
        (["--output", str(tmp_path / "missing" / "run.nc")], "does not exist"),
        (["--json", str(tmp_path / "x.json"), "--output", str(tmp_path / "x.json")], "both name"),
        (["--output", videos[1]], "is one of the inputs"),
        (["--plot", str(tmp_path / "figures")], "must end in .png, .pdf or .svg"),
        (["--json", str(tmp_path)], "is a directory"),
        (["--synchronized-dir", str(kept)], "is a file"),
    ]
    for options, message in cases:
        code, _, err = run(["sync", *videos, *options, "--overwrite"], capsys)
        assert_one_line_error(code, err, message)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.mp4").write_bytes(b"x")
    code, _, err = run(["sync", *videos, "--synchronized-dir", str(tmp_path / "full")], capsys)
    assert_one_line_error(code, err, "is not empty")
    assert open(videos[1], "rb").read() == b"not a video"


def test_facts_and_inputs_in_the_users_words(tmp_path, capsys):
    a, b = plain_video(tmp_path / "a.mp4"), plain_video(tmp_path / "b.mp4")
    code, _, err = run(["sync", a, b, "--total-rows", f"{b}=40", "--no-cache"], capsys)
    assert_one_line_error(code, err, f"total rows of {b} (40) must be at least its 48 stored rows")
    code, _, err = run(["sync", a, str(tmp_path), "--no-cache"], capsys)
    assert_one_line_error(code, err, f"{tmp_path} is not a file")
    code, _, err = run(["detect", str(tmp_path / "gone.mp4"), "-o", str(tmp_path / "e.nc")], capsys)
    assert_one_line_error(code, err, f"video file not found: {tmp_path / 'gone.mp4'}")


@pytest.mark.slow
def test_videos_without_flashes_and_a_truncated_file(tmp_path, capsys):
    a, b = plain_video(tmp_path / "a.mp4"), plain_video(tmp_path / "b.mp4")
    code, _, err = run(["sync", a, b, "--no-cache", "--method", "lsq"], capsys)
    assert_one_line_error(code, err, f"no flashes found in {a}, {b}")
    whole = plain_video(tmp_path / "whole.mp4", seconds=4.0, faststart=True, noise=30)
    cut = tmp_path / "cut.mp4"
    data = open(whole, "rb").read()
    cut.write_bytes(data[: len(data) * 6 // 10])
    code, out, err = run(["detect", str(cut), "-o", str(tmp_path / "e.nc"), "--no-cache"], capsys)
    assert code == 0, err
    assert "breaks off after frame" in err and str(cut) in err
    events = load_events(tmp_path / "e.nc")
    assert 0 < int(events["n_frames"].values[0]) < 120


def test_results_respect_the_umask(saved, tmp_path, capsys):
    old = os.umask(0o027)
    try:
        code, _, err = run(["report", str(saved), "--json", str(tmp_path / "r.json")], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode) == 0o640


def test_report_shows_a_saved_run_again(fits, saved, capsys):
    result = fits["lsq"]
    code, out, err = run(["report", str(saved), "--json", "-"], capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads(json.dumps(result.to_json()))  # JSON alone on stdout
    assert "camera" in err and "residual RMS" in err  # the table went to stderr
    figure = saved.parent / "residuals.png"
    code, _, err = run(["report", str(saved), "--plot", f"residuals={figure}", "-q"], capsys)
    assert code == 0, err
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(["report", str(saved), "-q"], capsys)
    for camera in result.cameras:
        assert camera in out
    assert f"{result.n_flashes} flashes seen by two or more cameras" in out
    code, _, err = run(["report", str(saved.parent / "nothing.nc")], capsys)
    assert_one_line_error(code, err, "not found")


def test_result_file_keeps_the_events(fits, identifiable, saved):
    loaded = SyncResult.load(saved)
    events, _ = identifiable
    assert loaded.events is not None
    np.testing.assert_array_equal(loaded.events["row"].values, events["row"].values)
    assert list(loaded.events["event_camera"].values) == [str(c) for c in events["event_camera"].values]
    assert load_events(saved).sizes == events.sizes  # `flashsync fit run.nc` refits a saved run


def test_fit_from_events_with_sparse_rounded_timestamps(identifiable, tmp_path, capsys):
    """Events of another detector: no clock variables, frame times rounded to whole ms, flashes unmatched.

    The frame clocks come from the sparse event times themselves: every event must land on its
    true frame tick, and the synchronization stay sub-millisecond (whole-ms rounding of ~20 frame
    times per camera leaves clock errors of ~0.1-0.3 ms; the RMS bound says so).
    """
    events, kept = identifiable
    exact_ms = events["frame_time_ms"].values
    events = events.drop_vars([v for v in events.data_vars if str(v).startswith("clock_")])
    events["frame_time_ms"] = ("event", np.round(exact_ms))
    events["flash"] = ("event", np.full(events.sizes["event"], -1))
    save_events(events, tmp_path / "events.nc")
    code, out, err = run(["fit", str(tmp_path / "events.nc"), "--method", "lsq", "--output", str(tmp_path / "run.nc")], capsys)
    assert code == 0, err
    result = SyncResult.load(tmp_path / "run.nc")
    assert result.n_flashes == 24
    for c, camera in enumerate(result.cameras):
        clock = result.frame_clocks[camera]
        period = 1000 / IDENTIFIABLE[c].frame_rate
        mine = events["event_camera"].values == camera
        ticks = tick_numbers(events["frame_time_ms"].values[mine], clock)
        np.testing.assert_array_equal(ticks - ticks.min(), np.round((exact_ms[mine] - exact_ms[mine].min()) / period))
    errors = grid_errors(result, IDENTIFIABLE, kept, IDENTIFIABLE_WINDOW)
    assert np.sqrt(np.mean(errors**2)) < 0.25 and np.max(np.abs(errors)) < 0.5


class ClosedPipe:
    """A stdout whose reader went away (``flashsync report ... | head`` after head exits)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_loses_no_result(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["report", str(saved), "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "f.png")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_flashes"] == 24  # written before the table was printed
    assert (tmp_path / "f.png").stat().st_size > 0


def test_demo_never_overwrites_an_earlier_demo(tmp_path, capsys):
    (tmp_path / "cam0.mp4").write_bytes(b"an earlier demo video")
    code, _, err = run(["demo", "--outdir", str(tmp_path), "--no-compile-cache"], capsys)
    assert_one_line_error(code, err, "exists")
    assert (tmp_path / "cam0.mp4").read_bytes() == b"an earlier demo video"
