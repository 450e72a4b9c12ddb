"""Total sensor rows per camera: the known ones, else guesses that line the cameras' event times up best.

Each leading edge's own-clock time ``frame_time_ms + row * frame_period_ms / total_rows`` needs a
camera's total rows; unknown ones start at :data:`~flashsync_bayes.sensors.TYPICAL_ROWS_RATIO`
times the height (which can misplace a row by up to a third of the frame period on real
sensors) and are then chosen among :data:`READOUT_GUESSES` by how many event pairs they match.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from flashsync_bayes.matching.edges import camera_order, leading_edges
from flashsync_bayes.matching.pairwise import MatchSettings, PairMatch, match_pair, matched_pairs
from flashsync_bayes.sensors import TYPICAL_ROWS_RATIO

#: Readout fractions ``R / L`` tried for cameras whose total rows are unknown (``L / R`` 1.02-2.3,
#: real sensors' range): the nearest is at most 0.03 off, which misplaces a row by at most 0.03
#: frame periods ...
READOUT_GUESSES = tuple(np.arange(0.98, 0.40, -0.06))
#: ... and, the longer frame period counted twice, two cameras' rows by at most this share of it.
GUESS_ERROR_FRAMES = 0.03
#: Guesses whose matched pairs' RMS distance from their line is within this (ms) of the closest's
#: are told apart by the prior, not by the residuals (locked frame phases: rows line up alike).
RESIDUAL_FLOOR_MS = 0.01


def initial_total_rows(labels, heights, total_rows: Mapping[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(known, rows_total)`` (C,): which cameras' rows are given, and given or typical total rows."""
    known = np.array([k in (total_rows or {}) for k in labels])
    rows_total = np.array([float((total_rows or {}).get(k, TYPICAL_ROWS_RATIO * h)) for k, h in zip(labels, heights)])
    return known, rows_total


def ordered_edges(events: xr.Dataset, rows_total: np.ndarray, c: int, rows: float) -> tuple[np.ndarray, np.ndarray]:
    """``(own_time_ms, polarity)`` (n_c,) of camera ``c``'s leading edges, sorted, when it has ``rows`` total rows."""
    trial = rows_total.copy()
    trial[c] = rows
    edges = leading_edges(events, trial)
    order = camera_order(edges, c)
    return edges.own_time_ms[order], edges.polarity[order]


def pair_residual_ms(x, x_polarity, y, y_polarity, pair: PairMatch, tolerance_ms: float) -> float:
    """RMS (ms) of the matched pairs' distances from the pair's line ``x ≈ drift * y + shift_ms``."""
    mapped = pair.drift * y + pair.shift_ms
    i, j = matched_pairs(x, x_polarity, mapped, y_polarity, tolerance_ms)
    return float(np.sqrt(np.mean((x[i] - mapped[j]) ** 2))) if i.size else np.inf


def best_guess(events, chosen, c, partner, partner_options, options, settings: MatchSettings) -> tuple:
    """``(n_matched, partner rows, rows)`` of the best linked pair of guesses, n_matched -1 if none links.

    Most matched pairs wins. Among equals, the guesses whose pairs lie closest to their line (the
    right total rows line a frame's rows up; wrong ones leave a row-dependent spread); where the
    residuals do not tell them apart (locked frame phases), the guesses nearest the typical sensor.
    """
    heights = events["height"].values.astype(np.float64)
    tried = []
    for partner_rows in partner_options:
        x = ordered_edges(events, chosen, partner, partner_rows)
        for rows in options:
            y = ordered_edges(events, chosen, c, rows)
            pair = match_pair(*x, *y, settings)
            if pair.status == "linked":
                atypical = abs(np.log(partner_rows / (TYPICAL_ROWS_RATIO * heights[partner]))) + abs(
                    np.log(rows / (TYPICAL_ROWS_RATIO * heights[c]))
                )
                tried.append((pair.n_matched, pair_residual_ms(*x, *y, pair, settings.tolerance_ms), atypical, partner_rows, rows))
    if not tried:
        return -1, chosen[partner], chosen[c]
    most = max(t[0] for t in tried)
    tried = [t for t in tried if t[0] == most]
    closest = min(t[1] for t in tried)
    clear = [t for t in tried if t[1] <= closest + RESIDUAL_FLOOR_MS]
    n, _, _, partner_rows, rows = min(clear, key=lambda t: t[2])
    return n, partner_rows, rows


def guess_anchor(events, chosen, options, done: list, pending: list, settings: MatchSettings) -> None:
    """Guess the anchor ``done[0]`` together with its first linking partner; updates the arguments in place."""
    anchor = done[0]
    for partner in pending:
        n, anchor_rows, rows = best_guess(events, chosen, partner, anchor, options[anchor], options[partner], settings)
        if n > 0:
            chosen[anchor], chosen[partner] = anchor_rows, rows
            done.append(partner)
            pending.remove(partner)
            return


def guess_others(events, chosen, options, done: list, pending: list, settings: MatchSettings) -> None:
    """Guess each pending camera against the cameras already guessed until none links; updates in place."""
    progress = True
    while pending and progress:
        progress = False
        for c in list(pending):
            for partner in done:
                n, _, rows = best_guess(events, chosen, c, partner, [chosen[partner]], options[c], settings)
                if n > 0:
                    chosen[c] = rows
                    done.append(c)
                    pending.remove(c)
                    progress = True
                    break


def guess_total_rows(events: xr.Dataset, rows_total, known, settings: MatchSettings) -> np.ndarray:
    """Total rows ``(C,)``: the ``known`` ones, else those of :data:`READOUT_GUESSES` that line the cameras up best.

    The anchor (the camera with the most leading edges) and its best partner try every pair of
    guesses; then each other camera tries its guesses against the cameras already guessed (most
    edges first) and keeps the one with the most matched pairs. A camera that links to none
    keeps ``rows_total``.
    """
    heights = events["height"].values.astype(np.float64)
    counts = np.bincount(leading_edges(events, rows_total).camera, minlength=heights.size)
    by_edges = [int(c) for c in np.argsort(-counts, kind="stable")]
    options = [[rows_total[c]] if known[c] else [heights[c] / q for q in READOUT_GUESSES] for c in range(heights.size)]
    chosen = rows_total.copy()
    done, pending = by_edges[:1], by_edges[1:]
    guess_anchor(events, chosen, options, done, pending, settings)
    guess_others(events, chosen, options, done, pending, settings)
    return chosen
