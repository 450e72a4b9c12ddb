"""Events in reference time clustered into flashes, with a joint refit of the cameras' mappings.

All linked cameras' events are mapped into reference time and clustered into flashes (at most one
event per camera and polarity per flash, all within the tolerance); the mappings, now with a
fitted time per row, are refitted jointly against the flashes until the clustering settles, and
the tolerance shrinks to what the residuals need. Unlinked cameras are matched against the
catalogue of everything the linked cameras saw (so flashes shared piecemeal add up).
"""

from __future__ import annotations

import numpy as np

from flashsync_bayes.matching.edges import LeadingEdges, camera_order
from flashsync_bayes.matching.mappings import Mappings
from flashsync_bayes.matching.pairwise import MatchSettings, PairMatch, match_pair

#: The tolerance never shrinks below this after refitting (ms).
MIN_TOLERANCE_MS = 0.25


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


def residual_scale(times_ms, labels, camera, n_cameras) -> float:
    """Largest per-camera robust standard deviation (ms) of events about their flash's other members; 0 if none."""
    residual = times_ms - leave_one_out_means(times_ms, labels)
    scales = [0.0]
    for c in range(n_cameras):
        r = residual[(camera == c) & (labels >= 0)]
        if r.size >= 5:
            scales.append(1.4826 * float(np.median(np.abs(r - np.median(r)))))
    return max(scales)


