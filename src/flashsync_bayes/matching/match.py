"""The front door, :func:`match_events`: coarse offsets and drifts between cameras and event-to-flash matching.

Each leading edge gets an approximate time in its own camera's clock (total rows known or guessed,
:mod:`.rows`). Every pair of cameras is related by ``t_a ≈ drift * t_b + shift_ms`` without any hint
(:mod:`.pairwise`); the pairwise relations chain into every reachable camera's mapping to the
reference clock (:mod:`.graph`). Events are clustered into flashes in reference time and the
mappings, now with a fitted time per row, refitted until the flashes settle (:mod:`.flashes`).
Cameras still unlinked are matched against the catalogue of everything the linked cameras saw,
and a linked camera left with fewer than ``min_matches`` flashes is unlinked again.

Behaviour at the edges (documented on :func:`match_events`): no leading edges or fewer than two
cameras with events raise :class:`FlashsyncError`, as does a reference that cannot be linked to any
camera; cameras that cannot be linked (no shared flashes, or only ambiguous matches) keep -1 flash
ids and NaN mappings, are named in a ``UserWarning`` and are marked in ``coarse_status``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import xarray as xr

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_index, validate_events
from flashsync_bayes.matching.edges import LeadingEdges, leading_edges
from flashsync_bayes.matching.flashes import catalogue_match, settle_flashes
from flashsync_bayes.matching.graph import pairwise_matches, tree_mappings
from flashsync_bayes.matching.mappings import Mappings, readout_time_per_row_ms
from flashsync_bayes.matching.pairwise import MatchSettings, PairMatch
from flashsync_bayes.matching.rows import GUESS_ERROR_FRAMES, guess_total_rows, initial_total_rows

#: Pairing tolerance (ms) for ms-level timestamp jitter; the default adds what the guess of total
#: rows may leave (:data:`~.rows.GUESS_ERROR_FRAMES` of the longest frame period) until the refit
#: of every camera's time per row shrinks it.
DEFAULT_TOLERANCE_MS = 3.0
#: Most event pairs one camera pair may have (memory and time grow with n_a * n_b).
MAX_PAIRS = 10_000_000


class Readout(NamedTuple):
    """Every camera's readout, arrays of shape (C,) float64.

    Attributes:
        height: stored rows.
        frame_period_ms: frame period (camera ms).
        total_rows: total sensor rows, known or guessed.
    """

    height: np.ndarray
    frame_period_ms: np.ndarray
    total_rows: np.ndarray


#: Smallest matching tolerance (ms): matching pairs events under a coarse mapping (guessed total rows), and
#: its vote's grid of slopes and offsets grows as 1 / tolerance² (0.1 ms: 2 minutes and 0.9 GB for an hour of
#: three cameras; 1e-6 ms asked for 785 TiB).
MIN_TOLERANCE_MS = 0.1


def check_tolerance(tolerance_ms) -> None:
    """FlashsyncError unless ``tolerance_ms`` is None (the default) or at least :data:`MIN_TOLERANCE_MS`."""
    if tolerance_ms is not None and not float(tolerance_ms) >= MIN_TOLERANCE_MS:
        raise FlashsyncError(f"tolerance_ms must be at least {MIN_TOLERANCE_MS} ms, got {tolerance_ms}")


def match_settings(periods, known, tolerance_ms, max_drift_ppm, min_matches) -> MatchSettings:
    """:class:`MatchSettings` from :func:`match_events`'s arguments, the default tolerance from the unknown rows."""
    check_tolerance(tolerance_ms)
    default = DEFAULT_TOLERANCE_MS + GUESS_ERROR_FRAMES * float(np.max(periods[~known], initial=0.0))
    tolerance = default if tolerance_ms is None else float(tolerance_ms)
    return MatchSettings(tolerance, float(max_drift_ppm) * 1e-6, min_matches)


