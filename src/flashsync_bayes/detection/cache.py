"""The explicit detection cache: per video, what detection found in it, so that a re-run decodes nothing.

One ``.npz`` file per video and settings in a cache directory, named by a hash of the video's
identity (absolute path, size, modification time), every detector setting, the events format
(:data:`~flashsync_bayes.detection.settings.EVENTS_FORMAT`) and the package version: a changed
video or other settings never meet an old entry. It holds a
:class:`~flashsync_bayes.detection.stream.VideoDetection`: every frame's pts (the frame clock's
input, 8 bytes a frame), the flicker fit and the edges; its size is flat in the video's length
but for the frame times (about 1 MB an hour at 30 fps).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from flashsync_bayes import __version__
from flashsync_bayes.detection.ambient import Flicker
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.detection.stream import VideoDetection
from flashsync_bayes.io.files import atomic_write

#: Prefix of the edge columns' names in a cache file.
EDGE_PREFIX = "edge_"


def cache_path(path: str, settings: DetectorSettings, cache_dir: str) -> str:
    """Cache file of one video: named by a hash of its identity (path, size, mtime), the settings and the format."""
    stat = os.stat(path)
    identity = {
        "path": os.path.abspath(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "version": __version__,
        **settings.cache_key(),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(cache_dir, f"{stem}.{digest}.events.npz")


def load(path: str, settings: DetectorSettings, cache_dir: str) -> VideoDetection | None:
    """The cached :class:`~flashsync_bayes.detection.stream.VideoDetection` of a video, None if there is none."""
    cache_file = cache_path(path, settings, cache_dir)
    if not os.path.exists(cache_file):
        return None
    with np.load(cache_file, allow_pickle=False) as cached:
        edges = {name[len(EDGE_PREFIX) :]: cached[name] for name in cached.files if name.startswith(EDGE_PREFIX)}
        return VideoDetection(cached["frame_time_ms"], Flicker(*map(float, cached["flicker"])), edges)


def save(path: str, settings: DetectorSettings, cache_dir: str, found: VideoDetection) -> None:
    """Store what detection found in a video (atomically; the directory is made if missing)."""
    arrays = {
        "frame_time_ms": np.asarray(found.frame_time_ms, dtype=np.float64),
        "flicker": np.array(found.flicker, dtype=np.float64),
        **{EDGE_PREFIX + name: np.asarray(column) for name, column in found.edges.items()},
    }
    atomic_write(cache_path(path, settings, cache_dir), lambda tmp: _save_npz(tmp, **arrays))


def _save_npz(path: str, **arrays) -> None:
    """np.savez to exactly ``path`` (np.savez would append .npz to a name without it)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
