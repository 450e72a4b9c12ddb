"""Coarse offsets between cameras and event-to-flash matching, drift-aware, with no manual input.

Each leading edge gets an approximate time in its own camera's clock,
``frame_time_ms + row * frame_period_ms / total_rows`` (total rows guessed as
:data:`~flashsync_bayes.sensors.TYPICAL_ROWS_RATIO` times the height unless given, which can
misplace a row by up to a third of the frame period on real sensors). For every pair of cameras the relation ``t_a ≈ drift * t_b + shift_ms`` is found
without any hint:

1. histogram all same-polarity event-time differences into offset bins, once a few tolerances wide
   (drift negligible) and once wide enough for the largest drift, and take the fullest bins;
2. turn each candidate bin into a line (offset and drift) with a Hough vote over drift, then refine
   it by iteratively pairing mutual-nearest events within the tolerance and fitting a line;
3. score a line by its one-to-one pairs; accept the best line only if that number beats what
   chance lines reach (a Poisson bound over all lines tried) and it also beats every clearly
   different line that beats chance by that many pairs; otherwise the match is ambiguous (periodic
   flashes give such look-alikes) and links nothing.

Accepted pairs form a graph weighted by matched pairs; a maximum spanning tree grown from the
reference chains the pairwise relations into a mapping of every reachable camera to the reference
clock. All events are then mapped into reference time and clustered into flashes (at most one event
per camera and polarity per flash, all within the tolerance); the mappings, now with a fitted time
per row, are refitted jointly against the flashes until the clustering settles, and the tolerance
shrinks to what the residuals need. Cameras still unlinked are matched against the catalogue of
everything the linked cameras saw (so flashes shared piecemeal with several cameras add up), and a
linked camera left with fewer than ``min_matches`` flashes is unlinked again.

Behaviour at the edges (documented on :func:`match_events`): no leading edges or fewer than two
cameras with events raise :class:`FlashsyncError`, as does a reference that cannot be linked to any
camera; cameras that cannot be linked (no shared flashes, or only ambiguous matches) keep -1 flash
ids and NaN mappings, are named in a ``UserWarning`` and are marked in ``coarse_status``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import xarray as xr

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_index, event_camera_indices, validate_events
from flashsync_bayes.sensors import TYPICAL_ROWS_RATIO
from flashsync_bayes.timing import reference_time_ms

#: Pairing tolerance (ms) for ms-level timestamp jitter; the default adds what the guess of total
#: rows may leave (:data:`GUESS_ERROR_FRAMES` of the longest frame period) until the refit of every
#: camera's time per row shrinks it.
DEFAULT_TOLERANCE_MS = 3.0
#: Readout fractions ``R / L`` tried for cameras whose total rows are unknown (``L / R`` 1.02-2.3,
#: real sensors' range): the nearest is at most 0.03 off, which misplaces a row by at most 0.03
#: frame periods ...
READOUT_GUESSES = tuple(np.arange(0.98, 0.40, -0.06))
#: ... and, the longer frame period counted twice, two cameras' rows by at most this share of it.
GUESS_ERROR_FRAMES = 0.03
#: The tolerance never shrinks below this after refitting (ms).
MIN_TOLERANCE_MS = 0.25
#: Chance that a wrong pairwise relation is accepted (sets the significance threshold).
FALSE_LINK_PROBABILITY = 1e-3
#: Candidate offset windows examined per window width.
N_CANDIDATES = 5
#: Most event pairs one camera pair may have (memory and time grow with n_a * n_b).
MAX_PAIRS = 10_000_000


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


def approximate_times_ms(frame_time_ms, row, frame_period_ms, total_rows) -> np.ndarray:
    """Event times in their camera's clock (ms), ``frame_time_ms + row * frame_period_ms / total_rows``."""
    period = np.asarray(frame_period_ms, dtype=np.float64)
    return np.asarray(frame_time_ms, dtype=np.float64) + np.asarray(row, dtype=np.float64) * period / total_rows


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


