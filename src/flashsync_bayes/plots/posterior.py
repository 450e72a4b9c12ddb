"""Charts of a fit: edge residuals over time, time per row against its prior, trace plots."""

from __future__ import annotations

import math
import textwrap

import numpy as np

from flashsync_bayes.plots.figure import new_figure, reciprocal

#: Points of the prior curve over the readout fraction (0, 1).
PRIOR_POINTS = 801
#: The prior curve is drawn where its density exceeds this share of its peak.
PRIOR_SHOWN_SHARE = 1e-3
#: Ratios ``L / R`` ticked on the total-rows axis.
ROWS_RATIO_TICKS = (1.0, 1.25, 1.5, 2.0, 3.0)
#: Histogram bins of posterior draws.
POSTERIOR_BINS = 40


# --- residuals ---------------------------------------------------------------------------------


def residual_sd_ms(result) -> np.ndarray:
    """Per fitted edge ``(n_events,)`` its row sd times its camera's posterior-mean time per row (ms)."""
    cameras = result.idata.constant_data["event_camera"].values.astype(str)
    time_per_row = result.parameters()["time_per_row_ms"].sel(camera=cameras).values
    return result.idata.constant_data["row_sd"].values * time_per_row


def residual_chart(result):
    """Figure of each camera's edge residuals (µs) over synchronized time (s), error bars row_sd × time per row."""
    residuals = result.event_residuals()
    error_us = 1000.0 * residual_sd_ms(result)
    cameras = residuals["event_camera"].values.astype(str)
    figure, axes = new_figure(len(result.cameras), 1, (9.0, 1.2 + 1.6 * len(result.cameras)), sharex=True)
    for ax, camera in zip(axes[:, 0], result.cameras):
        mine = cameras == camera
        residual_us = 1000.0 * residuals["residual_ms"].values[mine]
        ax.axhline(0.0, color="grey", lw=0.8, label="flash time (posterior mean)")
        ax.errorbar(residuals["reference_time_ms"].values[mine] / 1000.0, residual_us, yerr=error_us[mine], fmt="o",
                    ms=3, capsize=2, lw=0.8, label="leading edge ± row sd × time per row")
        rms = float(np.sqrt(np.mean(residual_us**2))) if residual_us.size else float("nan")
        ax.set(ylabel="residual (µs)", title=f"{camera}: {int(mine.sum())} edges, RMS {rms:.2f} µs")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    axes[-1, 0].set_xlabel(f"synchronized time on {result.reference}'s clock (s)")
    figure.suptitle(f"edge time minus flash time per camera ({result.method})")
    return figure


# --- time per row against its prior ------------------------------------------------------------


def beta_density(q, alpha: float, beta: float) -> np.ndarray:
    """Beta(α, β) probability density at ``q`` in (0, 1), shape of ``q``."""
    q = np.asarray(q, dtype=np.float64)
    log_norm = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
    return np.exp(log_norm + (alpha - 1.0) * np.log(q) + (beta - 1.0) * np.log1p(-q))


def prior_time_per_row_us(readout_prior, frame_period_ms: float, stored_rows: int, n: int = PRIOR_POINTS):
    """Prior ``(time per row (µs) (n,), density (1/µs) (n,))`` of ``T q / R`` with readout fraction ``q ~ Beta(readout_prior)``.

    Midpoints of ``n`` equal steps of q over (0, 1); the camera's own clock (drift 1).
    """
    q = (np.arange(n) + 0.5) / n
    scale_us = 1000.0 * frame_period_ms / stored_rows
    return q * scale_us, beta_density(q, *readout_prior) / scale_us


def identifiability_verdict(fact: str | None, identified: bool) -> str:
    """Short verdict on a camera's time per row: "given: <fact>", "pinned by data" or "prior only"."""
    if fact is not None:
        return f"given: {fact}"
    return "pinned by data" if identified else "prior only"


def _total_rows_axis(ax, period_ms: float, height: int) -> None:
    """Top axis of total rows ``L = T / time per row``, ticked at :data:`ROWS_RATIO_TICKS` times the stored rows."""
    rows = reciprocal(1000.0 * period_ms)
    top = ax.secondary_xaxis("top", functions=(rows, rows))
    low, high = sorted(rows(np.asarray(ax.get_xlim())))
    ticks = [height * ratio for ratio in ROWS_RATIO_TICKS if low <= height * ratio <= high]
    top.set_xticks(ticks, [f"{t:.0f}" for t in ticks])
    top.set_xlabel(f"total rows L (ticks at {', '.join(f'{r:g}' for r in ROWS_RATIO_TICKS)} × {height} stored)", fontsize=8)


