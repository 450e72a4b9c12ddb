"""What is known about real rolling-shutter sensors: readout ranges, presets and the default prior.

Total sensor rows ``L`` (stored ``R`` plus hidden/blanking rows) set the time per row ``T / L``.
Real cameras read their stored rows in 50-85 % of the frame period, so ``L / R`` is typically
1.2-1.7 and up to ~2.2 for fast-readout sensors at low frame rates; broadcast-style rasters
(1125/1080, 750/720, 525/480: ``L / R`` 1.04-1.09) are the exception (``FACTS.md``). The model's
prior, the simulator's random setups and the demo all draw on the numbers of this one module.
"""

from __future__ import annotations

from typing import NamedTuple

from flashsync_bayes.errors import FlashsyncError

#: ``L / R`` from broadcast rasters (1.04) to fast-readout sensors at low frame rates (2.0): the
#: range the simulator draws from by default and that holds 90 % of the default prior.
ROWS_RATIO_RANGE = (1.04, 2.0)

#: Median ``L / R`` of the default prior: the first guess where nothing better is known.
TYPICAL_ROWS_RATIO = 1.25

#: Beta(α, β) prior of the readout fraction ``R / L`` (the share of the frame period spent reading
#: the stored rows). Its 5 % and 95 % quantiles are ``1 / 2.0`` and ``1 / 1.04``, i.e. 90 % of the
#: prior lies in :data:`ROWS_RATIO_RANGE`; median ``L / R`` 1.25, quartiles 1.13 and 1.46; 3 % lies
#: beyond ``L / R`` 2.2 and 1 % below 1.015. Weakly informative: where flash edges cannot pin the
#: time per row (one frame rate, locked phases) the posterior keeps this width, as it should.
READOUT_FRACTION_PRIOR = (5.8, 1.7)


class SensorPreset(NamedTuple):
    """A family of cameras for simulation studies.

    Attributes:
        name: short key.
        rows_ratio: ``(low, high)`` range of ``L / R`` drawn uniformly.
        frame_rates: typical frame rates (fps).
        description: what the family is and where the numbers come from.
    """

    name: str
    rows_ratio: tuple[float, float]
    frame_rates: tuple[float, ...]
    description: str


PRESETS = {
    preset.name: preset
    for preset in (
        SensorPreset(
            "broadcast",
            (1.04, 1.09),
            (25.0, 30.0, 50.0, 60.0),
            "broadcast-style rasters: 1125 lines for 1080, 750 for 720, 525 for 480 (e.g. Sony IMX322)",
        ),
        SensorPreset(
            "phone",
            (1.02, 2.2),
            (30.0, 30000 / 1001, 60.0),
            "LED-measured phones: Galaxy S3 1080p 1.02, iPhone 4 720p 1.04, iPhone 5 1080p30 1.22, "
            "iPhone 4S 1080p 1.28, iPhone 6S 720p 2.2",
        ),
        SensorPreset(
            "action_camera",
            (1.1, 2.1),
            (30.0, 60.0),
            "GoPro Hero3+ 1080p60 1.13, Nikon 1 J1 1080p30 2.1, RunCam 5 4K30 2.1",
        ),
        SensorPreset(
            "machine_vision",
            (1.1, 1.7),
            (10.0, 30.0, 60.0),
            "Raspberry Pi sensors: IMX219 1080p30 1.63 (1763 lines), IMX477 full resolution at 10 fps 1.15",
        ),
        SensorPreset(
            "paper",
            (1.22, 1.36),
            (25.0,),
            "Šmíd & Matas' own fits: 3840x2160 @ 25 fps 2625 lines (1.22), 1280x720 @ 25 fps 978 lines (1.36)",
        ),
    )
}


def preset(name: str) -> SensorPreset:
    """The :class:`SensorPreset` called ``name`` (FlashsyncError naming the known ones otherwise)."""
    if name not in PRESETS:
        raise FlashsyncError(f"unknown sensor preset '{name}'; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def known_total_rows(
    camera: str, stored_rows: int, frame_period_ms: float, total_rows: float | None = None, readout_ms: float | None = None
) -> float:
    """Total sensor rows L of ``camera`` implied by a known fact, NaN if none is given.

    ``total_rows`` (L, e.g. 1125 for a 1080-row broadcast raster) or ``readout_ms`` (the time to read
    all ``stored_rows``, R * T / L, as datasheets and camera profiles quote it) — not both. Raises
    FlashsyncError, naming the camera, unless ``L >= R`` (a readout no longer than the frame period).
    """
    if total_rows is not None and readout_ms is not None:
        raise FlashsyncError(f"give either the total rows or the readout time of {camera}, not both")
    if total_rows is not None:
        if not float(total_rows) >= stored_rows:
            raise FlashsyncError(f"total rows of {camera} ({total_rows:g}) must be at least its {stored_rows} stored rows")
        return float(total_rows)
    if readout_ms is not None:
        if not 0.0 < float(readout_ms) <= frame_period_ms:
            raise FlashsyncError(
                f"readout time of {camera} ({readout_ms:g} ms) must be positive and no longer than its frame period "
                f"({frame_period_ms:.3f} ms)"
            )
        return stored_rows * frame_period_ms / float(readout_ms)
    return float("nan")
