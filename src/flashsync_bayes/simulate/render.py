"""Rendering frames: a textured scene with moving objects, lit by the lamps and the flashes, as uint8 pixels.

Pure JAX kernels (:func:`render_frames`) and a batching front door (:func:`render_chunks`) whose
frames do not depend on how they are batched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

from flashsync_bayes import transfer
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.simulate.camera import Camera, Flashes
from flashsync_bayes.simulate.lighting import Lighting, ambient_light, exposure_gains, scene_lighting
from flashsync_bayes.simulate.physics import flash_light, flash_window, row_timing, row_windows
from flashsync_bayes.simulate.scene import Scene, flash_column_gain, pixel_centres, soft_inside, window_mask

#: Albedo range of the simulated scene (white is 1).
ALBEDO_RANGE = (0.15, 1.0)


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


#: A handheld camera's shake: this many sinusoids per axis, frequencies log-uniform over ``SHAKE_HZ`` (Hz), amplitudes
#: falling as 1/f (hand tremor and sway: most of the motion slow, some of it from frame to frame).
SHAKE_SINUSOIDS = 6
SHAKE_HZ = (0.5, 8.0)


class Shake(NamedTuple):
    """A handheld camera's view moving over the scene: ``Σ_i a_i sin(2π f_i t + φ_ai)`` pixels along each axis ``a``.

    Attributes:
        hz: ``(k,)`` frequencies f_i (Hz).
        amplitude_px: ``(k,)`` amplitudes a_i (pixels).
        phase: ``(2, k)`` phases (rad) across and down.
    """

    hz: jnp.ndarray
    amplitude_px: jnp.ndarray
    phase: jnp.ndarray


def camera_shake(shake_px: float, seed: int) -> Shake:
    """A random :class:`Shake` of RMS ``shake_px`` pixels along each axis (:data:`SHAKE_SINUSOIDS`, :data:`SHAKE_HZ`)."""
    rng = np.random.default_rng([int(seed), 5])
    hz = np.exp(rng.uniform(*np.log(SHAKE_HZ), SHAKE_SINUSOIDS))
    weight = 1.0 / hz
    # a sum of sinusoids has the mean square Σ a²/2
    amplitude = shake_px * np.sqrt(2.0) * weight / np.sqrt(np.sum(weight**2))
    return Shake(jnp.asarray(hz), jnp.asarray(amplitude), jnp.asarray(rng.uniform(0.0, 2 * np.pi, (2, SHAKE_SINUSOIDS))))


def shake_offsets(shake: Shake, time_s):
    """``(across, down)``: the view's displacement over the scene (pixels) at reference times ``time_s`` (s), each
    shaped like ``time_s``."""
    t = jnp.asarray(time_s)[..., None]
    angle = 2 * jnp.pi * shake.hz * t
    return tuple(jnp.sum(shake.amplitude_px * jnp.sin(angle + phase), axis=-1) for phase in shake.phase)


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
        shake: the camera's :class:`Shake`, or None on a tripod (then no shake code is traced).
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
    shake: Shake | None = None


def scene_background(scene: Scene, width: int, height: int) -> np.ndarray:
    """Static albedo of the scene sampled at pixel centres, ``(height, width)`` float32 in ``ALBEDO_RANGE``.

    Smooth random cosine patterns (a few coarse, some fine texture) plus sharp-edged blocks.
    """
    rng = np.random.default_rng([scene.seed, 0])
    u = pixel_centres(width)
    v = pixel_centres(height)
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


def frame_model(camera: Camera, flashes: Flashes, scene: Scene, shake_seed: int = 0) -> FrameModel:
    """The arrays :func:`render_frames` needs to draw ``camera``'s view of ``scene`` under ``flashes`` (its shake drawn
    from ``shake_seed``)."""
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
        camera_shake(camera.shake_px, shake_seed) if camera.shake_px > 0 else None,
    )


def _wrap(position, half):
    """Position wrapped into ``[-half, 1 + half)`` so objects leave on one side and re-enter on the other."""
    return jnp.mod(position + half, 1.0 + 2.0 * half) - half


def _view(model: FrameModel, time_s):
    """Scene coordinates ``(u, v)`` (picture fractions) that every pixel sees at its row's time ``time_s`` ``(n_frames,
    height)`` (s), each broadcastable to ``(n_frames, height, width)`` float32: the pixel centres, moved by the shake."""
    n_rows, n_cols = model.background.shape
    u = ((jnp.arange(n_cols, dtype=jnp.float32) + 0.5) / n_cols)[None, None, :]
    v = ((jnp.arange(n_rows, dtype=jnp.float32) + 0.5) / n_rows)[None, :, None]
    if model.shake is None:
        return u, v
    across, down = shake_offsets(model.shake, time_s)
    return u + (across / n_cols).astype(jnp.float32)[..., None], v + (down / n_rows).astype(jnp.float32)[..., None]


def _pixels(position, n_pixels: int):
    """Pixel coordinates (0 at the first pixel's centre) of picture fractions ``position`` across ``n_pixels``."""
    return position * n_pixels - 0.5


def _sampled(raster, u, v, outside: str):
    """A static ``raster`` ``(height, width)`` at scene coordinates ``(u, v)`` (:func:`_view`), bilinear; beyond its
    edges the nearest pixel (``outside="nearest"``) or 0 (``"constant"``)."""
    n_rows, n_cols = raster.shape
    u, v = jnp.broadcast_arrays(u, v)
    return map_coordinates(raster, [_pixels(v, n_rows), _pixels(u, n_cols)], order=1, mode=outside)


def _scene_albedo(model: FrameModel, time_s, u, v):
    """Albedo of every pixel with objects placed at each row's time, and the share of each pixel
    where the window shows (None without a window), both ``(n_frames, height, width)`` float32;
    ``(u, v)`` the scene coordinates the pixels see (:func:`_view`).
    """
    n_rows, n_cols = model.background.shape
    shape = time_s.shape[:1] + model.background.shape
    if model.shake is None:
        albedo = jnp.broadcast_to(model.background, shape)
        window = None if model.window_mask is None else jnp.broadcast_to(model.window_mask, shape)
    else:
        albedo = _sampled(model.background, u, v, "nearest")
        window = None if model.window_mask is None else _sampled(model.window_mask, u, v, "constant")
    obj = model.objects
    for i in range(obj.albedo.shape[0]):
        center_u = _wrap(obj.center_u[i] + obj.velocity_u[i] * time_s, obj.half_u[i]).astype(jnp.float32)
        center_v = _wrap(obj.center_v[i] + obj.velocity_v[i] * time_s, obj.half_v[i]).astype(jnp.float32)
        du = u - center_u[:, :, None]
        dv = v - center_v[:, :, None]
        half_u = obj.half_u[i].astype(jnp.float32)
        half_v = obj.half_v[i].astype(jnp.float32)
        # coverage with a one-pixel soft edge
        radius = jnp.sqrt((du / half_u) ** 2 + (dv / half_v) ** 2)
        disc = jnp.clip(0.5 + (1.0 - radius) * half_v * n_rows, 0.0, 1.0)
        rect = soft_inside(du, half_u, n_cols) * soft_inside(dv, half_v, n_rows)
        cover = jnp.where(obj.is_disc[i], disc, rect)
        albedo = albedo + cover * (obj.albedo[i].astype(jnp.float32) - albedo)
        if window is not None:  # objects pass in front of the window
            window = window * (1.0 - cover)
    return albedo, window


def render_frames(model: FrameModel, noise_key, sensor_frame, gain, *, window: int, transfer_name: str = transfer.LINEAR):
    """Grey frames of the given sensor frame indices, ``(n_frames, height, width)`` uint8.

    Pure JAX (jit with ``window`` static; :func:`render_chunks` does). A pixel is
    ``gain_k * albedo(x, y, t_row) * (ambient(row) + flash light of its row * column gain(x)) +
    noise`` (``(x, y)`` the scene point the pixel sees at ``t_row``: its own place, or moved by the camera's shake),
    clipped to 0..255 (light in grey levels, encoded by ``transfer_name`` as a camera stores it, with white at
    255, before the noise is added), where ``t_row`` is the reference time of the middle of the row's
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
    middle_s, start_ms, end_ms = row_windows(frame_time_ms, n_rows=n_rows, **row_timing(model))
    ambient = ambient_light(model.lighting, middle_s, start_ms, end_ms)
    flashes = (model.flash_ms, model.decay_ms, model.rise_ms, model.amplitude)
    flash = flash_light(frame_time_ms, *flashes, n_rows=n_rows, window=window, **row_timing(model))
    gain = jnp.asarray(gain, dtype=jnp.float64)[:, None, None]
    u, v = _view(model, middle_s)
    column_gain = model.flash_column_gain[None, None, :]
    if model.shake is not None:  # the flashes light a part of the scene, which moves in the view
        column_gain = jnp.interp(_pixels(u, n_cols), jnp.arange(n_cols, dtype=jnp.float32), model.flash_column_gain)
    light = gain * (ambient[:, :, None] + flash[:, :, None] * column_gain)
    albedo, window_share = _scene_albedo(model, middle_s, u, v)
    signal = albedo * light.astype(jnp.float32)
    if window_share is not None:
        emitted = (gain * model.window_luminance).astype(jnp.float32)
        signal = signal + window_share * (emitted - signal)

    def frame_noise(k):
        return jax.random.normal(jax.random.fold_in(noise_key, k), (n_rows, n_cols), dtype=jnp.float32)

    noise = jax.vmap(frame_noise)(sensor_frame)
    coded = 255.0 * transfer.encode(signal / 255.0, transfer_name, xp=jnp)
    pixel = coded + jnp.float32(model.noise_sigma) * noise
    return jnp.clip(jnp.round(pixel), 0, 255).astype(jnp.uint8)


_render_frames_jit = jax.jit(render_frames, static_argnames=("window", "transfer_name"))


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
    model = frame_model(camera, flashes, scene, shake_seed=noise_seed)
    window = flash_window(camera, flashes, sensor_frames * camera.frame_period_ms)
    key = jax.random.key(int(noise_seed) % (1 << 32))
    n_chunks = -(-sensor_frames.size // chunk)

    def dispatch(i):
        part = sensor_frames[i * chunk : (i + 1) * chunk]
        padded = np.concatenate([part, np.full(chunk - part.size, part[-1])])
        frames = _render_frames_jit(
            model, key, jnp.asarray(padded), jnp.asarray(gains[padded]), window=window, transfer_name=camera.transfer
        )
        return part.size, frames

    pending = dispatch(0)
    for i in range(1, n_chunks + 1):
        ahead = dispatch(i) if i < n_chunks else None  # JAX works on the next batch meanwhile
        size, frames = pending
        yield np.asarray(frames)[:size]
        pending = ahead
