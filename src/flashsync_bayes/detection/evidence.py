"""What flash detection looks at: row profiles with the ambient light's change divided out."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from flashsync_bayes.detection import ambient
from flashsync_bayes.detection.profiles import RowProfiles
from flashsync_bayes.detection.settings import DetectorSettings


class Evidence(NamedTuple):
    """What flash detection looks at in one video (relative changes with the ambient change divided out).

    Attributes:
        rising: ``(n_frames, rows)`` change that a quarter of the columns show at least (rises).
        falling: ``(n_frames, rows)`` change that a quarter show at most (falls).
        gain: ``(n_frames,)`` each frame's change of the whole picture (auto-exposure), relative.
    """

    rising: np.ndarray
    falling: np.ndarray
    gain: np.ndarray

    @classmethod
    def of_change(cls, change: np.ndarray) -> Evidence:
        """Evidence of one profile of relative changes ``(n_frames, rows)`` seen across the whole width."""
        return cls(change, change, np.zeros(change.shape[0], change.dtype))

    def profile(self, polarity: int) -> np.ndarray:
        """The profiles in which edges of ``polarity`` (+1 rising, -1 falling) are sought."""
        return self.rising if polarity > 0 else self.falling


def flash_evidence(rows: RowProfiles, ticks: np.ndarray, settings: DetectorSettings, cycles_per_row: float | None = None):
    """``(Evidence, Flicker)`` of a video's row profiles: the ambient change divided out (see :mod:`~flashsync_bayes.detection.ambient`).

    ``ticks`` are the frames' tick numbers on their clock (:func:`~flashsync_bayes.timing.tick_numbers`);
    ``cycles_per_row`` the flicker band frequency (cycles per row, 0: none) where it is known, e.g.
    from earlier frames of the video, else None: searched in ``rows`` (:func:`~flashsync_bayes.detection.ambient.fit_flicker`).
    """
    n = rows.median.shape[0]
    if not settings.ambient or n < 3:
        flicker, change, level = ambient.NO_FLICKER, np.zeros((n, 4)), np.zeros((n, 4))
    else:
        flicker, change, level = ambient.fit_flicker(rows.median, ticks, cycles_per_row)
    cycles = jnp.float32(flicker.cycles_per_row)
    relative = [
        np.asarray(ambient.flash_profiles(jnp.asarray(profile), jnp.asarray(change), jnp.asarray(level), cycles))
        for profile in rows
    ]
    gain = np.asarray(ambient.frame_gain(jnp.asarray(relative[0]))) if n else np.zeros(0, np.float32)
    return Evidence(relative[1], relative[2], gain), flicker
