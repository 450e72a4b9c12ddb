"""What a simulated scene is: its parameters and presets, where its flashes reach and where its window is.

Positions are in normalised picture coordinates (``u`` across, ``v`` down, both in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from flashsync_bayes.errors import FlashsyncError

#: Largest value of the square wave's odd harmonics ``sin 3θ / 3 + sin 5θ / 5`` (:attr:`Scene.flicker_square`), a bound.
SQUARE_PEAK = 1 / 3 + 1 / 5


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
        flicker_square: share q in [0, 1] of a square wave's odd harmonics in the flicker: ``q (sin 3θ / 3 + sin 5θ / 5)``
            added to the fundamental ``sin θ`` (LED drivers that switch their current; 0 for filaments and tubes).
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
    flicker_square: float = 0.0
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
        if not 0 <= self.flicker_square <= 1:
            raise FlashsyncError(f"flicker_square must lie in [0, 1], got {self.flicker_square}")
        if not self.flicker_modulation * (1 + self.flicker_harmonic + SQUARE_PEAK * self.flicker_square) < 1:
            raise FlashsyncError(
                "lamps emit no negative light: keep flicker_modulation * (1 + flicker_harmonic"
                f" + {SQUARE_PEAK:.3f} flicker_square) < 1"
            )
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


def soft_inside(offset, half, n_pixels):
    """Coverage of an interval of half width ``half`` at ``offset`` from its centre, with a one-pixel soft edge.

    ``offset`` and ``half`` in picture fractions, ``n_pixels`` pixels per picture.
    """
    return jnp.clip(0.5 + (half - jnp.abs(offset)) * n_pixels, 0.0, 1.0)


def pixel_centres(n_pixels: int) -> np.ndarray:
    """Normalised coordinates of ``n_pixels`` pixel centres, ``(n_pixels,)``."""
    return (np.arange(n_pixels) + 0.5) / n_pixels


def _span_coverage(lo: float, hi: float, n_pixels: int):
    """Share of each of ``n_pixels`` pixels inside the span ``[lo, hi]`` (picture fractions), one-pixel soft edges."""
    return soft_inside(pixel_centres(n_pixels) - 0.5 * (lo + hi), 0.5 * (hi - lo), n_pixels)


def flash_column_gain(scene: Scene, width: int) -> np.ndarray:
    """Flash light of every column relative to the amplitude, ``(width,)`` float64.

    0 outside the flash span (one-pixel soft edges), ``1 + falloff * cos(π (u - peak) / coverage)``
    inside; exactly 1 everywhere for full coverage without falloff.
    """
    u = pixel_centres(width)
    layout = scene_layout(scene)
    (u0, u1), peak = layout.flash_u, layout.flash_peak_u
    reach = 1.0 if scene.flash_coverage >= 1 else np.asarray(_span_coverage(u0, u1, width))
    profile = 1.0 + scene.flash_falloff * np.cos(np.pi * (u - peak) / scene.flash_coverage)
    return np.asarray(reach * profile, dtype=np.float64)


def window_mask(scene: Scene, width: int, height: int) -> np.ndarray | None:
    """Share of every pixel the scene's window covers, ``(height, width)`` float32, or None without a window."""
    window = scene_layout(scene).window
    if window is None:
        return None
    u0, v0, u1, v1 = window
    across = _span_coverage(u0, u1, width)
    down = _span_coverage(v0, v1, height)
    return np.asarray(down[:, None] * across[None, :], dtype=np.float32)

