"""The whole job in one call: videos -> events -> matched flashes -> synchronization result."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from flashsync_bayes import inference
from flashsync_bayes.detection import DetectorSettings, detect_events
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference import METHODS
from flashsync_bayes.io import video
from flashsync_bayes.matching import match_events
from flashsync_bayes.result import SyncResult
from flashsync_bayes.sensors import known_total_rows


def fit(events, *args, **options) -> SyncResult:
    """Synchronization of all cameras of a matched events dataset, as a :class:`~flashsync_bayes.result.SyncResult`.

    Arguments are those of :func:`flashsync_bayes.inference.fit` (reference, method, known
    facts, seed, sampler sizes, progress, priors).
    """
    return SyncResult.from_posterior(inference.fit(events, *args, **options))


def synchronize(
    paths: Sequence[str],
    *,
    reference: str | None = None,
    method: str = inference.NUTS,
    total_rows: Mapping[str, float] | None = None,
    readout_ms: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    settings: DetectorSettings | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> SyncResult:
    """Synchronize videos from the flashes they share; cameras are labelled by their paths as given.

    ``reference`` (a path, default the first) defines the time axis. ``total_rows``,
    ``readout_ms`` (time to read all stored rows, as datasheets and camera profiles quote it) and
    ``frame_period_ms`` map paths to known sensor facts; they are checked against each video's
    size and frame rate before anything is decoded. ``method`` is "bayes" (NUTS), "laplace" (fast
    approximation) or "lsq" (the paper's joint least squares). Profiles are cached in
    ``cache_dir`` when given.
    """
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        raise FlashsyncError("give at least two videos to synchronize")
    if method not in METHODS:
        raise FlashsyncError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    for path in paths:
        if not os.path.isfile(path):
            raise FlashsyncError(f"video not found: {path}")
    check_facts(paths, reference, total_rows, readout_ms)
    events = detect_events(paths, settings, cache_dir=cache_dir, progress=progress)
    matched = match_events(events, reference=reference, total_rows=_facts_as_rows(events, total_rows, readout_ms))
    return fit(
        matched,
        reference=reference,
        method=method,
        total_rows=total_rows,
        readout_ms=readout_ms,
        frame_period_ms=frame_period_ms,
        seed=seed,
        progress=progress,
    )


def check_facts(paths, reference=None, total_rows=None, readout_ms=None) -> None:
    """Raise FlashsyncError unless every fact names one of ``paths`` and fits its video (probed, not decoded)."""
    named = {"reference": [reference] if reference else [], "total rows": total_rows or {}, "readout time": readout_ms or {}}
    for name, keys in named.items():
        unknown = [key for key in keys if key not in paths]
        if unknown:
            raise FlashsyncError(f"{name} given for {', '.join(map(str, unknown))}, which is not among the videos")
    for path in set(total_rows or {}) | set(readout_ms or {}):
        info = video.probe(path)
        known_total_rows(path, info.height, info.frame_period_ms, (total_rows or {}).get(path), (readout_ms or {}).get(path))


def _facts_as_rows(events, total_rows, readout_ms) -> dict[str, float]:
    """Total rows of every camera with a known fact, for the matching's first guess of row times."""
    rows = dict(total_rows or {})
    for c, path in enumerate(events["path"].values):
        if str(path) in (readout_ms or {}):
            rows[str(path)] = known_total_rows(
                str(path), int(events["height"].values[c]), float(events["frame_period_ms"].values[c]), None, readout_ms[str(path)]
            )
    return rows
