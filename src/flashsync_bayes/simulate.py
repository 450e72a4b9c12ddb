"""Rolling-shutter flash simulator: the ground truth every other module is tested against.

Physics (DESIGN §2, all times in ms): sensor frame ``k`` of a camera starts at camera time
``p_k = k * T``; stored row ``r`` is exposed over camera time ``[p_k + r*T/L, p_k + r*T/L + E]``,
which maps to reference time through ``t_ref = drift * t_cam + shift_ms``. A flash at reference
time ``phi`` emits ``I(t) ∝ exp(-(t-phi)/θ) - exp(-(t-phi)/τ)`` (decay θ, rise τ, τ = 0 for an
instant rise) or, for a step change of lighting, a constant from ``phi`` on. The light a row
receives is the closed-form integral of ``I`` over its exposure window, expressed as the fraction
of the pulse energy (or, for a step, of the window) times the flash amplitude in grey levels.

Indoor footage (:class:`Scene`, :func:`scene_preset`): mains lamps flicker at twice the mains
frequency on the reference clock and each row integrates that flicker over its own exposure window
in closed form (:func:`window_mean_sine`); a flash may light only a span of columns; an emitting
"window" saturates; an auto-exposure loop sets one sensor gain per frame from the frames before
(:func:`exposure_gains`). Videos get exact, QuickTime-style (1/600 s) or whole-millisecond
container timestamps, optionally jittered, while the sensor keeps its exact clock.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from flashsync_bayes import sensors
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.video import ffmpeg_exe, frame_ticks, last_line

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


def row_windows(frame_time_ms, *, n_rows: int, line_period_ms, exposure_ms, drift, shift_ms):
    """Exposure of every stored row of every frame, ``(middle_s, start_ms, end_ms)``, each ``(n_frames, n_rows)``.

    ``frame_time_ms`` are camera-clock frame times (ms); ``start_ms``/``end_ms`` bound the row's
    exposure window in reference ms, ``middle_s`` is the reference time of its middle in seconds.
    """
    rows = jnp.arange(n_rows, dtype=jnp.float64)
    start_cam = frame_time_ms[:, None] + rows[None, :] * line_period_ms
    start_ms = drift * start_cam + shift_ms
    end_ms = drift * (start_cam + exposure_ms) + shift_ms
    middle_s = (drift * (start_cam + 0.5 * exposure_ms) + shift_ms) / 1000.0
    return middle_s, start_ms, end_ms


def window_mean_sine(start_ms, end_ms, frequency_hz, phase):
    """Mean of ``sin(2π f t + phase)`` (t in reference s) over the window ``[start_ms, end_ms]``.

    Closed form ``sin(2π f t_mid + phase) * sinc(f * duration)``: exactly 0 when the window holds
    whole periods. Broadcasts over all arguments; the phase is reduced modulo one period in float64.
    """
    cycles_per_ms = frequency_hz / 1000.0
    middle_cycles = jnp.mod(cycles_per_ms * (0.5 * (start_ms + end_ms)), 1.0)
    return jnp.sin(2 * jnp.pi * middle_cycles + phase) * jnp.sinc(cycles_per_ms * (end_ms - start_ms))


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
    _, start_ref, end_ref = row_windows(
        frame_time_ms,
        n_rows=n_rows,
        line_period_ms=line_period_ms,
        exposure_ms=exposure_ms,
        drift=drift,
        shift_ms=shift_ms,
    )
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


def _flash_window(camera: Camera, flashes: Flashes, frame_time_ms: np.ndarray) -> int:
    """``window`` of :func:`flash_light` for these frames: :func:`_events_per_frame` rounded up to a power of two.

    Powers of two keep the number of compiled kernels small.
    """
    busiest = _events_per_frame(camera, flashes, frame_time_ms) if len(flashes) else 0
    return 1 << max(busiest - 1, 0).bit_length()


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


def camera_flash_light(camera: Camera, flashes: Flashes, frame_time_ms, *, row_step: float = 1.0) -> np.ndarray:
    """Grey levels the flashes add to stored rows of the given frames, ``(n_frames, n_rows)``.

    ``frame_time_ms`` are camera-clock frame times (ms), e.g. :func:`stored_frame_times_ms`. Rows
    ``0, row_step, 2 * row_step, ...`` below ``height`` (``n_rows = ceil(height / row_step)``);
    the default is every stored row.
    """
    frame_time_ms = np.asarray(frame_time_ms, dtype=np.float64)
    n_rows = math.ceil(camera.height / row_step)
    if len(flashes) == 0:
        return np.zeros((frame_time_ms.size, n_rows))
    window = _flash_window(camera, flashes, frame_time_ms)
    light = flash_light(
        jnp.asarray(frame_time_ms),
        jnp.asarray(flashes.time_ms),
        jnp.asarray(flashes.decay_ms),
        jnp.asarray(flashes.rise_ms),
        jnp.asarray(flashes.amplitude),
        n_rows=n_rows,
        line_period_ms=camera.line_period_ms * row_step,
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


def simulate_events(
    cameras,
    flashes: Flashes,
    duration_ms: float,
    seed: int,
    *,
    row_sd: float = 0.15,
    miss_probability: float = 0.0,
    n_spurious: int = 0,
    labels=None,
):
    """Event-level simulation: an events dataset of noisy leading edges, without rendering frames.

    Each camera records ``duration_ms`` of its own clock. Every flash whose leading edge lies in
    stored rows of a stored frame is reported (unless missed with ``miss_probability``) at its true
    row plus Gaussian noise of ``row_sd`` rows; ``n_spurious`` events per camera land at random
    frames and rows. The extra event variable ``true_flash`` holds the flash index (-1 spurious).
    Returns ``(events, kept)`` with ``kept`` the per-camera masks of stored sensor frames.
    """
    from flashsync_bayes.events import make_events

    rng = np.random.default_rng(seed)
    labels = list(labels) if labels is not None else [f"cam{i}" for i in range(len(cameras))]
    columns = {name: [] for name in ("event_camera", "frame", "frame_time_ms", "row", "row_sd", "true_flash")}
    info = {name: [] for name in ("path", "width", "height", "frame_period_ms", "n_frames", "rotation_deg")}
    all_kept = []
    for label, camera in zip(labels, cameras):
        kept = sensor_frames_kept(camera, int(np.ceil(duration_ms / camera.frame_period_ms)), rng)
        all_kept.append(kept)
        pts_ms = stored_frame_times_ms(camera, kept)
        edges = leading_edges(camera, flashes, kept)
        seen = (edges["status"] == "stored") & (rng.random(len(flashes)) >= miss_probability)
        flash_index = np.flatnonzero(seen)
        spurious_frame = rng.integers(0, pts_ms.size, n_spurious)
        frame = np.concatenate([edges["frame"][seen], spurious_frame])
        true_row = np.concatenate([edges["row"][seen], rng.uniform(0, camera.height - 1, n_spurious)])
        columns["event_camera"] += [label] * frame.size
        columns["frame"].append(frame)
        columns["frame_time_ms"].append(pts_ms[frame])
        columns["row"].append(true_row + rng.normal(0.0, row_sd, frame.size))
        columns["row_sd"].append(np.full(frame.size, row_sd))
        columns["true_flash"].append(np.concatenate([flash_index, np.full(n_spurious, -1)]))
        for name, value in zip(
            info, (f"{label}.mp4", camera.width, camera.height, camera.frame_period_ms, pts_ms.size, 0)
        ):
            info[name].append(value)
    event_info = {k: (np.concatenate(v) if k != "event_camera" else v) for k, v in columns.items()}
    events = make_events(labels, info, event_info, attrs={"simulated": 1})
    return events, all_kept


# --------------------------------------------------------------------------------------------
# Full frames: a textured scene with moving objects, lit by ambient light and the flashes.
# --------------------------------------------------------------------------------------------

#: Albedo range of the simulated scene (white is 1).
ALBEDO_RANGE = (0.15, 1.0)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A static textured background and moving objects under ambient light, outdoors or indoors.

    Positions are in normalised picture coordinates (``u`` across, ``v`` down, both in [0, 1]), so
    cameras of any size see the same scene. Every camera of a recording may share one scene. The
    defaults are the "clean" scene of :func:`scene_preset`: steady lamps, flashes over the whole
    picture, no window, no auto-exposure.

    Attributes:
        seed: seed of the background texture, the objects, the slow ambient phase and the layout
            (:func:`scene_layout`).
        ambient: grey levels a white (albedo 1) surface shows under ambient light alone.
        ambient_variation: relative amplitude of the slow sinusoidal change of ambient light.
        ambient_period_s: period of that change (s).
        n_objects: moving discs and rectangles, each with its own albedo and constant velocity.
        n_blocks: sharp-edged rectangles in the background.
        max_speed: fastest object speed (picture widths per second).
        mains_hz: mains frequency (Hz); lamps flicker at twice it (50 -> 100 Hz, 60 -> 120 Hz).
        flicker_modulation: relative flicker amplitude m (0 = steady lamps; real lamps up to ~0.35).
        flicker_phase: phase of the flicker ``sin(2π f t + phase)`` at reference time 0 (rad).
        flicker_harmonic: amplitude of the flicker's second harmonic (at 2 f) relative to m.
        flicker_harmonic_phase: phase of that harmonic at reference time 0 (rad).
        flash_coverage: fraction of the picture's columns the flashes reach, one span, in (0, 1].
        flash_falloff: relative change of flash intensity across the span (± this, e.g. 0.3).
        window_luminance: grey levels (before gain and clipping) of a bright emitting window placed
            in columns the flashes do not reach; 0 for none. Not flickering, not lit by flashes.
        ae_strength: deepest auto-exposure gain change (0.2: the gain stays within 0.8-1.25); 0 = off.
        ae_rate: share of the metered log brightness error the AE loop corrects per frame, in (0, 1].
        ae_delay_frames: frames from a metered frame to the first frame whose gain it changes (>= 1).
    """

    seed: int = 0
    ambient: float = 90.0
    ambient_variation: float = 0.03
    ambient_period_s: float = 5.0
    n_objects: int = 3
    n_blocks: int = 6
    max_speed: float = 0.4
    mains_hz: float = 50.0
    flicker_modulation: float = 0.0
    flicker_phase: float = 0.0
    flicker_harmonic: float = 0.0
    flicker_harmonic_phase: float = 0.0
    flash_coverage: float = 1.0
    flash_falloff: float = 0.0
    window_luminance: float = 0.0
    ae_strength: float = 0.0
    ae_rate: float = 0.5
    ae_delay_frames: int = 1

    def __post_init__(self):
        if not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise FlashsyncError(f"scene seed must be a non-negative integer, got {self.seed!r}")
        if not 0 <= self.ambient <= 255:
            raise FlashsyncError(f"ambient must lie in [0, 255] grey levels, got {self.ambient}")
        if not 0 <= self.ambient_variation < 1:
            raise FlashsyncError(f"ambient_variation must lie in [0, 1), got {self.ambient_variation}")
        if not self.ambient_period_s > 0:
            raise FlashsyncError(f"ambient_period_s must be positive, got {self.ambient_period_s}")
        if self.n_objects < 0 or self.n_blocks < 0 or not self.max_speed >= 0:
            raise FlashsyncError("n_objects, n_blocks and max_speed must be non-negative")
        if not (math.isfinite(self.mains_hz) and self.mains_hz > 0):
            raise FlashsyncError(f"mains_hz must be a positive frequency (50 or 60), got {self.mains_hz}")
        if not (self.flicker_modulation >= 0 and self.flicker_harmonic >= 0):
            raise FlashsyncError("flicker_modulation and flicker_harmonic must be non-negative")
        if not self.flicker_modulation * (1 + self.flicker_harmonic) < 1:
            raise FlashsyncError("lamps emit no negative light: keep flicker_modulation * (1 + flicker_harmonic) < 1")
        if not (math.isfinite(self.flicker_phase) and math.isfinite(self.flicker_harmonic_phase)):
            raise FlashsyncError("flicker phases must be finite (radians)")
        if not 0 < self.flash_coverage <= 1:
            raise FlashsyncError(f"flash_coverage must lie in (0, 1], got {self.flash_coverage}")
        if not 0 <= self.flash_falloff < 1:
            raise FlashsyncError(f"flash_falloff must lie in [0, 1), got {self.flash_falloff}")
        if not (math.isfinite(self.window_luminance) and self.window_luminance >= 0):
            raise FlashsyncError(f"window_luminance must be >= 0 grey levels, got {self.window_luminance}")
        if not 0 <= self.ae_strength < 1:
            raise FlashsyncError(f"ae_strength must lie in [0, 1) (0.2 = dips up to 20 %), got {self.ae_strength}")
        if self.ae_strength > 0 and not self.ambient > 0:
            raise FlashsyncError("auto-exposure meters against the ambient light; it needs ambient > 0")
        if not 0 < self.ae_rate <= 1:
            raise FlashsyncError(f"ae_rate must lie in (0, 1], got {self.ae_rate}")
        if not (isinstance(self.ae_delay_frames, (int, np.integer)) and self.ae_delay_frames >= 1):
            raise FlashsyncError(f"ae_delay_frames must be an integer >= 1, got {self.ae_delay_frames!r}")


