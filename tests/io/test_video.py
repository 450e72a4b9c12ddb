"""Tests for io/video.py: probe, container timestamps against the decoder's, luma in sensor row order."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io import video
from flashsync_bayes.io.ffmpeg import ffmpeg_exe
from flashsync_bayes.io.showinfo import SHOWINFO

W, H, N = 96, 64, 30
DROPPED = (5, 17)
KEPT = [k for k in range(N) if k not in DROPPED]
TICKS_PER_FRAME = 3003  # 1001/30000 s in a 1/90000 s timebase
BAND = 2  # rows of the bright band


def band_row(k: int) -> int:
    """First row of the bright band in written frame k."""
    return 6 + 2 * k % 48


def written_luma(k: int) -> np.ndarray:
    """Luma codes of written frame k, (H, W) uint8: horizontal gradient plus a bright band."""
    frame = np.repeat(np.linspace(40, 200, W)[None, :], H, axis=0)
    frame[band_row(k) : band_row(k) + BAND] = 235
    return np.round(frame).astype(np.uint8)


def ffmpeg(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    """Finished ffmpeg run; raises with ffmpeg's stderr if it failed."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-y", *args], input=data, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc


def encode(out, vf: str, *muxer: str) -> str:
    """Writes the N test frames (as yuv420p, neutral chroma) through filter ``vf`` into ``out``."""
    chroma = np.full(H * W // 2, 128, np.uint8).tobytes()
    data = b"".join(written_luma(k).tobytes() + chroma for k in range(N))
    ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", "-framerate", "30000/1001", "-i", "-",
           "-vf", vf, "-fps_mode", "passthrough", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
           *muxer, str(out), data=data)  # fmt: skip
    return str(out)


def remux(src: str, out, *args: str) -> str:
    """``src`` copied into ``out`` with extra ffmpeg options (``args`` before and after the input)."""
    before, after = (args[: args.index("-i")], args[args.index("-i") + 1 :]) if "-i" in args else ((), args)
    ffmpeg(*before, "-i", src, "-c", "copy", *after, str(out))
    return str(out)


DROP_FILTER = "select='not(" + "+".join(f"eq(n\\,{k})" for k in DROPPED) + ")'"
VFR_FILTER = "settb=1/90000,setpts='if(lt(N\\,12)\\,N*3003\\,36036+(N-12)*6006+eq(mod(N\\,3)\\,0)*900)'"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, str]:
    """Test videos by name: B-frames with drops, rotated, Matroska, VFR, edit list, MPEG-TS, no edit list."""
    d = tmp_path_factory.mktemp("videos")
    v = {"drops": encode(d / "drops.mp4", DROP_FILTER, "-video_track_timescale", "90000")}
    v["rotated"] = remux(v["drops"], d / "rotated.mp4", "-display_rotation", "180", "-i")
    v["mkv"] = encode(d / "drops.mkv", DROP_FILTER)
    v["vfr"] = encode(d / "vfr.mp4", VFR_FILTER, "-enc_time_base", "1/90000", "-video_track_timescale", "90000")
    v["editlist"] = remux(v["drops"], d / "editlist.mp4", "-ss", "0.2", "-i")  # leading frames marked discard
    v["ts"] = remux(v["drops"], d / "start.ts")  # container start time ~1.4 s
    v["noeditlist"] = remux(v["drops"], d / "noeditlist.mp4", "-use_editlist", "0")  # first pts > 0
    return v


def decoder_pts_ms(path: str) -> np.ndarray:
    """Timestamps (ms) of the frames the decoder outputs, from ``showinfo``'s integer pts."""
    err = ffmpeg("-copyts", "-i", path, "-map", "0:V:0", "-vf", "showinfo", "-fps_mode", "passthrough",
                 "-f", "null", "-").stderr.decode()  # fmt: skip
    num, den = map(int, re.search(r"config in time_base: (\d+)/(\d+)", err).groups())
    pts = [int(p) for p in re.findall(r"\] n: *\d+ pts: *(-?\d+)", err)]
    return np.array([float(Fraction(p * num * 1000, den)) for p in pts])


def band_rows(frame: np.ndarray) -> list[int]:
    """Rows of ``frame`` (height, width) whose central mean is near the band's 235."""
    margin = frame.shape[1] // 8
    return np.flatnonzero(frame[:, margin:-margin].mean(axis=1) > 220).tolist()


def all_luma(path: str, **kwargs) -> np.ndarray:
    """Every frame of ``iter_luma`` stacked, (n_frames, height, width) uint8."""
    return np.concatenate(list(video.iter_luma(path, **kwargs)))


# ---------------------------------------------------------------------------------------- probe


