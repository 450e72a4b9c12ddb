"""Sub-row edges of a video's flash candidates: the rows around each, centring, a blur shared by the video, and the edges kept.

Three stages: :func:`candidate_rows` takes the candidates of (a window of) a video's evidence with
the rows their fits need; :func:`first_fits` centres and fits each on its own (a long video's in
whole batches as its windows find them); :func:`fit_candidates` fits all of a video's candidates
with one blur and keeps the edges.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flashsync_bayes.detection import edge_model
from flashsync_bayes.detection.candidates import edge_candidates, quiet
from flashsync_bayes.detection.evidence import Evidence
from flashsync_bayes.detection.profiles import STEP_HALF_WIDTHS
from flashsync_bayes.detection.settings import DetectorSettings

#: Rows a first free fit may move an anchor (see :func:`_centred`).
MAX_CENTRING_ROWS = STEP_HALF_WIDTHS[1]
#: Edges whose free fit is less certain than this (rows) do not vote on a video's blur, which is
#: then fixed at the median of the votes; the edge's spread over the quartiles joins its sd.
POOL_MAX_SD = 1.0
BLUR_QUANTILES = (0.25, 0.5, 0.75)
#: Levenberg-Marquardt iterations of a fit that starts from an earlier fit of the same edge.
WARM_ITERATIONS = 20
#: Row offsets from a candidate's anchor kept for its fits: the fit window moved by up to
#: :data:`MAX_CENTRING_ROWS` either way.
KEPT_OFFSETS = np.arange(-edge_model.FIT_ROWS_ABOVE - MAX_CENTRING_ROWS, edge_model.FIT_ROWS_BELOW + MAX_CENTRING_ROWS)


class Candidates(NamedTuple):
    """Leading-edge candidates of a video with the rows their fits look at.

    Attributes:
        frame: ``(n,)`` int64 frame of each candidate (in the video, or in the evidence it came from).
        anchor: ``(n,)`` int64 row near its edge.
        polarity: ``(n,)`` int64 +1 for a rise, -1 for a fall.
        at_top: ``(n,)`` bool, no quiet rows above it (see :func:`~flashsync_bayes.detection.candidates.edge_candidates`).
        repeats: ``(n,)`` bool, a step that repeats one of the frames before (a moving edge, a pulse's return):
            fitted (its blur votes) but never an event.
        gain: ``(n,)`` its frame's ambient change of the whole picture (relative).
        rows: ``(n, KEPT_OFFSETS.size)`` float64 evidence at the anchor's :data:`KEPT_OFFSETS`, sign-flipped
            to rise (0 outside the frame).
        inside: ``(n, KEPT_OFFSETS.size)`` float64, 1 for rows inside the frame.
        n_rows: rows of the video's frames.
    """

    frame: np.ndarray
    anchor: np.ndarray
    polarity: np.ndarray
    at_top: np.ndarray
    repeats: np.ndarray
    gain: np.ndarray
    rows: np.ndarray
    inside: np.ndarray
    n_rows: int

    def where(self, keep: np.ndarray, frame_offset: int = 0) -> Candidates:
        """The candidates where ``keep`` (a mask), their frames moved on by ``frame_offset``."""
        kept = [np.asarray(column)[keep] for column in self[:-1]]
        kept[0] = kept[0] + frame_offset
        return Candidates(*kept, self.n_rows)

    @classmethod
    def none(cls, n_rows: int) -> Candidates:
        """No candidates in frames ``n_rows`` rows high."""
        no_rows = np.zeros((0, KEPT_OFFSETS.size))
        return cls(*(np.zeros(0, np.int64),) * 3, np.zeros(0, bool), np.zeros(0, bool), np.zeros(0), no_rows, no_rows, n_rows)

    @classmethod
    def joined(cls, parts: list[Candidates], n_rows: int) -> Candidates:
        """The candidates of ``parts`` (of one video, frames ``n_rows`` rows high) in one table, in order."""
        if not parts:
            return cls.none(n_rows)
        return cls(*(np.concatenate(column) for column in list(zip(*parts))[:-1]), n_rows)


def candidate_rows(evidence: Evidence, settings: DetectorSettings) -> Candidates:
    """:class:`Candidates` of ``evidence`` (frames counted in it), sorted by frame."""
    n_frames, n_rows = evidence.rising.shape
    if n_frames < 2:
        return Candidates.none(n_rows)
    frames, anchors, polarity, at_top, repeats = edge_candidates(evidence, settings)
    rows = anchors[:, None] + KEPT_OFFSETS[None, :]
    inside = (rows >= 0) & (rows < n_rows)
    index = (frames[:, None], np.clip(rows, 0, n_rows - 1))
    values = np.where(polarity[:, None] > 0, evidence.rising[index], -evidence.falling[index])
    values = np.where(inside, values, 0.0).astype(np.float64)
    gain = np.asarray(evidence.gain, dtype=np.float64)[frames]
    return Candidates(frames, anchors, polarity, at_top, repeats, gain, values, inside.astype(np.float64), n_rows)


def _fit_windows(candidates: Candidates, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit windows ``(n, FIT_ROWS_ABOVE + FIT_ROWS_BELOW)`` and in-frame weights around the anchors moved by ``shift`` rows."""
    columns = (MAX_CENTRING_ROWS + shift)[:, None] + np.arange(edge_model.FIT_ROWS_ABOVE + edge_model.FIT_ROWS_BELOW)
    picked = np.arange(shift.size)[:, None]
    return candidates.rows[picked, columns], candidates.inside[picked, columns]


def _centred(candidates: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, params)``: rows that move each anchor to the nearest row of a first free edge fit, so every window
    sits alike on its edge, and that fit's params ``(n, N_EDGE_PARAMS)`` with the edge counted from the moved anchor.

    The box step puts an anchor within a few rows of its edge; a fit that lands further away
    (at another band in the window) leaves the anchor where it was.
    """
    params = _fit(*_fit_windows(candidates, np.zeros(candidates.frame.size, np.int64))).params.copy()
    offset = params[:, 2]
    near = np.isfinite(offset) & (np.abs(offset) <= MAX_CENTRING_ROWS)  # a far one fitted something else
    moved = np.clip(candidates.anchor + np.round(np.where(near, offset, 0.0)).astype(np.int64), 0, candidates.n_rows - 1)
    shift = moved - candidates.anchor
    params[:, 2] -= shift
    return shift, params


#: Windows per fit call: candidates are fitted in batches of this many (the last padded), so every
#: video's fits share one compiled shape (a new process traces and loads it once) and their memory
#: does not grow with the video's length (an XLA compilation of a larger shape alone took ~400 MB).
#: A fit costs the same for a padded window as for a real one (~6 ms for the centring fit on 2
#: cores): small batches waste little on videos with few candidates (64 cost 0.40 s, 16 cost 0.11 s).
FIT_BATCH = 16


def _fit(
    windows: np.ndarray, weights: np.ndarray, blur_rows=None, start=None, iterations: int = 60, tilted=None, fresh_starts: bool = False
) -> edge_model.EdgeFit:
    """:func:`~flashsync_bayes.detection.edge_model.fit_edges` of ``(n, window)`` fit windows as NumPy arrays of n rows,
    in batches of :data:`FIT_BATCH` windows (the last one filled up with copies of its last window, fitted and dropped)."""
    parts = []
    for first in range(0, windows.shape[0], FIT_BATCH):
        values = (windows, weights, blur_rows, start, tilted)
        batch = [None if v is None else v[first : first + FIT_BATCH] for v in values]
        n = batch[0].shape[0]
        full = [None if v is None else np.pad(v, ((0, FIT_BATCH - n),) + ((0, 0),) * (v.ndim - 1), mode="edge") for v in batch]
        windows_, weights_, blur_, start_, tilted_ = full
        fit = edge_model.fit_edges(windows_, weights_, blur_, start_, iterations, tilted_, fresh_starts)
        parts.append([np.asarray(leaf)[:n] for leaf in fit])
    return edge_model.EdgeFit(*(np.concatenate(leaves) for leaves in zip(*parts)))


def band_shape(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(edge, decay, blur, extent)`` ``(n,)`` in rows from edge-model params ``(n, N_EDGE_PARAMS)``
    (:func:`~flashsync_bayes.detection.edge_model.edge_model`: the last three are fitted as logs)."""
    return params[:, 2], np.exp(params[:, 3]), np.exp(params[:, 4]), np.exp(params[:, 5])


def codec_rows(params: np.ndarray, change_sd: float) -> np.ndarray:
    """Rows ``(n,)`` by which an error of ``change_sd`` (relative change) in the rows of a rise moves its edge.

    A rise of height G over ``sqrt(ρ² + 2πσ²)`` rows (decay ρ, blur σ of :func:`~flashsync_bayes.detection.edge_model.edge_model`;
    the inverse of its steepest slope per unit height in either limit) is that many rows late per G of change
    missing: a lossy codec's quantizer drops small changes, so the foot of a slow or weak rise is
    lost and the whole ramp sits lower, which moves its edge ``change_sd * rows / G``.
    """
    _, decay, blur, _ = band_shape(params)
    gain = np.abs(params[:, 1])
    return change_sd * np.sqrt(decay**2 + 2 * np.pi * blur**2) / np.maximum(gain, 1e-12)


#: Rows of a band's plateau (past three decays and three blurs of its rise) that a fit window must show for its
#: tilt to be told from a slower rise.
PLATEAU_ROWS = 24
#: Largest tilt (change of a band's height over the fit window's rows below the edge, relative) that lamps can
#: make: flicker of ±1/3 (FACTS.md: real lamps up to ~0.35) changes the light 2:1 from its crest to its trough.
MAX_TILT = 1.0


def _plateau_rows(params: np.ndarray) -> np.ndarray:
    """Rows ``(n,)`` of each fitted band's plateau inside its fit window: from its rise's end to the window's or band's end."""
    edge, decay, blur, extent = band_shape(params)
    return np.minimum(edge_model.FIT_ROWS_BELOW - edge, extent - 3 * blur) - 3 * (decay + blur)


def _tilt_pays(plain: edge_model.EdgeFit, tilted: edge_model.EdgeFit, weights: np.ndarray) -> np.ndarray:
    """Where a fit with the band's tilt free explains the rows clearly better than ``plain`` (its tilt held at 0), ``(n,)``:
    its misfit lower by more than the Bayesian information criterion's ``log(rows)`` for one parameter, in units of a
    row's residual variance inflated for correlated residuals (codec blocks, scene structure), both fits showing
    :data:`PLATEAU_ROWS` of plateau (a tilt bends a rise that the window shows no end of like a slower rise does)
    and a tilt that lamps can make (:data:`MAX_TILT`)."""
    n_rows = np.maximum(weights.sum(axis=1), 2.0)
    seen = (_plateau_rows(plain.params) >= PLATEAU_ROWS) & (_plateau_rows(tilted.params) >= PLATEAU_ROWS)
    possible = np.abs(tilted.params[:, edge_model.TILT]) <= MAX_TILT
    return seen & possible & (plain.misfit - tilted.misfit > np.log(n_rows) * tilted.noise_var)


class FirstFits(NamedTuple):
    """What each candidate's own fits give, before a video's candidates share a blur (:func:`first_fits`).

    Attributes:
        shift: ``(n,)`` rows that centre each candidate's fit window on its edge (:func:`_centred`).
        free: every candidate's free :class:`~flashsync_bayes.detection.edge_model.EdgeFit` in its centred window.
    """

    shift: np.ndarray
    free: edge_model.EdgeFit

    @classmethod
    def joined(cls, parts: list[FirstFits]) -> FirstFits:
        """The first fits of ``parts`` (non-empty) in one table, in order."""
        free = edge_model.EdgeFit(*map(np.concatenate, zip(*(p.free for p in parts))))
        return cls(np.concatenate([p.shift for p in parts]), free)


def first_fits(candidates: Candidates) -> FirstFits:
    """:class:`FirstFits` of ``candidates``: each fitted on its own (so those of a long video can be fitted in parts,
    as its windows find them; the batches pad, and a candidate's fit does not depend on the others in its batch)."""
    shift, start = _centred(candidates)
    windows, weights = _fit_windows(candidates, shift)
    return FirstFits(shift, _fit(windows, weights, start=start, iterations=WARM_ITERATIONS))


def _fit_with_shared_blur(
    windows: np.ndarray,
    weights: np.ndarray,
    free: edge_model.EdgeFit,
    pool: np.ndarray,
    events: np.ndarray,
    settings: DetectorSettings,
):
    """``(params, edge_sd, trailing, trailing_sd)`` of edge fits with the blur shared by a video, for the windows where
    ``events`` (a mask; the others only vote on the blur); ``free`` their free fits (:func:`first_fits`).

    The codec and optics blur rows the same way in every frame of a video, while a single edge
    cannot tell blur from the pulse's shape well. Each edge is fitted freely first (``free``); with three or
    more edges in ``pool`` (a mask) whose free fits
    place them within :data:`POOL_MAX_SD` rows, the final fit fixes the blur at the median of
    those (starting from the free fit), and the spread of the edge over the
    :data:`BLUR_QUANTILES` range of their blurs joins its sd, and so do the settings' floors for what a
    codec does (``row_sd_floor`` rows and :func:`codec_rows` of ``change_sd_floor``). A last fit frees the band's
    tilt (standing flicker bands, see :func:`~flashsync_bayes.detection.edge_model.edge_model`); it is kept where it
    pays (:func:`_tilt_pays`), and half its edge's move joins the sd then. Only the free fit is needed of windows that
    can be no event (a repeated step's: most candidates of a long video), so the later fits leave them out.
    """
    pool = pool & (free.edge_sd < POOL_MAX_SD)
    blurs = band_shape(free.params)[2][pool]
    windows, weights, free = windows[events], weights[events], edge_model.EdgeFit(*(leaf[events] for leaf in free))
    n = windows.shape[0]
    spread = np.zeros(n)
    fit, blur_rows = free, None
    if blurs.size >= 3:
        low, mid, high = np.quantile(blurs, BLUR_QUANTILES)
        # from the free fit and afresh: a free fit may sit where the fixed blur cannot leave (see fit_edges)
        blur_rows = np.full(n, mid)
        fit = _fit(windows, weights, blur_rows, free.params, WARM_ITERATIONS, fresh_starts=True)
        others = [_fit(windows, weights, np.full(n, blur), fit.params, WARM_ITERATIONS) for blur in (low, high)]
        spread = np.std([f.params[:, 2] for f in (others[0], fit, others[1])], axis=0)
    tilted = _fit(windows, weights, blur_rows, fit.params, WARM_ITERATIONS, tilted=np.ones(n))
    keep = _tilt_pays(fit, tilted, weights)
    # which of the two models holds is itself uncertain: half the edges' difference joins the sd of a tilted one
    choice = np.where(keep, 0.5 * np.abs(tilted.params[:, 2] - fit.params[:, 2]), 0.0)
    trailing_choice = np.where(keep, 0.5 * np.abs(tilted.trailing - fit.trailing), 0.0)
    fit = edge_model.EdgeFit(*(np.where(keep.reshape((n,) + (1,) * (a.ndim - 1)), a, b) for a, b in zip(tilted, fit)))
    floor = settings.row_sd_floor**2 + codec_rows(fit.params, settings.change_sd_floor) ** 2
    edge_sd = np.sqrt(fit.edge_sd**2 + spread**2 + choice**2 + floor)
    trailing_sd = np.sqrt(fit.trailing_sd**2 + spread**2 + trailing_choice**2 + floor)
    return fit.params, edge_sd, fit.trailing, trailing_sd


#: Least share of a video's typical band extent that a candidate's band must span: a flash lights the rows exposed
#: at its moment, a band as long as the camera's exposure in rows (:func:`~flashsync_bayes.detection.edge_model.edge_model`'s
#: extent), alike for all of a video's flashes but where auto-exposure changes the exposure between them (under
#: mains light in steps of the flicker period, mostly the gain instead). A band that ends sooner is something in
#: the scene: a thin object's band, a glint.
MIN_EXTENT_SHARE = 0.5
#: Candidates a video needs for a typical band extent.
MIN_EXTENT_VOTES = 3


def short_bands(extent: np.ndarray, extent_sd: np.ndarray, rows_in_view: np.ndarray, ends_seen: np.ndarray, voters: np.ndarray) -> np.ndarray:
    """Where a band's fitted ``extent`` (rows, its end in view: ``ends_seen``) is clearly under :data:`MIN_EXTENT_SHARE` of
    the video's typical extent (by two ``extent_sd``), ``(n,)`` bool.

    Typical: the median over the ``voters`` (at least :data:`MIN_EXTENT_VOTES`) of their extents, each at most its
    ``rows_in_view`` below its edge (its fit window's or the frame's): a band whose end is not in view spans at least those.
    """
    if np.sum(voters) < MIN_EXTENT_VOTES:
        return np.zeros(extent.shape, bool)
    typical = np.median(np.minimum(extent, rows_in_view)[voters])
    return ends_seen & (extent + 2.0 * extent_sd < MIN_EXTENT_SHARE * typical)


def _no_edges() -> dict[str, np.ndarray]:
    """Edge columns of :func:`find_edges` without edges."""
    empty = {k: np.zeros(0) for k in ("row", "row_sd", "polarity", "amplitude")}
    return {"frame": np.zeros(0, np.int64), **empty, "edge": np.zeros(0, dtype=str)}


def find_edges(evidence: Evidence | np.ndarray, settings: DetectorSettings) -> dict[str, np.ndarray]:
    """Leading (and, where visible, trailing) edges in a video's :class:`Evidence` (or one profile ``(n, rows)``).

    Returns per-edge columns: ``frame``, ``row``, ``row_sd``, ``polarity``, ``edge``, ``amplitude``.
    """
    if not isinstance(evidence, Evidence):
        evidence = Evidence.of_change(np.asarray(evidence))
    return fit_candidates(candidate_rows(evidence, settings), settings)


def fit_candidates(candidates: Candidates, settings: DetectorSettings, first: FirstFits | None = None) -> dict[str, np.ndarray]:
    """Edge columns of :func:`find_edges` from a video's :class:`Candidates` (``frame`` as they count it), and their
    :class:`FirstFits` where already fitted (else fitted here)."""
    events = ~candidates.repeats
    if not events.any():
        return _no_edges()
    shift, free = first if first is not None else first_fits(candidates)
    windows, weights = _fit_windows(candidates, shift)
    params, edge_sd, trailing, trailing_sd = _fit_with_shared_blur(windows, weights, free, ~candidates.at_top, events, settings)
    candidates, shift = candidates.where(events), shift[events]
    frames, polarity, at_top, n_rows = candidates.frame, candidates.polarity, candidates.at_top, candidates.n_rows
    anchors = candidates.anchor + shift
    row = anchors + params[:, 2]
    below = n_rows - row  # rows of the band in view: a few at the bottom could be anything
    good = np.isfinite(row) & (edge_sd < settings.max_row_sd) & (row > 0) & (below >= 2 * STEP_HALF_WIDTHS[0])
    good &= params[:, 1] > 0
    quiet_above = quiet(params[:, 0], polarity * candidates.gain, settings.quiet_fraction * params[:, 1])
    good &= ~at_top | (quiet_above & (row > 2 * edge_sd))
    trail_row = anchors + trailing
    ends = (trailing < edge_model.FIT_ROWS_BELOW - 2 * STEP_HALF_WIDTHS[0]) & (trail_row < n_rows - 2)
    edge, decay, _, extent = band_shape(params)
    # a band ends where it was seen to, after its rise (a rise slower than the band, e.g. a step, has no end to judge)
    rows_in_view = np.minimum(edge_model.FIT_ROWS_BELOW - edge, below)
    good &= ~short_bands(extent, trailing_sd, rows_in_view, ends & (3 * decay < extent), good)
    lead = {
        "frame": frames[good],
        "row": row[good],
        "row_sd": edge_sd[good],
        "polarity": polarity[good],
        "amplitude": (polarity * params[:, 1])[good],
        "edge": np.full(good.sum(), "leading"),
    }
    seen = good & ends & (trailing_sd < settings.max_row_sd)
    trail = {
        "frame": frames[seen],
        "row": trail_row[seen],
        "row_sd": trailing_sd[seen],
        "polarity": -polarity[seen],
        "amplitude": (-polarity * params[:, 1])[seen],
        "edge": np.full(seen.sum(), "trailing"),
    }
    return {key: np.concatenate([lead[key], trail[key]]) for key in lead}
