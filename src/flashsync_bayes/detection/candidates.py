"""Leading-edge candidates: frames whose row profiles step beyond the thresholds, one anchor row each.

Steps are scored on profiles smoothed by a running median over rows; a candidate needs quiet rows
above its step and a band below it, a step that enough blocks make themselves, is not on the
track of a moving edge, and is not the return of the previous frame's pulse.
"""

from __future__ import annotations

import numpy as np

from flashsync_bayes.detection import profiles
from flashsync_bayes.detection.edge_model import FIT_ROWS_ABOVE
from flashsync_bayes.detection.evidence import Evidence
from flashsync_bayes.detection.settings import DetectorSettings

#: Share of the frame's rows over which the median change below a leading edge must hold the
#: step (so half of it): a flash lights at least its exposure's rows (1 ms at 24 fps with the
#: least blanking: 2.5 % of the rows), a moving object's edge a few.
MIN_BAND = 0.04
#: A step counts as a leading edge only if it reaches this share of the frame's strongest step of
#: its polarity: faint structure above a flash's edge (a glow, a slow change of the light, residual
#: flicker) must not take its place, while a flash at least this strong as a moving edge below it is kept.
MIN_STEP_SHARE = 0.25
#: Rows within which an opposite step in the next frame counts as the same pulse's return.
RETURN_ROWS = 16
#: A candidate with another of its polarity this many frames away and this share of the rows
#: apart is on a moving object's track, not a flash (see :func:`_off_tracks`).
TRACK_FRAMES = 2
TRACK_ROWS = 0.05
#: Least share of its step that a candidate's blocks must make themselves (the evidence's support,
#: :meth:`~flashsync_bayes.detection.evidence.Evidence.step_support`): a flash's band steps alike in
#: every block it reaches (at least 0.95 at all 193 true edges found in eight simulated recordings,
#: simulations/README.md), while a dark object entering fewer than ``rank`` blocks beside blocks that
#: had changed before steps the rank profile with too few blocks stepping (0.06-0.65, each a false event before).
MIN_SUPPORT = 0.8
#: A candidate whose blocks stepped alike (at least the frame's threshold and this share of its step) within
#: ``TRACK_ROWS`` of its rows in one of the ``TRACK_FRAMES`` frames before it is a moving edge (see :func:`moving`),
#: one whose blocks stepped the other way in the frame before a pulse's return (:func:`returning`); candidates
#: near each other count as one track, and one as the next frame of the other (:func:`_continues`), only if the
#: other's height is at least this share of its own (:func:`_off_tracks`).
TRACK_SHARE = 0.5


def leading_edge_anchor(profile_row, box_row, polarity: int, threshold: float, half_width: int, gain: float, settings):
    """``(anchor, height)``: the row where the topmost strong step of ``polarity`` reaches half its height, if the rows
    above are quiet, and the step's height (relative change, the band's median beyond the rows above).

    Strong: the box step exceeds half the ``threshold`` and :data:`MIN_STEP_SHARE` of the frame's
    strongest step of that polarity, and the median of the rows below it lies that much beyond the
    rows above (so a thin bright line, e.g. a moving object's edge, is no step). Quiet: within
    ``quiet_fraction`` of the step's gain of no change, or of the frame's ambient ``gain`` change
    where the frame's top rows show it too (:func:`frame_gain_at_top`). None when there is no such
    step or the rows above it changed too (the band started earlier). A step too close to the top to see quiet rows above it comes back as
    ``-anchor - 1``: its band may start inside the frame or in the hidden rows before it, which
    only the edge fit can tell. ``box_row`` is the profile's box step at ``half_width``
    (:func:`~flashsync_bayes.detection.profiles.box_step`).
    """
    steps = polarity * box_row
    level = max(0.5 * threshold, MIN_STEP_SHARE * float(steps.max(initial=0.0)))
    strong = np.flatnonzero(steps > level)
    if strong.size == 0:
        return None
    first = strong[0]
    run_end = first
    while run_end + 1 < steps.size and steps[run_end + 1] > level:
        run_end += 1
    run = steps[first : run_end + 1]
    anchor = first + int(np.argmax(run >= 0.5 * run.max()))
    sharp = profiles.STEP_HALF_WIDTHS[0]
    quiet_rows = profile_row[max(anchor - FIT_ROWS_ABOVE, 0) : max(anchor - 2 * sharp, 0)]
    at_top = quiet_rows.size < sharp
    baseline = gain if at_top else float(np.median(quiet_rows))
    band_rows = max(2 * half_width, int(np.ceil(MIN_BAND * profile_row.size)))
    step_gain = polarity * (np.median(profile_row[anchor : anchor + band_rows]) - baseline)
    if step_gain < 0.5 * threshold:  # a band, not a moving object's edge a few rows high
        return None
    if at_top:
        return -int(anchor) - 1, float(step_gain)  # the fit must show that the band starts inside the frame
    tolerance = settings.quiet_fraction * step_gain
    if not quiet(baseline, frame_gain_at_top(profile_row, gain, band_rows, tolerance), tolerance):
        return None
    return int(anchor), float(step_gain)


