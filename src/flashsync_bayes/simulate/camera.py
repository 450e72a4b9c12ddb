"""Simulated cameras and flashes: their parameters, which sensor frames reach the file, exact leading edges.

A camera's sensor frame ``k`` starts at camera time ``k * T`` (ms); stored row ``r`` starts its
exposure ``r * T / L`` later; camera ms map to reference ms by ``t_ref = drift * t_cam + shift_ms``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.writer import CODECS, check_codec
from flashsync_bayes.transfer import BT709, check_transfer


def default_total_rows(height: int) -> int:
    """Total sensor rows of a typical video raster for ``height`` stored rows (720 -> 750, 1080 -> 1125)."""
    return int(height + math.ceil(height / 24))


@dataclasses.dataclass(frozen=True)
class Camera:
    """One simulated rolling-shutter camera.

    Attributes:
        width: stored columns (pixels).
        height: stored rows R.
        total_rows: total sensor rows L >= R (hidden rows L - R); default follows video rasters.
        frame_rate: nominal frames per second in the camera's own clock.
        exposure_ms: exposure time E of every row (ms), at most one frame period.
        drift: reference ms per camera ms (≈ 1 ± 1e-4).
        shift_ms: reference time of camera time 0 (ms).
        drop_probability: chance that a frame is dropped (never the first).
        noise_sigma: sensor noise standard deviation (grey levels).
        rotated: write 180-degree rotation metadata (frames stay in sensor order).
        transfer: how the stored codes encode light (:data:`~flashsync_bayes.transfer.TRANSFERS`, tagged in the
            file): BT.709 as cameras and phones record, ``linear`` for light itself.
        codec: how the file is compressed (:data:`~flashsync_bayes.io.writer.CODECS`): "h264" (x264, 8 bits) or
            "hevc" (x265, 10 bits, as phones record).
        shake_px: RMS displacement (pixels, along each axis) of a handheld camera's view over the scene, a smooth
            random motion that each row sees at its own time (:func:`~flashsync_bayes.simulate.render.camera_shake`);
            0 on a tripod.
    """

    width: int = 640
    height: int = 360
    total_rows: int | None = None
    frame_rate: float = 30.0
    exposure_ms: float = 5.0
    drift: float = 1.0
    shift_ms: float = 0.0
    drop_probability: float = 0.0
    noise_sigma: float = 2.0
    rotated: bool = False
    transfer: str = BT709
    codec: str = CODECS[0]
    shake_px: float = 0.0

    def __post_init__(self):
        check_transfer(self.transfer)
        check_codec(self.codec)
        if self.total_rows is None:
            object.__setattr__(self, "total_rows", default_total_rows(self.height))
        if self.width < 2 or self.height < 2:
            raise FlashsyncError(f"camera size {self.width}x{self.height} is too small")
        if self.total_rows < self.height:
            raise FlashsyncError(f"total_rows {self.total_rows} must be >= stored rows {self.height}")
        if not self.frame_rate > 0:
            raise FlashsyncError(f"frame_rate must be positive, got {self.frame_rate}")
        if not 0 < self.exposure_ms <= self.frame_period_ms:
            raise FlashsyncError(
                f"exposure_ms {self.exposure_ms} must lie in (0, frame period {self.frame_period_ms:.3f}]"
            )
        if not 0 <= self.drop_probability < 1:
            raise FlashsyncError(f"drop_probability must lie in [0, 1), got {self.drop_probability}")
        if not (math.isfinite(self.shake_px) and self.shake_px >= 0):
            raise FlashsyncError(f"shake_px must be a finite number of pixels >= 0, got {self.shake_px}")

    @property
    def frame_period_ms(self) -> float:
        """Nominal frame period T in camera ms."""
        return 1000.0 / self.frame_rate

    @property
    def line_period_ms(self) -> float:
        """Camera ms between the exposure starts of consecutive sensor rows (T / L)."""
        return self.frame_period_ms / self.total_rows

    @property
    def time_per_row_ms(self) -> float:
        """Reference ms per stored row (drift * T / L)."""
        return self.drift * self.line_period_ms


@dataclasses.dataclass(frozen=True)
class Flashes:
    """Light events in reference time, sorted by time; all fields are float64 arrays of one length.

    Attributes:
        time_ms: onset of each event (reference ms).
        decay_ms: exponential decay θ (ms); ``inf`` marks a step change of lighting.
        rise_ms: rise constant τ < θ (ms); 0 for an instant rise.
        amplitude: grey levels added to a white (albedo 1) surface by the whole pulse, or by a step
            that covers the whole exposure; negative for a light switched off.
    """

    time_ms: np.ndarray
    decay_ms: np.ndarray
    rise_ms: np.ndarray
    amplitude: np.ndarray

    def __post_init__(self):
        fields = [np.atleast_1d(np.asarray(getattr(self, f.name), dtype=np.float64)) for f in dataclasses.fields(self)]
        fields = np.broadcast_arrays(*fields)
        for f, value in zip(dataclasses.fields(self), fields):
            object.__setattr__(self, f.name, np.array(value))
        if np.any(np.diff(self.time_ms) < 0):
            raise FlashsyncError("flash times must be sorted")
        if np.any(self.decay_ms <= 0) or np.any(self.rise_ms < 0) or np.any(self.rise_ms >= self.decay_ms):
            raise FlashsyncError("need decay_ms > rise_ms >= 0 for every flash")

    def __len__(self) -> int:
        return self.time_ms.size


def sensor_frames_kept(camera: Camera, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask ``(n_frames,)`` of sensor frames that reach the file (the first always does)."""
    kept = rng.random(n_frames) >= camera.drop_probability
    kept[:1] = True
    return kept


def stored_frame_times_ms(camera: Camera, kept: np.ndarray) -> np.ndarray:
    """Camera-clock times (ms) of the stored frames: ``k * T`` for every kept sensor frame ``k``."""
    return np.flatnonzero(kept) * camera.frame_period_ms


def leading_edges(camera: Camera, flashes: Flashes, kept: np.ndarray) -> dict[str, np.ndarray]:
    """Exact leading edge of every flash in one camera.

    The leading edge is the sensor row whose exposure ends at the flash onset. Returns arrays over
    flashes: ``sensor_frame`` (sensor frame index k), ``frame`` (index among stored frames, -1 if
    that frame was dropped or lies outside the recording), ``row`` (fractional row in [0, L)), and
    ``status``: "stored" (row < R in a stored frame), "hidden" (row in the hidden rows), "dropped"
    or "outside".
    """
    camera_time = (flashes.time_ms - camera.shift_ms) / camera.drift - camera.exposure_ms
    position = camera_time / camera.frame_period_ms
    sensor_frame = np.floor(position).astype(np.int64)
    row = (position - sensor_frame) * camera.total_rows
    inside = (sensor_frame >= 0) & (sensor_frame < kept.size)
    stored_index = np.cumsum(kept) - 1
    safe = np.clip(sensor_frame, 0, kept.size - 1)
    is_kept = inside & kept[safe]
    frame = np.where(is_kept, stored_index[safe], -1)
    status = np.where(
        ~inside, "outside", np.where(~is_kept, "dropped", np.where(row < camera.height, "stored", "hidden"))
    )
    return {"sensor_frame": sensor_frame, "frame": frame, "row": row, "status": status}


def n_sensor_frames(camera: Camera, duration_s: float) -> int:
    """Sensor frames in ``duration_s`` of the camera's clock (at least one)."""
    return max(1, math.ceil(duration_s * 1000.0 / camera.frame_period_ms - 1e-9))