def test_probe_reads_size_rate_codec_rotation(videos):
    info = video.probe(videos["drops"])
    assert (info.width, info.height, info.codec, info.rotation_deg) == (W, H, "h264", 0)
    assert info.frame_rate == pytest.approx(30000 / 1001, rel=1e-12)  # nominal, not the 28.97 average
    assert info.frame_period_ms == pytest.approx(1001 / 30, rel=1e-12)
    assert info.duration_ms == pytest.approx(N * 1001 / 30, abs=10)
    assert video.probe(videos["rotated"]).rotation_deg == 180


@pytest.mark.parametrize(
    ("side_data", "expected"),
    [("", 0), ("rotation of -90.00 degrees", 270), ("rotation of 90.00 degrees", 90)]
    + [("rotation of -180.00 degrees", 180), ("rotation of 45.10 degrees, horizontal flip", 90)],
)
def test_rotation_is_counter_clockwise_multiple_of_90(side_data, expected):
    assert video._rotation_deg(f"Side data:\n      Display Matrix: {side_data}") == expected


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ("27.97 fps, 29.97 tbr, 90k tbn", 30000 / 1001),  # drops lower the average
        ("29.26 fps, 90k tbr, 90k tbn", 29.26),  # VFR phone: tbr is a timebase
        ("29.97 fps, 59.94 tbr, 90k tbn", 30000 / 1001),  # interlaced field rate
        ("600 fps, 29.97 tbr, 600 tbn", 30000 / 1001),  # AVI: bogus average
        ("25 fps, 25 tbr, 1k tbn", 25.0),
        ("59.94 fps, 59.94 tbr, 1k tbn", 60000 / 1001),
    ],
)
def test_nominal_rate(rates, expected):
    rate = video._nominal_rate(f"h264 (High), yuv420p(progressive), 1920x1080, {rates}")
    assert rate == pytest.approx(expected, rel=1e-12)


def test_probe_skips_cover_art_and_reads_its_own_stream_block():
    text = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 22 kb/s
  Stream #0:0[0x1](und): Video: mjpeg (Baseline), yuvj420p(pc), 300x300, 90k tbr, 90k tbn (attached pic)
    Side data:
      Display Matrix: rotation of 90.00 degrees
  Stream #0:1[0x2](und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, bt709), 1920x1080 \
[SAR 1:1 DAR 16:9], 28.1 fps, 30 tbr, 90k tbn (default)
  Stream #0:2[0x3](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp
    Side data:
      Display Matrix: rotation of -90.00 degrees
