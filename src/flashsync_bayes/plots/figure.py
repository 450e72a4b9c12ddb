"""What every chart shares: a new matplotlib figure (no pyplot state), flash colours, unit conversions."""

from __future__ import annotations

import numpy as np

#: Colour of edges not matched to a flash (flash id -1).
UNMATCHED_COLOUR = (0.55, 0.55, 0.55, 1.0)
#: Qualitative colour map that gives each flash id its colour (ids cycle through its colours).
FLASH_COLOURMAP = "tab20"


def new_figure(rows: int, columns: int, size_in: tuple[float, float], **subplots):
    """A constrained-layout ``matplotlib.figure.Figure`` and its ``(rows, columns)`` array of axes.

    Figures are made without pyplot, so no global backend or figure registry is touched; saving
    renders PNG through Agg and PDF/SVG through their own canvases.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=size_in, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, **subplots)
    return figure, axes


def flash_colours(flash) -> np.ndarray:
    """RGBA colours ``(n, 4)`` of flash ids ``(n,)``: one colour per id, grey for unmatched (-1)."""
    import matplotlib

    flash = np.asarray(flash, dtype=np.int64)
    colourmap = matplotlib.colormaps[FLASH_COLOURMAP]
    colours = np.asarray(colourmap(np.mod(flash, colourmap.N)), dtype=np.float64).reshape(-1, 4)
    colours[flash < 0] = UNMATCHED_COLOUR
    return colours


def reciprocal(scale: float):
    """The map ``x -> scale / x`` (its own inverse), e.g. time per row <-> total rows for a frame period ``scale``."""

    def apply(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return scale / np.asarray(x, dtype=np.float64)

    return apply
