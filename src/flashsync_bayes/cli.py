"""Command line front door ``flashsync`` (DESIGN §6): one function per subcommand, no logic of its own.

Every error a user can cause (bad arguments, bad files, a failed step) ends as one line
``flashsync: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

from flashsync_bayes import __version__, compile_cache
from flashsync_bayes.diagnostics import problems
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.inference import METHODS, NUTS

PROG = "flashsync"


class _UsageError(Exception):
    """Raised instead of argparse's own exit so that usage errors also end in one line."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become :class:`_UsageError` (reported by :func:`main`)."""

    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _simulate(args: argparse.Namespace) -> int:
    """``flashsync simulate``: write a simulated multi-camera recording and its ground truth."""
    from flashsync_bayes.simulate import random_setup, scene_preset, simulate_recording

    cameras, flashes = random_setup(
        args.cameras,
        args.duration,
        args.flashes,
        args.seed,
        width=args.width,
        height=args.height,
        frame_rate=args.frame_rate,
        drop_probability=args.drop_probability,
        rotate_last=args.rotate_last,
    )
    truth = simulate_recording(
        args.outdir,
        cameras,
        flashes,
        args.duration,
        args.seed,
        crf=args.crf,
        scene=scene_preset(args.scene, seed=args.seed),
        overwrite=args.overwrite,
        progress=not args.no_progress,
        timestamps=args.timestamps,
    )
    print(f"{len(flashes)} flashes, {len(cameras)} cameras, {args.duration:g} s -> {args.outdir}")
    for name, cam in truth["cameras"].items():
        statuses = [edge["status"] for edge in cam["edges"]]
        kinds = ("stored", "hidden", "dropped", "outside")
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in kinds if s in statuses)
        rotation = f", rotation {cam['rotation_deg']}" if cam["rotation_deg"] else ""
        print(
            f"  {name}: {cam['width']}x{cam['height']} @ {cam['frame_rate']} fps, {cam['n_frames']} frames "
            f"({len(cam['dropped_sensor_frames'])} dropped), drift {cam['drift_ppm']:+.1f} ppm, "
            f"shift {cam['shift_ms']:+.3f} ms, {cam['total_rows']} total rows{rotation}; edges: {counts or 'none'}"
        )
    print(f"  truth: {args.outdir}/truth.json")
    return 0


def _refuse_existing(paths, overwrite: bool) -> None:
    """Raise unless every output path is new (or ``overwrite`` is set): nothing is lost silently."""
    for path in paths:
        if path and os.path.exists(path) and not overwrite:
            raise FlashsyncError(f"{path} exists; choose another name or pass --overwrite")


def _cache_dir(args: argparse.Namespace, *outputs) -> str | None:
    """Profile cache directory: --cache-dir, else beside the first output, else none."""
    if args.no_cache:
        return None
    if args.cache_dir:
        return args.cache_dir
    first = next((o for o in outputs if o), None)
    return os.path.join(os.path.dirname(os.path.abspath(first)), ".flashsync-cache") if first else None


def _known_facts(pairs: list[str], what: str) -> dict[str, float]:
    """``{video: value}`` from ``VIDEO=VALUE`` arguments."""
    facts = {}
    for pair in pairs or []:
        video, sep, value = pair.rpartition("=")
        try:
            facts[video] = float(value)
        except ValueError:
            video = ""
        if not sep or not video:
            raise FlashsyncError(f"--{what} takes VIDEO=NUMBER, got '{pair}'")
    return facts


def _write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    from flashsync_bayes.io.files import atomic_write

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_write(path, write)


def _detect(args: argparse.Namespace) -> int:
    """``flashsync detect``: write the events dataset of the flashes seen in each video."""
    from flashsync_bayes.detection import DetectorSettings, detect_events
    from flashsync_bayes.events import save_events

    _refuse_existing([args.output], args.overwrite)
    settings = DetectorSettings(width=None if args.full_width else DetectorSettings().width)
    events = detect_events(
        args.videos, settings, cache_dir=_cache_dir(args, args.output), progress=not args.no_progress
    )
    save_events(events, args.output)
    for camera in events["camera"].values:
        mine = events["event_camera"].values == camera
        leading = int(np.sum(mine & (events["edge"].values == "leading")))
        print(f"{camera}: {leading} flash edges ({int(np.sum(mine)) - leading} trailing)")
    print(f"events: {args.output}")
    return 0


