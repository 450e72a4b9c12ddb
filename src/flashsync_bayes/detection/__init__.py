"""Flash detection: videos -> row profiles -> ambient light divided out -> sub-row edges -> events dataset.

Layers, lowest first: :mod:`.profiles` (row profiles and step scores, pure JAX),
:mod:`.edge_model` (sub-row edge model and its fit, pure JAX), :mod:`.ambient` (auto-exposure
gain and mains flicker), :mod:`.evidence` (profiles with the ambient change divided out),
:mod:`.candidates` (flash frames and anchor rows), :mod:`.edges` (sub-row edges kept),
:mod:`.stream` (one video decoded once and detected slice by slice, memory flat in its length),
:mod:`.cache` (what detection found per video, so a re-run decodes nothing) and the front door
:mod:`.detect` (the events dataset), which :mod:`.distribute` runs over many videos in this
process, local processes or a dask cluster.
"""

from flashsync_bayes.detection.detect import (
    FLICKER_VARIABLES,
    CameraEvents,
    camera_events,
    detect_events,
    frame_evidence,
    video_detection,
)
from flashsync_bayes.detection.edges import find_edges
from flashsync_bayes.detection.evidence import Evidence, flash_evidence
from flashsync_bayes.detection.settings import DetectorSettings
from flashsync_bayes.detection.stream import VideoDetection, detect_video, profile_chunks

__all__ = [
    "FLICKER_VARIABLES",
    "CameraEvents",
    "DetectorSettings",
    "Evidence",
    "VideoDetection",
    "camera_events",
    "detect_events",
    "detect_video",
    "find_edges",
    "flash_evidence",
    "frame_evidence",
    "profile_chunks",
    "video_detection",
]
