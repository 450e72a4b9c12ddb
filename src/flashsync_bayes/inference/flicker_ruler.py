"""Mains flicker as a ruler for the time per row (DESIGN §5, FACTS.md).

Lamps on the mains flicker at twice its frequency, ``f`` = 100 or 120 Hz, known to ~0.1 %. Under a
rolling shutter they paint bands whose period in stored rows is ``P = (1/f) / a``, so a camera
whose bands detection measured (``flicker_period_rows`` ± ``flicker_period_rows_sd`` in the events)
has a time per row ``a = 1000 / (f P)`` ms in reference time. Which ``f`` lit the room the bands'
phase step per frame tells: it is the fraction of ``f T`` (at 30 fps 1/3 for 100 Hz, 0 for 120 Hz).
All cameras see the same lamps, so ``f``'s own error moves every camera's time per row by one
factor: the measurements' relative errors have covariance ``diag(s_c²) + τ² 1 1ᵀ`` (``τ``
:data:`MAINS_RELATIVE_SD`), whose inverse :func:`ruler_precision` gives in closed form.

A camera's bands serve only where they move between the frames whose change measured them (one frame
apart, or many for bands that creep: 30 fps under 120 Hz with the mains a few hundredths of a hertz
off; bands standing still are not measured at all), its rows hold at least :data:`MIN_CYCLES` of them, their
bands are not faint (:data:`MIN_AMPLITUDE`), their step matches the chosen frequency and the ruler leaves
``L >= R``; a known sensor fact takes precedence.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flashsync_bayes.detection.ambient import MIN_LEVER, band_lever

#: Lamp flicker frequencies (Hz): twice the 50 and 60 Hz mains.
FLICKER_HZ = (100.0, 120.0)
#: Relative sd of the mains frequency around its nominal value (grids hold it within ~0.1 %, FACTS.md).
MAINS_RELATIVE_SD = 1e-3
#: Fewest band cycles a camera's stored rows must hold for its period to serve: less than one cycle is little
#: more than a slope and a bend, and periods came out biased beyond their error there (60 fps under 100 Hz, 0.96
#: cycles: +2.8 % with an sd of 0.2 %), while 1.2-1.4 cycles came out within their sd (4 cameras, 0.02-0.07 %).
MIN_CYCLES = 1.0
#: Smallest amplitude of the bands' log level for them to serve: weaker ones are no lamps' bands to trust (a
#: 25 fps camera under 100 Hz, its bands standing, had a spurious period twice the true one at amplitude 0.0001;
#: real bands measured 0.05-0.26, the weakest under an exposure of nearly a whole flicker period).
MIN_AMPLITUDE = 0.01
#: Largest distance (cycles) between a measured phase step and ``frac(f T)`` for the two to match:
#: the mains' 0.1 % moves ``f T`` by 0.004 cycles at 30 fps, 0.017 at 8 fps.
STEP_TOLERANCE = 0.03


class FlickerRuler(NamedTuple):
    """What the flicker bands say about each camera's time per row.

    Attributes:
        time_per_row_ms: ``(C,)`` ``1000 / (f P)`` where the bands serve as a ruler, NaN elsewhere.
        relative_sd: ``(C,)`` relative sd of that measurement (the period's, without the mains'), NaN elsewhere.
        flicker_hz: the lamps' nominal flicker frequency, NaN where no camera's bands serve.
        notes: per camera, why its bands serve or not (one line).
    """

    time_per_row_ms: np.ndarray
    relative_sd: np.ndarray
    flicker_hz: float
    notes: tuple

    @property
    def used(self) -> np.ndarray:
        """``(C,)`` bool: cameras whose bands serve as a ruler."""
        return np.isfinite(self.time_per_row_ms)

    @property
    def weight(self) -> np.ndarray:
        """``(C,)`` precision ``1 / s_c²`` of each camera's relative error (0 where its bands do not serve)."""
        return np.where(self.used, 1.0 / np.where(self.used, self.relative_sd, 1.0) ** 2, 0.0)


def no_ruler(n_cameras: int, note: str) -> FlickerRuler:
    """A :class:`FlickerRuler` that pins no camera, with one note for all."""
    nan = np.full(n_cameras, np.nan)
    return FlickerRuler(nan, nan.copy(), float("nan"), (note,) * n_cameras)


def _step_distance(step: np.ndarray, flicker_hz: float, frame_period_ms: np.ndarray) -> np.ndarray:
    """Circular distance (cycles) of phase steps from ``frac(f T)``, the bands read in either row direction."""
    expected = flicker_hz * frame_period_ms / 1000.0
    distance = [np.abs((s - expected + 0.5) % 1.0 - 0.5) for s in (step, -step)]
    return np.minimum(*distance)


