"""The ``flashsync`` argument parser: one function per subcommand, options shared through small helpers."""

from __future__ import annotations

import argparse

from flashsync_bayes import __version__, compile_cache
from flashsync_bayes.cli import commands
from flashsync_bayes.io.writer import CODECS
from flashsync_bayes.methods import METHODS, NUTS
from flashsync_bayes.transfer import TRANSFERS

PROG = "flashsync"
PLOT_HELP = (
    "write figures (repeatable): FILE.pdf holds every figure, one per page; FILE.png/.svg the flash chart; "
    "KIND=FILE or NAME.KIND.png one figure; kinds: flashes, residuals, time_per_row, trace, edge"
)


class UsageError(Exception):
    """Raised instead of argparse's own exit so that usage errors also end in one line."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become :class:`UsageError` (reported by ``main``)."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_general(parser: argparse.ArgumentParser, compiles: bool = True) -> None:
    """Options of every subcommand: overwrite, progress, verbosity (and the compile cache where JAX runs)."""
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (they show only on a terminal)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only results, errors and warnings")
    loud.add_argument("-v", "--verbose", action="store_true", help="also log the library's steps")
    if compiles:
        parser.add_argument(
            "--no-compile-cache",
            action="store_true",
            help=f"do not keep compiled kernels in {compile_cache.default_directory()} "
            f"(also: {compile_cache.OPT_OUT_VARIABLE}=1)",
        )


def _add_cache(parser: argparse.ArgumentParser) -> None:
    """The row-profile cache options of the commands that decode videos."""
    parser.add_argument("--cache-dir", help="keep row profiles here (default: .flashsync-cache beside the output)")
    parser.add_argument("--no-cache", action="store_true", help="do not cache row profiles")


def _job_count(text: str) -> int:
    """``--jobs`` value: a whole number >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (0: every core), got '{text}'")
    return int(text)


def _add_parallel(parser: argparse.ArgumentParser) -> None:
    """Where the videos are decoded: local processes (-j) or a dask cluster (--scheduler)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-j", "--jobs", type=_job_count, default=1, metavar="N",
        help="decode and profile up to N videos at once in parallel processes (default 1; 0: one per core)",
    )  # fmt: skip
    where.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="decode each video as a task on this dask scheduler, e.g. tcp://host:8786 (needs "
        "flashsync_bayes[cluster]; workers must see the videos and the cache at the same paths)",
    )  # fmt: skip


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    """Reference, method, seed and known sensor facts: what a fit is told."""
    parser.add_argument("--reference", help="camera whose clock is the reference (default: the first)")
    parser.add_argument("--method", choices=METHODS, default=NUTS, help="inference (default bayes)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default 0)")
    parser.add_argument(
        "--total-rows", action="append", metavar="VIDEO=N", help="known total sensor rows of a video (repeatable)"
    )
    parser.add_argument(
        "--readout-ms",
        action="append",
        metavar="VIDEO=MS",
        help="known readout time of a video: ms to read all its stored rows, from a datasheet (repeatable)",
    )
    parser.add_argument(
        "--no-flicker-ruler",
        dest="flicker_ruler",
        action="store_false",
        help="do not let mains-flicker bands (100/120 Hz lamps) pin the cameras' time per row",
    )
    parser.add_argument(
        "--tolerance-ms",
        type=float,
        metavar="MS",
        help="how far (ms) two videos' events of one flash may disagree when matching them (default 3 ms plus what "
        "guessing the sensors' total rows may leave); raise it for timestamps with jitter of ms (IP cameras)",
    )


def _add_result_outputs(parser: argparse.ArgumentParser) -> None:
    """Where a synchronization goes: JSON model, netCDF result, figures."""
    parser.add_argument("--json", help="write the synchronization model as JSON ('-' for standard output)")
    parser.add_argument("--output", help="write the result: posterior and events (netCDF, .nc; see 'flashsync report')")
    parser.add_argument("--plot", action="append", metavar="FILE", help=PLOT_HELP)


def _add_simulate(subcommands) -> None:
    """``simulate``: videos with flashes and their ground truth."""
    sim = subcommands.add_parser(
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
    sim.add_argument("--codec", choices=CODECS, default=CODECS[0],
                     help="h264 (x264, 8 bits; default) or hevc (x265, 10 bits, as phones record)")  # fmt: skip
    sim.add_argument("--crf", type=int, default=23, help="quality on the encoder's own scale, 0-51 (default 23; at the "
                     "same number x265 spends fewer bits than x264)")  # fmt: skip
    sim.add_argument("--drop-probability", type=float, default=0.0, help="chance a frame is dropped (default 0)")
    sim.add_argument("--rotate-last", action="store_true", help="mark the last camera as rotated 180 degrees")
    sim.add_argument("--shake-px", type=float, default=0.0,
                     help="handheld cameras: RMS shake of the view in pixels along each axis (default 0: tripods)")  # fmt: skip
    sim.add_argument("--scene", default="clean",
                     help="lighting: clean (steady), indoor_50hz / indoor_60hz (flickering lamps, partial flashes, "
                          "a saturated window, auto-exposure; default clean)")  # fmt: skip
    sim.add_argument("--timestamps", default="exact",
                     help="container timestamps: exact, QuickTime 1/600 s ticks or whole ms (default exact)")
    _add_general(sim, compiles=False)
    sim.set_defaults(run=commands.simulate)


def _add_transfer(parser) -> None:
    """``--transfer``: how the videos' codes encode light, where their tags do not say it right."""
    parser.add_argument(
        "--transfer",
        choices=TRANSFERS,
        help="transfer curve of the videos' luma (default: each video's color_trc tag; BT.709 unless tagged linear or HLG)",
    )