def match_pair(x, x_polarity, y, y_polarity, tolerance_ms, max_slope, min_matches) -> PairMatch:
    """Best relation ``t_a ≈ drift * t_b + shift_ms`` between sorted times (ms) ``x`` of camera a, ``y`` of b."""
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


def spanning_tree(weights: np.ndarray, root: int) -> np.ndarray:
    """Parent of each camera (n,) in a maximum spanning tree of ``weights`` (n, n) grown from ``root``; -1 if none."""
    n = weights.shape[0]
    parent = np.full(n, -1)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[root] = True
    best = weights[root].astype(np.float64).copy()
    best_from = np.full(n, root)
    while True:
        candidate = np.where(in_tree, 0.0, best)
        v = int(np.argmax(candidate))
        if candidate[v] <= 0:
            return parent
        parent[v] = best_from[v]
        in_tree[v] = True
        better = (weights[v] > best) & ~in_tree
        best[better] = weights[v][better]
        best_from[better] = v


def chain_mappings(parent: np.ndarray, relations: dict, root: int) -> tuple[np.ndarray, np.ndarray]:
    """``(drift, shift_ms)`` arrays (n,) mapping each camera's time to the root's along the tree; NaN if unreachable."""
    n = parent.size
    drift = np.full(n, np.nan)
    shift = np.full(n, np.nan)
    drift[root], shift[root] = 1.0, 0.0

    def resolve(c):
        if np.isnan(drift[c]) and parent[c] >= 0:
            up = parent[c]
            resolve(up)
            d, s = relations[(up, c)]
            drift[c], shift[c] = drift[up] * d, drift[up] * s + shift[up]

    for c in range(n):
        resolve(c)
    return drift, shift


def invert(drift: float, shift_ms: float) -> tuple[float, float]:
    """``(drift, shift_ms)`` of the inverse of the mapping ``t_a = drift * t_b + shift_ms``."""
    return 1.0 / drift, -shift_ms / drift


def resolve_segment(times: np.ndarray, cameras: np.ndarray, tolerance_ms: float) -> list[np.ndarray]:
    """Groups (index arrays into ``times``, sorted) of at most one event per camera spanning ``<= tolerance_ms``."""
    remaining = np.arange(times.size)
    groups = []
    while remaining.size >= 2:
        t, c = times[remaining], cameras[remaining]
        best_key, best_members = None, None
        for k in range(t.size):
            inside = np.flatnonzero((t >= t[k]) & (t <= t[k] + tolerance_ms))
            centre = np.median(t[inside])
            chosen = []
            for camera in np.unique(c[inside]):
                of_camera = inside[c[inside] == camera]
                chosen.append(of_camera[np.argmin(np.abs(t[of_camera] - centre))])
            chosen = np.sort(np.asarray(chosen))
            key = (chosen.size, -(t[chosen].max() - t[chosen].min()))
            if best_key is None or key > best_key:
                best_key, best_members = key, chosen
        if best_key[0] < 2:
            break
        groups.append(remaining[best_members])
        remaining = np.delete(remaining, best_members)
    return groups


def cluster_times(times_ms, cameras, polarity, tolerance_ms, min_cameras=2) -> np.ndarray:
    """Flash id per event (n,), numbered in time order; -1 for events in groups of fewer than ``min_cameras``."""
    labels = np.full(times_ms.size, -1)
    groups = []
    for sign in np.unique(polarity):
        members = np.flatnonzero(polarity == sign)
        order = members[np.argsort(times_ms[members], kind="stable")]
        t = times_ms[order]
        breaks = np.flatnonzero(np.diff(t) > tolerance_ms) + 1
        for segment in np.split(np.arange(order.size), breaks):
            if segment.size < 2:
                continue
            seg_cameras = cameras[order[segment]]
            if np.unique(seg_cameras).size == segment.size and t[segment[-1]] - t[segment[0]] <= tolerance_ms:
                groups.append(order[segment])
            else:
                groups += [order[segment[g]] for g in resolve_segment(t[segment], seg_cameras, tolerance_ms)]
    groups = [g for g in groups if g.size >= min_cameras]
    starts = [float(np.mean(times_ms[g])) for g in groups]
    for flash_id, k in enumerate(np.argsort(starts, kind="stable")):
        labels[groups[k]] = flash_id
    return labels


