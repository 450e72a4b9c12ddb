"""What a command shows of a synchronization: the per-camera table, the warnings and the files written."""

from __future__ import annotations

import json
import logging
import sys
import warnings

from flashsync_bayes.cli.outputs import STDOUT
from flashsync_bayes.methods import NUTS

log = logging.getLogger("flashsync_bayes.cli")


def parameter_lines(result) -> list[str]:
    """The per-camera table of a synchronization: offset, drift, total rows, time per row (each ± sd), pinned."""
    table = result.parameters()
    pinned = result.identifiability()
    lines = [f"{'camera':<28} {'offset ms':>22} {'drift ppm':>16} {'total rows':>16} {'time/row us':>18}  pinned"]
    for camera in result.cameras:
        row = table.sel(camera=camera)
        how = pinned[camera]["reason"].split(":")[0].replace(" given", "")
        lines.append(
            f"{camera:<28} {float(row.shift_ms):>12.3f} ± {float(row.shift_ms_sd):<7.3f}"
            f" {1e6 * (float(row.drift) - 1):>7.2f} ± {1e6 * float(row.drift_sd):<6.2f}"
            f" {float(row.total_rows):>7.1f} ± {float(row.total_rows_sd):<6.1f}"
            f" {1e3 * float(row.time_per_row_ms):>8.3f} ± {1e3 * float(row.time_per_row_ms_sd):<7.3f}"
            f"  {'yes' if pinned[camera]['time_per_row_identified'] else 'NO'} ({how})"
        )
    lines.append(
        f"reference {result.reference}, method {result.method}, {result.n_flashes} flashes seen by two or more "
        f"cameras, residual RMS {result.residual_rms_ms:.4f} ms"
    )
    if result.metadata.get("left_out"):
        lines.append(f"left out (too few flashes shared with the others): {', '.join(result.metadata['left_out'])}")
    ruler = result.flicker_ruler
    if any(ruler["used"]):
        served = [f"{camera}: {note}" for camera, used, note in zip(result.cameras, ruler["used"], ruler["notes"]) if used]
        lines.append(f"flicker ruler (time per row): {'; '.join(served)}")
    if result.method == NUTS:
        d = result.diagnostics()
        lines.append(f"NUTS: max R-hat {d.r_hat_max:.3f}, min bulk ESS {d.ess_bulk_min:.0f}, {d.divergences} divergences")
    return lines


#: Frame periods closer than this share of each other are one frame rate (phones all recording at 30 fps).
SAME_RATE_SHARE = 1e-3


def readouts_on_wrapped_bands(result) -> bool:
    """Whether every camera runs at one frame rate with no readout fact nor flicker ruler: the flashes then pin the
    readouts only through the few bands that cross a frame boundary, and the posterior along them is not Gaussian."""
    periods = [float(t) for t in result.metadata["frame_period_ms"]]
    one_rate = max(periods) - min(periods) <= SAME_RATE_SHARE * min(periods)
    ruler = result.metadata.get("flicker_ruler")
    unruled = not (ruler and any(ruler["used"]))
    return len(periods) > 1 and one_rate and unruled and all(fact is None for fact in result.metadata["facts"])


def warn_about(result) -> None:
    """Warnings a user must read: time per row left open by the flashes, Gaussian intervals where the posterior is
    not, NUTS diagnostics out of bounds."""
    open_rows = {c: v for c, v in result.identifiability().items() if not v["time_per_row_identified"]}
    if open_rows:
        spread = ", ".join(f"{camera} ±{v['readout_ms_sd']:.2f} ms" for camera, v in open_rows.items())
        warnings.warn(
            f"the flashes do not pin the time per row of {spread} across the frame (one frame rate, locked frame "
            "phases): synchronized times far from the rows where flashes were seen are that uncertain, and the "
            "intervals say so. To pin it give --readout-ms VIDEO=MS or --total-rows VIDEO=N from a datasheet, "
            "record a flash whose band crosses a frame boundary, add a camera at another frame rate, or film under "
            "mains lamps whose flicker bands move from frame to frame (bands that only creep need a longer recording)",
            stacklevel=2,
        )
    if result.method != NUTS and not open_rows and readouts_on_wrapped_bands(result):
        warnings.warn(
            f"all cameras run at one frame rate, so their readouts rest on the few flash bands that cross a frame "
            f"boundary, where the posterior is not Gaussian: the {result.method} intervals can be too narrow there "
            "(in one simulated recording 90 % intervals held the truth at 67 % of the points with laplace, 34 % with "
            "lsq); --method bayes integrates it",
            stacklevel=2,
        )
    if result.method == NUTS:
        from flashsync_bayes.diagnostics import problems  # ArviZ: only where R-hat and ESS are computed

        found = "; ".join(problems(result.diagnostics()))
        if found:
            warnings.warn(f"NUTS diagnostics: {found} — run more warmup/samples or chains", stacklevel=2)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically, or to standard output for ``-``."""
    from flashsync_bayes.io.files import atomic_write

    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_write(path, write)


def write_result_files(result, args, names=None, cache_dir=None) -> None:
    """Write the result's JSON (``--json``), netCDF (``--output``) and figures (``--plot``; profiles from ``cache_dir``)."""
    if getattr(args, "json", None):
        write_text(args.json, json.dumps(result.to_json(names), indent=2) + "\n")
        if args.json != STDOUT:
            log.info("json: %s", args.json)
    if getattr(args, "output", None):
        result.save(args.output)
        log.info("result (posterior and events): %s", args.output)
    if getattr(args, "plot", None):
        from flashsync_bayes.plots import write_plots

        for path in write_plots(args.plot, result=result, cache_dir=cache_dir):
            log.info("plot: %s", path)


def show(result, args) -> None:
    """Print the table (to stderr when the JSON goes to stdout) and the warnings; files are written before."""
    stream = sys.stderr if getattr(args, "json", None) == STDOUT else sys.stdout
    print("\n".join(parameter_lines(result)), file=stream, flush=True)
    warn_about(result)