def _print_parameters(result) -> None:
    """The per-camera table of a synchronization: offset, drift, total rows, time per row (each ± sd), pinned."""
    table = result.parameters()
    pinned = result.identifiability()
    header = f"{'camera':<28} {'offset ms':>22} {'drift ppm':>16} {'total rows':>16} {'time/row us':>18}  pinned"
    print(header)
    for camera in result.cameras:
        row = table.sel(camera=camera)
        how = pinned[camera]["reason"].split(":")[0].replace(" given", "")
        print(
            f"{camera:<28} {float(row.shift_ms):>12.3f} ± {float(row.shift_ms_sd):<7.3f}"
            f" {1e6 * (float(row.drift) - 1):>7.2f} ± {1e6 * float(row.drift_sd):<6.2f}"
            f" {float(row.total_rows):>7.1f} ± {float(row.total_rows_sd):<6.1f}"
            f" {1e3 * float(row.time_per_row_ms):>8.3f} ± {1e3 * float(row.time_per_row_ms_sd):<7.3f}"
            f"  {'yes' if pinned[camera]['time_per_row_identified'] else 'NO'} ({how})"
        )
    print(
        f"reference {result.reference}, method {result.method}, {result.n_flashes} flashes, "
        f"residual RMS {result.residual_rms_ms:.4f} ms"
    )


def _warn_if_open(result) -> None:
    """One warning naming the cameras whose time per row the flashes leave open, how much that costs and what pins it."""
    open_rows = {c: v for c, v in result.identifiability().items() if not v["time_per_row_identified"]}
    if not open_rows:
        return
    spread = ", ".join(f"{camera} ±{v['readout_ms_sd']:.2f} ms" for camera, v in open_rows.items())
    warnings.warn(
        f"the flashes do not pin the time per row of {spread} across the frame (one frame rate, locked frame "
        "phases): synchronized times far from the rows where flashes were seen are that uncertain, and the "
        "intervals say so. To pin it give --readout-ms VIDEO=MS or --total-rows VIDEO=N from a datasheet, "
        "record a flash whose band crosses a frame boundary, or add a camera at another frame rate",
        stacklevel=2,
    )