def mapped_times(frame_time_ms, row, camera, params) -> np.ndarray:
    """Reference times (ms) of events under per-camera ``params`` (n_cameras, 3), shape (n,)."""
    return reference_time_ms(frame_time_ms, row, params[camera, 0], params[camera, 1], params[camera, 2])


def leave_one_out_means(times_ms, labels) -> np.ndarray:
    """Mean time (ms) of the other members of each event's flash (n,); NaN for unlabelled events."""
    valid = labels >= 0
    n = int(labels.max()) + 1 if valid.any() else 0
    sums = np.bincount(labels[valid], times_ms[valid], minlength=n)
    counts = np.bincount(labels[valid], minlength=n)
    out = np.full(times_ms.size, np.nan)
    out[valid] = (sums[labels[valid]] - times_ms[valid]) / (counts[labels[valid]] - 1)
    return out


def subtract_group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (n, k) minus the mean of their group's rows (groups 0..m-1), shape (n, k)."""
    counts = np.bincount(groups)
    sums = np.stack([np.bincount(groups, values[:, j], minlength=counts.size) for j in range(values.shape[1])], axis=1)
    return values - (sums / counts[:, None])[groups]


def refit_cameras(frame_time_ms, row, camera, flash, params, root, row_scales, max_slope) -> np.ndarray:
    """Per-camera ``(drift, shift_ms, time_per_row_ms)`` (n_cameras, 3) refitted so each flash's mapped times agree.

    Least squares over all cameras at once (the flash times eliminated), the reference keeping
    drift 1 and shift 0; weak priors hold each camera near ``params`` where the flashes cannot tell
    (few events, or time per row traded against shift when frame phases are locked). One pass drops
    events far from their flash and refits. Cameras without flashes keep their row of ``params``.
    """
    fitted = params.copy()
    keep = flash >= 0
    for _ in range(2):
        sel = np.flatnonzero(keep)
        if sel.size == 0:
            return params
        cam, p, r = camera[sel], frame_time_ms[sel], row[sel]
        cameras = np.unique(cam)
        p_mean = np.zeros(params.shape[0])
        p_mean[cameras] = [p[cam == c].mean() for c in cameras]
        design = np.zeros((sel.size, 3 * params.shape[0]))
        rows = np.arange(sel.size)
        design[rows, 3 * cam] = p - p_mean[cam]
        design[rows, 3 * cam + 1] = 1.0
        design[rows, 3 * cam + 2] = r
        fixed = np.where(cam == root, p, 0.0)
        columns = np.array([3 * c + k for c in cameras for k in range(3) if c != root or k == 2])
        _, groups = np.unique(flash[sel], return_inverse=True)
        data = subtract_group_means(design[:, columns], groups)
        target = -subtract_group_means(fixed[:, None], groups)[:, 0]
        prior, prior_target = [], []
        for c in cameras:
            span = max(float(np.ptp(p[cam == c])), 1000.0)
            weights = (0.1 * span, 1e-3, 0.1 * row_scales[c])
            current = (params[c, 0], params[c, 1] + params[c, 0] * p_mean[c], params[c, 2])
            for k in range(3) if c != root else (2,):
                line = np.zeros(columns.size)
                line[np.flatnonzero(columns == 3 * c + k)] = weights[k]
                prior.append(line)
                prior_target.append(weights[k] * current[k])
        matrix = np.vstack([data, np.asarray(prior)])
        scale = np.maximum(np.sqrt(np.sum(matrix**2, axis=0)), 1e-300)
        matrix = matrix / scale
        rhs = np.concatenate([target, prior_target])
        solution = np.linalg.lstsq(matrix.T @ matrix, matrix.T @ rhs, rcond=None)[0] / scale
        residual = data @ solution - target
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        theta = np.zeros(3 * params.shape[0])
        theta[columns] = solution
        for c in cameras:
            drift = 1.0 if c == root else 1.0 + float(np.clip(theta[3 * c] - 1.0, -max_slope, max_slope))
            shift = 0.0 if c == root else float(theta[3 * c + 1] - drift * p_mean[c])
            fitted[c] = (drift, shift, theta[3 * c + 2])
        keep[sel] = np.abs(residual) <= max(5.0 * spread, 1e-3)
    return fitted


