"""Light on the sensor (DESIGN §2, times in ms): each row integrates the flashes and the lamps' flicker
over its own exposure window, in closed form.

A flash at reference time ``phi`` emits ``I(t) ∝ exp(-(t-phi)/θ) - exp(-(t-phi)/τ)`` (decay θ, rise
τ, τ = 0 for an instant rise) or, for a step change of lighting, a constant from ``phi`` on. A row
receives the fraction of the pulse energy (or, for a step, of its window) that falls in its
exposure, times the flash amplitude in grey levels.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from flashsync_bayes.shapes import power_of_two
from flashsync_bayes.simulate.camera import Camera, Flashes
from flashsync_bayes.timing import reference_time_ms

#: Exponential pulses are treated as over this many decay constants after they fire (e^-40 ≈ 4e-18).
PULSE_SPAN_DECAYS = 40.0


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


def row_timing(clock) -> dict:
    """Keyword arguments ``line_period_ms, exposure_ms, drift, shift_ms`` of :func:`row_windows` and
    :func:`flash_light` for every stored row of a :class:`Camera` (or anything with those fields).
    """
    return {
        "line_period_ms": clock.line_period_ms,
        "exposure_ms": clock.exposure_ms,
        "drift": clock.drift,
        "shift_ms": clock.shift_ms,
    }


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


def flash_window(camera: Camera, flashes: Flashes, frame_time_ms: np.ndarray) -> int:
    """``window`` of :func:`flash_light` for these frames: :func:`_events_per_frame` rounded up to a power of two.

    Powers of two keep the number of compiled kernels small.
    """
    busiest = _events_per_frame(camera, flashes, frame_time_ms) if len(flashes) else 0
    return power_of_two(busiest)


def _events_per_frame(camera: Camera, flashes: Flashes, frame_time_ms: np.ndarray) -> int:
    """Most events that any frame's exposure span (plus pulse tails) overlaps."""
    first_start = reference_time_ms(frame_time_ms, 0.0, camera.drift, camera.shift_ms, 0.0)
    last_row_ms = camera.drift * camera.line_period_ms
    last_end = reference_time_ms(frame_time_ms + camera.exposure_ms, camera.height - 1, camera.drift, camera.shift_ms, last_row_ms)
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
    window = flash_window(camera, flashes, frame_time_ms)
    light = flash_light(
        jnp.asarray(frame_time_ms),
        jnp.asarray(flashes.time_ms),
        jnp.asarray(flashes.decay_ms),
        jnp.asarray(flashes.rise_ms),
        jnp.asarray(flashes.amplitude),
        n_rows=n_rows,
        window=window,
        **{**row_timing(camera), "line_period_ms": camera.line_period_ms * row_step},
    )
    return np.asarray(light)