def _sync(args: argparse.Namespace) -> int:
    """``flashsync sync``: synchronize videos and print, save or plot the result."""
    from flashsync_bayes.pipeline import synchronize

    _refuse_existing([args.json, args.output, args.plot], args.overwrite)
    result = synchronize(
        args.videos,
        reference=args.reference,
        method=args.method,
        total_rows=_known_facts(args.total_rows, "total-rows"),
        readout_ms=_known_facts(args.readout_ms, "readout-ms"),
        cache_dir=_cache_dir(args, args.json, args.output, args.plot),
        seed=args.seed,
        progress=not args.no_progress,
    )
    _print_parameters(result)
    _warn_if_open(result)
    diagnostics = result.diagnostics()
    if result.method == NUTS:
        if problems(diagnostics):
            warnings.warn(
                "NUTS diagnostics: " + "; ".join(problems(diagnostics)) + " — run more warmup/samples or chains",
                stacklevel=2,
            )
        print(
            f"NUTS: max R-hat {diagnostics.r_hat_max:.3f}, min bulk ESS {diagnostics.ess_bulk_min:.0f}, "
            f"{diagnostics.divergences} divergences"
        )
    if args.json:
        _write_text(args.json, json.dumps(result.to_json(args.videos), indent=2) + "\n")
        print(f"json: {args.json}")
    if args.output:
        result.save(args.output)
        print(f"posterior: {args.output}")
    if args.plot:
        from flashsync_bayes.plots import plot_sync

        plot_sync(result, args.plot)
        print(f"plot: {args.plot}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """``flashsync demo``: simulate a recording, synchronize it and print the error against the truth."""
    import tempfile

    from flashsync_bayes.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="flashsync-demo-") as workdir:
        outdir = args.outdir or workdir
        report = run_demo(outdir, seed=args.seed, method=args.method, progress=not args.no_progress)
    print(report)
    return 0


def _add_compile_cache(parser: argparse.ArgumentParser) -> None:
    """The opt-out of JAX's persistent compilation cache (on by default; see :mod:`flashsync_bayes.compile_cache`)."""
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help=f"do not keep compiled kernels in {compile_cache.default_directory()} (also: {compile_cache.OPT_OUT_VARIABLE}=1)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options shared by detect and sync: caches, overwrite, progress."""
    parser.add_argument("--cache-dir", help="keep row profiles here (default: .flashsync-cache beside the output)")
    parser.add_argument("--no-cache", action="store_true", help="do not cache row profiles")
    _add_compile_cache(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_simulate(commands) -> None:
    """The ``simulate`` subcommand."""
    sim = commands.add_parser(
        "simulate",
        help="write simulated videos with flashes and their ground truth",
        description="Write cam0.mp4, cam1.mp4, ... and truth.json for a random multi-camera recording.",
    )
    sim.add_argument("--cameras", type=int, default=3, help="number of cameras (default 3)")
    sim.add_argument("--duration", type=float, default=10.0, help="seconds each camera records (default 10)")
    sim.add_argument("--flashes", type=int, default=8, help="number of flashes (default 8)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--outdir", required=True, help="output directory")
    sim.add_argument("--width", type=int, default=640, help="frame width in pixels (default 640)")
    sim.add_argument("--height", type=int, default=360, help="frame height in pixels (default 360)")
    sim.add_argument("--frame-rate", type=float, nargs="+", default=[30.0], help="fps, one or one per camera")
    sim.add_argument("--crf", type=int, default=23, help="x264 quality, 0-51 (default 23)")
    sim.add_argument("--drop-probability", type=float, default=0.0, help="chance a frame is dropped (default 0)")
    sim.add_argument("--rotate-last", action="store_true", help="mark the last camera as rotated 180 degrees")
    sim.add_argument("--scene", default="clean",
                     help="lighting: clean (steady), indoor_50hz / indoor_60hz (flickering lamps, partial flashes, "
                          "a saturated window, auto-exposure; default clean)")  # fmt: skip
    sim.add_argument("--timestamps", default="exact",
                     help="container timestamps: exact, QuickTime 1/600 s ticks or whole ms (default exact)")
    sim.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    sim.add_argument("--no-progress", action="store_true", help="no progress bars")
    sim.set_defaults(run=_simulate)


def _add_detect(commands) -> None:
    """The ``detect`` subcommand."""
    det = commands.add_parser(
        "detect",
        help="detect flash edges in videos and save them as an events dataset",
        description="Detect the leading (and trailing) edges of flashes in each video; write netCDF.",
    )
    det.add_argument("videos", nargs="+", metavar="VIDEO", help="input videos")
    det.add_argument("-o", "--output", required=True, help="events file to write (netCDF, .nc)")
    det.add_argument("--full-width", action="store_true", help="decode full-width frames (slower)")
    _add_common(det)
    det.set_defaults(run=_detect)


def _add_sync(commands) -> None:
    """The ``sync`` subcommand."""
    syn = commands.add_parser(
        "sync",
        help="synchronize videos from their flashes",
        description="Detect flashes, match them across videos and fit drift, shift and total sensor rows "
        "of every camera with uncertainty. Mapping: t_ref = drift * p + shift_ms + r * time_per_row_ms.",
    )
    syn.add_argument("videos", nargs="+", metavar="VIDEO", help="input videos (two or more)")
    syn.add_argument("--reference", help="video whose clock is the reference (default: the first)")
    syn.add_argument("--json", help="write the synchronization model as JSON")
    syn.add_argument("--output", help="write the posterior (ArviZ InferenceData, netCDF .nc)")
    syn.add_argument("--plot", help="write a figure of the fit (PNG, PDF, SVG)")
    syn.add_argument("--method", choices=METHODS, default=NUTS, help="inference (default bayes)")
    syn.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default 0)")
    syn.add_argument(
        "--total-rows", action="append", metavar="VIDEO=N", help="known total sensor rows of a video (repeatable)"
    )
    syn.add_argument(
        "--readout-ms",
        action="append",
        metavar="VIDEO=MS",
        help="known readout time of a video: ms to read all its stored rows, from a datasheet or camera profile (repeatable)",
    )
    _add_common(syn)
    syn.set_defaults(run=_sync)


def _add_demo(commands) -> None:
    """The ``demo`` subcommand."""
    dem = commands.add_parser(
        "demo",
        help="simulate a recording, synchronize it and compare with the truth",
        description="Simulate three cameras with flashes, synchronize them and print the error against the truth.",
    )
    dem.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    dem.add_argument("--method", choices=METHODS, default=NUTS, help="inference (default bayes)")
    dem.add_argument("--outdir", help="keep the simulated videos here (default: a temporary directory)")
    dem.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_compile_cache(dem)
    dem.set_defaults(run=_demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``flashsync`` argument parser with one subparser per subcommand."""
    parser = _Parser(prog=PROG, description="Synchronize rolling-shutter videos from camera flashes.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for add in (_add_simulate, _add_detect, _add_sync, _add_demo):
        add(commands)
    return parser


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a library warning as one ``flashsync: warning: ...`` line on stderr."""
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def use_compile_cache(args: argparse.Namespace, environ=os.environ) -> bool:
    """Whether this command keeps JAX compilations on disk: commands that compile, unless opted out."""
    return not getattr(args, "no_compile_cache", True) and not compile_cache.opted_out(environ)


def main(argv: list[str] | None = None) -> int:
    """Run ``flashsync`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code (0 ok, 2 error)."""
    try:
        args = build_parser().parse_args(argv)
        if use_compile_cache(args):
            compile_cache.enable_compilation_cache()
        with warnings.catch_warnings():
            warnings.showwarning = _warn_in_one_line
            return args.run(args)
    except (_UsageError, FlashsyncError, OSError, ValueError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