def residual_scale(times_ms, labels, camera, n_cameras) -> float:
    """Largest per-camera robust standard deviation (ms) of events about their flash's other members; 0 if none."""
    residual = times_ms - leave_one_out_means(times_ms, labels)
    scales = [0.0]
    for c in range(n_cameras):
        r = residual[(camera == c) & (labels >= 0)]
        if r.size >= 5:
            scales.append(1.4826 * float(np.median(np.abs(r - np.median(r)))))
    return max(scales)


class LeadingEdges(NamedTuple):
    """The leading edges being matched, all arrays of shape (n,).

    Attributes:
        index: position of each edge in the events dataset.
        camera: camera index (dataset order).
        frame_time_ms: frame timestamp p (ms, camera clock).
        row: sub-row edge position.
        polarity: +1 rising, -1 falling.
        own_time_ms: approximate event time in its camera's clock (ms).
    """

    index: np.ndarray
    camera: np.ndarray
    frame_time_ms: np.ndarray
    row: np.ndarray
    polarity: np.ndarray
    own_time_ms: np.ndarray


def leading_edges(events: xr.Dataset, rows_total: np.ndarray) -> LeadingEdges:
    """The leading edges of ``events`` with their approximate own-clock times, given total rows per camera."""
    index = np.flatnonzero(events["edge"].values == "leading")
    camera = event_camera_indices(events["camera"].values, events["event_camera"].values[index])
    frame_time = events["frame_time_ms"].values[index].astype(np.float64)
    row = events["row"].values[index].astype(np.float64)
    periods = events["frame_period_ms"].values.astype(np.float64)
    own = approximate_times_ms(frame_time, row, periods[camera], rows_total[camera])
    polarity = events["polarity"].values[index].astype(np.int64)
    return LeadingEdges(index, camera, frame_time, row, polarity, own)


def camera_order(edges: LeadingEdges, c: int) -> np.ndarray:
    """Indices into ``edges`` of camera ``c``'s edges sorted by own-clock time, shape (n_c,)."""
    idx = np.flatnonzero(edges.camera == c)
    return idx[np.argsort(edges.own_time_ms[idx], kind="stable")]


def pairwise_matches(edges: LeadingEdges, n_cameras: int, settings: dict) -> dict[tuple[int, int], PairMatch]:
    """:class:`PairMatch` for every camera pair ``(a, b)`` with ``a < b`` (``t_a ≈ drift * t_b + shift_ms``)."""
    order = [camera_order(edges, c) for c in range(n_cameras)]
    matches = {}
    for a in range(n_cameras):
        for b in range(a + 1, n_cameras):
            ia, ib = order[a], order[b]
            matches[(a, b)] = match_pair(
                edges.own_time_ms[ia], edges.polarity[ia], edges.own_time_ms[ib], edges.polarity[ib], **settings
            )
    return matches


def tree_mappings(matches: dict, n_cameras: int, root: int) -> tuple[np.ndarray, np.ndarray]:
    """``(drift, shift_ms)`` arrays (n_cameras,) to the root's clock along a maximum spanning tree; NaN if unreached."""
    weights = np.zeros((n_cameras, n_cameras))
    relations = {}
    for (a, b), pair in matches.items():
        if pair.status == "linked":
            weights[a, b] = weights[b, a] = pair.n_matched
            relations[(a, b)] = (pair.drift, pair.shift_ms)
            relations[(b, a)] = invert(pair.drift, pair.shift_ms)
    return chain_mappings(spanning_tree(weights, root), relations, root)