def anchor_row(anchor):
    """Row of an anchor (int or array) as :func:`leading_edge_anchor` returns it: ``-row - 1`` marks one near the top."""
    return np.maximum(anchor, -anchor - 1)


def supported(evidence: Evidence, frame: int, anchor: int, polarity: int, rank: int, half_width: int) -> bool:
    """Whether ``rank`` blocks make at least :data:`MIN_SUPPORT` of the step at ``anchor`` (``-anchor - 1``: near the top) themselves."""
    return evidence.step_support(frame, anchor_row(anchor), polarity, rank, half_width) >= MIN_SUPPORT


def _repeated(
    evidence: Evidence,
    frame: int,
    anchor: int,
    polarity: int,
    rank: int,
    half_width: int,
    threshold: float,
    earlier: int,
    earlier_polarity: int,
) -> bool:
    """Whether frame ``earlier`` made a step of ``earlier_polarity`` near ``anchor`` of ``frame`` in the blocks stepping there:
    at least the sharp steps' ``threshold`` (relative, compared as a log change as the blocks' are) and
    :data:`TRACK_SHARE` of the candidate's step (:meth:`~flashsync_bayes.detection.evidence.Evidence.track_steps`),
    within ``TRACK_ROWS`` of the rows."""
    reach = int(np.ceil(TRACK_ROWS * evidence.rising.shape[1]))
    row = anchor_row(anchor)
    step, before = evidence.track_steps(frame, row, polarity, rank, half_width, earlier, reach, earlier_polarity)
    return step > 0 and before >= max(np.log1p(threshold), TRACK_SHARE * step)


def moving(evidence: Evidence, frame: int, anchor: int, polarity: int, rank: int, half_width: int, threshold: float) -> bool:
    """Whether the blocks stepping at ``anchor`` of ``frame`` stepped alike near it in one of the :data:`TRACK_FRAMES` frames before.

    An object moving up or down the picture steps the same blocks in frame after frame, a few rows
    on each time; most frames' steps of it are thin lines that make no candidate, but a frame that
    follows a dropped one (or a faster move) shows a band as wide as a flash's. The frames before a
    flash show no such step (:func:`_repeated`; ``threshold``: that of sharp steps, ``STEP_HALF_WIDTHS[0]``,
    as the earlier steps are measured). The frames after a flash hold its return, which may step either way.
    """
    return any(
        _repeated(evidence, frame, anchor, polarity, rank, half_width, threshold, earlier, polarity)
        for earlier in range(frame - TRACK_FRAMES, frame)
    )


def returning(evidence: Evidence, frame: int, anchor: int, polarity: int, rank: int, half_width: int, threshold: float) -> bool:
    """Whether the blocks stepping at ``anchor`` of ``frame`` stepped the other way near it in the frame before: a pulse's return.

    A flash lights a band in one frame and leaves it in the next, whose step of the other sign is
    the same event. Where the flash itself made no candidate (missed, or a moving edge), its return
    must not count as an event of its own (a light switched off has no step before it); measured
    as :func:`moving` measures a track.
    """
    return _repeated(evidence, frame, anchor, polarity, rank, half_width, threshold, frame - 1, -polarity)


def frame_gain_at_top(profile_row, gain: float, band_rows: int, tolerance: float) -> float:
    """The frame's ambient ``gain`` change if its top ``band_rows`` rows show it (within ``tolerance``), else 0.

    A change of the camera's gain moves every row, the top ones too. A band that covers most of the
    frame's rows (a long exposure's flash, or its return in the next frame) can pass for the gain
    change (:func:`~flashsync_bayes.detection.ambient.frame_gain` takes the level most rows
    share); the rows at the top, above that band, then show no change, and rows at the band's level
    above a step are no quiet rows above a flash's leading edge but the band before its end.
    """
    top = float(np.median(profile_row[:band_rows]))
    return gain if abs(top - gain) <= tolerance else 0.0


def quiet(level, gain, tolerance):
    """Whether ``level`` lies within ``tolerance`` of no change or of the frame's ambient ``gain`` change."""
    return np.minimum(np.abs(level), np.abs(level - gain)) <= tolerance


