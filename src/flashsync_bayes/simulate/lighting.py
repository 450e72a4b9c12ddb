"""Light apart from the flashes: lamps (slow change, mains flicker) and the auto-exposure gain.

Lamps flicker at twice the mains frequency on the reference clock; each row integrates that flicker
over its own exposure window in closed form (:func:`~flashsync_bayes.simulate.physics.window_mean_sine`).
An auto-exposure loop sets one sensor gain per frame from the frames before (:func:`exposure_gains`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from flashsync_bayes.simulate.camera import Camera, Flashes, stored_frame_times_ms
from flashsync_bayes.simulate.physics import camera_flash_light, row_timing, row_windows, window_mean_sine
from flashsync_bayes.simulate.scene import Scene, flash_column_gain


class Lighting(NamedTuple):
    """A scene's ambient light as floats (a pytree); see :func:`ambient_light`.

    Attributes:
        ambient: grey levels on a white surface, averaged over the flicker.
        variation, period_s, phase: the slow change ``1 + variation * sin(2π t / period_s + phase)``,
            t in reference s.
        flicker_hz: lamp flicker frequency, twice the mains frequency (Hz).
        modulation, flicker_phase, harmonic, harmonic_phase, square: the flicker, as in :class:`Scene`.
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
    square: float


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
        float(scene.flicker_square),
    )


def ambient_light(lighting: Lighting, middle_s, start_ms, end_ms):
    """Grey levels the ambient light gives a white surface over exposure windows (arguments broadcast).

    Lamps emit ``ambient * slow(t) * (1 + m * (sin θ + h * sin(4π f t + φ2) + q * (sin 3θ / 3 + sin 5θ / 5)))``,
    ``θ = 2π f t + φ``, on the reference clock. The slow change is taken at the window's middle ``middle_s`` (reference s);
    the flicker is averaged exactly over ``[start_ms, end_ms]`` (reference ms).
    """
    slow = lighting.ambient * (
        1.0 + lighting.variation * jnp.sin(2 * jnp.pi * middle_s / lighting.period_s + lighting.phase)
    )
    flicker = window_mean_sine(start_ms, end_ms, lighting.flicker_hz, lighting.flicker_phase)
    flicker = flicker + lighting.harmonic * window_mean_sine(
        start_ms, end_ms, 2.0 * lighting.flicker_hz, lighting.harmonic_phase
    )
    for odd in (3, 5):  # a square wave's harmonics, in phase with its fundamental
        flicker = flicker + lighting.square / odd * window_mean_sine(
            start_ms, end_ms, odd * lighting.flicker_hz, odd * lighting.flicker_phase
        )
    return slow * (1.0 + lighting.modulation * flicker)


def camera_ambient_light(camera: Camera, scene: Scene, frame_time_ms) -> np.ndarray:
    """Grey levels the ambient light gives a white surface in every stored row, ``(n_frames, height)``.

    ``frame_time_ms`` are camera-clock frame times (ms); what :func:`~flashsync_bayes.simulate.render.render_frames` uses before gain.
    """
    frame_time_ms = jnp.asarray(frame_time_ms, dtype=jnp.float64)
    windows = row_windows(frame_time_ms, n_rows=camera.height, **row_timing(camera))
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

