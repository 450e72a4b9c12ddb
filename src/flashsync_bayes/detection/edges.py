"""Sub-row edges of a video's flash candidates: fit windows, centring, a blur shared by the video, and the edges kept."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from flashsync_bayes.detection import edge_model
from flashsync_bayes.detection.candidates import edge_candidates, quiet
from flashsync_bayes.detection.evidence import Evidence
from flashsync_bayes.detection.profiles import STEP_HALF_WIDTHS
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.shapes import power_of_two

#: Rows a first free fit may move an anchor (see :func:`_centred_anchors`).
MAX_CENTRING_ROWS = STEP_HALF_WIDTHS[1]
#: Edges whose free fit is less certain than this (rows) do not vote on a video's blur, which is
#: then fixed at the median of the votes; the edge's spread over the quartiles joins its sd.
POOL_MAX_SD = 1.0
BLUR_QUANTILES = (0.25, 0.5, 0.75)

def _fit_windows(evidence: Evidence, frames: np.ndarray, anchors: np.ndarray, polarity: np.ndarray):
    """Fit windows ``(n, window)`` and in-frame weights around each anchor, sign-flipped to rise."""
    offsets = np.arange(-edge_model.FIT_ROWS_ABOVE, edge_model.FIT_ROWS_BELOW)
    n_rows = evidence.rising.shape[1]
    rows = anchors[:, None] + offsets[None, :]
    inside = (rows >= 0) & (rows < n_rows)
    index = (frames[:, None], np.clip(rows, 0, n_rows - 1))
    values = np.where(polarity[:, None] > 0, evidence.rising[index], -evidence.falling[index])
    return np.where(inside, values, 0.0).astype(np.float64), inside.astype(np.float64)


def _centred_anchors(evidence: Evidence, frames: np.ndarray, anchors: np.ndarray, polarity: np.ndarray):
    """Anchors moved to the nearest row of a first free edge fit, so every window sits alike on its edge.

    The box step puts an anchor within a few rows of its edge; a fit that lands further away
    (at another band in the window) leaves the anchor where it was.
    """
    fit = edge_model.fit_edges(*_padded(*_fit_windows(evidence, frames, anchors, polarity)))
    offset = np.asarray(fit.params)[: frames.size, 2]
    near = np.isfinite(offset) & (np.abs(offset) <= MAX_CENTRING_ROWS)  # a far one fitted something else
    offset = np.where(near, offset, 0.0)
    return np.clip(anchors + np.round(offset).astype(np.int64), 0, evidence.rising.shape[1] - 1)


#: Fewest windows a fit is padded to: most videos' edge fits then share one compiled shape, so a new
#: process traces the fit once (seconds) rather than once per count (fitting padding costs little).
FIT_BUCKET = 64


def _padded(windows: np.ndarray, weights: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Fit windows and weights padded to a power-of-two count (at least :data:`FIT_BUCKET`): few compiled shapes."""
    n = windows.shape[0]
    pad = ((0, power_of_two(n, FIT_BUCKET) - n), (0, 0))
    return jnp.asarray(np.pad(windows, pad)), jnp.asarray(np.pad(weights, pad, constant_values=1.0))


def _fit_with_shared_blur(windows: np.ndarray, weights: np.ndarray, pool: np.ndarray, floor_rows: float):
    """``(params, edge_sd, trailing, trailing_sd)`` of edge fits with the blur shared by a video.

    The codec and optics blur rows the same way in every frame of a video, while a single edge
    cannot tell blur from the pulse's shape well. Each edge is fitted freely first; with three or
    more edges in ``pool`` (a mask) whose free fits place them within :data:`POOL_MAX_SD` rows, the
    final fit fixes the blur at the median of those, and the spread of the edge over the
    :data:`BLUR_QUANTILES` range of their blurs joins its sd. ``floor_rows`` is
    added in quadrature.
    """
    n = windows.shape[0]
    windows, weights = _padded(windows, weights)
    size = windows.shape[0]
    free = edge_model.fit_edges(windows, weights)
    spread = np.zeros(size)
    fit = free
    pool = pool & (np.asarray(free.edge_sd)[:n] < POOL_MAX_SD)
    if np.sum(pool) >= 3:
        low, mid, high = np.quantile(np.exp(np.asarray(free.params)[:n, 4][pool]), BLUR_QUANTILES)
        fits = [edge_model.fit_edges(windows, weights, jnp.full(size, blur)) for blur in (low, mid, high)]
        fit = fits[1]
        spread = np.std([np.asarray(f.params)[:, 2] for f in fits], axis=0)
    params = np.asarray(fit.params)[:n]
    edge_sd = np.sqrt(np.asarray(fit.edge_sd)[:n] ** 2 + spread[:n] ** 2 + floor_rows**2)
    trailing_sd = np.sqrt(np.asarray(fit.trailing_sd)[:n] ** 2 + spread[:n] ** 2 + floor_rows**2)
    return params, edge_sd, np.asarray(fit.trailing)[:n], trailing_sd


def find_edges(evidence: Evidence | np.ndarray, settings: DetectorSettings) -> dict[str, np.ndarray]:
    """Leading (and, where visible, trailing) edges in a video's :class:`Evidence` (or one profile ``(n, rows)``).

    Returns per-edge columns: ``frame``, ``row``, ``row_sd``, ``polarity``, ``edge``, ``amplitude``.
    """
    if not isinstance(evidence, Evidence):
        evidence = Evidence.of_change(np.asarray(evidence))
    empty = {k: np.zeros(0) for k in ("frame", "row", "row_sd", "polarity", "amplitude")}
    empty["edge"] = np.zeros(0, dtype=str)
    n_frames, n_rows = evidence.rising.shape
    if n_frames < 2:
        return empty
    frames, anchors, polarity, at_top = edge_candidates(evidence, settings)
    if not frames.size:
        return empty
    anchors = _centred_anchors(evidence, frames, anchors, polarity)
    windows, weights = _fit_windows(evidence, frames, anchors, polarity)
    params, edge_sd, trailing, trailing_sd = _fit_with_shared_blur(windows, weights, ~at_top, settings.row_sd_floor)
    row = anchors + params[:, 2]
    below = n_rows - row  # rows of the band in view: a few at the bottom could be anything
    good = np.isfinite(row) & (edge_sd < settings.max_row_sd) & (row > 0) & (below >= 2 * STEP_HALF_WIDTHS[0])
    good &= params[:, 1] > 0
    quiet_above = quiet(params[:, 0], polarity * evidence.gain[frames], settings.quiet_fraction * params[:, 1])
    good &= ~at_top | (quiet_above & (row > 2 * edge_sd))
    lead = {
        "frame": frames[good],
        "row": row[good],
        "row_sd": edge_sd[good],
        "polarity": polarity[good],
        "amplitude": (polarity * params[:, 1])[good],
        "edge": np.full(good.sum(), "leading"),
    }
    trail_row = anchors + trailing
    in_window = trailing < edge_model.FIT_ROWS_BELOW - 2 * STEP_HALF_WIDTHS[0]
    seen = good & in_window & (trail_row < n_rows - 2) & (trailing_sd < settings.max_row_sd)
    trail = {
        "frame": frames[seen],
        "row": trail_row[seen],
        "row_sd": trailing_sd[seen],
        "polarity": -polarity[seen],
        "amplitude": (-polarity * params[:, 1])[seen],
        "edge": np.full(seen.sum(), "trailing"),
    }
    return {key: np.concatenate([lead[key], trail[key]]) for key in lead}