#: Names accepted by :func:`scene_preset`.
SCENE_PRESETS = ("clean", "indoor_50hz", "indoor_60hz")


def scene_preset(name: str, seed: int = 0, **overrides) -> Scene:
    """A named :class:`Scene`; ``overrides`` replace any of its fields.

    - ``clean``: the defaults (steady light, flashes everywhere, no auto-exposure).
    - ``indoor_50hz`` / ``indoor_60hz``: lamps flickering at 100 / 120 Hz with modulation 0.3 and a
      second harmonic of 0.15 (random phases, mains within ±0.05 Hz of nominal), flashes reaching
      65 % of the columns with ±20 % falloff, a saturated window (400 grey levels) beside them,
      auto-exposure dips up to 15 % (rate 0.5, two frames' delay), ambient changing ±5 % over 8 s.
    """
    if name not in SCENE_PRESETS:
        raise FlashsyncError(f"unknown scene preset '{name}'; known: {', '.join(SCENE_PRESETS)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Scene)}
    if unknown:
        raise FlashsyncError(f"Scene has no field {', '.join(sorted(unknown))}")
    fields = {}
    if name.startswith("indoor_"):
        rng = np.random.default_rng([seed, 4])
        fields = {
            "ambient_variation": 0.05,
            "ambient_period_s": 8.0,
            "mains_hz": (50.0 if name == "indoor_50hz" else 60.0) + float(rng.uniform(-0.05, 0.05)),
            "flicker_modulation": 0.3,
            "flicker_phase": float(rng.uniform(0, 2 * np.pi)),
            "flicker_harmonic": 0.15,
            "flicker_harmonic_phase": float(rng.uniform(0, 2 * np.pi)),
            "flash_coverage": 0.65,
            "flash_falloff": 0.2,
            "window_luminance": 400.0,
            "ae_strength": 0.15,
            "ae_rate": 0.5,
            "ae_delay_frames": 2,
        }
    return Scene(seed=seed, **{**fields, **overrides})


class SceneLayout(NamedTuple):
    """Where a scene's flashes reach and where its window is, in normalised picture coordinates.

    Attributes:
        flash_u: ``(u0, u1)``, the span of columns the flashes light (``(0, 1)`` at full coverage).
        flash_peak_u: the column where the flash light is strongest (the falloff is centred there).
        window: ``(u0, v0, u1, v1)`` of the emitting window, or None without one.
    """

    flash_u: tuple[float, float]
    flash_peak_u: float
    window: tuple[float, float, float, float] | None


#: Space (picture fractions) kept between the flash span and the window.
WINDOW_MARGIN = 0.02


def scene_layout(scene: Scene) -> SceneLayout:
    """The scene's flash span and window, drawn from its seed (the same for every camera).

    The window lies in the wider of the two column gaps beside the flash span, 50-80 % of its
    width, 20-40 % of the picture high; where the gaps are too narrow it may lie anywhere.
    """
    rng = np.random.default_rng([scene.seed, 3])
    u0 = float(rng.uniform(0.0, 1.0 - scene.flash_coverage))
    u1 = u0 + scene.flash_coverage
    peak = float(rng.uniform(u0, u1))
    width_draw, place_draw, height_draw, top_draw = rng.uniform(size=4)
    gap_lo, gap_hi = (0.0, u0) if u0 >= 1.0 - u1 else (u1, 1.0)
    room = gap_hi - gap_lo - 2 * WINDOW_MARGIN
    if room >= 0.05:
        width = (0.5 + 0.3 * width_draw) * room
        left = gap_lo + WINDOW_MARGIN + place_draw * (room - width)
    else:
        width = 0.1 + 0.1 * width_draw
        left = place_draw * (1.0 - width)
    height = 0.2 + 0.2 * height_draw
    top = 0.05 + top_draw * (0.9 - height)
    window = (float(left), float(top), float(left + width), float(top + height))
    return SceneLayout((u0, u1), peak, window if scene.window_luminance > 0 else None)


def _soft_inside(offset, half, n_pixels):
    """Coverage of an interval of half width ``half`` at ``offset`` from its centre, with a one-pixel soft edge.

    ``offset`` and ``half`` in picture fractions, ``n_pixels`` pixels per picture.
    """
    return jnp.clip(0.5 + (half - jnp.abs(offset)) * n_pixels, 0.0, 1.0)


def _pixel_centres(n_pixels: int) -> np.ndarray:
    """Normalised coordinates of ``n_pixels`` pixel centres, ``(n_pixels,)``."""
    return (np.arange(n_pixels) + 0.5) / n_pixels


def flash_column_gain(scene: Scene, width: int) -> np.ndarray:
    """Flash light of every column relative to the amplitude, ``(width,)`` float64.

    0 outside the flash span (one-pixel soft edges), ``1 + falloff * cos(π (u - peak) / coverage)``
    inside; exactly 1 everywhere for full coverage without falloff.
    """
    u = _pixel_centres(width)
    layout = scene_layout(scene)
    (u0, u1), peak = layout.flash_u, layout.flash_peak_u
    reach = 1.0 if scene.flash_coverage >= 1 else np.asarray(_soft_inside(u - 0.5 * (u0 + u1), 0.5 * (u1 - u0), width))
    profile = 1.0 + scene.flash_falloff * np.cos(np.pi * (u - peak) / scene.flash_coverage)
    return np.asarray(reach * profile, dtype=np.float64)


def window_mask(scene: Scene, width: int, height: int) -> np.ndarray | None:
    """Share of every pixel the scene's window covers, ``(height, width)`` float32, or None without a window."""
    window = scene_layout(scene).window
    if window is None:
        return None
    u0, v0, u1, v1 = window
    across = _soft_inside(_pixel_centres(width) - 0.5 * (u0 + u1), 0.5 * (u1 - u0), width)
    down = _soft_inside(_pixel_centres(height) - 0.5 * (v0 + v1), 0.5 * (v1 - v0), height)
    return np.asarray(down[:, None] * across[None, :], dtype=np.float32)


class Lighting(NamedTuple):
    """A scene's ambient light as floats (a pytree); see :func:`ambient_light`.

    Attributes:
        ambient: grey levels on a white surface, averaged over the flicker.
        variation, period_s, phase: the slow change ``1 + variation * sin(2π t / period_s + phase)``,
            t in reference s.
        flicker_hz: lamp flicker frequency, twice the mains frequency (Hz).
        modulation, flicker_phase, harmonic, harmonic_phase: the flicker, as in :class:`Scene`.
    """

    ambient: float
    variation: float
    period_s: float
    phase: float
    flicker_hz: float
    modulation: float
    flicker_phase: float
    harmonic: float
    harmonic_phase: float


def scene_lighting(scene: Scene) -> Lighting:
    """The :class:`Lighting` of ``scene`` (the slow change's phase is drawn from its seed)."""
    phase = float(np.random.default_rng([scene.seed, 2]).uniform(0, 2 * np.pi))
    return Lighting(
        float(scene.ambient),
        float(scene.ambient_variation),
        float(scene.ambient_period_s),
        phase,
        2.0 * float(scene.mains_hz),
        float(scene.flicker_modulation),
        float(scene.flicker_phase),
        float(scene.flicker_harmonic),
        float(scene.flicker_harmonic_phase),
    )


def ambient_light(lighting: Lighting, middle_s, start_ms, end_ms):
    """Grey levels the ambient light gives a white surface over exposure windows (arguments broadcast).

    Lamps emit ``ambient * slow(t) * (1 + m * (sin(2π f t + φ) + h * sin(4π f t + φ2)))`` on the
    reference clock. The slow change is taken at the window's middle ``middle_s`` (reference s);
    the flicker is averaged exactly over ``[start_ms, end_ms]`` (reference ms).
    """
    slow = lighting.ambient * (
        1.0 + lighting.variation * jnp.sin(2 * jnp.pi * middle_s / lighting.period_s + lighting.phase)
    )
    flicker = window_mean_sine(start_ms, end_ms, lighting.flicker_hz, lighting.flicker_phase)
    flicker = flicker + lighting.harmonic * window_mean_sine(
        start_ms, end_ms, 2.0 * lighting.flicker_hz, lighting.harmonic_phase
    )
    return slow * (1.0 + lighting.modulation * flicker)


def camera_ambient_light(camera: Camera, scene: Scene, frame_time_ms) -> np.ndarray:
    """Grey levels the ambient light gives a white surface in every stored row, ``(n_frames, height)``.

    ``frame_time_ms`` are camera-clock frame times (ms); what :func:`render_frames` uses before gain.
    """
    windows = row_windows(
        jnp.asarray(frame_time_ms, dtype=jnp.float64),
        n_rows=camera.height,
        line_period_ms=camera.line_period_ms,
        exposure_ms=camera.exposure_ms,
        drift=camera.drift,
        shift_ms=camera.shift_ms,
    )
    return np.asarray(ambient_light(scene_lighting(scene), *windows))


# ----------------------------------------------------------------------------- auto-exposure

#: The auto-exposure meter samples flash light on at most this many evenly spaced rows...
AE_METER_ROWS = 64
#: ...and reads the mean of the brightest this share of them (highlight-weighted metering).
AE_METER_TOP_FRACTION = 0.1


def auto_exposure_gains(excess, *, strength: float, rate: float, delay_frames: int) -> np.ndarray:
    """Sensor gain of every frame from a first-order loop in log gain, ``(n_frames,)`` float64.

    ``excess[k]`` is frame k's metered brightness at gain 1 relative to the scene without flashes,
    minus 1 (0.3: 30 % brighter). Frame 0 has gain 1; then ``log G[k+1] = log G[k] - rate * (log
    G[m] + log(1 + excess[m]))`` with ``m = k + 1 - delay_frames``, clipped to ``|log G| <=
    -log(1 - strength)``: the brightness the meter saw, relative to its target, is corrected in
    steps. Without flashes every gain is exactly 1.
    """
    excess = np.asarray(excess, dtype=np.float64)
    limit = -math.log1p(-strength)
    brightness = np.log(np.maximum(1.0 + excess, 1e-3))
    log_gain = np.zeros(excess.size)
    for k in range(excess.size - 1):
        metered = k + 1 - delay_frames
        error = log_gain[metered] + brightness[metered] if metered >= 0 else 0.0
        log_gain[k + 1] = min(max(log_gain[k] - rate * error, -limit), limit)
    return np.exp(log_gain)


def exposure_gains(camera: Camera, flashes: Flashes, scene: Scene, n_sensor_frames: int) -> np.ndarray:
    """Auto-exposure gain of sensor frames ``0 .. n_sensor_frames - 1``, ``(n_sensor_frames,)`` float64.

    The meter reads each frame's flash light on :data:`AE_METER_ROWS` rows, averages the brightest
    :data:`AE_METER_TOP_FRACTION` of them, weights by the mean of :func:`flash_column_gain` and
    divides by ``scene.ambient``; :func:`auto_exposure_gains` turns that into gains. Dropped frames
    are metered too (the sensor runs on). All ones when AE is off or there are no flashes.
    """
    if scene.ae_strength == 0 or len(flashes) == 0:
        return np.ones(n_sensor_frames)
    frame_time_ms = stored_frame_times_ms(camera, np.ones(n_sensor_frames, dtype=bool))
    row_step = max(1.0, camera.height / AE_METER_ROWS)
    rows = camera_flash_light(camera, flashes, frame_time_ms, row_step=row_step)
    n_top = max(1, round(AE_METER_TOP_FRACTION * rows.shape[1]))
    highlight = np.sort(rows, axis=1)[:, -n_top:].mean(axis=1)
    excess = highlight * flash_column_gain(scene, camera.width).mean() / scene.ambient
    return auto_exposure_gains(
        excess, strength=scene.ae_strength, rate=scene.ae_rate, delay_frames=int(scene.ae_delay_frames)
    )


# ----------------------------------------------------------------------------------- rendering


class SceneObjects(NamedTuple):
    """Moving objects, arrays of shape ``(n_objects,)``, drawn in order (later ones in front).

    Attributes:
        center_u, center_v: centre at reference time 0 (picture fractions).
        velocity_u, velocity_v: picture fractions per second; objects wrap around the picture.
        half_u, half_v: half widths (rectangles) or radii (discs) in picture fractions.
        albedo: reflectance in ``ALBEDO_RANGE``.
        is_disc: True for an (elliptical in pixels) disc, False for a rectangle.
    """

    center_u: np.ndarray
    center_v: np.ndarray
    velocity_u: np.ndarray
    velocity_v: np.ndarray
    half_u: np.ndarray
    half_v: np.ndarray
    albedo: np.ndarray
    is_disc: np.ndarray


class FrameModel(NamedTuple):
    """Everything :func:`render_frames` needs for one camera, as arrays and scalars (a pytree).

    Attributes:
        background: static albedo ``(height, width)`` float32.
        objects: the moving objects.
        lighting: the ambient light (:func:`ambient_light`).
        flash_column_gain: flash light of every column relative to its amplitude, ``(width,)`` float64.
        window_mask: share of each pixel the emitting window covers, ``(height, width)`` float32,
            or None without a window (then no window code is traced).
        window_luminance: grey levels the window emits.
        frame_period_ms, line_period_ms, exposure_ms, drift, shift_ms: camera timing (DESIGN §2).
        noise_sigma: sensor noise standard deviation (grey levels).
        flash_ms, decay_ms, rise_ms, amplitude: the flashes (see :class:`Flashes`), never empty.
    """

    background: jnp.ndarray
    objects: SceneObjects
    lighting: Lighting
    flash_column_gain: jnp.ndarray
    window_mask: jnp.ndarray | None
    window_luminance: float
    frame_period_ms: float
    line_period_ms: float
    exposure_ms: float
    drift: float
    shift_ms: float
    noise_sigma: float
    flash_ms: jnp.ndarray
    decay_ms: jnp.ndarray
    rise_ms: jnp.ndarray
    amplitude: jnp.ndarray


def scene_background(scene: Scene, width: int, height: int) -> np.ndarray:
    """Static albedo of the scene sampled at pixel centres, ``(height, width)`` float32 in ``ALBEDO_RANGE``.

    Smooth random cosine patterns (a few coarse, some fine texture) plus sharp-edged blocks.
    """
    rng = np.random.default_rng([scene.seed, 0])
    u = _pixel_centres(width)
    v = _pixel_centres(height)
    field = np.zeros((height, width))
    total = 0.0
    for max_cycles, weight in ((4.0, 1.0), (4.0, 1.0), (4.0, 0.8), (4.0, 0.8), (20.0, 0.3), (40.0, 0.2)):
        cycles_u, cycles_v = rng.uniform(-max_cycles, max_cycles, 2)
        phase = rng.uniform(0, 2 * np.pi)
        field += weight * np.cos(2 * np.pi * (cycles_u * u[None, :] + cycles_v * v[:, None]) + phase)
        total += weight
    low, high = ALBEDO_RANGE
    albedo = low + (high - low) * (0.5 + 0.5 * field / total)
    for _ in range(scene.n_blocks):
        u0, v0 = rng.uniform(0, 0.9, 2)
        u1, v1 = u0 + rng.uniform(0.03, 0.3), v0 + rng.uniform(0.03, 0.3)
        inside = ((v >= v0) & (v < v1))[:, None] & ((u >= u0) & (u < u1))[None, :]
        albedo[inside] = rng.uniform(low, high)
    return albedo.astype(np.float32)


def scene_objects(scene: Scene) -> SceneObjects:
    """The scene's moving objects (random discs and rectangles, constant velocities)."""
    rng = np.random.default_rng([scene.seed, 1])
    n = scene.n_objects
    speed = rng.uniform(0.25, 1.0, n) * scene.max_speed
    direction = rng.uniform(0, 2 * np.pi, n)
    is_disc = rng.random(n) < 0.5
    half_v = rng.uniform(0.05, 0.2, n)
    half_u = np.where(is_disc, half_v * 9 / 16, rng.uniform(0.03, 0.15, n))
    return SceneObjects(
        center_u=rng.uniform(0, 1, n),
        center_v=rng.uniform(0, 1, n),
        velocity_u=speed * np.cos(direction),
        velocity_v=speed * np.sin(direction),
        half_u=half_u,
        half_v=half_v,
        albedo=rng.uniform(*ALBEDO_RANGE, n),
        is_disc=is_disc,
    )


def frame_model(camera: Camera, flashes: Flashes, scene: Scene) -> FrameModel:
    """The arrays :func:`render_frames` needs to draw ``camera``'s view of ``scene`` under ``flashes``."""
    if len(flashes):
        flash_arrays = (flashes.time_ms, flashes.decay_ms, flashes.rise_ms, flashes.amplitude)
    else:  # one dark, long-past pulse keeps the arrays non-empty
        flash_arrays = (np.array([-1e30]), np.ones(1), np.zeros(1), np.zeros(1))
    objects = SceneObjects(*(jnp.asarray(a) for a in scene_objects(scene)))
    mask = window_mask(scene, camera.width, camera.height)
    return FrameModel(
        jnp.asarray(scene_background(scene, camera.width, camera.height)),
        objects,
        scene_lighting(scene),
        jnp.asarray(flash_column_gain(scene, camera.width)),
        None if mask is None else jnp.asarray(mask),
        float(scene.window_luminance),
        float(camera.frame_period_ms),
        float(camera.line_period_ms),
        float(camera.exposure_ms),
        float(camera.drift),
        float(camera.shift_ms),
        float(camera.noise_sigma),
        *(jnp.asarray(a, dtype=jnp.float64) for a in flash_arrays),
    )


def _wrap(position, half):
    """Position wrapped into ``[-half, 1 + half)`` so objects leave on one side and re-enter on the other."""
    return jnp.mod(position + half, 1.0 + 2.0 * half) - half


def _scene_albedo(model: FrameModel, time_s):
    """Albedo of every pixel with objects placed at each row's time, and the share of each pixel
    where the window shows (None without a window), both ``(n_frames, height, width)`` float32.
    """
    n_rows, n_cols = model.background.shape
    u = (jnp.arange(n_cols, dtype=jnp.float32) + 0.5) / n_cols
    v = (jnp.arange(n_rows, dtype=jnp.float32) + 0.5) / n_rows
    shape = time_s.shape[:1] + model.background.shape
    albedo = jnp.broadcast_to(model.background, shape)
    window = None if model.window_mask is None else jnp.broadcast_to(model.window_mask, shape)
    obj = model.objects
    for i in range(obj.albedo.shape[0]):
        center_u = _wrap(obj.center_u[i] + obj.velocity_u[i] * time_s, obj.half_u[i]).astype(jnp.float32)
        center_v = _wrap(obj.center_v[i] + obj.velocity_v[i] * time_s, obj.half_v[i]).astype(jnp.float32)
        du = u[None, None, :] - center_u[:, :, None]
        dv = (v[None, :] - center_v)[:, :, None]
        half_u = obj.half_u[i].astype(jnp.float32)
        half_v = obj.half_v[i].astype(jnp.float32)
        # coverage with a one-pixel soft edge
        radius = jnp.sqrt((du / half_u) ** 2 + (dv / half_v) ** 2)
        disc = jnp.clip(0.5 + (1.0 - radius) * half_v * n_rows, 0.0, 1.0)
        rect = _soft_inside(du, half_u, n_cols) * _soft_inside(dv, half_v, n_rows)
        cover = jnp.where(obj.is_disc[i], disc, rect)
        albedo = albedo + cover * (obj.albedo[i].astype(jnp.float32) - albedo)
        if window is not None:  # objects pass in front of the window
            window = window * (1.0 - cover)
    return albedo, window


def render_frames(model: FrameModel, noise_key, sensor_frame, gain, *, window: int):
    """Grey frames of the given sensor frame indices, ``(n_frames, height, width)`` uint8.

    Pure JAX (jit with ``window`` static; :func:`render_chunks` does). A pixel is
    ``gain_k * albedo(x, y, t_row) * (ambient(row) + flash light of its row * column gain(x)) +
    noise``, clipped to 0..255, where ``t_row`` is the reference time of the middle of the row's
    exposure, ``ambient(row)`` integrates the lamps' flicker over the row's exposure window
    (:func:`ambient_light`) and ``gain`` ``(n_frames,)`` holds each frame's sensor gain
    (:func:`exposure_gains`). Where the window shows, the pixel is ``gain_k * window_luminance +
    noise`` instead. The noise of sensor frame ``k`` comes from ``fold_in(noise_key, k)``, so frames
    do not depend on how they are batched. ``window`` bounds the flashes overlapping one frame (see
    :func:`flash_light`).
    """
    n_rows, n_cols = model.background.shape
    sensor_frame = jnp.asarray(sensor_frame)
    frame_time_ms = sensor_frame.astype(jnp.float64) * model.frame_period_ms
    middle_s, start_ms, end_ms = row_windows(
        frame_time_ms,
        n_rows=n_rows,
        line_period_ms=model.line_period_ms,
        exposure_ms=model.exposure_ms,
        drift=model.drift,
        shift_ms=model.shift_ms,
    )
    ambient = ambient_light(model.lighting, middle_s, start_ms, end_ms)
    flash = flash_light(
        frame_time_ms,
        model.flash_ms,
        model.decay_ms,
        model.rise_ms,
        model.amplitude,
        n_rows=n_rows,
        line_period_ms=model.line_period_ms,
        exposure_ms=model.exposure_ms,
        drift=model.drift,
        shift_ms=model.shift_ms,
        window=window,
    )
    gain = jnp.asarray(gain, dtype=jnp.float64)[:, None, None]
    light = gain * (ambient[:, :, None] + flash[:, :, None] * model.flash_column_gain[None, None, :])
    albedo, window_share = _scene_albedo(model, middle_s)
    signal = albedo * light.astype(jnp.float32)
    if window_share is not None:
        emitted = (gain * model.window_luminance).astype(jnp.float32)
        signal = signal + window_share * (emitted - signal)

    def frame_noise(k):
        return jax.random.normal(jax.random.fold_in(noise_key, k), (n_rows, n_cols), dtype=jnp.float32)

    noise = jax.vmap(frame_noise)(sensor_frame)
    pixel = signal + jnp.float32(model.noise_sigma) * noise
    return jnp.clip(jnp.round(pixel), 0, 255).astype(jnp.uint8)


_render_frames_jit = jax.jit(render_frames, static_argnames=("window",))


def default_chunk_frames(width: int, height: int) -> int:
    """Frames rendered per batch so that one float32 batch is about 16 MB (1 to 64)."""
    return int(min(64, max(1, (1 << 22) // (width * height))))


def render_chunks(
    camera: Camera,
    flashes: Flashes,
    scene: Scene,
    sensor_frames,
    *,
    noise_seed: int,
    chunk_frames: int | None = None,
    gains=None,
) -> Iterator[np.ndarray]:
    """Yield the frames of ``sensor_frames`` (indices, in order) as uint8 arrays ``(n, height, width)``.

    Batches have ``chunk_frames`` frames (the last may be shorter; it is rendered padded so one
    compilation serves every batch of a camera size). Memory stays bounded for long videos.
    ``gains`` are the sensor gains of sensor frames ``0, 1, ...`` (at least up to the last one
    rendered); by default :func:`exposure_gains`, which depend only on earlier frames, so a frame
    is the same whichever frames are rendered with it.
    """
    sensor_frames = np.asarray(sensor_frames, dtype=np.int64)
    if sensor_frames.ndim != 1 or sensor_frames.size == 0:
        return
    if np.any(sensor_frames < 0):
        raise FlashsyncError("sensor frame indices must be non-negative")
    last = int(sensor_frames.max())
    gains = exposure_gains(camera, flashes, scene, last + 1) if gains is None else np.asarray(gains, np.float64)
    if gains.ndim != 1 or gains.size <= last:
        raise FlashsyncError(f"gains must hold one value for each sensor frame up to {last}, got shape {gains.shape}")
    chunk = chunk_frames or default_chunk_frames(camera.width, camera.height)
    model = frame_model(camera, flashes, scene)
    window = _flash_window(camera, flashes, sensor_frames * camera.frame_period_ms)
    key = jax.random.key(int(noise_seed) % (1 << 32))
    n_chunks = -(-sensor_frames.size // chunk)

    def dispatch(i):
        part = sensor_frames[i * chunk : (i + 1) * chunk]
        padded = np.concatenate([part, np.full(chunk - part.size, part[-1])])
        frames = _render_frames_jit(model, key, jnp.asarray(padded), jnp.asarray(gains[padded]), window=window)
        return part.size, frames

    pending = dispatch(0)
    for i in range(1, n_chunks + 1):
        ahead = dispatch(i) if i < n_chunks else None  # JAX works on the next batch meanwhile
        size, frames = pending
        yield np.asarray(frames)[:size]
        pending = ahead


# --------------------------------------------------------------------------------------------
# Writing videos through ffmpeg, with exact per-frame timestamps read back as truth.
# --------------------------------------------------------------------------------------------

#: The mp4 timebase is a multiple of this (the usual 90 kHz video clock).
BASE_TIMESCALE = 90000


def video_rate(frame_rate: float) -> Fraction:
    """Exact frame rate for the container, e.g. 30000/1001 for 29.97002997 (denominator <= 1001)."""
    rate = Fraction(frame_rate).limit_denominator(1001)
    if rate <= 0 or abs(float(rate) - frame_rate) > 1e-9 * frame_rate:
        raise FlashsyncError(
            f"frame rate {frame_rate} is not a simple fraction with denominator <= 1001 (e.g. 30, 30000/1001)"
        )
    return rate


def video_timescale(rate: Fraction) -> int:
    """Ticks per second of the mp4 timebase: lcm(90000, numerator), so every ``k * T`` is a whole tick."""
    timescale = math.lcm(BASE_TIMESCALE, rate.numerator)
    if timescale >= 1 << 31:
        raise FlashsyncError(f"frame rate {rate} needs a timescale {timescale} that mp4 cannot store")
    return timescale


#: Container timestamp styles of :func:`write_video`: the timescale (ticks per second) of each, None
#: for the exact one of :func:`video_timescale`. Phones' QuickTime files use 600; "ms" stores whole
#: milliseconds (as Matroska does).
TIMESTAMP_TIMESCALES = {"exact": None, "quicktime": 600, "ms": 1000}

#: Distributions of per-frame timestamp jitter: ``pts_jitter_ms`` is the half width of "uniform"
#: and the standard deviation of "gaussian" (cut at 3 standard deviations).
JITTER_KINDS = ("uniform", "gaussian")


def container_timescale(rate: Fraction, timestamps: str = "exact") -> int:
    """Ticks per second of the mp4 timebase for a timestamp style of :data:`TIMESTAMP_TIMESCALES`."""
    if timestamps not in TIMESTAMP_TIMESCALES:
        raise FlashsyncError(f"unknown timestamps '{timestamps}'; known: {', '.join(TIMESTAMP_TIMESCALES)}")
    return TIMESTAMP_TIMESCALES[timestamps] or video_timescale(rate)


def _lookup_expression(variable: str, starts, ends, values, default: str = "0") -> str:
    """ffmpeg expression worth ``values[i]`` where ``starts[i] <= variable <= ends[i]``, else ``default``.

    The intervals (sorted, disjoint, integers) are arranged as a balanced binary search tree of
    ``if(lt(x,a), left, if(gt(x,b), right, value))``: ffmpeg's ``if`` evaluates lazily, so each
    frame costs O(log intervals) and the nesting depth stays logarithmic (a flat sum of ~100 terms
    fails).
    """

    def tree(lo: int, hi: int) -> str:
        if lo >= hi:
            return default
        mid = (lo + hi) // 2
        left, right = tree(lo, mid), tree(mid + 1, hi)
        return f"if(lt({variable},{starts[mid]}),{left},if(gt({variable},{ends[mid]}),{right},{values[mid]}))"

    return tree(0, len(starts))


def _dropped_expression(dropped: np.ndarray) -> str:
    """ffmpeg expression that is 1 for frame numbers ``n`` in ``dropped`` and 0 otherwise (runs of drops)."""
    dropped = np.unique(np.asarray(dropped, dtype=np.int64))
    if dropped.size == 0:
        return "0"
    breaks = np.flatnonzero(np.diff(dropped) > 1)
    starts = np.concatenate([dropped[:1], dropped[breaks + 1]])
    ends = np.concatenate([dropped[breaks], dropped[-1:]])
    return _lookup_expression("n", starts, ends, ["1"] * starts.size)


def jittered_ticks(
    sensor_time_ms, timescale: int, *, jitter_ms: float, kind: str = "uniform", seed: int = 0
) -> np.ndarray:
    """Container ticks of frames stamped ``sensor_time_ms`` plus random jitter, ``(n,)`` int64.

    Every time but the first (files start where the sensor did) gets an independent offset
    (:data:`JITTER_KINDS`); all are rounded to the nearest tick. FlashsyncError where the jitter
    would make timestamps negative or not strictly increasing.
    """
    if kind not in JITTER_KINDS:
        raise FlashsyncError(f"unknown pts jitter '{kind}'; known: {', '.join(JITTER_KINDS)}")
    sensor_time_ms = np.asarray(sensor_time_ms, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        offset_ms = rng.uniform(-jitter_ms, jitter_ms, sensor_time_ms.size)
    else:
        offset_ms = np.clip(rng.normal(0.0, jitter_ms, sensor_time_ms.size), -3 * jitter_ms, 3 * jitter_ms)
    offset_ms[:1] = 0.0
    ticks = np.floor((sensor_time_ms + offset_ms) * (timescale / 1000.0) + 0.5).astype(np.int64)
    if np.any(ticks < 0) or np.any(np.diff(ticks) <= 0):
        raise FlashsyncError(
            f"pts jitter of {jitter_ms} ms makes timestamps collide or run backwards in a 1/{timescale} s "
            "timebase; use less jitter than half a frame period"
        )
    return ticks


def _run_ffmpeg(arguments: list[str]) -> None:
    """Run ffmpeg on files (no pipes); FlashsyncError with its last message on failure."""
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *arguments]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise FlashsyncError(f"ffmpeg failed: {last_line(done.stderr)}")


def write_video(
    path,
    frame_chunks: Iterable[np.ndarray],
    kept,
    *,
    frame_rate: float,
    crf: int = 23,
    preset: str = "medium",
    rotation_deg: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    description: str | None = None,
    timestamps: str = "exact",
    pts_jitter_ms: float = 0.0,
    pts_jitter: str = "uniform",
    jitter_seed: int = 0,
) -> np.ndarray:
    """Encode stored frames as H.264 mp4; returns every stored frame's read-back pts (ms), ``(n_stored,)``.

    ``frame_chunks`` yields uint8 arrays ``(n, height, width)`` holding the stored frames in order;
    ``kept`` is the boolean mask over sensor frames (the first must be kept). Sensor frame ``k``
    starts at ``k / frame_rate``; its container timestamp is that time in the timebase of
    ``timestamps`` (:data:`TIMESTAMP_TIMESCALES`): "exact" (``1 / video_timescale``, every pts
    exact), "quicktime" (1/600 s, as phones write) or "ms" (whole milliseconds), rounded to the
    nearest tick by ffmpeg's mp4 muxer. With ``pts_jitter_ms > 0`` each pts first gets a random
    offset (``pts_jitter``, seeded by ``jitter_seed``; see :func:`jittered_ticks`). Dropped frames
    leave gaps (variable frame rate). ``rotation_deg`` is written as display-matrix metadata only;
    frames stay in sensor order. The file appears atomically and only if its timestamps read back
    within half a tick of the intended times; what was read back is returned.
    """
    from flashsync_bayes.events import atomic_write

    path = os.fspath(path)
    kept = np.asarray(kept, dtype=bool)
    if kept.ndim != 1 or kept.size == 0 or not kept[0]:
        raise FlashsyncError("kept must be a non-empty mask over sensor frames whose first frame is kept")
    if not (isinstance(crf, (int, np.integer)) and 0 <= crf <= 51):
        raise FlashsyncError(f"crf must be an integer in [0, 51], got {crf!r}")
    if rotation_deg not in (0, 90, 180, 270):
        raise FlashsyncError(f"rotation_deg must be 0, 90, 180 or 270, got {rotation_deg!r}")
    if not (math.isfinite(pts_jitter_ms) and pts_jitter_ms >= 0):
        raise FlashsyncError(f"pts_jitter_ms must be >= 0, got {pts_jitter_ms!r}")
    if os.path.exists(path) and not overwrite:
        raise FlashsyncError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    rate = video_rate(frame_rate)
    timescale = container_timescale(rate, timestamps)
    kept_index = np.flatnonzero(kept)
    select = f"select='not({_dropped_expression(np.flatnonzero(~kept))})'"
    if pts_jitter_ms > 0:  # the intended ticks are integers, set per stored frame with setpts
        ticks = jittered_ticks(
            kept_index * (1000.0 / frame_rate), timescale, jitter_ms=pts_jitter_ms, kind=pts_jitter, seed=jitter_seed
        )
        target, per_tick = ticks.astype(object), 1
        lookup = _lookup_expression("N", range(ticks.size), range(ticks.size), ticks.tolist())
        script_text = f"{select},settb=1/{timescale},setpts='{lookup}'"
        encoder_options = ["-enc_time_base:v", "filter"]
    else:  # intended ticks k * timescale / rate, a ratio of integers; the muxer rounds them
        target, per_tick = kept_index.astype(object) * (timescale * rate.denominator), rate.numerator
        script_text, encoder_options = select, []
    written = []  # the ticks read back from the finished file

    def write(tmp_path: str) -> None:
        with tempfile.TemporaryDirectory(dir=os.path.dirname(tmp_path), prefix=".tmp-") as work:
            encoded = os.path.join(work, "encoded.mp4") if rotation_deg else tmp_path
            script = os.path.join(work, "filter.txt")
            with open(script, "w") as handle:
                handle.write(script_text)
            _encode(
                encoded, frame_chunks, kept_index, rate, timescale, crf, preset, script, encoder_options, progress,
                description,
            )  # fmt: skip
            if rotation_deg:
                rotate = ["-display_rotation", str(rotation_deg), "-i", encoded, "-c", "copy"]
                _run_ffmpeg(rotate + ["-video_track_timescale", str(timescale), "-f", "mp4", tmp_path])
            timebase, ticks = frame_ticks(tmp_path)
            if (
                timebase != Fraction(1, timescale)
                or ticks.size != target.size
                or np.any(2 * np.abs(ticks.astype(object) * per_tick - target) > per_tick)
            ):
                raise FlashsyncError(
                    f"ffmpeg wrote other timestamps than intended to {path} (timebase {timebase}, "
                    f"{ticks.size} frames for {target.size}); this ffmpeg build is not supported"
                )
            written.append(ticks)

    atomic_write(path, write)
    return (written[0] * 1000) / timescale


def _encode(
    path, frame_chunks, kept_index, rate, timescale, crf, preset, script, encoder_options, progress, description
) -> None:
    """Pipe every sensor frame (zeros for dropped ones) into ffmpeg, which drops and encodes them."""
    height = width = None
    process = None
    bar = None
    written = 0  # sensor frames sent
    stored = 0  # stored frames consumed
    with tempfile.TemporaryFile() as log:
        try:
            for chunk in frame_chunks:
                chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
                if chunk.ndim != 3:
                    raise FlashsyncError(f"frame batches must be (n, height, width) uint8, got shape {chunk.shape}")
                if process is None:
                    _, height, width = chunk.shape
                    if height % 2 or width % 2:
                        raise FlashsyncError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
                    command = [
                        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                        "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}",
                        "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
                        "-/vf", script, "-fps_mode", "passthrough", *encoder_options,
                        "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
                        "-video_track_timescale", str(timescale), "-f", "mp4", path,
                    ]  # fmt: skip
                    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                    if progress:
                        bar = tqdm(total=int(kept_index[-1]) + 1, desc=description, unit="frame", file=sys.stderr)
                if chunk.shape[1:] != (height, width):
                    raise FlashsyncError(
                        f"frame size changed from {width}x{height} to {chunk.shape[2]}x{chunk.shape[1]}"
                    )
                if stored + chunk.shape[0] > kept_index.size:
                    raise FlashsyncError(f"got more frames than the {kept_index.size} stored frames of kept")
                blank = bytes(width * height)
                for frame in chunk:
                    target = int(kept_index[stored])
                    for _ in range(target - written):
                        process.stdin.write(blank)
                    process.stdin.write(frame.data)
                    stored += 1
                    if bar is not None:
                        bar.update(target + 1 - written)
                    written = target + 1
            if process is None or stored != kept_index.size:
                raise FlashsyncError(f"got {stored} frames for the {kept_index.size} stored frames of kept")
            process.stdin.close()
            code = process.wait()
        except (BrokenPipeError, FlashsyncError) as error:
            if process is not None:
                if process.stdin and not process.stdin.closed:
                    try:
                        process.stdin.close()
                    except BrokenPipeError:
                        pass
                process.wait()
                log.seek(0)
                message = last_line(log.read().decode(errors="replace"))
            if isinstance(error, FlashsyncError):
                raise
            raise FlashsyncError(f"ffmpeg failed while encoding {path}: {message}") from error
        finally:
            if bar is not None:
                bar.close()
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            log.seek(0)
            message = last_line(log.read().decode(errors="replace"))
            raise FlashsyncError(f"ffmpeg failed while encoding {path}: {message}")


# --------------------------------------------------------------------------------------------
# Random setups, whole recordings and their ground truth.
# --------------------------------------------------------------------------------------------


def _n_sensor_frames(camera: Camera, duration_s: float) -> int:
    """Sensor frames in ``duration_s`` of the camera's clock (at least one)."""
    return max(1, math.ceil(duration_s * 1000.0 / camera.frame_period_ms - 1e-9))


def random_setup(
    n_cameras: int,
    duration_s: float,
    n_flashes: int,
    seed: int,
    width: int = 640,
    height: int = 360,
    *,
    frame_rate: float | Sequence[float] = 30.0,
    drop_probability: float = 0.0,
    noise_sigma: float = 2.0,
    rotate_last: bool = False,
    max_drift_ppm: float = 50.0,
    max_shift_ms: float = 3000.0,
    min_spacing_frames: float = 3.0,
    max_rise_ms: float = 0.0,
    rows_ratio: tuple[float, float] | str | None = None,
    exposure_ms: tuple[float, float] = (2.0, 10.0),
) -> tuple[list[Camera], Flashes]:
    """Random cameras and flashes with realistic parameters (FACTS.md); returns ``(cameras, flashes)``.

    Camera 0 defines the reference clock (drift 1, shift 0); the others drift within
    ±``max_drift_ppm`` and start up to ``max_shift_ms`` (at most a fifth of the duration) earlier
    or later. Total sensor rows ``L`` are drawn with ``L / R`` uniform in ``rows_ratio``: a
    ``(low, high)`` pair, the name of a :data:`flashsync_bayes.sensors.PRESETS` family (its range),
    or by default :data:`flashsync_bayes.sensors.ROWS_RATIO_RANGE`; ``L`` is rounded to whole rows
    inside the range. Exposures are uniform in ``exposure_ms`` (ms), at most one frame period.
    Flashes (decay 0.2-1 ms, rise 0-``max_rise_ms``, 30-80 grey levels) fall where every camera
    records, at least ``min_spacing_frames`` frame periods apart; their leading edges may land in
    hidden rows. ``frame_rate`` may be one rate or one per camera (cycled).
    """
    if not (isinstance(n_cameras, (int, np.integer)) and n_cameras >= 1):
        raise FlashsyncError(f"need at least one camera, got {n_cameras!r}")
    if not (isinstance(n_flashes, (int, np.integer)) and n_flashes >= 0):
        raise FlashsyncError(f"the number of flashes must be a non-negative integer, got {n_flashes!r}")
    if not duration_s > 0:
        raise FlashsyncError(f"duration must be positive, got {duration_s} s")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise FlashsyncError(f"seed must be a non-negative integer, got {seed!r}")
    rates = [float(frame_rate)] if np.isscalar(frame_rate) else [float(r) for r in frame_rate]
    if not rates or min(rates) <= 0:
        raise FlashsyncError(f"frame rates must be positive, got {frame_rate!r}")
    if rows_ratio is None:
        rows_ratio = sensors.ROWS_RATIO_RANGE
    elif isinstance(rows_ratio, str):
        rows_ratio = sensors.preset(rows_ratio).rows_ratio
    ratio_low, ratio_high = (float(r) for r in rows_ratio)
    if not 1.0 <= ratio_low <= ratio_high:
        raise FlashsyncError(f"rows_ratio must be (low, high) with 1 <= low <= high, got {rows_ratio!r}")
    exposure_low, exposure_high = (float(e) for e in exposure_ms)
    if not 0 < exposure_low <= exposure_high:
        raise FlashsyncError(f"exposure_ms must be (low, high) with 0 < low <= high, got {exposure_ms!r}")
    if exposure_low > 1000.0 / max(rates):
        raise FlashsyncError(f"exposures from {exposure_low} ms do not fit in a frame at {max(rates):g} fps")
    rng = np.random.default_rng([seed, 7])
    duration_ms = duration_s * 1000.0
    shift_bound_ms = min(max_shift_ms, 0.2 * duration_ms)
    cameras = []
    for i in range(n_cameras):
        rate = rates[i % len(rates)]
        period_ms = 1000.0 / rate
        first = i == 0
        cameras.append(
            Camera(
                width=width,
                height=height,
                total_rows=int(
                    np.clip(
                        round(height * rng.uniform(ratio_low, ratio_high)),
                        math.ceil(height * ratio_low),
                        math.floor(height * ratio_high),
                    )
                ),
                frame_rate=rate,
                exposure_ms=float(rng.uniform(exposure_low, min(exposure_high, period_ms))),
                drift=1.0 if first else float(1.0 + rng.uniform(-max_drift_ppm, max_drift_ppm) * 1e-6),
                shift_ms=0.0 if first else float(rng.uniform(-shift_bound_ms, shift_bound_ms)),
                drop_probability=drop_probability,
                noise_sigma=noise_sigma,
                rotated=rotate_last and i == n_cameras - 1,
            )
        )
    period_ms = max(c.frame_period_ms for c in cameras)
    start_ms = max(c.shift_ms for c in cameras) + 2 * period_ms
    end_ms = min(c.shift_ms + c.drift * _n_sensor_frames(c, duration_s) * c.frame_period_ms for c in cameras)
    end_ms -= 2 * period_ms
    gap_ms = min_spacing_frames * period_ms
    free_ms = end_ms - start_ms - max(n_flashes - 1, 0) * gap_ms
    if n_flashes and free_ms < 0:
        raise FlashsyncError(
            f"{n_flashes} flashes {gap_ms:.1f} ms apart do not fit in the {max(end_ms - start_ms, 0):.0f} ms "
            "that every camera records; use a longer duration or fewer flashes"
        )
    time_ms = start_ms + np.sort(rng.uniform(0, max(free_ms, 0.0), n_flashes)) + np.arange(n_flashes) * gap_ms
    flashes = Flashes(
        time_ms=time_ms,
        decay_ms=rng.uniform(0.2, 1.0, n_flashes),
        rise_ms=rng.uniform(0.0, max_rise_ms, n_flashes),
        amplitude=rng.uniform(30.0, 80.0, n_flashes),
    )
    return cameras, flashes


REFERENCE_CLOCK_NOTE = (
    "Reference time of stored row r (fractional, readout order, frames not auto-rotated) of a frame: "
    "t_ref_ms = drift * sensor_time_ms + shift_ms + r * time_per_row_ms, "
    "time_per_row_ms = drift * frame_period_ms / total_rows, where sensor_time_ms = k * frame_period_ms "
    "is the exact camera-clock time at which the sensor started the frame (sensor frame k). pts_ms are "
    "the container timestamps readers see: sensor_time_ms in the timebase when timestamps is 'exact', "
    "else rounded to the timebase (1/600 s 'quicktime', 1 ms 'ms') and, with pts_jitter_ms > 0, jittered "
    "first; the time model uses sensor_time_ms. This is the time the row's exposure starts; an edge row "
    "is where the row's exposure ends at the flash, so flashes_ms = drift * (sensor_time_ms + exposure_ms) "
    "+ shift_ms + row * time_per_row_ms for every edge (sensor_time_ms of its sensor_frame). flashes_ms are "
    "in the reference clock; camera 0 of random_setup runs on it (drift 1, shift 0). exposure_gain is "
    "every stored frame's auto-exposure gain (all 1 without auto-exposure)."
)


def _camera_truth(
    name: str,
    camera: Camera,
    flashes: Flashes,
    kept: np.ndarray,
    pts_ms: np.ndarray,
    gains: np.ndarray,
    timescale: int,
    **extra,
) -> dict:
    """truth.json entry of one written camera; ``gains`` over sensor frames, ``extra`` items added as they are."""
    rate = video_rate(camera.frame_rate)
    edges = leading_edges(camera, flashes, kept)
    edge_list = []
    for j in range(len(flashes)):
        frame = int(edges["frame"][j])
        sensor_frame = int(edges["sensor_frame"][j])
        edge_list.append(
            {
                "flash": j,
                "frame": frame,
                "sensor_frame": sensor_frame,
                "row": float(edges["row"][j]),
                "status": str(edges["status"][j]),
                "frame_time_ms": float(pts_ms[frame]) if frame >= 0 else None,
                "sensor_time_ms": sensor_frame * camera.frame_period_ms,
            }
        )
    return {
        "file": name,
        "width": camera.width,
        "height": camera.height,
        "total_rows": int(camera.total_rows),
        "frame_rate": f"{rate.numerator}/{rate.denominator}",
        "frame_period_ms": camera.frame_period_ms,
        "exposure_ms": camera.exposure_ms,
        "drift": camera.drift,
        "drift_ppm": (camera.drift - 1.0) * 1e6,
        "shift_ms": camera.shift_ms,
        "time_per_row_ms": camera.time_per_row_ms,
        "rotation_deg": 180 if camera.rotated else 0,
        "noise_sigma": camera.noise_sigma,
        "drop_probability": camera.drop_probability,
        **extra,
        "timebase": f"1/{timescale}",
        "n_sensor_frames": int(kept.size),
        "n_frames": int(pts_ms.size),
        "dropped_sensor_frames": [int(k) for k in np.flatnonzero(~kept)],
        "pts_ms": [float(p) for p in pts_ms],
        "sensor_time_ms": [float(t) for t in stored_frame_times_ms(camera, kept)],
        "exposure_gain": [float(g) for g in gains[kept]],
        "edges": edge_list,
    }


def simulate_recording(
    outdir,
    cameras: Sequence[Camera],
    flashes: Flashes,
    duration_s: float,
    seed: int,
    crf: int = 23,
    scene: Scene | None = None,
    overwrite: bool = False,
    progress: bool = True,
    *,
    preset: str = "medium",
    timestamps: str = "exact",
    pts_jitter_ms: float = 0.0,
    pts_jitter: str = "uniform",
) -> dict:
    """Write ``cam0.mp4, cam1.mp4, ...`` and ``truth.json`` into ``outdir``; returns the truth dict.

    Every camera records ``duration_s`` of its own clock from camera time 0 and sees ``scene``
    (default ``Scene(seed=seed)``, e.g. :func:`scene_preset`); frame drops, sensor noise and pts
    jitter follow ``seed``. Container timestamps follow ``timestamps``, ``pts_jitter_ms`` and
    ``pts_jitter`` (see :func:`write_video`). The truth holds the flashes (reference ms;
    ``decay_ms`` null marks a step change), the scene and its layout, each camera's parameters
    keyed by file name, the read-back pts (``pts_ms``) and exact sensor start time
    (``sensor_time_ms``) and auto-exposure gain (``exposure_gain``) of every stored frame, and the
    exact leading edge of every flash (see :data:`REFERENCE_CLOCK_NOTE`). Videos are written one
    by one, each atomically, and truth.json last.
    """
    from flashsync_bayes.events import atomic_write

    cameras = list(cameras)
    if not cameras or not all(isinstance(c, Camera) for c in cameras):
        raise FlashsyncError("cameras must be a non-empty list of Camera")
    if not isinstance(flashes, Flashes):
        raise FlashsyncError("flashes must be a Flashes instance")
    if not (isinstance(duration_s, (int, float, np.number)) and math.isfinite(duration_s) and duration_s > 0):
        raise FlashsyncError(f"duration must be a positive number of seconds, got {duration_s!r}")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise FlashsyncError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(crf, (int, np.integer)) and 0 <= crf <= 51):
        raise FlashsyncError(f"crf must be an integer in [0, 51], got {crf!r}")
    for i, camera in enumerate(cameras):
        if camera.width % 2 or camera.height % 2:
            raise FlashsyncError(f"camera {i}: H.264 needs even frame sizes, got {camera.width}x{camera.height}")
    rates = [video_rate(c.frame_rate) for c in cameras]
    timescales = [container_timescale(rate, timestamps) for rate in rates]
    if not (isinstance(pts_jitter_ms, (int, float, np.number)) and math.isfinite(pts_jitter_ms) and pts_jitter_ms >= 0):
        raise FlashsyncError(f"pts_jitter_ms must be >= 0, got {pts_jitter_ms!r}")
    kept_masks = [
        sensor_frames_kept(camera, _n_sensor_frames(camera, duration_s), np.random.default_rng([seed, i, 1]))
        for i, camera in enumerate(cameras)
    ]
    jitter_seeds = [int(np.random.SeedSequence([seed, i, 3]).generate_state(1)[0]) for i in range(len(cameras))]
    if pts_jitter_ms > 0:  # fail before any file is written
        for camera, kept, timescale, jitter_seed in zip(cameras, kept_masks, timescales, jitter_seeds):
            sensor_time_ms = stored_frame_times_ms(camera, kept)
            jittered_ticks(sensor_time_ms, timescale, jitter_ms=pts_jitter_ms, kind=pts_jitter, seed=jitter_seed)
    scene = Scene(seed=seed) if scene is None else scene
    if not isinstance(scene, Scene):
        raise FlashsyncError("scene must be a Scene (see scene_preset)")
    outdir = os.fspath(outdir)
    names = [f"cam{i}.mp4" for i in range(len(cameras))]
    targets = [os.path.join(outdir, name) for name in names + ["truth.json"]]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not overwrite:
        raise FlashsyncError(f"{existing[0]} exists; pass overwrite=True (--overwrite) or choose another outdir")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as error:
        raise FlashsyncError(f"cannot create output directory {outdir}: {error.strerror}") from error

    truth_cameras = {}
    for i, (camera, name, kept, timescale) in enumerate(zip(cameras, names, kept_masks, timescales)):
        noise_seed = int(np.random.SeedSequence([seed, i, 2]).generate_state(1)[0])
        gains = exposure_gains(camera, flashes, scene, kept.size)
        chunks = render_chunks(camera, flashes, scene, np.flatnonzero(kept), noise_seed=noise_seed, gains=gains)
        pts_ms = write_video(
            os.path.join(outdir, name),
            chunks,
            kept,
            frame_rate=camera.frame_rate,
            crf=crf,
            preset=preset,
            rotation_deg=180 if camera.rotated else 0,
            overwrite=overwrite,
            progress=progress,
            description=name,
            timestamps=timestamps,
            pts_jitter_ms=pts_jitter_ms,
            pts_jitter=pts_jitter,
            jitter_seed=jitter_seeds[i],
        )
        truth_cameras[name] = _camera_truth(
            name,
            camera,
            flashes,
            kept,
            pts_ms,
            gains,
            timescale,
            noise_seed=noise_seed,
            timestamps=timestamps,
            pts_jitter_ms=float(pts_jitter_ms),
            pts_jitter=pts_jitter,
        )

    truth = {
        "reference_clock": REFERENCE_CLOCK_NOTE,
        "duration_s": float(duration_s),
        "seed": int(seed),
        "crf": int(crf),
        "flashes_ms": [float(t) for t in flashes.time_ms],
        "flashes": {
            "decay_ms": [float(d) if math.isfinite(d) else None for d in flashes.decay_ms],
            "kind": ["pulse" if math.isfinite(d) else "step" for d in flashes.decay_ms],
            "rise_ms": [float(r) for r in flashes.rise_ms],
            "amplitude": [float(a) for a in flashes.amplitude],
        },
        "scene": dataclasses.asdict(scene),
        "scene_layout": {k: list(v) if isinstance(v, tuple) else v for k, v in scene_layout(scene)._asdict().items()},
        "cameras": truth_cameras,
    }

    def write_truth(tmp_path: str) -> None:
        with open(tmp_path, "w") as handle:
            json.dump(truth, handle, indent=1)
            handle.write("\n")

    atomic_write(os.path.join(outdir, "truth.json"), write_truth)
    return truth
