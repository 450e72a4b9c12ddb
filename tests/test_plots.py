"""Figures: what each chart draws equals what the result says, and --plot files get the kinds and formats asked for."""

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from flashsync_bayes import fit
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import make_events
from flashsync_bayes.plots import (
    FIGURE_KINDS,
    available_kinds,
    edge_chart,
    event_profile,
    flash_chart,
    plot_sync,
    plot_target,
    prior_time_per_row_us,
    residual_chart,
    time_per_row_chart,
    trace_chart,
    write_plots,
)
from flashsync_bayes.plots.figure import UNMATCHED_COLOUR
from flashsync_bayes.result import SyncResult
from flashsync_bayes.simulate import Camera, Flashes, simulate_recording
from tests.sync_cases import IDENTIFIABLE, IDENTIFIABLE_WINDOW, LOCKED, LOCKED_WINDOW, simulate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def identifiable_fit():
    """Events of three cameras at different frame rates (with two unmatched edges added) and their lsq fit."""
    times = np.random.default_rng(11).uniform(*IDENTIFIABLE_WINDOW, 12)
    events, _ = simulate(IDENTIFIABLE, times, 90_000.0, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(events, method="lsq", progress=False)
    flash = events["flash"].values.copy()
    flash[:2] = -1
    return events.assign(flash=("event", flash)), result


@pytest.fixture(scope="module")
def locked_fits():
    """lsq fits of three locked-phase 30 fps cameras: without facts, and with camera 1's total rows given."""
    times = np.random.default_rng(1).uniform(*LOCKED_WINDOW, 12)
    events, _ = simulate(LOCKED, times, 200_000.0, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(events, method="lsq", progress=False), fit(events, method="lsq", total_rows={"cam1": 950}, progress=False)


def scatter_x(ax, gid):
    """x positions of the scatter collection ``gid`` of ``ax``."""
    (collection,) = [c for c in ax.collections if c.get_gid() == gid]
    return np.asarray(collection.get_offsets())[:, 0], collection


def pdf_pages(path):
    """Number of pages of a PDF written by matplotlib."""
    with open(path, "rb") as handle:
        return len(re.findall(rb"/Type\s*/Page(?![s\w])", handle.read()))


def png_size(path):
    """(width, height) in pixels of a PNG file, checking its magic bytes."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == PNG_MAGIC
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# --- the flash chart ---------------------------------------------------------------------------


def test_flash_chart_places_edges_on_own_clocks_and_at_synchronized_times(identifiable_fit):
    events, result = identifiable_fit
    figure = flash_chart(events, result)
    own, aligned = figure.axes[:2]
    x_own, _ = scatter_x(own, "leading edge")
    np.testing.assert_allclose(x_own * 1000.0, events["frame_time_ms"].values, rtol=1e-12)
    x_aligned, collection = scatter_x(aligned, "leading edge")
    expected = np.concatenate(
        [
            result.time(c, events["frame_time_ms"].values[mine], events["row"].values[mine])[0]
            for c in result.cameras
            for mine in [events["event_camera"].values == c]
        ]
    )
    np.testing.assert_allclose(x_aligned * 1000.0, expected, rtol=1e-13)
    colours = collection.get_facecolors()
    np.testing.assert_allclose(colours[:2], [UNMATCHED_COLOUR] * 2)
    flash = events["flash"].values
    for j in np.unique(flash[flash >= 0]):
        same = colours[flash == j]
        assert np.all(same == same[0]) and not np.allclose(same[0], UNMATCHED_COLOUR)
    (links,) = [c for c in aligned.collections if c.get_label() == "same flash"]
    segments = links.get_segments()
    assert len(segments) == np.unique(flash[flash >= 0]).size
    # each link stands where its flash's edges were mapped: the cameras agree to microseconds
    for segment, j in zip(segments, np.unique(flash[flash >= 0])):
        assert segment[0, 0] == segment[1, 0]
        np.testing.assert_allclose(segment[0, 0] * 1000.0, expected[flash == j], atol=0.05)
    assert [t.get_text() for t in aligned.get_yticklabels()] == result.cameras
    assert "cam0's clock (s)" in aligned.get_xlabel() and "own clock (s)" in own.get_xlabel()
    assert {t.get_text() for t in aligned.get_legend().get_texts()} == {"same flash", "leading edge"}


def test_flash_chart_of_events_alone_has_one_panel(identifiable_fit):
    events, _ = identifiable_fit
    unmatched = events.assign(flash=("event", np.full(events.sizes["event"], -1)))
    figure = flash_chart(unmatched)
    assert len(figure.axes) == 1
    _, collection = scatter_x(figure.axes[0], "leading edge")
    np.testing.assert_allclose(collection.get_facecolors(), [UNMATCHED_COLOUR] * events.sizes["event"])
    with pytest.raises(FlashsyncError):
        flash_chart()


# --- charts of the fit -------------------------------------------------------------------------


def test_residual_error_bars_are_row_sd_times_time_per_row(identifiable_fit):
    _, result = identifiable_fit
    figure = residual_chart(result)
    residuals = result.event_residuals()
    time_per_row = result.parameters()["time_per_row_ms"]
    row_sd = result.idata.constant_data["row_sd"].values
    assert len(figure.axes) == len(result.cameras)
    for ax, camera in zip(figure.axes, result.cameras):
        mine = residuals["event_camera"].values == camera
        (bars,) = ax.containers
        x, y = bars.lines[0].get_data()
        np.testing.assert_allclose(x * 1000.0, residuals["reference_time_ms"].values[mine], rtol=1e-13)
        np.testing.assert_allclose(y / 1000.0, residuals["residual_ms"].values[mine], rtol=1e-12)
        lengths = [s[1, 1] - s[0, 1] for s in bars.lines[2][0].get_segments()]
        np.testing.assert_allclose(lengths, 2000.0 * row_sd[mine] * float(time_per_row.sel(camera=camera)), rtol=1e-9)
        assert ax.get_ylabel() == "residual (µs)" and ax.get_legend() is not None


def test_prior_of_time_per_row_is_the_beta_prior_mapped_to_microseconds():
    alpha, beta, period_ms, rows = 5.8, 1.7, 1000 / 30, 720
    grid_us, density = prior_time_per_row_us((alpha, beta), period_ms, rows)
    assert np.trapezoid(density, grid_us) == pytest.approx(1.0, abs=2e-3)
    mean_us = np.trapezoid(grid_us * density, grid_us)
    assert mean_us == pytest.approx(1000.0 * period_ms / rows * alpha / (alpha + beta), rel=1e-3)


def test_time_per_row_chart_shows_prior_posterior_and_identifiability(identifiable_fit, locked_fits):
    _, pinned = identifiable_fit
    locked, given = locked_fits
    expected = {
        pinned: ["pinned by data"] * 3,
        locked: ["prior only"] * 3,
        given: ["pinned by data", "given: total rows", "pinned by data"],
    }
    for result, verdicts in expected.items():
        figure = time_per_row_chart(result)
        axes = [ax for ax in figure.axes if ax.get_ylabel()]
        assert [ax.get_title() for ax in axes] == [f"{c}: {v}" for c, v in zip(result.cameras, verdicts)]
        for ax, camera in zip(axes, result.cameras):
            (prior,) = [line for line in ax.lines if line.get_label().startswith("prior")]
            x, y = prior.get_data()
            assert 0.99 < np.trapezoid(y, x) <= 1.0 + 1e-3
            (mean,) = [line for line in ax.lines if line.get_label() == "posterior mean"]
            draws_us = 1000.0 * result.idata.posterior["time_per_row_ms"].sel(camera=camera).values
            assert mean.get_xdata()[0] == pytest.approx(draws_us.mean(), rel=1e-12)
            assert ax.get_xlabel() == "time per row (µs)"
    # the locked cameras' posteriors keep the prior's width; the pinned ones are far narrower
    width = {r: result_width(r) for r in expected}
    assert np.all(width[locked] > 0.5) and np.all(width[pinned] < 0.01)


def result_width(result):
    """Per camera the posterior sd of the readout fraction over the Beta prior's sd."""
    return np.array([v["posterior_prior_sd_ratio"] for v in result.identifiability().values()])


def test_trace_chart_draws_every_chain(identifiable_fit):
    _, result = identifiable_fit
    post = result.idata.posterior
    halves = [post.isel(draw=slice(0, 500)), post.isel(draw=slice(500, 1000)).assign_coords(draw=np.arange(500))]
    idata = result.idata.copy()
    idata.posterior = xr.concat(halves, dim="chain").assign_coords(chain=[0, 1])
    two_chains = SyncResult(idata, result.metadata)
    figure = trace_chart(two_chains)
    axes = np.array(figure.axes).reshape(3, len(result.cameras))
    for column, camera in enumerate(result.cameras):
        drift, shift, rows = (idata.posterior[n].sel(camera=camera).values for n in ("drift", "shift_ms", "total_rows"))
        for row, expected in enumerate([(drift - 1) * 1e6, (shift - shift.mean()) * 1000.0, rows]):
            lines = axes[row, column].lines
            assert len(lines) == 2
            for chain, line in enumerate(lines):
                np.testing.assert_allclose(line.get_ydata(), expected[chain], rtol=1e-9, atol=1e-9)
    assert axes[0, 0].get_ylabel() == "drift − 1 (ppm)" and axes[2, 0].get_ylabel() == "total rows"
    assert [t.get_text() for t in axes[0, 0].get_legend().get_texts()] == ["chain 0", "chain 1"]


# --- one edge up close -------------------------------------------------------------------------


def frame_edges(rows, row_sds, kinds, frame=5, path="cam0.mp4"):
    """An events dataset of one camera with edges in one frame."""
    n = len(rows)
    camera = {"path": [path], "width": [256], "height": [144], "frame_period_ms": [1000 / 30], "n_frames": [45]}
    camera["rotation_deg"] = [0]
    event = {"event_camera": ["cam0"] * n, "frame": [frame] * n, "frame_time_ms": [frame * 1000 / 30] * n, "row": rows,
             "row_sd": row_sds, "edge": kinds, "polarity": [1 if k == "leading" else -1 for k in kinds]}
    return make_events(["cam0"], camera, event)


def test_edge_chart_marks_each_edge_with_its_sd_band():
    profile = np.where(np.arange(144) >= 40.3, 0.5, 0.0) * (np.arange(144) < 70)
    edges = frame_edges([40.3, 70.1], [0.3, 0.6], ["leading", "trailing"])
    figure = edge_chart(profile, edges)
    whole, zoom = figure.axes
    np.testing.assert_allclose(whole.lines[0].get_ydata(), 100.0 * profile)
    bands = [(p.get_x(), p.get_x() + p.get_width()) for p in whole.patches]
    np.testing.assert_allclose(bands, [(40.0, 40.6), (69.5, 70.7)])
    assert [line.get_xdata()[0] for line in whole.lines if "edge" in line.get_label()] == [40.3, 70.1]
    low, high = zoom.get_xlim()
    assert low < 40.0 and 40.6 < high < 70.1
    assert "%" in whole.get_ylabel() and "row" in whole.get_xlabel() and whole.get_legend() is not None


def test_edge_profile_is_recomputed_from_the_video(tmp_path):
    camera = Camera(width=256, height=144, frame_rate=30.0, exposure_ms=4.0)
    flashes = Flashes(time_ms=np.array([400.0]), decay_ms=np.array([0.5]), rise_ms=np.zeros(1), amplitude=np.array([60.0]))
    truth = simulate_recording(tmp_path, [camera], flashes, 1.0, seed=4, progress=False)
    (edge,) = truth["cameras"]["cam0.mp4"]["edges"]
    path = str(tmp_path / "cam0.mp4")
    profile = event_profile(path, edge["frame"])
    row = int(round(edge["row"]))
    assert profile.shape == (144,)
    assert np.all(np.abs(profile[row - 20 : row - 4]) < 0.02) and np.all(profile[row + 4 : row + 10] > 0.2)
    events = frame_edges([edge["row"]], [0.3], ["leading"], frame=edge["frame"], path=path)
    assert available_kinds(events=events) == ("flashes", "edge")
    assert available_kinds(events=frame_edges([50.0], [0.3], ["leading"], path=str(tmp_path / "gone.mp4"))) == ("flashes",)
    (written,) = write_plots([f"edge={tmp_path / 'edge.png'}"], events=events)
    assert png_size(written) == (900, 380)


# --- files -------------------------------------------------------------------------------------


def test_each_plot_path_gets_its_kinds_and_format(identifiable_fit, tmp_path):
    _, result = identifiable_fit
    paths = [tmp_path / "all.pdf", tmp_path / "run.trace.png", f"residuals={tmp_path / 'res.svg'}", tmp_path / "plain.png",
             f"time_per_row,trace={tmp_path / 'two.pdf'}"]
    written = write_plots(paths, result=result)
    assert written == [str(tmp_path / n) for n in ("all.pdf", "run.trace.png", "res.svg", "plain.png", "two.pdf")]
    assert pdf_pages(written[0]) == len(available_kinds(result)) == 4
    assert pdf_pages(written[4]) == 2
    trace_size, flash_size = png_size(written[1]), png_size(written[3])
    assert flash_size == (900, 650) and trace_size != flash_size  # a plain image gets the flash chart
    with open(written[2], "rb") as handle:
        assert b"<svg" in handle.read(2000)
    assert os.path.getsize(written[3]) < 150_000


def test_plot_path_rule():
    assert plot_target("x.pdf", ("flashes",)).kinds == ("flashes",)
    assert plot_target("a/b.c.png").kinds == ("flashes",)
    assert plot_target("run.time_per_row.svg").kinds == ("time_per_row",)
    assert plot_target("residuals,trace=d/x.pdf") == ("d/x.pdf", ("residuals", "trace"))
    assert plot_target("my-run=1.png").path == "my-run=1.png"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("foo=x.png", "unknown figure kind 'foo'"),
        ("residuals=x.png", "needs a synchronization result"),
        ("edge=x.png", "needs the events and their video files"),
        ("flashes,residuals=x.png", "several figures need a .pdf"),
        ("x.jpg", "must end in .png, .pdf or .svg"),
    ],
)
def test_bad_plot_requests_fail_in_one_line_before_writing(identifiable_fit, tmp_path, spec, message):
    events, _ = identifiable_fit
    with pytest.raises(FlashsyncError, match=re.escape(message)) as error:
        write_plots([tmp_path / "first.png", spec.replace("x.", f"{tmp_path}/x.")], events=events)
    assert "\n" not in str(error.value)
    assert os.listdir(tmp_path) == []


def test_existing_files_are_kept_unless_overwrite(identifiable_fit, tmp_path):
    _, result = identifiable_fit
    existing = tmp_path / "fit.png"
    existing.write_bytes(b"keep me")
    with pytest.raises(FlashsyncError, match="exists"):
        write_plots([tmp_path / "new.pdf", existing], result=result, overwrite=False)
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "new.pdf").exists()
    assert plot_sync(result, existing) == [str(existing)]
    assert png_size(existing) == (900, 650)


def test_importing_plots_leaves_matplotlib_for_drawing():
    code = (
        "import sys, flashsync_bayes.plots; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'arviz', 'numpyro')); "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | {"JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-500:]
    assert FIGURE_KINDS == ("flashes", "residuals", "time_per_row", "trace", "edge")
