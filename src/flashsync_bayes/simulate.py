"""Rolling-shutter flash simulator: the ground truth every other module is tested against.

Physics (DESIGN §2, all times in ms): sensor frame ``k`` of a camera starts at camera time
``p_k = k * T``; stored row ``r`` is exposed over camera time ``[p_k + r*T/L, p_k + r*T/L + E]``,
which maps to reference time through ``t_ref = drift * t_cam + shift_ms``. A flash at reference
time ``phi`` emits ``I(t) ∝ exp(-(t-phi)/θ) - exp(-(t-phi)/τ)`` (decay θ, rise τ, τ = 0 for an
instant rise) or, for a step change of lighting, a constant from ``phi`` on. The light a row
receives is the closed-form integral of ``I`` over its exposure window, expressed as the fraction
of the pulse energy (or, for a step, of the window) times the flash amplitude in grey levels.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from flashsync_bayes.errors import FlashsyncError

#: Exponential pulses are treated as over this many decay constants after they fire (e^-40 ≈ 4e-18).
PULSE_SPAN_DECAYS = 40.0


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

    def __post_init__(self):
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


def pulse_fraction(start_ms, end_ms, flash_ms, decay_ms, rise_ms):
    """Fraction of one event's light that falls in the reference window ``[start_ms, end_ms]``.

    For a pulse, the fraction of its total energy; for a step (``decay_ms = inf``), the lit fraction
    of the window. Broadcasts over all arguments.
    """
    x0 = jnp.maximum(start_ms - flash_ms, 0.0)
    x1 = jnp.maximum(end_ms - flash_ms, 0.0)
    is_step = jnp.isinf(decay_ms)
    has_rise = rise_ms > 0
    theta = jnp.where(is_step, 1.0, decay_ms)
    tau = jnp.where(has_rise, rise_ms, 1.0)
    decay_part = theta * (jnp.exp(-x0 / theta) - jnp.exp(-x1 / theta))
    rise_part = jnp.where(has_rise, tau * (jnp.exp(-x0 / tau) - jnp.exp(-x1 / tau)), 0.0)
    pulse = (decay_part - rise_part) / (theta - jnp.where(has_rise, rise_ms, 0.0))
    step = (x1 - x0) / (end_ms - start_ms)
    return jnp.where(is_step, step, pulse)


@partial(jax.jit, static_argnames=("n_rows", "window"))
def flash_light(
    frame_time_ms,
    flash_ms,
    decay_ms,
    rise_ms,
    amplitude,
    *,
    n_rows: int,
    line_period_ms,
    exposure_ms,
    drift,
    shift_ms,
    window: int,
):
    """Grey levels the events add to each stored row of each frame, ``(n_frames, n_rows)``.

    ``frame_time_ms`` are the frames' camera-clock times (ms); flash arrays are sorted reference
    times and shapes as in :class:`Flashes`. Each frame sums the exact integrals of its ``window``
    most recent events; steps older than the window add their full amplitude. The caller guarantees
    that no more than ``window`` events fall within a frame's span (see :func:`camera_flash_light`).
    """
    rows = jnp.arange(n_rows, dtype=jnp.float64)
    start_cam = frame_time_ms[:, None] + rows[None, :] * line_period_ms
    start_ref = drift * start_cam + shift_ms
    end_ref = drift * (start_cam + exposure_ms) + shift_ms
    n_before_end = jnp.searchsorted(flash_ms, end_ref[:, -1], side="right")
    index = n_before_end[:, None] - 1 - jnp.arange(window)[None, :]
    valid = index >= 0
    index = jnp.maximum(index, 0)
    fraction = pulse_fraction(
        start_ref[:, :, None],
        end_ref[:, :, None],
        flash_ms[index][:, None, :],
        decay_ms[index][:, None, :],
        rise_ms[index][:, None, :],
    )
    light = jnp.sum(jnp.where(valid[:, None, :], amplitude[index][:, None, :] * fraction, 0.0), axis=-1)
    step_amplitude = jnp.where(jnp.isinf(decay_ms), amplitude, 0.0)
    steps_before = jnp.concatenate([jnp.zeros(1), jnp.cumsum(step_amplitude)])
    older_steps = steps_before[jnp.maximum(n_before_end - window, 0)]
    return light + older_steps[:, None]


def _events_per_frame(camera: Camera, flashes: Flashes, frame_time_ms: np.ndarray) -> int:
    """Most events that any frame's exposure span (plus pulse tails) overlaps."""
    first_start = camera.drift * frame_time_ms + camera.shift_ms
    last_end = camera.drift * (frame_time_ms + (camera.height - 1) * camera.line_period_ms + camera.exposure_ms)
    last_end = last_end + camera.shift_ms
    finite = np.isfinite(flashes.decay_ms)
    tail = PULSE_SPAN_DECAYS * float(flashes.decay_ms[finite].max()) if finite.any() else 0.0
    lo = np.searchsorted(flashes.time_ms, first_start - tail, side="left")
    hi = np.searchsorted(flashes.time_ms, last_end, side="right")
    return int((hi - lo).max()) if frame_time_ms.size else 0


def camera_flash_light(camera: Camera, flashes: Flashes, frame_time_ms) -> np.ndarray:
    """Grey levels the flashes add to every stored row of the given frames, ``(n_frames, height)``.

    ``frame_time_ms`` are camera-clock frame times (ms), e.g. :func:`stored_frame_times_ms`.
    """
    frame_time_ms = np.asarray(frame_time_ms, dtype=np.float64)
    if len(flashes) == 0:
        return np.zeros((frame_time_ms.size, camera.height))
    window = max(1, 1 << (_events_per_frame(camera, flashes, frame_time_ms) - 1).bit_length())
    light = flash_light(
        jnp.asarray(frame_time_ms),
        jnp.asarray(flashes.time_ms),
        jnp.asarray(flashes.decay_ms),
        jnp.asarray(flashes.rise_ms),
        jnp.asarray(flashes.amplitude),
        n_rows=camera.height,
        line_period_ms=camera.line_period_ms,
        exposure_ms=camera.exposure_ms,
        drift=camera.drift,
        shift_ms=camera.shift_ms,
        window=window,
    )
    return np.asarray(light)


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