def check_edges(edges: LeadingEdges, labels: list[str]) -> None:
    """Raise :class:`FlashsyncError` unless two cameras have leading edges, not too many pairs of them."""
    per_camera = np.bincount(edges.camera, minlength=len(labels))
    if np.count_nonzero(per_camera) < 2:
        empty = ", ".join(labels[c] for c in np.flatnonzero(per_camera == 0))
        raise FlashsyncError(f"no flashes found in {empty}; synchronizing needs flashes seen by at least two cameras")
    largest = np.sort(per_camera)[-2:]
    if largest[0] * largest[1] > MAX_PAIRS:
        raise FlashsyncError(
            f"camera '{labels[int(np.argmax(per_camera))]}' has {largest[1]} leading edges; matching expects "
            "flash events (up to a few thousand per camera): check the event detector's settings"
        )


def chained_mappings(matches: dict[tuple[int, int], PairMatch], readout: Readout, root: int):
    """``(mappings, linked (C,), status (C,) object)`` along the spanning tree of the pairwise ``matches``."""
    drift, shift = tree_mappings(matches, readout.height.size, root)
    linked = ~np.isnan(drift)
    status = np.where(linked, "linked", "unlinked").astype(object)
    for (a, b), pair in matches.items():
        status[[c for c in (a, b) if pair.status == "ambiguous" and not linked[c]]] = "ambiguous"
    status[root] = "reference"
    time_per_row = readout_time_per_row_ms(drift, readout.frame_period_ms, readout.total_rows)
    return Mappings(drift, shift, time_per_row), linked, status


def link_from_catalogue(edges, mappings, linked, status, flash, candidates, readout: Readout, settings):
    """``(mappings, added)``: ``candidates`` matched against the linked cameras' catalogue, one by one.

    Updates ``linked`` and ``status`` (C,) in place; ``added`` says whether any camera was linked.
    """
    added = False
    for c in candidates:
        pair = catalogue_match(edges, mappings, linked, flash, c, settings)
        if pair.status == "linked":
            time_per_row = readout_time_per_row_ms(pair.drift, readout.frame_period_ms[c], readout.total_rows[c])
            mappings = mappings.with_camera(c, pair.drift, pair.shift_ms, time_per_row)
            linked[c], status[c], added = True, "linked", True
        elif pair.status == "ambiguous":
            status[c] = "ambiguous"
    return mappings, added


def link_cameras(edges, mappings: Mappings, linked, status, root, readout: Readout, settings: MatchSettings):
    """``(mappings, flash (n,), tolerance_ms)`` once flashes settle and no more cameras link or drop out.

    Alternates settling the flashes with unlinking cameras left with fewer than ``min_matches``
    flashes (for good) and linking unlinked cameras through the catalogue; updates ``linked`` and
    ``status`` (C,) in place.
    """
    n_cameras = linked.size
    rejected = np.zeros(n_cameras, dtype=bool)
    flash, flash_tolerance = np.full(edges.index.size, -1), settings.tolerance_ms
    for _ in range(2 * n_cameras):
        if linked.sum() < 2:
            break
        mappings, flash, flash_tolerance = settle_flashes(edges, mappings, linked, root, readout.height, settings)
        weak = linked & (np.bincount(edges.camera[flash >= 0], minlength=n_cameras) < settings.min_matches)
        weak[root] = False
        if weak.any():
            linked[weak], rejected[weak], status[weak] = False, True, "unlinked"
            mappings = mappings.without(weak)
            continue
        candidates = np.flatnonzero(~linked & ~rejected)
        mappings, added = link_from_catalogue(edges, mappings, linked, status, flash, candidates, readout, settings)
        if not added:
            break
    return mappings, flash, flash_tolerance


def unlinked_reason(status, min_matches: int) -> str:
    """What to do when no camera links to the reference, given per-camera statuses and the fewest flashes that link."""
    if "ambiguous" in list(status):
        return (
            "the flash pattern repeats (e.g. periodic flashes), so the offsets are ambiguous; "
            "record irregularly timed flashes or choose another reference"
        )
    return (
        f"no other camera shares at least {min_matches} flashes with it that one clock mapping explains (fewer can "
        "coincide by chance); check that the videos share flashes, choose another reference, "
        "or raise tolerance_ms (--tolerance-ms: noisy timestamps) or give total_rows (--total-rows: fast-readout sensors)"
    )


