"""What flash detection looks at: row profiles with the ambient light's change divided out."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from flashsync_bayes.detection import ambient
from flashsync_bayes.detection.profiles import STEP_HALF_WIDTHS, RowProfiles, box_step
from flashsync_bayes.detection.settings import DetectorSettings

#: The earlier steps of :meth:`Evidence.track_steps` are taken where this share of the blocks steps at least as much
#: (three quarters step): a flash that lands where a moving object's edge crosses some of its blocks is no repeat.
TRACK_QUANTILE = 0.25


class Evidence(NamedTuple):
    """What flash detection looks at in one video (relative changes with the ambient change divided out).

    Attributes:
        rising: ``(n_frames, rows)`` change that a quarter of the columns show at least (rises).
        falling: ``(n_frames, rows)`` change that a quarter show at most (falls).
        gain: ``(n_frames,)`` each frame's change of the whole picture (auto-exposure), relative.
        blocks: ``(n_frames, rows, blocks)`` each column block's log change (float16, see
            :class:`~flashsync_bayes.detection.profiles.RowProfiles`), its own share of the flicker made the median's
            (:func:`~flashsync_bayes.detection.ambient.lamp_share_divided`), None where only a profile is known.
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

    def _blocks_near(self, frame: int, first: int, end: int, polarity: int) -> np.ndarray:
        """``polarity`` times each block's change in rows ``[first, end)`` of ``frame``, flicker taken off, ``(rows, blocks)``."""
        rows = slice(first, end)
        return polarity * (self.blocks[frame, rows].astype(np.float64) - self.flicker[frame, rows, None])

    def _blocks_around(self, frame: int, row: int, polarity: int, half_width: int) -> np.ndarray | None:
        """:meth:`_blocks_near` the ``half_width`` rows on each side of ``row`` (what a box step there sees); None where
        it cannot be told (no blocks, too near the top or bottom)."""
        if self.blocks is None or row < half_width or row + half_width > self.blocks.shape[1]:
            return None
        return self._blocks_near(frame, row - half_width, row + half_width, polarity)

    def step_support(self, frame: int, row: int, polarity: int, rank: int, half_width: int) -> float:
        """Share in [0, 1] of the step of ``polarity`` at ``row`` of ``frame`` that ``rank`` blocks make themselves.

        The box step (``half_width`` rows on each side) of the ``rank``-th largest (for falls:
        smallest) block change, against the ``rank``-th largest of the blocks' own box steps, both
        with the flicker change taken off. A flash's band steps alike in every block it reaches
        (about 1); an object's edge in fewer than ``rank`` blocks, beside blocks that changed before,
        makes a step of the rank statistic that the blocks do not (far below 1). 1 where it cannot be
        told: no blocks known, too near the frame's top or bottom, or no such step.
        """
        near = self._blocks_around(frame, row, polarity, half_width)
        if near is None:
            return 1.0
        own = row_box_steps(near, half_width)[0]
        step = row_box_steps(np.sort(near, axis=1)[:, [-rank]], half_width)[0, 0]
        return float(np.clip(np.sort(own)[-rank] / step, 0.0, 1.0)) if step > 0 else 1.0

    def track_steps(
        self, frame: int, row: int, polarity: int, rank: int, half_width: int, earlier: int, reach: int, earlier_polarity: int | None = None
    ):
        """``(step, earlier_step)``: the ``rank``-th largest block step of ``polarity`` at ``row`` of ``frame`` (box steps of
        ``half_width`` rows), and the largest, over the rows within ``reach`` of ``row`` in frame ``earlier``, of the
        :data:`TRACK_QUANTILE` quantile of the sharp band steps (of ``earlier_polarity``, default ``polarity``) of the
        blocks stepping at least half that (an edge steps its blocks in one row; noise does not).

        A sharp band step at a row is the smaller of the box step there and the mean change of the
        rows from there on, both over the sharpest box half-width (``STEP_HALF_WIDTHS[0]`` rows, what a moving edge
        makes): a step up to a band of change of ``polarity``, not the end of a band of the other one (a
        flash's return ends that way), and as high for a band a few rows wide as for a wide one. Flicker
        is taken off, and a change of the whole picture (auto-exposure) makes no step. A moving object's
        edge steps its blocks in the frames before too, a little higher or lower; the frames before a
        flash do not. ``(0, 0)`` where it cannot be told (no blocks, too near the top or bottom, fewer
        than ``rank`` blocks stepping).
        """
        around = self._blocks_around(frame, row, polarity, half_width)
        if around is None or not 0 <= earlier < self.blocks.shape[0]:
            return 0.0, 0.0
        own = row_box_steps(around, half_width)[0]
        step = float(np.sort(own)[-rank])
        lit = own >= 0.5 * step
        if step <= 0 or lit.sum() < rank:
            return 0.0, 0.0
        sharp = STEP_HALF_WIDTHS[0]
        first, end = max(row - reach - sharp, 0), min(row + reach + sharp, self.blocks.shape[1])
        near = self._blocks_near(earlier, first, end, polarity if earlier_polarity is None else earlier_polarity)
        if near.shape[0] < 2 * sharp:
            return step, 0.0
        below = np.lib.stride_tricks.sliding_window_view(near, sharp, axis=0).mean(axis=-1)[sharp:]
        band_steps = np.minimum(row_box_steps(near, sharp), below)
        return step, float(np.quantile(band_steps[:, lit], TRACK_QUANTILE, axis=1).max())


