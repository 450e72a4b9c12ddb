"""The whole job in one call: videos -> events -> matched flashes -> synchronization result."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from flashsync_bayes.detect import DetectorSettings, detect_events
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.matching import match_events
from flashsync_bayes.model import fit
from flashsync_bayes.result import SyncResult

METHODS = ("bayes", "laplace", "lsq")


def synchronize(
    paths: Sequence[str],
    *,
    reference: str | None = None,
    method: str = "bayes",
    total_rows: Mapping[str, float] | None = None,
    frame_period_ms: Mapping[str, float] | None = None,
    settings: DetectorSettings | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> SyncResult:
    """Synchronize videos from the flashes they share; cameras are labelled by their paths as given.

    ``reference`` (a path, default the first) gets drift 1 and shift 0. ``total_rows`` and
    ``frame_period_ms`` map paths to known sensor facts (total sensor rows, exact frame period in
    ms). ``method`` is "bayes" (NUTS), "laplace" (fast approximation) or "lsq" (the paper's joint
    least squares). Profiles are cached in ``cache_dir`` when given.
    """
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        raise FlashsyncError("give at least two videos to synchronize")
    if method not in METHODS:
        raise FlashsyncError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    for path in paths:
        if not os.path.isfile(path):
            raise FlashsyncError(f"video not found: {path}")
    for name, facts in (("reference", [reference] if reference else []), ("total rows", total_rows or {})):
        unknown = [key for key in facts if key not in paths]
        if unknown:
            raise FlashsyncError(f"{name} given for {unknown}, which is not among the videos {paths}")
    events = detect_events(paths, settings, cache_dir=cache_dir, progress=progress)
    matched = match_events(events, reference=reference, total_rows=total_rows)
    return fit(
        matched,
        reference=reference,
        method=method,
        total_rows=total_rows,
        frame_period_ms=frame_period_ms,
        seed=seed,
        progress=progress,
    )
