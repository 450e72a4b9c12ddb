"""Figures of detections and synchronizations (matplotlib, imported only when a figure is made).

Kinds (:data:`FIGURE_KINDS`): ``flashes`` (:func:`flash_chart`: detected flash edges per camera on
its own clock and after alignment), ``residuals`` (:func:`residual_chart`), ``time_per_row``
(:func:`time_per_row_chart`: posterior against prior, identifiability), ``trace``
(:func:`trace_chart`) and ``edge`` (:func:`edge_chart`: one frame's row profile with its fitted
edges). :func:`write_plots` writes them to ``--plot`` files by the rule of
:mod:`flashsync_bayes.plots.files`.
"""

from flashsync_bayes.plots.edge import default_edge_event, edge_chart, event_edge_chart, event_profile, frame_events
from flashsync_bayes.plots.files import (
    FIGURE_KINDS,
    PlotTarget,
    available_kinds,
    make_figure,
    plot_sync,
    plot_target,
    save_figures,
    write_flash_chart,
    write_plots,
)
from flashsync_bayes.plots.flashes import flash_chart, result_events, synchronized_times_ms
from flashsync_bayes.plots.posterior import (
    prior_time_per_row_us,
    residual_chart,
    residual_sd_ms,
    time_per_row_chart,
    trace_chart,
)

__all__ = [
    "FIGURE_KINDS",
    "PlotTarget",
    "available_kinds",
    "default_edge_event",
    "edge_chart",
    "event_edge_chart",
    "event_profile",
    "flash_chart",
    "frame_events",
    "make_figure",
    "plot_sync",
    "plot_target",
    "prior_time_per_row_us",
    "residual_chart",
    "residual_sd_ms",
    "result_events",
    "save_figures",
    "synchronized_times_ms",
    "time_per_row_chart",
    "trace_chart",
    "write_flash_chart",
    "write_plots",
]
