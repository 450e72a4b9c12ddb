"""The whole job in one call: videos -> events -> matched flashes -> synchronization result."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from flashsync_bayes import inference
from flashsync_bayes.detection import DetectorSettings, detect_events
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference import METHODS
from flashsync_bayes.io import video
from flashsync_bayes.matching import match_events
from flashsync_bayes.matching.match import check_tolerance
from flashsync_bayes.result import SyncResult
from flashsync_bayes.sensors import known_total_rows


def fit(events, *args, **options) -> SyncResult:
    """Synchronization of all cameras of a matched events dataset, as a :class:`~flashsync_bayes.result.SyncResult`.

    Arguments are those of :func:`flashsync_bayes.inference.fit` (reference, method, known
    facts, seed, sampler sizes, progress, priors). The result keeps ``events``.
    """
    return SyncResult.from_posterior(inference.fit(events, *args, **options), events)


def synchronize(
    paths: Sequence[str],
    *,
    reference: str | None = None,
    method: str = inference.NUTS,
    total_rows: Mapping[str, float] | None = None,
    readout_ms: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    tolerance_ms: float | None = None,
    flicker_ruler: bool = True,
    settings: DetectorSettings | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
    progress: bool = True,
    jobs: int | str = 1,
    client=None,
) -> SyncResult:
    """Synchronize videos from the flashes they share; cameras are labelled by their paths as given.

    ``reference`` (a path, default the first) defines the time axis. ``total_rows``,
    ``readout_ms`` (time to read all stored rows, as datasheets and camera profiles quote it) and
    ``frame_period_ms`` map paths to known sensor facts; they are checked against each video's
    size and frame rate before anything is decoded. ``method`` is "bayes" (NUTS), "laplace" (fast
    approximation) or "lsq" (the paper's joint least squares). ``tolerance_ms`` is how far (ms) two
    cameras' events of one flash may disagree when matching (default: see
    :func:`~flashsync_bayes.matching.match_events`; raise it for timestamps with jitter of ms). With ``flicker_ruler``
    mains-flicker bands pin the times per row where they can (:mod:`~flashsync_bayes.inference.flicker_ruler`).
    Profiles are cached in ``cache_dir`` when given. ``jobs`` and ``client`` run the detection in parallel (see
    :func:`~flashsync_bayes.detection.detect_events`); matching and fit run here.
    """
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        raise FlashsyncError("give at least two videos to synchronize")
    check_method(method)
    check_tolerance(tolerance_ms)
    infos = {path: video.probe(path) for path in paths}
    check_facts(paths, reference, total_rows, readout_ms)
    for path, info in infos.items():
        rows, readout = (total_rows or {}).get(path), (readout_ms or {}).get(path)
        known_total_rows(path, info.height, info.frame_period_ms, rows, readout)
    events = detect_events(paths, settings, cache_dir=cache_dir, progress=progress, jobs=jobs, client=client)
    return synchronize_events(
        events,
        reference=reference,
        method=method,
        total_rows=total_rows,
        readout_ms=readout_ms,
        frame_period_ms=frame_period_ms,
        tolerance_ms=tolerance_ms,
        flicker_ruler=flicker_ruler,
        seed=seed,
        progress=progress,
    )


def synchronize_events(
    events: xr.Dataset,
    *,
    reference: str | None = None,
    method: str = inference.NUTS,
    total_rows: Mapping[str, float] | None = None,
    readout_ms: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    tolerance_ms: float | None = None,
    flicker_ruler: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> SyncResult:
    """Synchronize the cameras of an events dataset (from ``detect`` or another detector) without the videos.

    Events are matched across cameras first unless they already carry flash ids (``flash`` >= 0).
    Facts and options as in :func:`synchronize`, keyed by camera label.
    """
    check_method(method)
    labels = [str(c) for c in events["camera"].values]
    check_facts(labels, reference, total_rows, readout_ms)
    matched = events
    if not np.any(np.asarray(events["flash"].values) >= 0):
        rows = _facts_as_rows(events, total_rows, readout_ms)
        matched = match_events(events, reference=reference, tolerance_ms=tolerance_ms, total_rows=rows)
        matched = linked_cameras(matched)
    kept = [str(c) for c in matched["camera"].values]
    result = fit(
        matched,
        reference=reference,
        method=method,
        total_rows={k: v for k, v in (total_rows or {}).items() if k in kept},
        readout_ms={k: v for k, v in (readout_ms or {}).items() if k in kept},
        frame_period_ms=frame_period_ms,
        flicker_ruler=flicker_ruler,
        seed=seed,
        progress=progress,
    )
    result.metadata["left_out"] = [str(p) for c, p in zip(labels, events["path"].values) if c not in kept]
    return result


def linked_cameras(matched: xr.Dataset) -> xr.Dataset:
    """The matched events of the cameras the matching linked to the reference (it has warned of the others)."""
    linked = np.isin(matched["coarse_status"].values, ["reference", "linked"])
    if linked.all():
        return matched
    labels = matched["camera"].values[linked]
    return matched.isel(camera=np.flatnonzero(linked), event=np.isin(matched["event_camera"].values, labels))


def check_method(method: str) -> None:
    """Raise FlashsyncError unless ``method`` is one of :data:`~flashsync_bayes.inference.METHODS`."""
    if method not in METHODS:
        raise FlashsyncError(f"method must be one of {', '.join(METHODS)}, got '{method}'")


def check_facts(cameras, reference=None, total_rows=None, readout_ms=None) -> None:
    """Raise FlashsyncError unless the reference and every fact name one of ``cameras``."""
    named = {"reference": [reference] if reference else [], "total rows": total_rows or {}, "readout time": readout_ms or {}}
    for name, keys in named.items():
        unknown = [key for key in keys if key not in cameras]
        if unknown:
            raise FlashsyncError(f"{name} given for {', '.join(map(str, unknown))}, which is not among the videos")


def _facts_as_rows(events, total_rows, readout_ms) -> dict[str, float]:
    """Total rows of every camera with a known fact (checked against its size), for the matching's first guess."""
    rows = {}
    for c, label in enumerate(str(c) for c in events["camera"].values):
        given_rows, given_readout = (total_rows or {}).get(label), (readout_ms or {}).get(label)
        if given_rows is not None or given_readout is not None:
            height, period = int(events["height"].values[c]), float(events["frame_period_ms"].values[c])
            rows[label] = known_total_rows(label, height, period, given_rows, given_readout)
    return rows
