"""Which figures go to which ``--plot`` file, and writing them (atomically; PDF pages, PNG or SVG).

Rule for a ``--plot`` value (repeatable):

1. ``KIND=PATH`` or ``KIND,KIND=PATH`` (a text before ``=`` made of plain names is read as kinds):
   those figures, e.g. ``trace=fit.png``; several only into a ``.pdf``, one page each.
2. ``NAME.KIND.EXT``, e.g. ``run.trace.png``: that figure.
3. Otherwise a ``.pdf`` gets every figure the inputs can make, one page each, in
   :data:`FIGURE_KINDS` order; a ``.png`` or ``.svg`` gets the flash chart.

The format follows the extension (``.png``, ``.pdf``, ``.svg``). Every value is checked before
any figure is made (:func:`plot_target` gives the file a value names, for checks up front).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.files import atomic_write
from flashsync_bayes.plots.edge import default_edge_event, event_edge_chart
from flashsync_bayes.plots.flashes import flash_chart, result_events
from flashsync_bayes.plots.posterior import residual_chart, time_per_row_chart, trace_chart

#: Figure kinds, in the order of a multi-page PDF.
FIGURE_KINDS = ("flashes", "residuals", "time_per_row", "trace", "edge")
#: Kinds that need a synchronization result.
RESULT_KINDS = ("residuals", "time_per_row", "trace")
#: What an image file without a kind gets.
DEFAULT_IMAGE_KIND = "flashes"
#: File formats by extension.
FORMATS = ("png", "pdf", "svg")
#: Resolution of raster output (a 9 x 5 in figure is 900 x 500 pixels).
DPI = 100


class PlotTarget(NamedTuple):
    """One output file and the figure kinds it receives (several only for a PDF)."""

    path: str
    kinds: tuple[str, ...]


def _file_format(path: str) -> str:
    """Format of a figure file from its extension; FlashsyncError if not one of :data:`FORMATS`."""
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if extension not in FORMATS:
        raise FlashsyncError(f"figure file {path} must end in .png, .pdf or .svg")
    return extension


def _checked_kinds(kinds: Sequence[str], spec: str) -> tuple[str, ...]:
    """``kinds`` if each is a known figure kind, else FlashsyncError naming the known ones."""
    for kind in kinds:
        if kind not in FIGURE_KINDS:
            raise FlashsyncError(f"unknown figure kind '{kind}' in --plot {spec}; kinds are {', '.join(FIGURE_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def plot_target(spec, available: Sequence[str] = FIGURE_KINDS) -> PlotTarget:
    """The :class:`PlotTarget` of one ``--plot`` value (module rule); FlashsyncError for unknown or unavailable kinds."""
    spec = os.fspath(spec)
    head, sep, tail = spec.partition("=")
    if sep and all(part.isidentifier() for part in head.split(",")):
        path, kinds = tail, _checked_kinds(head.split(","), spec)
    else:
        path, kinds = spec, None
    file_format = _file_format(path)
    named = os.path.splitext(os.path.splitext(os.path.basename(path))[0])[1].lstrip(".")
    if kinds is None and named in FIGURE_KINDS:
        kinds = (named,)
    if kinds is None:
        kinds = tuple(available) if file_format == "pdf" else (DEFAULT_IMAGE_KIND,)
    if len(kinds) > 1 and file_format != "pdf":
        raise FlashsyncError(f"--plot {spec}: several figures need a .pdf file, or give one --plot per figure")
    missing = [kind for kind in kinds if kind not in available]
    if missing:
        raise FlashsyncError(
            f"--plot {spec}: figure '{missing[0]}' cannot be made here ({_needs(missing[0])}); "
            f"available: {', '.join(available) or 'none'}"
        )
    return PlotTarget(path, kinds)


def _needs(kind: str) -> str:
    """What a figure kind needs, for error messages."""
    if kind in RESULT_KINDS:
        return "it needs a synchronization result"
    if kind == "edge":
        return "it needs the events and their video files"
    return "it needs events or a result"


def available_kinds(result=None, events=None) -> tuple[str, ...]:
    """Figure kinds these inputs can make, in :data:`FIGURE_KINDS` order.

    The flash chart from events or a result, :data:`RESULT_KINDS` from a result, the edge chart
    from events (a result's own, if kept) with a leading edge whose video file exists.
    """
    events = events if events is not None or result is None else getattr(result, "events", None)
    kinds = []
    if result is not None or events is not None:
        kinds.append("flashes")
    if result is not None:
        kinds += list(RESULT_KINDS)
    if events is not None and "path" in events and np.any(events["edge"].values.astype(str) == "leading"):
        camera = str(events["event_camera"].values[default_edge_event(events)])
        if os.path.isfile(str(events["path"].sel(camera=camera).values)):
            kinds.append("edge")
    return tuple(kinds)


def make_figure(kind: str, result=None, events=None, edge_event: int | None = None, settings=None, cache_dir=None):
    """The matplotlib Figure of one kind (see :data:`FIGURE_KINDS`)."""
    if kind == "flashes":
        return flash_chart(events, result)
    if kind == "edge":
        return event_edge_chart(events if events is not None else result_events(result), edge_event, settings, cache_dir)
    charts = {"residuals": residual_chart, "time_per_row": time_per_row_chart, "trace": trace_chart}
    if kind not in charts:
        raise FlashsyncError(f"unknown figure kind '{kind}'; kinds are {', '.join(FIGURE_KINDS)}")
    return charts[kind](result)


def save_figures(figures_by_kind: Mapping[str, object], targets: Sequence[PlotTarget], dpi: int = DPI) -> None:
    """Write each target's figures atomically: a PDF page per kind, or one PNG/SVG image."""
    from matplotlib.backends.backend_pdf import PdfPages

    for target in targets:
        figures = [figures_by_kind[kind] for kind in target.kinds]
        file_format = _file_format(target.path)
        if file_format == "pdf":

            def write(tmp, figures=figures):
                with PdfPages(tmp) as pdf:
                    for figure in figures:
                        pdf.savefig(figure)

        else:

            def write(tmp, figure=figures[0], file_format=file_format):
                figure.savefig(tmp, format=file_format, dpi=dpi)

        atomic_write(target.path, write)


def write_plots(specs, *, result=None, events=None, edge_event=None, settings=None, cache_dir=None, overwrite=True):
    """Write the figures each ``--plot`` value asks for (module rule); returns the paths written.

    ``result`` and/or ``events`` are the inputs (a result's kept events serve as events);
    ``edge_event``, ``settings`` and ``cache_dir`` choose and recompute the edge chart's profile
    (:func:`~flashsync_bayes.plots.edge.event_edge_chart`). Without ``overwrite`` an existing file
    stops everything before any figure is made.
    """
    specs = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    events = events if events is not None or result is None else getattr(result, "events", None)
    targets = [plot_target(spec, available_kinds(result, events)) for spec in specs]
    existing = [t.path for t in targets if os.path.exists(t.path)]
    if existing and not overwrite:
        raise FlashsyncError(f"{existing[0]} exists; give --overwrite or another file name")
    kinds = dict.fromkeys(kind for target in targets for kind in target.kinds)
    figures = {kind: make_figure(kind, result, events, edge_event, settings, cache_dir) for kind in kinds}
    save_figures(figures, targets)
    return [target.path for target in targets]


def plot_sync(result, path) -> list[str]:
    """Write the figures of a synchronization to ``path`` (the module rule; a PDF gets every figure)."""
    return write_plots([path], result=result)


def write_flash_chart(events, path) -> list[str]:
    """Write the figures of an events dataset to ``path`` (the module rule: the flash chart, or a PDF with the edge too)."""
    return write_plots([path], events=events)