def guess_total_rows(events: xr.Dataset, rows_total: np.ndarray, known: np.ndarray, settings: dict) -> np.ndarray:
    """Total rows ``(C,)``: the ``known`` ones, else those of :data:`READOUT_GUESSES` that line the cameras up best.

    The anchor (the camera with the most leading edges) and its best partner try every pair of
    guesses; then each other camera tries its guesses against the cameras already guessed (most
    edges first) and keeps the one with the most matched pairs. A camera that links to none
    keeps ``rows_total``.
    """
    heights = events["height"].values.astype(np.float64)
    counts = np.bincount(leading_edges(events, rows_total).camera, minlength=heights.size)
    by_edges = [int(c) for c in np.argsort(-counts, kind="stable")]
    chosen = rows_total.copy()

    def options(c):
        return [rows_total[c]] if known[c] else [heights[c] / q for q in READOUT_GUESSES]

    def ordered(c, rows):
        trial = chosen.copy()
        trial[c] = rows
        edges = leading_edges(events, trial)
        order = camera_order(edges, c)
        return edges.own_time_ms[order], edges.polarity[order]

    def best_guess(c, partner, partner_options):
        """``(n_matched, partner rows, rows)`` of the best linked pair of guesses, n_matched -1 if none links."""
        best = (-1, chosen[partner], chosen[c])
        for partner_rows in partner_options:
            x = ordered(partner, partner_rows)
            for rows in options(c):
                pair = match_pair(*x, *ordered(c, rows), **settings)
                if pair.status == "linked" and pair.n_matched > best[0]:
                    best = (pair.n_matched, partner_rows, rows)
        return best

    anchor, done = by_edges[0], [by_edges[0]]
    pending = by_edges[1:]
    for partner in pending:  # the anchor's own guess comes from its first linking partner
        n, anchor_rows, rows = best_guess(partner, anchor, options(anchor))
        if n > 0:
            chosen[anchor], chosen[partner] = anchor_rows, rows
            done.append(partner)
            pending.remove(partner)
            break
    progress = True
    while pending and progress:
        progress = False
        for c in list(pending):
            for partner in done:
                n, _, rows = best_guess(c, partner, [chosen[partner]])
                if n > 0:
                    chosen[c] = rows
                    done.append(c)
                    pending.remove(c)
                    progress = True
                    break
    return chosen


def settle_flashes(edges, params, linked, root, heights, tolerance_ms, max_slope, max_rounds=12):
    """``(params, flash, tolerance_ms)``: refitted mappings (n_cameras, 3), flash id per edge (n,), final tolerance.

    Alternates clustering the linked cameras' edges in reference time with a joint refit of the
    mappings until the flashes stop changing, then shrinks the tolerance to what the residuals need
    and settles again.
    """
    use = linked[edges.camera]
    p, r, cam, pol = edges.frame_time_ms[use], edges.row[use], edges.camera[use], edges.polarity[use]
    current_tolerance = tolerance_ms
    tightened = False
    previous = None
    for _ in range(max_rounds):
        times = mapped_times(p, r, cam, params)
        flash = cluster_times(times, cam, pol, current_tolerance)
        if previous is not None and np.array_equal(flash, previous):
            if tightened:
                break
            scale = residual_scale(times, flash, cam, params.shape[0])
            current_tolerance = min(tolerance_ms, max(MIN_TOLERANCE_MS, 8.0 * scale))
            tightened, previous = True, None
            continue
        params = refit_cameras(p, r, cam, flash, params, root, heights, max_slope)
        previous = flash
    else:
        flash = cluster_times(mapped_times(p, r, cam, params), cam, pol, current_tolerance)
    all_flash = np.full(edges.camera.size, -1, dtype=np.int64)
    all_flash[use] = flash
    return params, all_flash, current_tolerance


def catalogue(edges: LeadingEdges, params, linked, flash) -> tuple[np.ndarray, np.ndarray]:
    """``(time_ms, polarity)`` sorted: reference times of known flashes (means) and of unmatched linked-camera edges."""
    use = linked[edges.camera]
    times = mapped_times(edges.frame_time_ms, edges.row, edges.camera, params)
    labelled = use & (flash >= 0)
    n = int(flash.max(initial=-1)) + 1
    counts = np.bincount(flash[labelled], minlength=n)
    means = np.bincount(flash[labelled], times[labelled], minlength=n) / np.maximum(counts, 1)
    flash_polarity = np.zeros(n, dtype=np.int64)
    flash_polarity[flash[labelled]] = edges.polarity[labelled]
    loose = use & (flash < 0)
    all_times = np.concatenate([means[counts > 0], times[loose]])
    all_polarity = np.concatenate([flash_polarity[counts > 0], edges.polarity[loose]])
    order = np.argsort(all_times, kind="stable")
    return all_times[order], all_polarity[order]


