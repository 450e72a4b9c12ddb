"""Command line front door ``flashsync`` (DESIGN §6): one function per subcommand, no logic of its own.

Every error a user can cause (bad arguments, bad files, a failed step) ends as one line
``flashsync: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from flashsync_bayes.errors import FlashsyncError

PROG = "flashsync"


class _UsageError(Exception):
    """Raised instead of argparse's own exit so that usage errors also end in one line."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become :class:`_UsageError` (reported by :func:`main`)."""

    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _simulate(args: argparse.Namespace) -> int:
    """``flashsync simulate``: write a simulated multi-camera recording and its ground truth."""
    from flashsync_bayes.simulate import random_setup, simulate_recording

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
        overwrite=args.overwrite,
        progress=not args.no_progress,
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


def build_parser() -> argparse.ArgumentParser:
    """The ``flashsync`` argument parser with one subparser per subcommand."""
    parser = _Parser(prog=PROG, description="Synchronize rolling-shutter videos from camera flashes.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

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
    sim.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    sim.add_argument("--no-progress", action="store_true", help="no progress bars")
    sim.set_defaults(run=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``flashsync`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code (0 ok, 2 error)."""
    try:
        args = build_parser().parse_args(argv)
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
