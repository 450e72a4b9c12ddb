"""Mains flicker as a ruler for the time per row (DESIGN §5, FACTS.md).

Lamps on the mains flicker at twice its frequency, ``f`` = 100 or 120 Hz, known to ~0.1 %. Under a
rolling shutter they paint bands whose period in stored rows is ``P = (1/f) / a``, so a camera
whose bands detection measured (``flicker_period_rows`` ± ``flicker_period_rows_sd`` in the events)
has a time per row ``a = 1000 / (f P)`` ms in reference time. Which ``f`` lit the room the bands'
phase step per frame tells: it is the fraction of ``f T`` (at 30 fps 1/3 for 100 Hz, 0 for 120 Hz).
All cameras see the same lamps, so ``f``'s own error moves every camera's time per row by one
factor: the measurements' relative errors have covariance ``diag(s_c²) + τ² 1 1ᵀ``, whose inverse
:func:`ruler_precision` gives in closed form. The step also measures ``f`` itself: ``f T = k + step``
with ``T`` in reference time, which the reference camera's frame period is (its drift is 1 by
definition). Where the reference camera's bands match the lamps, ``f`` is taken from its step, to
``τ = STEP_SD / (f T)`` (~3e-4 at 30 fps); elsewhere it is the nominal 100 or 120 Hz, to the mains'
``τ`` (:data:`MAINS_RELATIVE_SD`, ~0.1 %, FACTS).

A camera's bands serve only where they move between the frames whose change measured them (one frame
apart, or many for bands that creep: 30 fps under 120 Hz with the mains a few hundredths of a hertz
off; bands standing still are not measured at all), its rows hold at least :data:`MIN_CYCLES` of them, their
bands are not faint (:data:`MIN_AMPLITUDE`), their step matches the chosen frequency and the ruler leaves
``L >= R``; a known sensor fact takes precedence.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flashsync_bayes.detection.ambient import MIN_LEVER, band_lever, wrapped_cycles

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
#: Standard error (cycles) of a phase step, to which it measures the lamps' frequency: the periodogram's peak over a
#: window of frames finds it within ~1e-4 cycles on simulated lamps (steps of 23 cameras, moving and creeping), and
#: real mains wander by up to a few 1e-4 within a window; ten times the simulated error.
STEP_SD = 1e-3


class FlickerRuler(NamedTuple):
    """What the flicker bands say about each camera's time per row.

    Attributes:
        time_per_row_ms: ``(C,)`` ``1000 / (f P)`` where the bands serve as a ruler, NaN elsewhere.
        relative_sd: ``(C,)`` relative sd of that measurement (the period's, without the lamps' frequency's), NaN
            elsewhere.
        flicker_hz: the lamps' nominal flicker frequency, NaN where no camera's bands serve.
        notes: per camera, why its bands serve or not (one line).
        measured_hz: the lamps' frequency ``f`` the rulers use, measured from the reference camera's phase step
            (in reference time); NaN where it is not measured (the nominal one is used).
        measured_relative_sd: its relative sd ``τ``; NaN where not measured.
    """

    time_per_row_ms: np.ndarray
    relative_sd: np.ndarray
    flicker_hz: float
    notes: tuple
    measured_hz: float = float("nan")
    measured_relative_sd: float = float("nan")

    @property
    def used(self) -> np.ndarray:
        """``(C,)`` bool: cameras whose bands serve as a ruler."""
        return np.isfinite(self.time_per_row_ms)

    def frequency_variance(self, mains_relative_sd: float) -> float:
        """``τ²``: the relative variance of the lamps' frequency the rulers share, measured or the mains' prior sd."""
        measured = np.isfinite(self.measured_relative_sd)
        return float(self.measured_relative_sd if measured else mains_relative_sd) ** 2

    @property
    def weight(self) -> np.ndarray:
        """``(C,)`` precision ``1 / s_c²`` of each camera's relative error (0 where its bands do not serve)."""
        return np.where(self.used, 1.0 / np.where(self.used, self.relative_sd, 1.0) ** 2, 0.0)


def no_ruler(n_cameras: int, note: str) -> FlickerRuler:
    """A :class:`FlickerRuler` that pins no camera, with one note for all."""
    nan = np.full(n_cameras, np.nan)
    return FlickerRuler(nan, nan.copy(), float("nan"), (note,) * n_cameras)


def _step_offset(step, flicker_hz: float, frame_period_ms):
    """Signed offset (cycles, in [-0.5, 0.5)) of phase steps from ``frac(f T)``."""
    return wrapped_cycles(step - flicker_hz * frame_period_ms / 1000.0)


def _step_distance(step: np.ndarray, flicker_hz: float, frame_period_ms: np.ndarray) -> np.ndarray:
    """Circular distance (cycles) of phase steps from ``frac(f T)``, the bands read in either row direction."""
    return np.minimum(*(np.abs(_step_offset(s, flicker_hz, frame_period_ms)) for s in (step, -step)))


def band_ruler(
    period_rows, period_rows_sd, phase_step, amplitude, frame_period_ms, stored_rows, known=None, lag_frames=None,
    reference=None,
) -> FlickerRuler:
    """The :class:`FlickerRuler` of cameras' band periods ``(C,)`` (rows, NaN: none), their sds, phase steps (cycles)
    and amplitudes (of the log light).

    ``frame_period_ms`` and ``stored_rows`` ``(C,)`` are each camera's T and R; ``known`` ``(C,)``
    marks cameras whose time per row a sensor fact gives (their bands are not used); ``lag_frames`` ``(C,)`` the
    frames over which each period was measured (1 where None); ``reference`` the index of the camera whose clock is
    reference time, whose step measures the lamps' frequency (None: the nominal frequency is used).
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
    lamp_hz, lamp_sd = _measured_frequency(matches[best], step, best, frame_period, reference)
    frequency = best if np.isnan(lamp_hz) else lamp_hz
    time_per_row = np.where(matches[best], 1000.0 / (frequency * np.where(measured, period, 1.0)), np.nan)
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
    flicker_hz = best if used.any() else float("nan")
    if not used.any():
        lamp_hz = lamp_sd = float("nan")
    return FlickerRuler(np.where(used, time_per_row, np.nan), relative_sd, flicker_hz, tuple(notes), lamp_hz, lamp_sd)


def _measured_frequency(matched, step, flicker_hz: float, frame_period_ms, reference) -> tuple[float, float]:
    """``(f, τ)``: the lamps' frequency (Hz, reference time) from the reference camera's phase step, ``f T = k + step``,
    and its relative sd (:data:`STEP_SD`); NaNs where the reference camera's step, read in row order as detection
    reads it, does not match the lamps."""
    if reference is None or not matched[reference]:
        return float("nan"), float("nan")
    offset = _step_offset(step[reference], flicker_hz, frame_period_ms[reference])
    if abs(offset) > STEP_TOLERANCE:
        return float("nan"), float("nan")
    period_s = frame_period_ms[reference] / 1000.0
    lamp_hz = flicker_hz + offset / period_s
    return float(lamp_hz), float(STEP_SD / (lamp_hz * period_s))


def ruler_precision(weight, mains_variance, xp=np):
    """Precision matrix ``(C, C)`` of the cameras' relative ruler errors, ``(diag(1 / w) + τ² 1 1ᵀ)⁻¹``.

    ``weight`` ``(C,)`` is ``1 / s_c²`` (0 for cameras without a ruler), ``mains_variance`` ``τ²``.
    By Sherman-Morrison: ``diag(w) - τ² w wᵀ / (1 + τ² Σ w)``. ``xp``: numpy, or jax.numpy in models.
    """
    return xp.diag(weight) - mains_variance * xp.outer(weight, weight) / (1.0 + mains_variance * xp.sum(weight))
