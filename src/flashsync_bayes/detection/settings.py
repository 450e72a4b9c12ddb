"""Settings of the flash detector (one frozen dataclass) and the version of its cached results."""

from __future__ import annotations

import dataclasses

from flashsync_bayes.transfer import check_transfer

#: Bumped whenever detection's cached results (a video's frame times, flicker and edges) would come
#: out differently or be stored differently: a change of the detector that keeps its settings must bump it.
EVENTS_FORMAT = 16


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    """Settings of the flash detector.

    Attributes:
        n_blocks: column blocks; their median makes a row's ambient change robust to moving objects.
        rank: a flash must reach at least this many blocks (4 of 16: a quarter of the columns);
            rising edges are sought in the rank-th largest block change, falling ones in the
            rank-th smallest.
        ambient: divide the ambient light's change (auto-exposure gain, mains flicker) out of the
            profiles before looking for flashes.
        width: let ffmpeg shrink wider frames to this many columns first (an area average, as
            the block means are; rows are never resampled); None keeps the stored width.
        chunk_frames: frames decoded and turned into row profiles per step.
        slice_frames: frames whose edges are found together, in a window of this many plus
            :data:`~flashsync_bayes.detection.stream.MARGIN_FRAMES` on each side; only that
            window's row profiles are held, so memory does not grow with the video's length
            (:mod:`~flashsync_bayes.detection.stream`).
        min_step: a flash must change a row's brightness by at least this fraction (0.01 = 1 %).
        min_snr: a flash step must exceed this many noise sds of a box step.
        spread: ... and the median of all frames' steps by this many robust sds of them.
        quiet_fraction: rows above a leading edge may differ from the frame's ambient change (or
            from no change) by at most this fraction of its gain.
        max_row_sd: edges whose fitted position is less certain than this (rows) are dropped.
        row_sd_floor: rows added in quadrature to every edge's sd for what a fit cannot see:
            lossy codecs shift edges by a fraction of a row (x264 CRF 23: about 0.3 rows RMS, simulations/detection_accuracy.py)
            with residuals that still look clean.
        change_sd_floor: relative change by which a lossy codec misplaces the rows of a flash's rise (x264 CRF 23:
            about 0.02, simulations/README.md); it moves the edge of a slow or weak rise the most
            (:func:`~flashsync_bayes.detection.edges.codec_rows`), which joins the edge's sd.
            Both floors may be 0 for raw or lossless video under steady light (:meth:`lossless`); keep them under lamps
            (flicker bands the camera's frame rate freezes bend a band's rise: 0.3 rows RMS without a codec).
        transfer: how the videos' luma codes encode light (:data:`~flashsync_bayes.transfer.TRANSFERS`), undone
            before any change is measured; None takes each video's ``color_trc`` tag (BT.709 unless tagged
            linear or HLG, :func:`~flashsync_bayes.transfer.transfer_of_tag`).
    """

    n_blocks: int = 16
    rank: int = 4
    ambient: bool = True
    width: int | None = 256
    chunk_frames: int = 32
    slice_frames: int = 1024
    min_step: float = 0.01
    min_snr: float = 10.0
    spread: float = 12.0
    quiet_fraction: float = 0.25
    max_row_sd: float = 3.0
    row_sd_floor: float = 0.3
    change_sd_floor: float = 0.02
    transfer: str | None = None

    def __post_init__(self):
        if self.transfer is not None:
            check_transfer(self.transfer)

    @classmethod
    def lossless(cls, **settings) -> DetectorSettings:
        """Settings for raw or lossless video under steady light: no codec floors (``settings`` as the constructor's)."""
        return cls(**{"row_sd_floor": 0.0, "change_sd_floor": 0.0, **settings})

    def cache_key(self) -> dict:
        """What a video's cached detection result depends on besides the video: every setting and :data:`EVENTS_FORMAT`."""
        return {**dataclasses.asdict(self), "format": EVENTS_FORMAT}
