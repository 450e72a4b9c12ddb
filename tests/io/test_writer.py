"""The video writer: exact, QuickTime-style, whole-ms and jittered timestamps read back as written."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.writer import write_video
from tests.decoding import decode


def kept_mask(n_sensor_frames: int, dropped: list[int]) -> np.ndarray:
    """Mask over ``n_sensor_frames`` sensor frames, False at ``dropped``."""
    kept = np.ones(n_sensor_frames, dtype=bool)
    kept[dropped] = False
    return kept


def blank_frames(kept: np.ndarray) -> np.ndarray:
    """Black 16x16 frames, one per stored frame of ``kept``, ``(n_stored, 16, 16)`` uint8."""
    return np.zeros((int(kept.sum()), 16, 16), dtype=np.uint8)


def write_and_decode(path, frame_chunks, kept, **options):
    """``write_video`` (preset ultrafast), then decode: returned pts (ms), decoded pts sorted (ms), timebase."""
    pts_ms = write_video(path, frame_chunks, kept, preset="ultrafast", **options)
    _, decoded_ms, timebase = decode(path)
    return pts_ms, np.sort(decoded_ms), timebase


def test_hundreds_of_drops_keep_exact_timestamps(tmp_path):
    rng = np.random.default_rng(0)
    kept = rng.random(900) >= 0.4
    kept[0] = True
    frames = rng.integers(0, 256, (int(kept.sum()), 16, 16), dtype=np.uint8)
    chunks = (frames[i : i + 100] for i in range(0, frames.shape[0], 100))
    path = tmp_path / "drops.mp4"
    pts_ms, decoded_ms, timebase = write_and_decode(path, chunks, kept, frame_rate=30000 / 1001)
    assert (~kept).sum() > 300 and timebase == Fraction(1, 90000)
    expected_ms = np.flatnonzero(kept) * 1001 / 30
    assert decoded_ms == pytest.approx(expected_ms, abs=500.0 * float(timebase))
    assert pts_ms == pytest.approx(expected_ms, abs=1e-9)
    with pytest.raises(FlashsyncError, match="exists"):
        write_video(path, iter([frames]), kept, frame_rate=30000 / 1001)


def test_odd_rate_gets_an_exact_timescale(tmp_path):
    kept = kept_mask(20, [3, 4, 11])
    pts_ms, decoded_ms, timebase = write_and_decode(tmp_path / "v.mp4", [blank_frames(kept)], kept, frame_rate=23.976)
    assert timebase.denominator % 90000 == 0 and timebase.denominator % 2997 == 0
    assert decoded_ms == pytest.approx(np.flatnonzero(kept) * 1000 / 23.976, abs=1e-9)
    assert pts_ms == pytest.approx(decoded_ms, abs=1e-9)


@pytest.mark.parametrize("timestamps, timescale", [("quicktime", 600), ("ms", 1000)])
def test_phone_timestamps_are_rounded_to_their_timebase(tmp_path, timestamps, timescale):
    kept = kept_mask(80, [7, 8, 30])
    frames = [blank_frames(kept)]
    pts_ms, decoded_ms, timebase = write_and_decode(
        tmp_path / "v.mp4", frames, kept, frame_rate=30000 / 1001, timestamps=timestamps
    )
    assert timebase == Fraction(1, timescale) and pts_ms == pytest.approx(decoded_ms, abs=1e-9)
    ticks = decoded_ms * timescale / 1000.0
    assert ticks == pytest.approx(np.round(ticks), abs=1e-6)
    error_ms = decoded_ms - np.flatnonzero(kept) * 1001 / 30
    assert np.all(np.abs(error_ms) <= 500.0 / timescale + 1e-9) and np.abs(error_ms).max() > 250.0 / timescale


@pytest.mark.parametrize("kind, bound_ms", [("uniform", 2.0), ("gaussian", 6.0)])
def test_jittered_timestamps_read_back_as_written(tmp_path, kind, bound_ms):
    kept = kept_mask(60, [5, 20, 21])
    frames = blank_frames(kept)
    pts_ms, decoded_ms, _ = write_and_decode(
        tmp_path / "v.mp4", [frames], kept, frame_rate=30.0, timestamps="ms", pts_jitter_ms=2.0, pts_jitter=kind
    )
    assert pts_ms == pytest.approx(decoded_ms, abs=1e-9) and np.all(np.diff(decoded_ms) > 0)
    assert decoded_ms == pytest.approx(np.round(decoded_ms), abs=1e-9)
    error_ms = decoded_ms - np.flatnonzero(kept) * 1000 / 30
    assert np.all(np.abs(error_ms) <= bound_ms + 0.5) and np.std(error_ms) > 0.6
    with pytest.raises(FlashsyncError, match="jitter"):
        write_video(tmp_path / "w.mp4", [frames], kept, frame_rate=30.0, timestamps="ms", pts_jitter_ms=30.0)
    assert not (tmp_path / "w.mp4").exists()


@pytest.mark.parametrize("transfer_name", ["linear", "arib-std-b67"])
def test_the_transfer_is_tagged_and_read_back(tmp_path, transfer_name):
    from flashsync_bayes.io.video import probe

    kept = kept_mask(4, [])
    write_video(tmp_path / "t.mp4", [blank_frames(kept)], kept, frame_rate=30.0, preset="ultrafast", transfer_name=transfer_name)
    assert probe(tmp_path / "t.mp4").transfer == transfer_name


def test_hevc_is_written_in_10_bits_as_phones_record_with_its_drops_and_timestamps(tmp_path):
    from flashsync_bayes.io.ffmpeg import run_ffmpeg
    from flashsync_bayes.io.video import probe

    kept = kept_mask(40, [5, 6, 21])
    frames = np.random.default_rng(1).integers(16, 236, (int(kept.sum()), 72, 128), dtype=np.uint8)  # x265 fails below ~64 rows
    path = tmp_path / "phone.mp4"
    pts_ms, decoded_ms, _ = write_and_decode(path, [frames], kept, frame_rate=30.0, timestamps="quicktime", codec="hevc")
    assert probe(path).codec == "hevc" and "yuv420p10le" in run_ffmpeg(["-i", str(path)]).stderr
    assert decoded_ms.size == kept.sum() and pts_ms == pytest.approx(decoded_ms, abs=1e-9)
    assert pts_ms == pytest.approx(np.flatnonzero(kept) * 1000 / 30, abs=1000 / 600 / 2)
    luma, _, _ = decode(path)  # 8-bit luma of the 10-bit file: the frames' codes, up to the encoder's loss
    assert np.mean(np.abs(luma.astype(float) - frames)) < 12.0
    with pytest.raises(FlashsyncError, match="codec must be one of h264, hevc"):
        write_video(tmp_path / "x.mp4", [frames], kept, frame_rate=30.0, codec="vp9")
