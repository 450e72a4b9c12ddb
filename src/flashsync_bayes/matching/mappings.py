"""Per-camera mappings to the reference clock: ``t_ref = drift * frame_time_ms + shift_ms + row * time_per_row_ms``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flashsync_bayes.timing import reference_time_ms


class Mappings(NamedTuple):
    """Every camera's mapping of (frame timestamp, row) to reference time; NaN where not linked.

    Treated as immutable: the methods return new mappings.

    Attributes:
        drift: reference ms per camera ms, shape (C,) float64.
        shift_ms: reference time (ms) of camera time 0, shape (C,) float64.
        time_per_row_ms: reference ms per stored row, shape (C,) float64.
    """

    drift: np.ndarray
    shift_ms: np.ndarray
    time_per_row_ms: np.ndarray

    @property
    def n_cameras(self) -> int:
        """Number of cameras C."""
        return self.drift.size

    def at(self, c: int) -> tuple[float, float, float]:
        """``(drift, shift_ms, time_per_row_ms)`` of camera ``c``."""
        return self.drift[c], self.shift_ms[c], self.time_per_row_ms[c]

    def with_camera(self, c: int, drift: float, shift_ms: float, time_per_row_ms: float) -> Mappings:
        """Copy with camera ``c``'s mapping replaced."""
        arrays = [array.copy() for array in self]
        for array, value in zip(arrays, (drift, shift_ms, time_per_row_ms)):
            array[c] = value
        return Mappings(*arrays)

    def without(self, cameras: np.ndarray) -> Mappings:
        """Copy with NaN mappings for ``cameras`` (boolean mask (C,) or indices)."""
        arrays = [array.copy() for array in self]
        for array in arrays:
            array[cameras] = np.nan
        return Mappings(*arrays)

    def reference_times_ms(self, frame_time_ms, row, camera) -> np.ndarray:
        """Reference times (ms) of events (n,) of cameras ``camera`` (n,), by :func:`timing.reference_time_ms`."""
        return reference_time_ms(
            frame_time_ms, row, self.drift[camera], self.shift_ms[camera], self.time_per_row_ms[camera]
        )


def readout_time_per_row_ms(drift, frame_period_ms, total_rows):
    """Reference ms per row (shape of the inputs) of a readout spreading ``total_rows`` over the frame period."""
    return drift * frame_period_ms / total_rows
