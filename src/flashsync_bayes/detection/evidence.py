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
        blocks: ``(n_frames, rows, blocks)`` each column block's log change (float16, see
            :class:`~flashsync_bayes.detection.profiles.RowProfiles`), None where only a profile is known.
        flicker: ``(n_frames, rows)`` the predicted flicker log change of every row (common to all blocks).
    """

    rising: np.ndarray
    falling: np.ndarray
    gain: np.ndarray
    blocks: np.ndarray | None = None
    flicker: np.ndarray | None = None

    @classmethod
    def of_change(cls, change: np.ndarray) -> Evidence:
        """Evidence of one profile of relative changes ``(n_frames, rows)`` seen across the whole width."""
        return cls(change, change, np.zeros(change.shape[0], change.dtype))

    def profile(self, polarity: int) -> np.ndarray:
        """The profiles in which edges of ``polarity`` (+1 rising, -1 falling) are sought."""
        return self.rising if polarity > 0 else self.falling

    def step_support(self, frame: int, row: int, polarity: int, rank: int, half_width: int) -> float:
        """Share in [0, 1] of the step of ``polarity`` at ``row`` of ``frame`` that ``rank`` blocks make themselves.

        The box step (``half_width`` rows on each side) of the ``rank``-th largest (for falls:
        smallest) block change, against the ``rank``-th largest of the blocks' own box steps, both
        with the flicker change taken off. A flash's band steps alike in every block it reaches
        (about 1); an object's edge in fewer than ``rank`` blocks, beside blocks that changed before,
        makes a step of the rank statistic that the blocks do not (far below 1). 1 where it cannot be
        told: no blocks known, too near the frame's top or bottom, or no such step.
        """
        if self.blocks is None or row < half_width or row + half_width > self.blocks.shape[1]:
            return 1.0
        rows = slice(row - half_width, row + half_width)
        near = polarity * (self.blocks[frame, rows].astype(np.float64) - self.flicker[frame, rows, None])

        def box_step(values):
            return values[half_width:].mean(axis=0) - values[:half_width].mean(axis=0)

        step = box_step(np.sort(near, axis=1)[:, -rank])
        own = np.sort(box_step(near))[-rank]
        return float(np.clip(own / step, 0.0, 1.0)) if step > 0 else 1.0


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
    cycles, n_rows = jnp.float32(flicker.cycles_per_row), rows.median.shape[1]
    flicker_change, flicker_level = (ambient.flicker_rows(jnp.asarray(c), cycles, n_rows) for c in (change, level))
    relative = [np.asarray(ambient.flash_profiles(jnp.asarray(profile), flicker_change, flicker_level)) for profile in rows[:3]]
    gain = np.asarray(ambient.frame_gain(jnp.asarray(relative[0]))) if n else np.zeros(0, np.float32)
    return Evidence(relative[1], relative[2], gain, np.asarray(rows.blocks), np.asarray(flicker_change)), flicker
