"""Relation ``t_a ≈ drift * t_b + shift_ms`` between two cameras' clocks from their event times alone.

1. histogram all same-polarity event-time differences into offset bins, once a few tolerances wide
   (drift negligible) and once wide enough for the largest drift, and take the fullest bins;
2. turn each candidate bin into a line (offset and drift) with a Hough vote over drift, then refine
   it by iteratively pairing mutual-nearest events within the tolerance and fitting a line;
3. score a line by its one-to-one pairs; accept the best line only if that number beats what
   chance lines reach (a Poisson bound over all lines tried) and it also beats every clearly
   different line that beats chance by that many pairs; otherwise the match is ambiguous (periodic
   flashes give such look-alikes) and links nothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

#: Chance that a wrong pairwise relation is accepted (sets the significance threshold).
FALSE_LINK_PROBABILITY = 1e-3
#: Candidate offset windows examined per window width.
N_CANDIDATES = 5


class MatchSettings(NamedTuple):
    """How two cameras' event times are paired and when a relation links them.

    Attributes:
        tolerance_ms: largest disagreement (ms) of two events of one flash after mapping.
        max_slope: largest relative clock drift between two cameras (ms per ms, ``1e-6 * max_drift_ppm``).
        min_matches: fewest one-to-one event pairs (shared flashes) that link two cameras.
    """

    tolerance_ms: float
    max_slope: float
    min_matches: int


class PairMatch(NamedTuple):
    """Relation between two cameras' clocks, ``t_a ≈ drift * t_b + shift_ms``.

    Attributes:
        drift: ms of camera a per ms of camera b.
        shift_ms: camera-a time of camera-b time 0 (ms).
        n_matched: one-to-one event pairs within the tolerance of the best line.
        runner_up: pairs of the best clearly different line (0 if none).
        required: pairs a line needs to beat chance.
        status: "linked", "ambiguous" (a different line comes close) or "unlinked".
    """

    drift: float
    shift_ms: float
    n_matched: int
    runner_up: int
    required: int
    status: str


def nearest_index(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into non-empty ``sorted_values`` of the value nearest each query, shape of ``queries``."""
    k = np.searchsorted(sorted_values, queries)
    lo = np.clip(k - 1, 0, sorted_values.size - 1)
    hi = np.clip(k, 0, sorted_values.size - 1)
    return np.where(np.abs(queries - sorted_values[lo]) <= np.abs(sorted_values[hi] - queries), lo, hi)


