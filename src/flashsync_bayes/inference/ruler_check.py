"""The flicker ruler checked against the flashes: bands whose period the flashes contradict pin nothing.

A band period is trusted only as far as its lamps are what the ruler assumes (100 or 120 Hz mains
lamps). Other light can paint bands too (an LED driver at its own frequency, a monitor), and a
phase step can match one of the two frequencies by chance. Where the flashes say something about
a camera's time per row (another frame rate, bands across a frame boundary, other cameras'
rulers through the ratios the flashes pin), each ruler is compared with what the least squares
predict without it; the one furthest off is dropped while it is more than :data:`RULER_Z_LIMIT`
combined sds away. Where the flashes say nothing the ruler stands alone and is kept.
"""

from __future__ import annotations

import numpy as np

from flashsync_bayes.inference.flicker_ruler import FlickerRuler
from flashsync_bayes.inference.lsq import solve_lsq
from flashsync_bayes.inference.problem import Priors, Problem

#: Largest distance (combined sds) between a ruler and the time per row the rest of the data predict.
RULER_Z_LIMIT = 4.0


def _without(ruler: FlickerRuler, camera: int, note: str | None = None) -> FlickerRuler:
    """``ruler`` with ``camera``'s measurement left out (and its note replaced where ``note`` is given)."""
    time_per_row, relative_sd = ruler.time_per_row_ms.copy(), ruler.relative_sd.copy()
    time_per_row[camera] = relative_sd[camera] = np.nan
    notes = list(ruler.notes)
    if note is not None:
        notes[camera] = note
    flicker_hz = ruler.flicker_hz if np.isfinite(time_per_row).any() else float("nan")
    return ruler._replace(time_per_row_ms=time_per_row, relative_sd=relative_sd, flicker_hz=flicker_hz, notes=tuple(notes))


def ruler_disagreement(problem: Problem, priors: Priors, camera: int) -> float:
    """``(ruler - predicted) / combined sd`` of one ruled camera's time per row, predicted by the lsq fit without its ruler."""
    ruler = problem.ruler
    solution = solve_lsq(problem._replace(ruler=_without(ruler, camera)), priors)
    column = solution.tpr_column[camera]
    predicted, predicted_var = solution.vector[column], solution.camera_covariance[column, column]
    measured = ruler.time_per_row_ms[camera]
    relative_variance = ruler.relative_sd[camera] ** 2 + ruler.frequency_variance(priors.mains_relative_sd)
    variance = relative_variance * measured**2 + predicted_var
    return float((measured - predicted) / np.sqrt(variance))


def checked_ruler(problem: Problem, priors: Priors = Priors()) -> Problem:
    """``problem`` with the rulers the flashes contradict left out, one at a time, the worst first (notes say why)."""
    ruler = problem.ruler
    while ruler.used.any():
        ruled = np.flatnonzero(ruler.used)
        z = np.array([ruler_disagreement(problem._replace(ruler=ruler), priors, c) for c in ruled])
        worst = int(np.argmax(np.abs(z)))
        if abs(z[worst]) <= RULER_Z_LIMIT:
            break
        camera = int(ruled[worst])
        note = f"{ruler.notes[camera]}, left out: {z[worst]:+.1f} sd from the time per row the flashes give"
        ruler = _without(ruler, camera, note)
    return problem._replace(ruler=ruler)