def catalogue_match(edges: LeadingEdges, params, linked, flash, camera: int, settings: dict) -> PairMatch:
    """:class:`PairMatch` of the linked cameras' catalogue in reference time (a) against one camera's edges (b)."""
    known_ms, known_polarity = catalogue(edges, params, linked, flash)
    own = camera_order(edges, camera)
    return match_pair(known_ms, known_polarity, edges.own_time_ms[own], edges.polarity[own], **settings)


def unlinked_reason(status) -> str:
    """What to do when no camera links to the reference, given per-camera statuses."""
    if "ambiguous" in list(status):
        return (
            "the flash pattern repeats (e.g. periodic flashes), so the offsets are ambiguous; "
            "record irregularly timed flashes or choose another reference"
        )
    return (
        "no shared flashes found; check that the videos share flashes, choose another reference, "
        "or raise tolerance_ms (noisy timestamps) or give total_rows (fast-readout sensors)"
    )


def match_events(
    events: xr.Dataset,
    reference: str | None = None,
    *,
    tolerance_ms: float | None = None,
    max_drift_ppm: float = 500.0,
    min_matches: int = 4,
    total_rows: Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Copy of ``events`` with flash ids on leading edges and each camera's coarse mapping to the reference clock.

    Writes ``flash`` (0..n_flashes-1 in time order for leading edges seen by at least two cameras;
    -1 for trailing edges, unmatched, spurious-looking and unlinked events) and per-camera
    ``coarse_drift``, ``coarse_shift_ms``, ``coarse_time_per_row_ms`` (reference ms ≈
    ``coarse_drift * frame_time_ms + coarse_shift_ms + row * coarse_time_per_row_ms``; the
    reference has drift 1, shift 0; NaN where not linked; equivalently, within the error of the
    total-rows guess, reference ms ≈ ``coarse_drift * t_cam + coarse_shift_ms`` with ``t_cam =
    frame_time_ms + row * frame_period_ms / total_rows``) and ``coarse_status`` ("reference",
    "linked", "ambiguous", "unlinked"); attrs ``reference`` (label), ``matching_tolerance_ms``
    (final pairing tolerance) and ``n_flashes``.

    Args:
        events: events dataset (DESIGN §4).
        reference: label or path of the reference camera; the first camera when None.
        tolerance_ms: largest disagreement (ms) of two events of one flash after mapping with offset
            and drift; default 3 ms plus what guessing the total rows may leave (a third of the
            longest unknown frame period). Raise it for timestamps with jitter of ms.
        max_drift_ppm: largest relative clock drift between two cameras (ppm).
        min_matches: fewest shared flashes that link a camera (more are needed where chance
            coincidences are likely: many events over a long recording). A match is ambiguous, and
            links nothing, when a clearly different solution also reaches that many and falls
            short of the best by fewer than that many (e.g. periodic flashes).
        total_rows: known total sensor rows per camera label; ``TYPICAL_ROWS_RATIO * height`` otherwise.

    Raises:
        FlashsyncError: no leading edges, fewer than two cameras with leading edges, an unknown
            reference, a tolerance that is not positive, more than ``MAX_PAIRS`` event pairs for
            one camera pair, or no camera that can be linked to the reference. Cameras that cannot
            be linked while others can are left unmatched with a ``UserWarning``.
    """
    validate_events(events)
    labels = [str(c) for c in events["camera"].values]
    root = 0 if reference is None else camera_index(events, reference, "reference")
    n_cameras = len(labels)
    heights = events["height"].values.astype(np.float64)
    periods = events["frame_period_ms"].values.astype(np.float64)
    known = np.array([k in (total_rows or {}) for k in labels])
    rows_total = np.array([float((total_rows or {}).get(k, TYPICAL_ROWS_RATIO * h)) for k, h in zip(labels, heights)])
    default = DEFAULT_TOLERANCE_MS + GUESS_ERROR_FRAMES * float(np.max(periods[~known], initial=0.0))
    tolerance = default if tolerance_ms is None else float(tolerance_ms)
    if not tolerance > 0:
        raise FlashsyncError(f"tolerance_ms must be positive, got {tolerance_ms}")
    max_slope = float(max_drift_ppm) * 1e-6
    settings = dict(tolerance_ms=tolerance, max_slope=max_slope, min_matches=min_matches)
    rows_total = guess_total_rows(events, rows_total, known, settings)
    edges = leading_edges(events, rows_total)
    if edges.index.size == 0:
        raise FlashsyncError("there are no leading-edge events to match; detect events first")
    per_camera = np.bincount(edges.camera, minlength=n_cameras)
    if np.count_nonzero(per_camera) < 2:
        raise FlashsyncError("matching needs leading-edge events from at least two cameras")
    largest = np.sort(per_camera)[-2:]
    if largest[0] * largest[1] > MAX_PAIRS:
        raise FlashsyncError(
            f"camera '{labels[int(np.argmax(per_camera))]}' has {largest[1]} leading edges; matching expects "
            "flash events (up to a few thousand per camera): check the event detector's settings"
        )
    matches = pairwise_matches(edges, n_cameras, settings)
    drift, shift = tree_mappings(matches, n_cameras, root)
    linked = ~np.isnan(drift)
    status = np.where(linked, "linked", "unlinked").astype(object)
    for (a, b), pair in matches.items():
        status[[c for c in (a, b) if pair.status == "ambiguous" and not linked[c]]] = "ambiguous"
    status[root] = "reference"
    params = np.column_stack([drift, shift, drift * periods / rows_total])
    rejected = np.zeros(n_cameras, dtype=bool)
    flash, flash_tolerance = np.full(edges.index.size, -1), tolerance
    for _ in range(2 * n_cameras):
        if linked.sum() < 2:
            break
        params, flash, flash_tolerance = settle_flashes(edges, params, linked, root, heights, tolerance, max_slope)
        weak = linked & (np.bincount(edges.camera[flash >= 0], minlength=n_cameras) < min_matches)
        weak[root] = False
        if weak.any():
            linked[weak], rejected[weak], status[weak] = False, True, "unlinked"
            params[weak] = np.nan
            continue
        added = False
        for c in np.flatnonzero(~linked & ~rejected):
            pair = catalogue_match(edges, params, linked, flash, c, settings)
            if pair.status == "linked":
                params[c] = (pair.drift, pair.shift_ms, pair.drift * periods[c] / rows_total[c])
                linked[c], status[c], added = True, "linked", True
            elif pair.status == "ambiguous":
                status[c] = "ambiguous"
        if not added:
            break
    if linked.sum() < 2:
        raise FlashsyncError(f"no camera could be linked to the reference '{labels[root]}': {unlinked_reason(status)}")
    if not linked.all():
        missing = [f"{labels[c]} ({status[c]})" for c in np.flatnonzero(~linked)]
        warnings.warn(f"cameras left unmatched, not linked to '{labels[root]}': {', '.join(missing)}", stacklevel=2)

    all_flash = np.full(events.sizes["event"], -1, dtype=np.int64)
    all_flash[edges.index] = flash
    out = events.copy()
    out["flash"] = ("event", all_flash)
    out["coarse_drift"] = ("camera", params[:, 0])
    out["coarse_shift_ms"] = ("camera", params[:, 1])
    out["coarse_time_per_row_ms"] = ("camera", params[:, 2])
    out["coarse_status"] = ("camera", status.astype(str))
    out.attrs.update(
        reference=labels[root], matching_tolerance_ms=float(flash_tolerance), n_flashes=int(flash.max(initial=-1) + 1)
    )
    return out