def _add_detect(subcommands) -> None:
    """``detect``: the events dataset of each video's flashes."""
    det = subcommands.add_parser(
        "detect",
        help="detect flash edges in videos and save them as an events dataset",
        description="Detect the leading (and trailing) edges of flashes in each video; write netCDF.",
    )
    det.add_argument("videos", nargs="+", metavar="VIDEO", help="input videos")
    det.add_argument("-o", "--output", required=True, help="events file to write (netCDF, .nc)")
    det.add_argument("--plot", action="append", metavar="FILE", help="write the flash chart here (repeatable)")
    det.add_argument("--full-width", action="store_true", help="decode full-width frames (slower)")
    _add_transfer(det)
    _add_parallel(det)
    _add_cache(det)
    _add_general(det)
    det.set_defaults(run=commands.detect)


def _add_sync(subcommands) -> None:
    """``sync``: videos in, synchronization out."""
    syn = subcommands.add_parser(
        "sync",
        help="synchronize videos from their flashes",
        description="Detect flashes, match them across videos and fit drift, shift and total sensor rows "
        "of every camera with uncertainty. Mapping: t_ref = drift * p + shift_ms + r * time_per_row_ms.",
    )
    syn.add_argument("videos", nargs="+", metavar="VIDEO", help="input videos (two or more)")
    _add_result_outputs(syn)
    syn.add_argument("--synchronized-dir", metavar="DIR", help="write every video re-timed to the reference's frames")
    syn.add_argument("--preview", metavar="FILE", help="write a montage video of all cameras on the reference clock")
    _add_fit_options(syn)
    _add_transfer(syn)
    _add_parallel(syn)
    _add_cache(syn)
    _add_general(syn)
    syn.set_defaults(run=commands.sync)


def _add_fit(subcommands) -> None:
    """``fit``: an events file in, synchronization out, no videos needed."""
    fit = subcommands.add_parser(
        "fit",
        help="synchronize from an events file (from 'flashsync detect' or another detector) without the videos",
        description="Match the events of an events file across cameras (unless they carry flash ids) and fit "
        "the synchronization. Frame clocks come from the events' own timestamps.",
    )
    fit.add_argument("events", metavar="EVENTS", help="events file (netCDF from 'flashsync detect', or a saved result)")
    _add_result_outputs(fit)
    _add_fit_options(fit)
    _add_general(fit)
    fit.set_defaults(run=commands.fit)


def _add_report(subcommands) -> None:
    """``report``: show a saved synchronization again."""
    rep = subcommands.add_parser(
        "report",
        help="print a saved synchronization again and write its JSON and figures, without decoding",
        description="Read a result written by 'flashsync sync --output' and print its table, diagnostics and warnings.",
    )
    rep.add_argument("result", metavar="RESULT", help="result file (netCDF from --output)")
    rep.add_argument("--json", help="write the synchronization model as JSON ('-' for standard output)")
    rep.add_argument("--plot", action="append", metavar="FILE", help=PLOT_HELP)
    _add_general(rep, compiles=False)
    rep.set_defaults(run=commands.report)


def _add_demo(subcommands) -> None:
    """``demo``: simulate, synchronize, compare with the truth."""
    dem = subcommands.add_parser(
        "demo",
        help="simulate a recording, synchronize it and compare with the truth",
        description="Simulate three cameras with flashes, synchronize them and print the error against the truth.",
    )
    dem.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    dem.add_argument("--method", choices=METHODS, default=NUTS, help="inference (default bayes)")
    dem.add_argument("--outdir", help="keep the simulated videos here (default: a temporary directory)")
    _add_general(dem)
    dem.set_defaults(run=commands.demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``flashsync`` argument parser with one subparser per subcommand."""
    parser = Parser(prog=PROG, description="Synchronize rolling-shutter videos from camera flashes.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subcommands.required = True
    for add in (_add_simulate, _add_detect, _add_sync, _add_fit, _add_report, _add_demo):
        add(subcommands)
    return parser
