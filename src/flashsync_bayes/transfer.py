"""Transfer characteristics: how a video's signal encodes light, and back (pure functions, NumPy or jax.numpy).

Cameras do not store light: they store a signal ``V = OETF(L)`` that rises about like ``L^0.45``
(ITU-R BT.709; phones' SDR video is tagged so, sRGB is close), or the HLG curve of HDR video
(ITU-R BT.2100). A flash that doubles the light then raises the code by ~37 %, and the shape of
its rise along the rows is bent; detection measures light, so it undoes the curve first. ``L`` is a
share of the signal's white (1 at ``V = 1``), ``V`` a share of the span from black to white.
"""

from __future__ import annotations

import numpy as np

from flashsync_bayes.errors import FlashsyncError

#: Transfer characteristics understood, by ffmpeg's names of their ``color_trc`` tags; others count as BT.709.
LINEAR, BT709, HLG = "linear", "bt709", "arib-std-b67"
TRANSFERS = (BT709, HLG, LINEAR)

# BT.709: V = 4.5 L below L = 0.018, else 1.099 L^0.45 - 0.099
_BT709_KNEE, _BT709_SLOPE, _BT709_A, _BT709_POWER = 0.018, 4.5, 1.099, 0.45
# BT.2100 HLG: V = sqrt(3 L) up to L = 1/12, else a ln(12 L - b) + c (L a share of the peak: 1 at V = 1)
_HLG_A = 0.17883277
_HLG_B = 1.0 - 4.0 * _HLG_A
_HLG_C = 0.5 - _HLG_A * np.log(4.0 * _HLG_A)


def check_transfer(transfer: str) -> str:
    """``transfer`` if it is one of :data:`TRANSFERS`, else a one-line error."""
    if transfer not in TRANSFERS:
        raise FlashsyncError(f"unknown transfer {transfer!r}; use one of {', '.join(TRANSFERS)}")
    return transfer


def encode(light, transfer: str, xp=np):
    """Signal ``V`` of ``light`` ``L >= 0`` (shares of white) under ``transfer`` (its OETF); ``xp``: NumPy or ``jax.numpy``."""
    light = xp.maximum(xp.asarray(light), 0.0)
    if check_transfer(transfer) == LINEAR:
        return light
    if transfer == BT709:
        power = _BT709_A * xp.maximum(light, _BT709_KNEE) ** _BT709_POWER - (_BT709_A - 1.0)
        return xp.where(light < _BT709_KNEE, _BT709_SLOPE * light, power)
    log = _HLG_A * xp.log(xp.maximum(12.0 * light - _HLG_B, 1e-12)) + _HLG_C
    return xp.where(light <= 1.0 / 12.0, xp.sqrt(3.0 * light), log)


def decode(signal, transfer: str, xp=np):
    """Light ``L`` (shares of white) of signal ``V >= 0`` under ``transfer``: the inverse of :func:`encode`."""
    signal = xp.maximum(xp.asarray(signal), 0.0)
    if check_transfer(transfer) == LINEAR:
        return signal
    if transfer == BT709:
        knee = _BT709_SLOPE * _BT709_KNEE
        power = ((signal + _BT709_A - 1.0) / _BT709_A) ** (1.0 / _BT709_POWER)
        return xp.where(signal < knee, signal / _BT709_SLOPE, power)
    return xp.where(signal <= 0.5, signal**2 / 3.0, (xp.exp((signal - _HLG_C) / _HLG_A) + _HLG_B) / 12.0)


def transfer_of_tag(tag: str | None) -> str:
    """The transfer detection assumes for a video whose ``color_trc`` tag is ``tag`` (None: untagged).

    Untagged and SDR video count as BT.709 (what cameras and phones record); ``linear`` and HLG as
    tagged. Other curves (PQ, log profiles) are not modelled: BT.709 is the nearest assumption.
    """
    if tag in (LINEAR, HLG):
        return tag
    return BT709