def edge_candidates(evidence: Evidence, settings: DetectorSettings):
    """``(frames, anchors, polarity, at_top, repeats)`` of leading-edge candidates, sorted by frame.

    Steps are scored and found on profiles smoothed by a running median over rows (thin lines,
    such as a moving object's edge, drop out), and kept where at least :data:`MIN_SUPPORT` of the
    step (at the box half-width that found it) is the blocks' own. Frames whose strongest box step exceeds the
    thresholds are searched at the box half-widths in turn (sharp first); ``at_top`` marks candidates without quiet rows above them (see
    :func:`leading_edge_anchor`); ``repeats`` those whose blocks stepped alike in the frames before
    (:func:`moving`: a moving edge) or the other way in the frame before (:func:`returning`: a pulse's return): no
    events, though their fits still vote on the video's blur as every candidate's does.

    A pulse lights rows below its edge in one frame and leaves them in the next, and a light
    switched on in one frame lights the rows above its edge in the next: the next frame then shows
    an opposite step at or below the first one's edge. That is the same event, not a new one, and
    is skipped.
    """
    found: list[tuple[int, int, int, float]] = []  # (frame, anchor, polarity, height)
    steps: dict[tuple[int, int], tuple[int, float]] = {}  # (frame, polarity) -> (half-width, sharp threshold)
    for polarity in (1, -1):
        profile = profiles.in_batches(profiles.row_median_filter, evidence.profile(polarity))
        scores = profiles.score_frames(profile)
        thresholds = np.asarray(
            profiles.flash_thresholds(scores.step, scores.noise, settings.min_snr, settings.spread, settings.min_step)
        )
        flagged = np.flatnonzero(np.any(np.abs(scores.step) > thresholds, axis=1))
        boxes = profiles.in_batches(profiles.box_steps, profile[flagged])
        for k, box in zip(flagged, boxes):
            for half_width, threshold, box_row in zip(profiles.STEP_HALF_WIDTHS, thresholds, box):
                step = leading_edge_anchor(profile[k], box_row, polarity, threshold, half_width, evidence.gain[k], settings)
                if step is None:
                    continue
                anchor, height = step
                if supported(evidence, k, anchor, polarity, settings.rank, half_width):
                    found.append((int(k), anchor, polarity, height))
                    steps[int(k), polarity] = (half_width, float(thresholds[0]))
                    break
    accepted: list[tuple[int, int, int, float]] = []
    for candidate in _off_tracks(found, evidence.rising.shape[1]):
        if not _continues(accepted, *candidate):
            accepted.append(candidate)
    if not accepted:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, bool),) * 2
    repeats = [
        moving(evidence, k, anchor, polarity, settings.rank, *steps[k, polarity])
        or returning(evidence, k, anchor, polarity, settings.rank, *steps[k, polarity])
        for k, anchor, polarity, _ in accepted
    ]
    frames, anchors, polarity = (np.array(column, dtype=np.int64) for column in list(zip(*accepted))[:3])
    return frames, anchor_row(anchors), polarity, anchors < 0, np.array(repeats, bool)


def _continues(accepted: list[tuple[int, int, int, float]], frame: int, anchor: int, polarity: int, height: float) -> bool:
    """Whether a candidate is the second frame of an event ``accepted`` holds (``(frame, anchor, polarity, height)``): the
    frame before holds one of the other polarity at or above its row (within :data:`RETURN_ROWS`), at least :data:`TRACK_SHARE`
    of its height (a pulse's return and the rest of a switched light change as much as the event; a faint change
    at the top of one frame does not take a flash in the next)."""
    row = anchor_row(anchor)
    return any(
        f == frame - 1 and p == -polarity and row >= anchor_row(a) - RETURN_ROWS and h >= TRACK_SHARE * height
        for f, a, p, h in accepted
    )


def _off_tracks(found: list[tuple[int, int, int, float]], n_rows: int) -> list[tuple[int, int, int, float]]:
    """Candidates ``(frame, anchor, polarity, height)`` of ``found`` sorted, without those on a track of a moving edge.

    An object moving across the picture sweeps a band of rows in frame after frame, a little
    further on each time, with steps of about one height; a flash lights one frame (its band returns, or a
    switched light fills in, with the opposite polarity in the next). Candidates with another of the same
    polarity within :data:`TRACK_FRAMES` frames and ``TRACK_ROWS * n_rows`` rows, at least :data:`TRACK_SHARE`
    of their height, are on such a track: a faint change near a flash (a moving edge just over the threshold
    two frames before it) does not take the flash with it.
    """
    found = sorted(found)
    if not found:
        return []
    frame, anchor, polarity, height = (np.array(column) for column in zip(*found))
    row = anchor_row(anchor)
    near = (
        (np.abs(frame[:, None] - frame[None, :]) <= TRACK_FRAMES)
        & (frame[:, None] != frame[None, :])
        & (polarity[:, None] == polarity[None, :])
        & (np.abs(row[:, None] - row[None, :]) <= TRACK_ROWS * n_rows)
        & (height[None, :] >= TRACK_SHARE * height[:, None])
    )
    return [candidate for candidate, on_track in zip(found, near.any(axis=1)) if not on_track]
