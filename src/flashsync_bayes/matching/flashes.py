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
from flashsync_bayes.matching.refit import refit_cameras

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


def residual_scale(times_ms, labels, camera, n_cameras) -> float:
    """Largest per-camera robust standard deviation (ms) of events about their flash's other members; 0 if none."""
    residual = times_ms - leave_one_out_means(times_ms, labels)
    scales = [0.0]
    for c in range(n_cameras):
        r = residual[(camera == c) & (labels >= 0)]
        if r.size >= 5:
            scales.append(1.4826 * float(np.median(np.abs(r - np.median(r)))))
    return max(scales)


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