"""
    info = video._parse_probe("x.mp4", text)
    assert (info.width, info.height, info.codec, info.frame_rate, info.rotation_deg) == (1920, 1080, "hevc", 30.0, 0)
    assert info.duration_ms == pytest.approx(62500.0)
    assert not info.full_range  # the cover art's (pc) range is not the video's


@pytest.mark.parametrize(
    "pix_fmt, full",
    [("yuv420p(progressive)", False), ("yuv420p(tv, bt709)", False), ("yuv420p10le(tv, bt2020nc/bt2020/smpte2084)", False),
     ("yuvj420p(pc, bt470bg/unknown/unknown)", True), ("yuv420p(pc, bt709, progressive)", True), ("gray", True)],
)  # fmt: skip
def test_probe_reads_the_luma_range(pix_fmt, full):
    text = f"Input #0, mov, from 'x.mp4':\n  Duration: 00:00:01.00\n  Stream #0:0: Video: h264 (High), {pix_fmt}, 640x360, 30 fps, 30 tbr\n"
    assert video._parse_probe("x.mp4", text).full_range is full


@pytest.mark.parametrize(
    "pix_fmt, expected",
    [("yuv420p(progressive)", "bt709"), ("yuv420p(tv, bt709, progressive)", "bt709"),
     ("yuv420p(tv, bt709/bt709/linear)", "linear"), ("yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67)", "arib-std-b67"),
     ("yuvj420p(pc, bt470bg/unknown/unknown)", "bt709"), ("gray", "bt709")],
)  # fmt: skip
def test_probe_reads_the_transfer_tag(pix_fmt, expected):
    text = f"Input #0, mov, from 'x.mp4':\n  Duration: 00:00:01.00\n  Stream #0:0: Video: h264 (High), {pix_fmt}, 640x360, 30 fps, 30 tbr\n"
    assert video._parse_probe("x.mp4", text).transfer == expected


# ---------------------------------------------------------------------------------- frame times


def test_frame_times_are_exact_with_gaps_at_dropped_frames(videos):
    times = video.frame_times_ms(videos["drops"])
    assert times.dtype == np.float64
    np.testing.assert_array_equal(times, [float(Fraction(k * TICKS_PER_FRAME * 1000, 90000)) for k in KEPT])
    assert np.sum(np.diff(times) > 1.5 * 1001 / 30) == len(DROPPED)


def test_test_video_has_b_frames(videos):
    """Decode order differs from presentation order, so sorting the pts is exercised."""
    out = ffmpeg("-loglevel", "error", "-i", videos["drops"], "-c", "copy", "-f", "framecrc", "-").stdout.decode()
    pts = [int(line.split(",")[2]) for line in out.splitlines() if line and not line.startswith("#")]
    assert pts != sorted(pts)


def test_matroska_times_are_whole_ms(videos):
    times = video.frame_times_ms(videos["mkv"])
    expected = [np.floor(Fraction(k * 1001, 30) + Fraction(1, 2)) for k in KEPT]  # rounded half up to 1 ms
    np.testing.assert_array_equal(times, np.array(expected, dtype=np.float64))


def test_vfr_times_follow_the_written_clock(videos):
    n_ticks = [n * 3003 if n < 12 else 36036 + (n - 12) * 6006 + (n % 3 == 0) * 900 for n in range(N)]
    np.testing.assert_array_equal(video.frame_times_ms(videos["vfr"]), [float(Fraction(t, 90)) for t in n_ticks])


def test_edit_list_and_start_offset_keep_container_pts(videos):
    assert video.frame_times_ms(videos["editlist"])[0] == 0.0  # frames before the edit are discarded
    assert len(video.frame_times_ms(videos["editlist"])) < len(KEPT)
    assert video.frame_times_ms(videos["ts"])[0] > 1000.0  # MPEG-TS start time is kept (-copyts)
    assert video.frame_times_ms(videos["noeditlist"])[0] > 0.0  # B-frame delay without an edit list


@pytest.mark.parametrize("name", ["drops", "rotated", "mkv", "vfr", "editlist", "ts", "noeditlist"])
def test_container_times_equal_decoder_times_and_frame_count(videos, name):
    times = video.frame_times_ms(videos[name])
    np.testing.assert_array_equal(times, decoder_pts_ms(videos[name]))
    assert sum(len(chunk) for chunk in video.iter_luma(videos[name], chunk_frames=7)) == len(times)


def test_frames_without_pts_fall_back_to_decoder_times(videos, tmp_path):
    raw = remux(videos["drops"], tmp_path / "raw.h264")
    times = video.frame_times_ms(raw)
    np.testing.assert_array_equal(times, decoder_pts_ms(raw))
    assert len(times) == len(all_luma(raw))


# ------------------------------------------------------------------------------------------ luma


def test_luma_is_close_to_written_codes_in_stored_row_order(videos):
    frames = all_luma(videos["drops"], chunk_frames=4)
    assert frames.shape == (len(KEPT), H, W) and frames.dtype == np.uint8
    written = np.stack([written_luma(k) for k in KEPT]).astype(int)
    assert np.abs(frames.astype(int) - written).mean() < 1.0
    assert np.percentile(np.abs(frames.astype(int) - written), 99) <= 4
    assert [band_rows(f) for f in frames] == [[band_row(k), band_row(k) + 1] for k in KEPT]


def test_rotation_metadata_is_not_applied(videos):
    rotated = all_luma(videos["rotated"])
    np.testing.assert_array_equal(rotated, all_luma(videos["drops"]))  # same bitstream, same stored rows
    assert band_rows(rotated[0]) == [band_row(0), band_row(0) + 1]  # band not mirrored to the bottom
    assert rotated[0, H // 2, 0] < rotated[0, H // 2, -1]  # gradient not mirrored left-right


def test_width_shrink_keeps_height_and_rows(videos):
    full = all_luma(videos["drops"]).astype(float)
    narrow = all_luma(videos["drops"], width=24)
    assert narrow.shape == (len(KEPT), H, 24)
    np.testing.assert_allclose(narrow.mean(axis=2), full.mean(axis=2), atol=1.0)
    assert [band_rows(f) for f in narrow] == [[band_row(k), band_row(k) + 1] for k in KEPT]


def test_chunks_have_the_requested_size(videos):
    sizes = [len(chunk) for chunk in video.iter_luma(videos["drops"], chunk_frames=8)]
    assert sizes == [8, 8, 8, len(KEPT) - 24]


@pytest.fixture
def popen_log(monkeypatch) -> list[subprocess.Popen]:
    """Every Popen that video.py starts during the test."""
    started, real = [], subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(video.subprocess, "Popen", recording_popen)
    return started


def test_stopping_early_reaps_ffmpeg(videos, popen_log):
    chunks = video.iter_luma(videos["drops"], chunk_frames=2)
    next(chunks)
    chunks.close()
    for chunk in video.iter_luma(videos["drops"], chunk_frames=2):
        break
    del chunks, chunk  # the abandoned generator is closed when collected
    luma_runs = [proc for proc in popen_log if "rawvideo" in proc.args]
    assert len(luma_runs) == 2
    for proc in luma_runs:
        assert proc.returncode is not None and proc.stdout.closed  # waited for: no zombie


def test_ffmpeg_failure_is_flashsync_error_with_its_message(videos, monkeypatch, popen_log):
    monkeypatch.setattr(video, "LUMA_FILTER", "nosuchfilter")
    with pytest.raises(FlashsyncError, match="ffmpeg failed decoding .*Filter not found"):
        list(video.iter_luma(videos["drops"]))
    assert popen_log[-1].returncode not in (None, 0)


# ---------------------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, str]:
    """A missing path, a text file named .mp4, a directory and an audio-only file."""
    d = tmp_path_factory.mktemp("bad")
    (d / "text.mp4").write_text("not a video\n")
    ffmpeg("-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac", str(d / "audio.m4a"))
    names = {"missing": "missing.mp4", "text": "text.mp4", "dir": ".", "audio": "audio.m4a"}
    return {name: str(d / file) for name, file in names.items()}


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing", "not found"), ("text", "Invalid data"), ("dir", "not a file"), ("audio", "no video stream")],
)
@pytest.mark.parametrize("reader", [video.probe, video.frame_times_ms, lambda p: next(video.iter_luma(p))])
def test_bad_input_is_one_line_flashsync_error(bad_inputs, name, message, reader):
    with pytest.raises(FlashsyncError, match=message) as err:
        reader(bad_inputs[name])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("pix_fmt", ["yuvj420p", "yuv420p10le", "yuv444p", "gray"])
def test_other_pixel_formats_give_8bit_luma(tmp_path, pix_fmt):
    path = str(tmp_path / f"{pix_fmt}.mkv")
    codec = ["-c:v", "ffv1"] if pix_fmt == "gray" else ["-c:v", "libx264"]
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=25:d=0.4", *codec, "-pix_fmt", pix_fmt, path)
    frames = all_luma(path)
    assert frames.shape == (len(video.frame_times_ms(path)), H, W) and frames.dtype == np.uint8
    assert 0 < frames.mean() < 255
    assert video.probe(path).full_range is (pix_fmt in ("yuvj420p", "gray"))


@pytest.mark.parametrize("pix_fmt, black, white", [("yuv420p", 16, 235), ("yuvj420p", 0, 255)])
def test_black_and_white_codes_follow_the_range_probe_reports(tmp_path, pix_fmt, black, white):
    path = str(tmp_path / f"{pix_fmt}.mp4")
    source = f"color=black:s={W}x{H}:r=25:d=0.2,drawbox=x=0:y=0:w={W // 2}:h={H}:color=white:t=fill"
    ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-crf", "10", "-pix_fmt", pix_fmt, path)
    frames = all_luma(path)
    assert video.probe(path).full_range is (black == 0)
    assert abs(int(frames.min()) - black) <= 1 and abs(int(frames.max()) - white) <= 1


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": W + 1}, {"chunk_frames": 0}])
def test_bad_arguments_are_flashsync_errors(videos, kwargs):
    with pytest.raises(FlashsyncError):
        video.iter_luma(videos["drops"], **kwargs)


def test_tick_conversion_is_exact_beyond_float_integers():
    ticks = np.array([2**60 + 1, -3003, 0])
    expected = [float(Fraction(int(t) * 1000, 90000)) for t in ticks]
    np.testing.assert_array_equal(video._ticks_to_ms(ticks, Fraction(1, 90000)), expected)


def test_frame_logs_leave_out_the_side_data_every_frame_carries(tmp_path):
    """x265 (like many cameras) attaches an SEI message of kilobytes to every frame; the per-frame log must not print it."""
    path = str(tmp_path / "sei.mp4")
    try:
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r=25:d=0.4", "-c:v", "libx265", "-x265-params", "log-level=error", path)
    except AssertionError:
        pytest.skip("this ffmpeg has no libx265")
    n_frames = len(video.frame_times_ms(path))
    with_side_data = ffmpeg("-i", path, "-vf", "showinfo=checksum=0", "-f", "null", "-").stderr
    assert with_side_data.count(b"User Data") >= n_frames  # the file carries it on every frame
    log = ffmpeg("-i", path, "-vf", SHOWINFO, "-f", "null", "-").stderr
    assert b"User Data" not in log and log.count(b" n: ") == n_frames
    times = np.concatenate([t for t, _ in video.iter_luma_times(path, chunk_frames=4)])
    np.testing.assert_array_equal(times, video.frame_times_ms(path))
