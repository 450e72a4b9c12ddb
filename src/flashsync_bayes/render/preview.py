"""Preview montage: every camera on the reference clock in one grid, each tile labelled with its time offset."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.frames import output_rate, write_rgb_video
from flashsync_bayes.io.video import probe
from flashsync_bayes.render.choice import camera_frame_times, choice_frames, close_all, frame_choice, video_paths
from flashsync_bayes.render.labels import draw_label, fitting_height
from flashsync_bayes.render.output import check_outputs, counted

#: Smallest tile width (pixels) of a preview.
MIN_TILE_WIDTH = 16
#: Label height (pixels) as a share of the tile height, within these limits, and smaller where a label would not fit.
LABEL_HEIGHT_SHARE = 1 / 12
LABEL_HEIGHT_LIMITS = (8, 28)
#: The widest time part of a label the text height is chosen for.
WIDEST_DIFFERENCE = "  +000.00 ms"


class PreviewLayout(NamedTuple):
    """Grid of a preview montage (all sizes in pixels, all even).

    Attributes:
        columns, rows: grid shape, ``columns = ceil(sqrt(n_cameras))``.
        cell_width, cell_height: size of one grid cell; the frame is ``(rows * cell_height, columns * cell_width)``.
        tiles: per camera its displayed tile ``(width, height)``, scaled to fit its cell, aspect kept.
        label_height: pixel height of the label text.
    """

    columns: int
    rows: int
    cell_width: int
    cell_height: int
    tiles: dict[str, tuple[int, int]]
    label_height: int

    @property
    def size(self) -> tuple[int, int]:
        """Frame ``(width, height)`` of the montage in pixels."""
        return self.columns * self.cell_width, self.rows * self.cell_height


def preview_layout(displayed: Mapping[str, tuple[int, int]], max_width: int = 1920, names=None) -> PreviewLayout:
    """Grid for cameras of displayed ``(width, height)`` pixels, at most ``max_width`` wide, never enlarging the widest.

    The label height lets the labels of ``names`` (per camera, default the keys) fit a cell's width.
    """
    n = len(displayed)
    if n == 0:
        raise FlashsyncError("no cameras to show in a preview")
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    if int(max_width) < columns * MIN_TILE_WIDTH:
        raise FlashsyncError(f"a preview of {n} cameras needs max_width >= {columns * MIN_TILE_WIDTH} pixels")
    widest = max(w for w, _ in displayed.values())
    cell_width = max(2, 2 * (min(int(max_width) // columns, widest) // 2))
    cell_height = max(2 * math.ceil(cell_width * h / w / 2) for w, h in displayed.values())
    tiles = {}
    for camera, (w, h) in displayed.items():
        scale = min(cell_width / w, cell_height / h)
        tiles[camera] = (max(1, int(w * scale + 1e-9)), max(1, int(h * scale + 1e-9)))
    longest = max((names or {c: c for c in displayed}).values(), key=len) + WIDEST_DIFFERENCE
    preferred = int(np.clip(round(cell_height * LABEL_HEIGHT_SHARE), *LABEL_HEIGHT_LIMITS))
    label_height = fitting_height(longest, cell_width, preferred, LABEL_HEIGHT_LIMITS[0])
    return PreviewLayout(columns, rows, cell_width, cell_height, tiles, label_height)


def preview_label(name: str, difference_ms: float) -> str:
    """Tile label: camera name and its frame's time minus the reference frame's, e.g. ``"cam1  +3.21 ms"`` (``—`` none)."""
    return f"{name}  {difference_ms:+.2f} ms" if np.isfinite(difference_ms) else f"{name}  —"


def compose(layout: PreviewLayout, frames: Mapping, labels: Mapping[str, str], rotation_deg: Mapping[str, int]):
    """Montage uint8 ``(height, width, 3)`` of RGB frames (stored orientation; None: black), turned, centred, labelled."""
    width, height = layout.size
    montage = np.zeros((height, width, 3), dtype=np.uint8)
    for i, camera in enumerate(layout.tiles):
        top, left = (i // layout.columns) * layout.cell_height, (i % layout.columns) * layout.cell_width
        frame = frames.get(camera)
        if frame is not None:
            tile = np.rot90(frame, k=(rotation_deg.get(camera, 0) // 90) % 4)
            tile = tile[: layout.cell_height, : layout.cell_width]
            y = top + (layout.cell_height - tile.shape[0]) // 2
            x = left + (layout.cell_width - tile.shape[1]) // 2
            montage[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
        cell = montage[top : top + layout.cell_height, left : left + layout.cell_width]
        draw_label(cell, labels[camera], layout.label_height)
    return montage


def _stored_size(tile: tuple[int, int], rotation_deg: int) -> tuple[int, int]:
    """Decoded ``(width, height)`` in stored orientation that shows as ``tile`` after turning by ``rotation_deg``."""
    return (tile[1], tile[0]) if rotation_deg in (90, 270) else tile


def write_preview(
    result, paths, out_path, *, max_width: int = 1920, overwrite: bool = False, progress: bool = False, crf: int = 23
) -> str:
    """Write a montage video of all cameras on the reference clock to ``out_path``; returns the path.

    One frame per reference frame at the reference's constant nominal frame rate. Cameras fill a
    grid of ``ceil(sqrt(n))`` columns in camera order, each frame scaled to fit its cell (never
    enlarged past the widest camera's size), turned by its rotation metadata, and labelled with
    the file's stem and the chosen frame's time minus the reference frame's (ms, "—" and a black
    tile where the camera has no frame within half a frame period). The width is at most
    ``max_width`` pixels; both sizes are even. No audio. Written atomically; an existing file is
    replaced only with ``overwrite``. ``paths``: see :func:`~flashsync_bayes.render.choice.video_paths`.
    """
    files = video_paths(result, paths)
    out_path = os.fspath(out_path)
    check_outputs([out_path], list(files.values()), overwrite)
    infos = {c: probe(path) for c, path in files.items()}
    rotation = {c: info.rotation_deg for c, info in infos.items()}
    displayed = {c: _stored_size((info.width, info.height), info.rotation_deg) for c, info in infos.items()}
    names = {c: os.path.splitext(os.path.basename(path))[0] for c, path in files.items()}
    layout = preview_layout(displayed, max_width, names)
    times = camera_frame_times(result, files)
    choice = frame_choice(result, times)
    sizes = {c: _stored_size(layout.tiles[c], rotation[c]) for c in files}
    items = choice_frames(choice, files, times, sizes)
    montages = _montages(items, layout, names, rotation)
    n_frames = choice.reference_time_ms.size
    rate = output_rate(infos[choice.reference].frame_rate)
    with contextlib.closing(counted(montages, n_frames, "preview", progress)) as frames:
        write_rgb_video(out_path, frames, frame_rate=rate, crf=crf, overwrite=overwrite)
    return out_path


def _montages(items, layout: PreviewLayout, names: dict, rotation: dict):
    """Montage per item of :func:`~flashsync_bayes.render.choice.choice_frames`; closes ``items`` at the end."""
    try:
        for _, _, cameras in items:
            frames = {c: rgb for c, (_, _, rgb) in cameras.items()}
            labels = {c: preview_label(names[c], difference) for c, (_, difference, _) in cameras.items()}
            yield compose(layout, frames, labels, rotation)
    finally:
        close_all([items])