def flash_design(p, r, cam, flash, n_cameras, root) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(data (n, k), target (n,), columns (k,), p_mean (C,))``: least-squares rows with the flash times eliminated.

    Unknowns are ``(drift, shift at the camera's mean frame time p_mean, time_per_row_ms)`` of every
    camera with events (column ``3 * c + j``), the reference's time per row only; each event's row
    and target have its flash's mean subtracted.
    """
    cameras = np.unique(cam)
    p_mean = np.zeros(n_cameras)
    p_mean[cameras] = [p[cam == c].mean() for c in cameras]
    design = np.zeros((p.size, 3 * n_cameras))
    rows = np.arange(p.size)
    design[rows, 3 * cam] = p - p_mean[cam]
    design[rows, 3 * cam + 1] = 1.0
    design[rows, 3 * cam + 2] = r
    fixed = np.where(cam == root, p, 0.0)
    columns = np.array([3 * c + k for c in cameras for k in range(3) if c != root or k == 2])
    _, groups = np.unique(flash, return_inverse=True)
    data = subtract_group_means(design[:, columns], groups)
    target = -subtract_group_means(fixed[:, None], groups)[:, 0]
    return data, target, columns, p_mean


def camera_priors(p, cam, columns, p_mean, mappings: Mappings, root, row_scales) -> tuple[np.ndarray, list]:
    """``(rows (m, k), targets (m,))`` of weak priors holding each camera with events near ``mappings``."""
    prior, prior_target = [], []
    for c in np.unique(cam):
        span = max(float(np.ptp(p[cam == c])), 1000.0)
        weights = (0.1 * span, 1e-3, 0.1 * row_scales[c])
        drift, shift_ms, time_per_row_ms = mappings.at(c)
        current = (drift, shift_ms + drift * p_mean[c], time_per_row_ms)
        for k in range(3) if c != root else (2,):
            line = np.zeros(columns.size)
            line[np.flatnonzero(columns == 3 * c + k)] = weights[k]
            prior.append(line)
            prior_target.append(weights[k] * current[k])
    return np.asarray(prior), prior_target


def solve_scaled(data, target, prior, prior_target) -> np.ndarray:
    """Least-squares solution (k,) of the data and prior rows, solved with columns scaled to unit norm."""
    matrix = np.vstack([data, prior])
    scale = np.maximum(np.sqrt(np.sum(matrix**2, axis=0)), 1e-300)
    matrix = matrix / scale
    rhs = np.concatenate([target, prior_target])
    return np.linalg.lstsq(matrix.T @ matrix, matrix.T @ rhs, rcond=None)[0] / scale


def unpack_solution(fitted: Mappings, solution, columns, cameras, p_mean, root, max_slope) -> Mappings:
    """``fitted`` with the solved ``cameras``' mappings, drift clipped to ``1 ± max_slope``; the root keeps 1, 0."""
    theta = np.zeros(3 * fitted.n_cameras)
    theta[columns] = solution
    for c in cameras:
        drift = 1.0 if c == root else 1.0 + float(np.clip(theta[3 * c] - 1.0, -max_slope, max_slope))
        shift = 0.0 if c == root else float(theta[3 * c + 1] - drift * p_mean[c])
        fitted = fitted.with_camera(c, drift, shift, theta[3 * c + 2])
    return fitted


def refit_cameras(frame_time_ms, row, camera, flash, mappings: Mappings, root, row_scales, max_slope) -> Mappings:
    """Mappings refitted so each flash's mapped times (events (n,), flash ids (n,)) agree.

    Least squares over all cameras at once (the flash times eliminated), the reference keeping
    drift 1 and shift 0; weak priors hold each camera near ``mappings`` where the flashes cannot
    tell (few events, or time per row traded against shift when frame phases are locked). One pass
    drops events far from their flash and refits. Cameras without flashes keep their mapping.
    """
    fitted = mappings
    keep = flash >= 0
    for _ in range(2):
        sel = np.flatnonzero(keep)
        if sel.size == 0:
            return mappings
        cam, p, r = camera[sel], frame_time_ms[sel], row[sel]
        data, target, columns, p_mean = flash_design(p, r, cam, flash[sel], mappings.n_cameras, root)
        prior, prior_target = camera_priors(p, cam, columns, p_mean, mappings, root, row_scales)
        solution = solve_scaled(data, target, prior, prior_target)
        residual = data @ solution - target
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        fitted = unpack_solution(fitted, solution, columns, np.unique(cam), p_mean, root, max_slope)
        keep[sel] = np.abs(residual) <= max(5.0 * spread, 1e-3)
    return fitted


def settle_flashes(
    edges: LeadingEdges, mappings: Mappings, linked, root, heights, settings: MatchSettings, max_rounds=12
) -> tuple[Mappings, np.ndarray, float]:
    """``(mappings, flash, tolerance_ms)``: refitted mappings, flash id per edge (n,) (-1 unlinked), final tolerance.

    Alternates clustering the ``linked`` (C,) cameras' edges in reference time with a joint refit
    of the mappings until the flashes stop changing, then shrinks the tolerance to what the
    residuals need and settles again.
    """
    use = linked[edges.camera]
    p, r, cam, pol = edges.frame_time_ms[use], edges.row[use], edges.camera[use], edges.polarity[use]
    current_tolerance = settings.tolerance_ms
    tightened = False
    previous = None
    for _ in range(max_rounds):
        times = mappings.reference_times_ms(p, r, cam)
        flash = cluster_times(times, cam, pol, current_tolerance)
        if previous is not None and np.array_equal(flash, previous):
            if tightened:
                break
            scale = residual_scale(times, flash, cam, mappings.n_cameras)
            current_tolerance = min(settings.tolerance_ms, max(MIN_TOLERANCE_MS, 8.0 * scale))
            tightened, previous = True, None
            continue
        mappings = refit_cameras(p, r, cam, flash, mappings, root, heights, settings.max_slope)
        previous = flash
    else:
        flash = cluster_times(mappings.reference_times_ms(p, r, cam), cam, pol, current_tolerance)
    all_flash = np.full(edges.camera.size, -1, dtype=np.int64)
    all_flash[use] = flash
    return mappings, all_flash, current_tolerance


def catalogue(edges: LeadingEdges, mappings: Mappings, linked, flash) -> tuple[np.ndarray, np.ndarray]:
    """``(time_ms, polarity)`` sorted: reference times of known flashes (means) and of unmatched linked-camera edges."""
    use = linked[edges.camera]
    times = mappings.reference_times_ms(edges.frame_time_ms, edges.row, edges.camera)
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


def catalogue_match(
    edges: LeadingEdges, mappings: Mappings, linked, flash, camera: int, settings: MatchSettings
) -> PairMatch:
    """:class:`PairMatch` of the linked cameras' catalogue in reference time (a) against one camera's edges (b)."""
    known_ms, known_polarity = catalogue(edges, mappings, linked, flash)
    own = camera_order(edges, camera)
    return match_pair(known_ms, known_polarity, edges.own_time_ms[own], edges.polarity[own], settings)