def mutual_nearest(x: np.ndarray, y: np.ndarray, tolerance_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(i, j)`` of mutually nearest pairs with ``|x[i] - y[j]| <= tolerance_ms``; x, y sorted."""
    if x.size == 0 or y.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    nearest_x = nearest_index(x, y)
    nearest_y = nearest_index(y, x)
    j = np.arange(y.size)
    ok = (nearest_y[nearest_x] == j) & (np.abs(x[nearest_x] - y) <= tolerance_ms)
    return nearest_x[ok], j[ok]


def matched_pairs(x, x_polarity, y, y_polarity, tolerance_ms) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(i, j)`` (sorted by i) of mutually nearest same-polarity pairs within the tolerance."""
    found_i, found_j = [], []
    for polarity in np.intersect1d(x_polarity, y_polarity):
        in_x = np.flatnonzero(x_polarity == polarity)
        in_y = np.flatnonzero(y_polarity == polarity)
        i, j = mutual_nearest(x[in_x], y[in_y], tolerance_ms)
        found_i.append(in_x[i])
        found_j.append(in_y[j])
    if not found_i:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    order = np.argsort(i, kind="stable")
    return i[order], j[order]


def fit_line(y: np.ndarray, x: np.ndarray, max_slope: float) -> tuple[float, float]:
    """``(drift, shift_ms)`` of the least-squares line ``x ≈ drift * y + shift_ms``, ``|drift - 1| <= max_slope``."""
    diff = x - y
    y_mean = float(np.mean(y))
    spread = np.sum((y - y_mean) ** 2)
    slope = float(np.sum((y - y_mean) * (diff - diff.mean())) / spread) if spread > 0 else 0.0
    slope = float(np.clip(slope, -max_slope, max_slope))
    return 1.0 + slope, float(diff.mean() - slope * y_mean)


def hough_vote(y: np.ndarray, diff: np.ndarray, bin_ms: float, slopes: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept_ms)``: the line ``diff ≈ intercept + slope * y``, slope in ``slopes``, with most points."""
    intercepts = diff[None, :] - slopes[:, None] * y[None, :]
    bins = np.floor((intercepts - intercepts.min()) / bin_ms).astype(np.int64)
    n_bins = int(bins.max()) + 2
    flat = (np.arange(slopes.size)[:, None] * n_bins + bins).ravel()
    counts = np.bincount(flat, minlength=slopes.size * n_bins).reshape(slopes.size, n_bins)
    window_counts = counts[:, :-1] + counts[:, 1:]
    row_best = window_counts.max(axis=1)
    best_rows = np.flatnonzero(row_best == row_best.max())
    s = int(best_rows[best_rows.size // 2])
    b = int(np.argmax(window_counts[s]))
    inside = (bins[s] == b) | (bins[s] == b + 1)
    return float(slopes[s]), float(np.median(intercepts[s, inside]))


def hough_line(y: np.ndarray, diff: np.ndarray, tolerance_ms: float, max_slope: float, coarse: int = 8):
    """``(slope, intercept_ms)`` of the line ``diff ≈ intercept + slope * y`` passing most points within a tolerance.

    Slopes are searched on a grid fine enough that the line moves by at most a quarter tolerance at
    the ends of ``y``; long grids are searched coarse-to-fine (``coarse`` times wider steps and bins first).
    """
    y_mid = 0.5 * (y.min() + y.max())
    half_span = 0.5 * (y.max() - y.min())
    centred = y - y_mid
    if half_span * max_slope <= tolerance_ms / 4:
        slope, intercept = hough_vote(centred, diff, tolerance_ms, np.zeros(1))
        return slope, intercept - slope * y_mid
    step = tolerance_ms / (2 * half_span)
    n_side = int(math.ceil(max_slope / step))
    centre = 0.0
    if n_side > 4 * coarse:
        n_coarse = int(math.ceil(max_slope / (coarse * step)))
        grid = np.clip(np.arange(-n_coarse, n_coarse + 1) * coarse * step, -max_slope, max_slope)
        centre, _ = hough_vote(centred, diff, coarse * tolerance_ms, grid)
        n_side = coarse
    slopes = np.clip(centre + np.arange(-n_side, n_side + 1) * step, -max_slope, max_slope)
    slope, intercept = hough_vote(centred, diff, tolerance_ms, np.unique(slopes))
    return slope, intercept - slope * y_mid


def refine_line(x, x_polarity, y, y_polarity, drift, shift_ms, tolerance_ms, max_slope, max_iterations=50):
    """``(drift, shift_ms, i, j)``: the line ``x ≈ drift * y + shift_ms`` refitted to its own pairs until stable."""
    previous = None
    i = j = np.zeros(0, dtype=np.int64)
    for _ in range(max_iterations):
        i, j = matched_pairs(x, x_polarity, drift * y + shift_ms, y_polarity, tolerance_ms)
        if i.size == 0:
            break
        key = (i.tobytes(), j.tobytes())
        if key == previous:
            break
        previous = key
        drift, shift_ms = fit_line(y[j], x[i], max_slope)
    return drift, shift_ms, i, j


def offset_bins(diffs: np.ndarray, width_ms: float, min_count: int, n_windows: int) -> list[np.ndarray]:
    """Index arrays into ``diffs`` of up to ``n_windows`` well-separated bins of ``width_ms`` holding most diffs.

    Bins are laid at two phases half a width apart, so any ``width_ms / 2`` span of diffs lies whole
    in some bin; only bins holding at least ``min_count`` diffs are returned, fullest first.
    """
    lowest = float(diffs.min())
    keys_of, counts_of, phases_of, bins_of = [], [], [], []
    for phase in (0.0, 0.5):
        keys = np.floor((diffs - lowest) / width_ms + phase).astype(np.int64)
        if keys.max() < 4_000_000:
            counts = np.bincount(keys)
            bins = np.flatnonzero(counts >= min_count)
            counts = counts[bins]
        else:
            bins, counts = np.unique(keys, return_counts=True)
            bins, counts = bins[counts >= min_count], counts[counts >= min_count]
        keys_of.append(keys)
        bins_of.append(bins)
        counts_of.append(counts)
        phases_of.append(np.full(bins.size, phase))
    bins, counts, phases = np.concatenate(bins_of), np.concatenate(counts_of), np.concatenate(phases_of)
    chosen, centres = [], []
    for k in np.lexsort((bins, phases, -counts)):
        centre = (bins[k] - phases[k] + 0.5) * width_ms
        if all(abs(centre - other) >= width_ms for other in centres):
            chosen.append(np.flatnonzero(keys_of[int(phases[k] > 0)] == bins[k]))
            centres.append(centre)
            if len(chosen) == n_windows:
                break
    return chosen


def log_poisson_tails(mean: float, n_max: int) -> np.ndarray:
    """Natural log of P(X >= k) for k = 0..n_max of a Poisson variable of ``mean`` > 0, shape (n_max + 1,)."""
    m = np.arange(n_max + 200, dtype=np.float64)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(m[1:]))])
    log_pmf = -mean + m * math.log(mean) - log_factorial
    return np.logaddexp.accumulate(log_pmf[::-1])[::-1][: n_max + 1]


def chance_threshold(n_a, n_b, span_a_ms, span_b_ms, tolerance_ms, max_slope, probability=FALSE_LINK_PROBABILITY):
    """Fewest pairs (int) that the best of all lines tried between unrelated cameras reaches with ``probability``."""
    total_ms = span_a_ms + span_b_ms + 2 * tolerance_ms
    mean = n_a * n_b * 2 * tolerance_ms / total_ms
    n_lines = total_ms / (2 * tolerance_ms) * (1 + max_slope * min(span_a_ms, span_b_ms) / tolerance_ms)
    n_max = min(n_a, n_b)
    unlikely = np.flatnonzero(math.log(n_lines) + log_poisson_tails(mean, n_max) < math.log(probability))
    return int(unlikely[0]) if unlikely.size else n_max + 1


def candidate_lines(x, x_polarity, y, y_polarity, tolerance_ms, max_slope, required) -> list[tuple]:
    """Refined lines ``(n_pairs, drift, shift_ms, pair_codes)`` from the fullest offset bins (codes ``i * y.size + j``).

    Wide bins (room for the largest drift) go first; their counts bound the pairs of any line they
    hold, so bins that could neither beat nor rival the best line are skipped, and the narrow bins
    (for small overlaps drowned in the wide bins) are tried only when some wide bin was left out.
    """
    pair_index = np.flatnonzero((x_polarity[:, None] == y_polarity[None, :]).ravel())
    diffs = (x[:, None] - y[None, :]).ravel()[pair_index]
    drift_room = max_slope * float(np.ptp(y))
    widths = [2 * (tolerance_ms + drift_room), 4 * tolerance_ms] if drift_room > tolerance_ms else [4 * tolerance_ms]
    solutions = []
    for k, width in enumerate(widths):
        bins = offset_bins(diffs, width, required, N_CANDIDATES)
        for window in bins:
            n_best = max((n for n, *_ in solutions), default=0)
            if window.size < max(required, n_best - required + 1):
                continue
            window_pairs = pair_index[window]
            if any(np.isin(window_pairs, codes).mean() >= 0.5 for *_, codes in solutions):
                continue
            i, j = np.divmod(window_pairs, y.size)
            slope, intercept = hough_line(y[j], x[i] - y[j], tolerance_ms, max_slope)
            drift, shift, i, j = refine_line(
                x, x_polarity, y, y_polarity, 1.0 + slope, intercept, tolerance_ms, max_slope
            )
            solutions.append((i.size, drift, shift, i * y.size + j))
        if k == 0 and len(widths) == 2 and solutions and len(bins) < N_CANDIDATES:
            break
    return solutions


def match_pair(x, x_polarity, y, y_polarity, settings: MatchSettings) -> PairMatch:
    """Best relation ``t_a ≈ drift * t_b + shift_ms`` between sorted times (ms) ``x`` of camera a, ``y`` of b."""
    tolerance_ms, max_slope, min_matches = settings
    if x.size == 0 or y.size == 0:
        return PairMatch(1.0, 0.0, 0, 0, max(min_matches, 1), "unlinked")
    span_x, span_y = float(np.ptp(x)), float(np.ptp(y))
    required = max(min_matches, chance_threshold(x.size, y.size, span_x, span_y, tolerance_ms, max_slope))
    solutions = candidate_lines(x, x_polarity, y, y_polarity, tolerance_ms, max_slope, required)
    if not solutions:
        return PairMatch(1.0, 0.0, 0, 0, required, "unlinked")
    best = max(range(len(solutions)), key=lambda k: (solutions[k][0], -k))
    n_best, drift, shift, best_codes = solutions[best]
    runner_up = 0
    for n, _, _, codes in solutions:
        if n and np.count_nonzero(np.isin(codes, best_codes)) < 0.5 * n:
            runner_up = max(runner_up, n)
    if n_best < required:
        status = "unlinked"
    elif runner_up >= required and n_best - runner_up < required:
        status = "ambiguous"
    else:
        status = "linked"
    return PairMatch(float(drift), float(shift), int(n_best), int(runner_up), int(required), status)