def _time_per_row_panel(ax, result, index: int, verdict: str, reason: str) -> None:
    """One camera's posterior of the time per row (µs) against its prior, total rows on the top axis."""
    camera, prior = result.cameras[index], result.metadata["readout_prior"]
    period_ms, height = result.metadata["frame_period_ms"][index], result.metadata["heights"][index]
    grid_us, density = prior_time_per_row_us(prior, period_ms, height)
    shown = density >= PRIOR_SHOWN_SHARE * density.max()
    ax.plot(grid_us[shown], density[shown], color="C1", label=f"prior: Beta({prior[0]:g}, {prior[1]:g}) on R/L")
    draws_us = 1000.0 * np.ravel(result.idata.posterior["time_per_row_ms"].sel(camera=camera).values)
    if np.ptp(draws_us) > 0:
        ax.hist(draws_us, bins=POSTERIOR_BINS, density=True, color="C0", alpha=0.6, label="posterior draws")
    ax.axvline(draws_us.mean(), color="C0", lw=1.5, label="posterior mean")
    ax.set_xlim(min(grid_us[shown][0], draws_us.min()), max(grid_us[shown][-1], draws_us.max()))
    ax.set_ylim(0.0, 1.3 * density.max())
    ax.set(xlabel="time per row (µs)", ylabel="density (1/µs)", title=f"{camera}: {verdict}")
    _total_rows_axis(ax, period_ms, height)
    text = f"{draws_us.mean():.3f} ± {draws_us.std():.3f} µs/row\n" + textwrap.fill(reason, 44)
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=7,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    ax.legend(loc="center left", fontsize=7, framealpha=0.8)


def time_per_row_chart(result):
    """Figure per camera: posterior of the time per row (µs; total rows on top) against its prior, and whether data pin it.

    The prior is what is known about sensors, ``Beta`` on the readout fraction ``R / L`` (metadata
    ``readout_prior``) mapped to ``T q / R`` (q = R / L). Where the flashes cannot pin a camera (one frame
    rate, locked phases) its posterior keeps this width; pinned cameras show a narrow spike.
    """
    identifiability = result.identifiability()
    n = len(result.cameras)
    figure, axes = new_figure(1, n, (3.6 * n + 0.5, 4.0))
    for index, (ax, camera) in enumerate(zip(axes[0], result.cameras)):
        entry = identifiability[camera]
        verdict = identifiability_verdict(result.metadata["facts"][index], entry["time_per_row_identified"])
        _time_per_row_panel(ax, result, index, verdict, entry["reason"])
    figure.suptitle(f"time per sensor row: posterior ({result.method}) against the prior")
    return figure


# --- trace plots -------------------------------------------------------------------------------

#: Camera variables of the trace chart, top to bottom.
TRACE_VARIABLES = ("drift", "shift_ms", "total_rows")


def trace_values(name: str, draws: np.ndarray) -> tuple[np.ndarray, str]:
    """Draws ``(chain, draw)`` of one camera variable as plotted, and the axis label with units."""
    if name == "drift":
        return (draws - 1.0) * 1e6, "drift − 1 (ppm)"
    if name == "shift_ms":
        centre = float(np.mean(draws))
        return (draws - centre) * 1000.0, f"shift − {centre:.3f} ms (µs)"
    return draws, "total rows"


def trace_chart(result):
    """Figure of the draws of drift, shift and total rows (rows) of each camera (columns), one line per chain."""
    posterior = result.idata.posterior
    n_chains, n = posterior.sizes["chain"], len(result.cameras)
    figure, axes = new_figure(len(TRACE_VARIABLES), n, (3.2 * n + 0.6, 6.5), sharex=True)
    for column, camera in enumerate(result.cameras):
        for row, name in enumerate(TRACE_VARIABLES):
            ax = axes[row, column]
            values, label = trace_values(name, posterior[name].sel(camera=camera).values)
            for chain in range(n_chains):
                ax.plot(values[chain], lw=0.6, alpha=0.8, label=f"chain {chain}")
            ax.set_ylabel(label, fontsize=8)
        axes[0, column].set_title(camera)
        axes[-1, column].set_xlabel("draw")
    axes[0, 0].legend(loc="upper right", fontsize=7, framealpha=0.8)
    figure.suptitle(f"posterior draws per chain ({result.method}; chains: {n_chains}, draws each: {posterior.sizes['draw']})")
    return figure
