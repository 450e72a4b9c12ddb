"""Flash detection: videos -> row profiles -> ambient light divided out -> sub-row edges -> events dataset.

Layers, lowest first: :mod:`.profiles` (row profiles and step scores, pure JAX),
:mod:`.edge_model` (sub-row edge model and its fit, pure JAX), :mod:`.ambient` (auto-exposure
gain and mains flicker), :mod:`.evidence` (profiles with the ambient change divided out),
:mod:`.candidates` (flash frames and anchor rows), :mod:`.edges` (sub-row edges kept), and the
front door :mod:`.detect` (decoding, the profile cache, the events dataset), which
:mod:`.distribute` runs over many videos in this process, local processes or a dask cluster.
"""

from flashsync_bayes.detection.detect import (
    FLICKER_VARIABLES,
    CameraEvents,
    camera_events,
    compute_profiles,
    detect_events,
    video_profiles,
)
from flashsync_bayes.detection.edges import find_edges
from flashsync_bayes.detection.evidence import Evidence, flash_evidence
from flashsync_bayes.detection.settings import DetectorSettings

__all__ = [
    "FLICKER_VARIABLES",
    "CameraEvents",
    "DetectorSettings",
    "Evidence",
    "camera_events",
    "compute_profiles",
    "detect_events",
    "find_edges",
    "flash_evidence",
    "video_profiles",
]