def band_ruler(
    period_rows, period_rows_sd, phase_step, amplitude, frame_period_ms, stored_rows, known=None, lag_frames=None
) -> FlickerRuler:
    """The :class:`FlickerRuler` of cameras' band periods ``(C,)`` (rows, NaN: none), their sds, phase steps (cycles)
    and amplitudes (of the log light).

    ``frame_period_ms`` and ``stored_rows`` ``(C,)`` are each camera's T and R; ``known`` ``(C,)``
    marks cameras whose time per row a sensor fact gives (their bands are not used); ``lag_frames`` ``(C,)`` the
    frames over which each period was measured (1 where None).
    """
    period, period_sd, step, strength = (
        np.asarray(v, dtype=np.float64) for v in (period_rows, period_rows_sd, phase_step, amplitude)
    )
    frame_period, rows = np.asarray(frame_period_ms, np.float64), np.asarray(stored_rows, np.float64)
    known = np.zeros(period.size, bool) if known is None else np.asarray(known, bool)
    measured = np.isfinite(period) & (period > 0) & np.isfinite(period_sd) & (period_sd > 0)
    lag = np.ones(period.size) if lag_frames is None else np.nan_to_num(np.asarray(lag_frames, np.float64), nan=1.0)
    moving = band_lever(step, lag) >= MIN_LEVER
    enough = rows >= MIN_CYCLES * np.where(measured, period, np.inf)
    strong = strength >= MIN_AMPLITUDE
    candidates = measured & moving & enough & strong & ~known
    matches = {f: candidates & (_step_distance(step, f, frame_period) <= STEP_TOLERANCE) for f in FLICKER_HZ}
    counts = {f: int(m.sum()) for f, m in matches.items()}
    best = max(FLICKER_HZ, key=counts.get)
    ambiguous = counts[best] > 0 and all(counts[f] == counts[best] for f in FLICKER_HZ)
    time_per_row = np.where(matches[best], 1000.0 / (best * np.where(measured, period, 1.0)), np.nan)
    physical = time_per_row * rows <= frame_period
    used = matches[best] & physical & (counts[best] > 0) & ~ambiguous
    notes = []
    for c in range(period.size):
        if known[c]:
            notes.append("a sensor fact is given")
        elif not (np.isfinite(period[c]) and period[c] > 0):
            notes.append("no flicker bands measured")
        elif not measured[c]:
            notes.append("flicker band period measured without its error (too few frames)")
        elif not moving[c]:
            notes.append(f"flicker bands stand nearly still (phase step {step[c]:.4f} cycles a frame)")
        elif not strong[c]:
            notes.append(f"flicker bands too faint to trust (amplitude {strength[c]:.4f})")
        elif not enough[c]:
            notes.append(f"flicker bands of {period[c]:.0f} rows, fewer than {MIN_CYCLES} cycles in {rows[c]:.0f} rows")
        elif ambiguous and all(m[c] for m in matches.values()):
            notes.append(f"phase step {step[c]:.3f} fits 100 and 120 Hz alike")
        elif ambiguous and candidates[c]:
            notes.append("the cameras' phase steps disagree on 100 or 120 Hz lamps")
        elif not matches[best][c]:
            notes.append(f"phase step {step[c]:.3f} does not fit {best:.0f} Hz lamps")
        elif not physical[c]:
            notes.append(f"a period of {period[c]:.2f} rows at {best:.0f} Hz would need fewer total rows than stored")
        else:
            creep = f" (they creep: measured over {lag[c]:.0f} frames)" if lag[c] > 1 else ""
            notes.append(f"flicker bands of {best:.0f} Hz lamps, period {period[c]:.2f} ± {period_sd[c]:.2f} rows{creep}")
    relative_sd = np.where(used, period_sd / np.where(measured, period, 1.0), np.nan)
    return FlickerRuler(np.where(used, time_per_row, np.nan), relative_sd, best if used.any() else float("nan"), tuple(notes))


def ruler_precision(weight, mains_variance, xp=np):
    """Precision matrix ``(C, C)`` of the cameras' relative ruler errors, ``(diag(1 / w) + τ² 1 1ᵀ)⁻¹``.

    ``weight`` ``(C,)`` is ``1 / s_c²`` (0 for cameras without a ruler), ``mains_variance`` ``τ²``.
    By Sherman-Morrison: ``diag(w) - τ² w wᵀ / (1 + τ² Σ w)``. ``xp``: numpy, or jax.numpy in models.
    """
    return xp.diag(weight) - mains_variance * xp.outer(weight, weight) / (1.0 + mains_variance * xp.sum(weight))
