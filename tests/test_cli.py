"""End to end through the ``flashsync`` command on encoded simulator videos, against truth.json."""

import json
import os

import numpy as np
import pytest

from flashsync_bayes.cli import main
from flashsync_bayes.demo import demo_setup, truth_reference_time_ms
from flashsync_bayes.events import load_events
from flashsync_bayes.io.video import frame_times_ms
from flashsync_bayes.result import SyncResult
from flashsync_bayes.simulate import simulate_recording

pytestmark = pytest.mark.slow

JSON_KEYS = {"reference", "method", "cameras", "n_flashes", "residual_rms_ms", "cameras_left_out"}
CAMERA_KEYS = {
    "drift", "drift_sd", "shift_ms", "shift_ms_sd", "time_per_row_ms", "time_per_row_ms_sd",
    "total_rows", "total_rows_sd", "frame_period_ms", "frame_clock",
    "time_per_row_identified", "time_per_row_reason", "readout_ms", "readout_ms_sd", "flicker_bands",
}  # fmt: skip


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Three cameras: 640x360@30, 480x270@25, 640x360@50 (rotated), dropped frames, 12 s, 20 flashes."""
    outdir = tmp_path_factory.mktemp("rec")
    cameras, flashes = demo_setup(seed=5, duration_s=12.0, n_flashes=20)
    truth = simulate_recording(outdir, cameras, flashes, 12.0, seed=5, progress=False)
    return outdir, truth


def json_errors(model: dict, truth: dict, outdir) -> np.ndarray:
    """Synchronized-time errors (ms) of a DESIGN §6 JSON model over frames x rows of every camera."""
    reference = os.path.basename(model["reference"])
    errors = []
    for path, params in model["cameras"].items():
        name = os.path.basename(path)
        camera = truth["cameras"][name]
        pts = np.asarray(camera["pts_ms"])[:: max(1, len(camera["pts_ms"]) // 40)]
        clock = params["frame_clock"]
        p = pts if clock is None else clock["origin_ms"] + clock["period_ms"] * np.round((pts - clock["origin_ms"]) / clock["period_ms"])
        rows = np.linspace(0, camera["height"] - 1, 7)
        p_grid, r_grid = np.meshgrid(p, rows, indexing="ij")
        pts_grid, _ = np.meshgrid(pts, rows, indexing="ij")
        mapped = params["drift"] * p_grid + params["shift_ms"] + r_grid * params["time_per_row_ms"]
        errors.append(mapped - truth_reference_time_ms(truth, name, reference, pts_grid, r_grid))
    return np.concatenate([e.ravel() for e in errors])


@pytest.mark.parametrize("method", ["laplace", "lsq"])  # NUTS: tests/inference, tests/test_calibration.py
def test_sync_json_is_sub_millisecond_against_truth(recording, tmp_path, method, capsys):
    outdir, truth = recording
    videos = [str(outdir / name) for name in truth["cameras"]]
    out_json, out_nc = tmp_path / "sync.json", tmp_path / "posterior.nc"
    code = main(["sync", *videos, "--json", str(out_json), "--output", str(out_nc), "--method", method,
                 "--cache-dir", str(outdir / "cache"), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert all(os.path.basename(v) in printed for v in videos)
    model = json.loads(out_json.read_text())
    assert set(model) == JSON_KEYS
    assert list(model["cameras"]) == videos and model["reference"] == videos[0] and model["method"] == method
    assert all(set(params) == CAMERA_KEYS for params in model["cameras"].values())
    # the reference defines the time axis (up to the rounding of its own clock's fit, ~1e-15 ms)
    assert model["cameras"][videos[0]]["drift"] == pytest.approx(1.0, abs=1e-12)
    assert model["cameras"][videos[0]]["shift_ms"] == pytest.approx(0.0, abs=1e-9)
    errors = json_errors(model, truth, outdir)
    assert np.sqrt(np.mean(errors**2)) < 0.1
    assert np.max(np.abs(errors)) < 0.5
    reloaded = SyncResult.load(out_nc).to_json(videos)
    assert reloaded["cameras"].keys() == model["cameras"].keys()
    for path, params in model["cameras"].items():
        for key, value in params.items():
            exact = key == "frame_clock" or not isinstance(value, float)
            assert reloaded["cameras"][path][key] == (value if exact else pytest.approx(value, rel=1e-12))


def test_detect_writes_events_and_never_overwrites(recording, tmp_path, capsys):
    outdir, truth = recording
    video = str(outdir / "cam0.mp4")
    out = tmp_path / "events.nc"
    assert main(["detect", video, "-o", str(out), "--no-progress"]) == 0
    events = load_events(out)
    stored = [edge for edge in truth["cameras"]["cam0.mp4"]["edges"] if edge["status"] == "stored"]
    assert int(np.sum(events["edge"].values == "leading")) == len(stored)
    assert os.path.isdir(tmp_path / ".flashsync-cache")  # profiles cached beside the output
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["detect", video, "-o", str(out), "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sync", "missing.mp4", "other.mp4"], "not found"),
        (["sync", "only.mp4"], "at least two"),
        (["sync", "a.mp4", "b.mp4", "--method", "magic"], "invalid choice"),
        (["detect", "nothing.mp4", "-o", "x.nc"], "not found"),
        (["detect", "a.mp4", "a.mp4", "-o", "x.nc"], "given more than once: a.mp4"),
        (["sync", "a.mp4", "b.mp4", "--total-rows", "750"], "VIDEO=NUMBER"),
        (["sync", "a.mp4", "b.mp4", "--tolerance-ms", "0"], "tolerance_ms must be at least 0.1 ms"),
        (["simulate", "--cameras", "0", "--outdir", "x"], "camera"),
        (["simulate", "--shake-px", "-1", "--outdir", "x"], "shake_px must be a finite number of pixels >= 0"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("only.mp4", "a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"not a video")
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("flashsync: error:")
    assert message in err
    assert "Traceback" not in err


def test_compile_cache_is_on_by_default_with_an_opt_out(tmp_path, monkeypatch, capsys):
    """``flashsync`` turns JAX's persistent compilation cache on (in the user's cache directory) unless told not to."""
    import jax

    from flashsync_bayes import cli, compile_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    directory = compile_cache.default_directory()
    assert directory == str(tmp_path / "user-cache" / "flashsync_bayes" / "jax")
    before = jax.config.jax_compilation_cache_dir
    try:  # restored before anything compiles, so the rest of the session is unaffected
        assert compile_cache.enable_compilation_cache() == directory and os.path.isdir(directory)
        assert jax.config.jax_compilation_cache_dir == directory
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
    calls = []
    monkeypatch.setattr(compile_cache, "enable_compilation_cache", lambda: calls.append(1))
    monkeypatch.delenv("FLASHSYNC_NO_COMPILE_CACHE")
    assert cli.main(["detect", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "e.nc")]) == 2
    assert cli.main(["detect", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "e.nc"), "--no-compile-cache"]) == 2
    assert calls == [1]
    parser = cli.build_parser()
    videos = ["sync", "a.mp4", "b.mp4"]
    assert cli.use_compile_cache(parser.parse_args(videos), {})
    assert not cli.use_compile_cache(parser.parse_args(videos + ["--no-compile-cache"]), {})
    assert not cli.use_compile_cache(parser.parse_args(videos), {"FLASHSYNC_NO_COMPILE_CACHE": "1"})
    assert cli.use_compile_cache(parser.parse_args(videos), {"FLASHSYNC_NO_COMPILE_CACHE": "0"})
    assert not cli.use_compile_cache(parser.parse_args(["simulate", "--outdir", "x"]), {})


def test_version(capsys):
    from flashsync_bayes import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"flashsync {__version__}"


def test_sync_writes_synchronized_videos_and_a_preview(recording, tmp_path, capsys):
    """The synchronized videos hold the reference's frame count and the frames the frame table names."""
    outdir, truth = recording
    videos = [str(outdir / name) for name in truth["cameras"]]
    synced, preview, figures = tmp_path / "synced", tmp_path / "preview.mp4", tmp_path / "figures.pdf"
    code = main(["sync", *videos, "--method", "lsq", "--synchronized-dir", str(synced), "--preview", str(preview),
                 "--output", str(tmp_path / "run.nc"), "--plot", str(figures), "--cache-dir", str(outdir / "cache"),
                 "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert figures.read_bytes()[:5] == b"%PDF-"  # pages and content: tests/test_plots.py
    result = SyncResult.load(tmp_path / "run.nc")
    table = result.frame_table({v: frame_times_ms(v) for v in videos})
    chosen = json.loads((synced / "frames.json").read_text())
    n_reference = len(truth["cameras"]["cam0.mp4"]["pts_ms"])
    for video in videos:
        name = os.path.basename(video)
        written = frame_times_ms(synced / name)
        assert written.size == n_reference  # one output frame per reference frame, no drift
        np.testing.assert_array_equal(chosen["cameras"][video]["frame_index"], table["frame_index"].sel(camera=video).values)
    assert frame_times_ms(preview).size == n_reference