def report_unlinked(labels: list[str], root: int, linked, status, min_matches: int) -> None:
    """Raise :class:`FlashsyncError` if no camera links to the reference, else warn of unlinked cameras."""
    if linked.sum() < 2:
        reason = unlinked_reason(status, min_matches)
        raise FlashsyncError(f"no camera could be linked to the reference '{labels[root]}': {reason}")
    if not linked.all():
        missing = [f"{labels[c]} ({status[c]})" for c in np.flatnonzero(~linked)]
        warnings.warn(
            f"cameras left out, not linked to '{labels[root]}' by enough shared flashes: {', '.join(missing)}; "
            "the others are synchronized without them",
            stacklevel=3,
        )


def matched_dataset(events: xr.Dataset, edges, flash, mappings: Mappings, status, reference: str, tolerance_ms):
    """Copy of ``events`` with ``flash``, the ``coarse_*`` variables and the matching's attrs."""
    all_flash = np.full(events.sizes["event"], -1, dtype=np.int64)
    all_flash[edges.index] = flash
    out = events.copy()
    out["flash"] = ("event", all_flash)
    out["coarse_drift"] = ("camera", mappings.drift)
    out["coarse_shift_ms"] = ("camera", mappings.shift_ms)
    out["coarse_time_per_row_ms"] = ("camera", mappings.time_per_row_ms)
    out["coarse_status"] = ("camera", status.astype(str))
    out.attrs.update(
        reference=reference, matching_tolerance_ms=float(tolerance_ms), n_flashes=int(flash.max(initial=-1) + 1)
    )
    return out


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
            and drift; default 3 ms plus what guessing the total rows may leave
            (:data:`~flashsync_bayes.matching.rows.GUESS_ERROR_FRAMES` of the longest unknown frame period). Raise it for timestamps with jitter of ms.
        max_drift_ppm: largest relative clock drift between two cameras (ppm).
        min_matches: fewest shared flashes that link a camera (more are needed where chance
            coincidences are likely: many events over a long recording). A match is ambiguous, and
            links nothing, when a clearly different solution also reaches that many and falls
            short of the best by fewer than that many (e.g. periodic flashes).
        total_rows: known total sensor rows per camera label; ``TYPICAL_ROWS_RATIO * height`` otherwise.

    Raises:
        FlashsyncError: no leading edges, fewer than two cameras with leading edges, an unknown
            reference, a tolerance under ``MIN_TOLERANCE_MS``, more than ``MAX_PAIRS`` event pairs for
            one camera pair, or no camera that can be linked to the reference. Cameras that cannot
            be linked while others can are left unmatched with a ``UserWarning``.
    """
    validate_events(events)
    labels = [str(c) for c in events["camera"].values]
    root = 0 if reference is None else camera_index(events, reference, "reference")
    heights = events["height"].values.astype(np.float64)
    periods = events["frame_period_ms"].values.astype(np.float64)
    known, rows_total = initial_total_rows(labels, heights, total_rows)
    settings = match_settings(periods, known, tolerance_ms, max_drift_ppm, min_matches)
    readout = Readout(heights, periods, guess_total_rows(events, rows_total, known, settings))
    edges = leading_edges(events, readout.total_rows)
    check_edges(edges, labels)
    matches = pairwise_matches(edges, len(labels), settings)
    mappings, linked, status = chained_mappings(matches, readout, root)
    mappings, flash, flash_tolerance = link_cameras(edges, mappings, linked, status, root, readout, settings)
    report_unlinked(labels, root, linked, status, settings.min_matches)
    return matched_dataset(events, edges, flash, mappings, status, labels[root], flash_tolerance)
