"""Text labels burnt into frames: glyphs of a monospace font drawn once by matplotlib's Agg renderer.

No ffmpeg ``drawtext`` (the bundled ffmpeg may lack freetype): each character is rendered once per
pixel height into a coverage bitmap (cached), and a label is those bitmaps side by side.
"""

from __future__ import annotations

import functools

import numpy as np

#: Font of the labels (ships with matplotlib), monospace so that glyphs simply sit side by side.
LABEL_FONT = "DejaVu Sans Mono"
#: Margin (pixels) around a label's text inside its dark box.
LABEL_PADDING = 2
#: Share of the background kept under a label's box.
BOX_SHADE = 0.35


@functools.lru_cache(maxsize=1024)
def glyph(char: str, height_px: int) -> np.ndarray:
    """Coverage in [0, 1], float32 ``(height_px, advance_px)``, of one character ``height_px`` pixels tall."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(family=LABEL_FONT, size=height_px)  # at 72 dpi one point is one pixel
    probe = FigureCanvasAgg(Figure(figsize=(1, 1), dpi=72)).get_renderer()
    advance = max(1, int(round(probe.get_text_width_height_descent("M", prop, ismath=False)[0])))
    descent = probe.get_text_width_height_descent("g", prop, ismath=False)[2]
    figure = Figure(figsize=(advance / 72, height_px / 72), dpi=72, facecolor="black")
    canvas = FigureCanvasAgg(figure)
    figure.text(0.0, descent / height_px, char, fontproperties=prop, color="white", va="baseline", ha="left")
    canvas.draw()
    red = np.asarray(canvas.buffer_rgba())[:height_px, :advance, 0]
    return red.astype(np.float32) / 255.0


def label_mask(text: str, height_px: int) -> np.ndarray:
    """Coverage in [0, 1], float32 ``(height_px, n_chars * advance_px)``, of a one-line label."""
    height_px = max(6, int(height_px))
    if not text:
        return np.zeros((height_px, 0), dtype=np.float32)
    return np.concatenate([glyph(char, height_px) for char in text], axis=1)


def fitting_height(text: str, width_px: int, largest_px: int, smallest_px: int = 6) -> int:
    """Largest text height (pixels, ``smallest_px..largest_px``) at which the label ``text`` fits ``width_px`` pixels."""
    for height_px in range(int(largest_px), int(smallest_px), -1):
        if label_mask(text, height_px).shape[1] + 2 * LABEL_PADDING <= width_px:
            return height_px
    return int(smallest_px)


def draw_label(image: np.ndarray, text: str, height_px: int, x: int = 0, y: int = 0) -> np.ndarray:
    """``image`` (uint8 ``(height, width, 3)``, changed in place) with white ``text`` on a dark box at pixel ``(x, y)``.

    The label is cut at the image's edges.
    """
    mask = np.pad(label_mask(text, height_px), LABEL_PADDING)
    rows = max(0, min(mask.shape[0], image.shape[0] - y))
    cols = max(0, min(mask.shape[1], image.shape[1] - x))
    if rows == 0 or cols == 0:
        return image
    area = image[y : y + rows, x : x + cols].astype(np.float32) * BOX_SHADE
    cover = mask[:rows, :cols, None]
    image[y : y + rows, x : x + cols] = np.round(area * (1.0 - cover) + 255.0 * cover).astype(np.uint8)
    return image