def row_box_steps(values: np.ndarray, half_width: int) -> np.ndarray:
    """:func:`~flashsync_bayes.detection.profiles.box_step` down the rows of ``values`` ``(rows, k)``, at the rows
    where it is defined (``half_width .. rows - half_width``): ``(rows - 2 half_width + 1, k)``, empty where too few rows."""
    if values.shape[0] < 2 * half_width:
        return np.zeros((0, values.shape[1]))
    steps = box_step(values.T, half_width, xp=np).T
    return steps[half_width : values.shape[0] - half_width + 1]


def flash_evidence(rows: RowProfiles, ticks: np.ndarray, settings: DetectorSettings, cycles_per_row: float | None = None):
    """``(Evidence, Flicker)`` of a video's row profiles: the ambient change divided out (see :mod:`~flashsync_bayes.detection.ambient`).

    ``ticks`` are the frames' tick numbers on their clock (:func:`~flashsync_bayes.timing.tick_numbers`);
    ``cycles_per_row`` the flicker band frequency (cycles per row, 0: none) where it is known, e.g.
    from earlier frames of the video, else None: searched in ``rows`` (:func:`~flashsync_bayes.detection.ambient.fit_flicker`).
    """
    n = rows.median.shape[0]
    if not settings.ambient or n < 3:
        flicker, (change, level) = ambient.NO_FLICKER, ambient.no_flicker_coefficients(n)
    else:
        flicker, change, level = ambient.fit_flicker(rows.median, ticks, cycles_per_row)
    cycles, n_rows = jnp.float32(flicker.cycles_per_row), rows.median.shape[1]
    flicker_change, flicker_level = (ambient.flicker_rows(jnp.asarray(c), cycles, n_rows) for c in (change, level))
    if flicker.cycles_per_row > 0:
        rows = ambient.lamp_share_divided(RowProfiles(*(jnp.asarray(r) for r in rows)), flicker_change, settings.rank)
    relative = [np.asarray(ambient.flash_profiles(jnp.asarray(profile), flicker_change, flicker_level)) for profile in rows[:3]]
    gain = np.asarray(ambient.frame_gain(jnp.asarray(relative[0]))) if n else np.zeros(0, np.float32)
    return Evidence(relative[1], relative[2], gain, np.asarray(rows.blocks), np.asarray(flicker_change)), flicker
