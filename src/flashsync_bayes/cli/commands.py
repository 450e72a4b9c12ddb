"""What each ``flashsync`` subcommand does: check its outputs, call the library, report (no logic of its own)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys

import numpy as np

from flashsync_bayes.cli import outputs
from flashsync_bayes.cli.report import show, write_result_files
from flashsync_bayes.errors import FlashsyncError

log = logging.getLogger("flashsync_bayes.cli")


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and not with ``--no-progress`` or ``--quiet`` (log files stay clean)."""
    return not args.no_progress and not getattr(args, "quiet", False) and sys.stderr.isatty()


def known_facts(pairs: list[str] | None, what: str) -> dict[str, float]:
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


def _cache_dir(args: argparse.Namespace, *named) -> str | None:
    """Profile cache directory: --cache-dir, else beside the first output file, else none."""
    if args.no_cache:
        return None
    if args.cache_dir:
        return args.cache_dir
    first = next((o for o in named if o and o != outputs.STDOUT), None)
    return os.path.join(os.path.dirname(os.path.abspath(first)), ".flashsync-cache") if first else None


@contextlib.contextmanager
def parallel_options(args: argparse.Namespace):
    """``jobs`` or ``client`` of the detection, from ``--jobs`` / ``--scheduler``; the client is closed afterwards."""
    if not args.scheduler:
        yield {"jobs": args.jobs}
        return
    from flashsync_bayes.detection.distribute import connect

    client = connect(args.scheduler)
    try:
        yield {"client": client}
    finally:
        client.close()


def plot_paths(specs) -> dict[str, str]:
    """The file of each ``--plot`` value (``KIND=FILE`` or ``FILE``, see :mod:`flashsync_bayes.plots`), by option."""
    from flashsync_bayes.plots import plot_target

    return {f"--plot {spec}": plot_target(spec).path for spec in specs or []}


def _result_outputs(args: argparse.Namespace) -> dict[str, str | None]:
    """Every output file a sync/fit/report run writes, by option (each ``--plot`` its own entry)."""
    named = {"--json": getattr(args, "json", None), "--output": getattr(args, "output", None)}
    named.update(plot_paths(getattr(args, "plot", None)))
    named["--preview"] = getattr(args, "preview", None)
    return named


def check_result_outputs(args: argparse.Namespace, inputs) -> None:
    """Check every output of a sync/fit/report run before any work starts: nothing existing is lost."""
    named = _result_outputs(args)
    for option, path in named.items():
        outputs.check_output_file(option.split()[0], path, args.overwrite, stdout_ok=option == "--json")
    outputs.check_output_dir("--synchronized-dir", getattr(args, "synchronized_dir", None), args.overwrite)
    outputs.check_distinct(named)
    outputs.check_not_inputs({**named, "--synchronized-dir": getattr(args, "synchronized_dir", None)}, inputs)


def fit_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of the fit shared by sync and fit: reference, method, matching tolerance, seed, known facts,
    progress."""
    return {
        "reference": args.reference,
        "method": args.method,
        "total_rows": known_facts(args.total_rows, "total-rows"),
        "readout_ms": known_facts(args.readout_ms, "readout-ms"),
        "tolerance_ms": args.tolerance_ms,
        "flicker_ruler": args.flicker_ruler,
        "seed": args.seed,
        "progress": progress_wanted(args),
    }


def simulate(args: argparse.Namespace) -> int:
    """``flashsync simulate``: write a simulated multi-camera recording and its ground truth."""
    from flashsync_bayes.simulate import random_setup, scene_preset, simulate_recording

    cameras, flashes = random_setup(
        args.cameras, args.duration, args.flashes, args.seed, width=args.width, height=args.height,
        frame_rate=args.frame_rate, drop_probability=args.drop_probability, rotate_last=args.rotate_last,
    )  # fmt: skip
    cameras = [dataclasses.replace(camera, codec=args.codec, shake_px=args.shake_px) for camera in cameras]
    truth = simulate_recording(
        args.outdir, cameras, flashes, args.duration, args.seed, crf=args.crf,
        scene=scene_preset(args.scene, seed=args.seed), overwrite=args.overwrite,
        progress=progress_wanted(args), timestamps=args.timestamps,
    )  # fmt: skip
    print(f"{len(flashes)} flashes, {len(cameras)} cameras, {args.duration:g} s -> {args.outdir}")
    for name, cam in truth["cameras"].items():
        statuses = [edge["status"] for edge in cam["edges"]]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("stored", "hidden", "dropped", "outside") if s in statuses)
        rotation = f", rotation {cam['rotation_deg']}" if cam["rotation_deg"] else ""
        print(
            f"  {name}: {cam['width']}x{cam['height']} @ {cam['frame_rate']} fps {cam['codec']}, {cam['n_frames']} frames "
            f"({len(cam['dropped_sensor_frames'])} dropped), drift {cam['drift_ppm']:+.1f} ppm, "
            f"shift {cam['shift_ms']:+.3f} ms, {cam['total_rows']} total rows{rotation}; edges: {counts or 'none'}"
        )
    print(f"  truth: {args.outdir}/truth.json")
    return 0


def detect(args: argparse.Namespace) -> int:
    """``flashsync detect``: write the events dataset of the flashes seen in each video."""
    from flashsync_bayes.detection import DetectorSettings, detect_events
    from flashsync_bayes.events import save_events

    named = {"--output": args.output, **plot_paths(args.plot)}
    for option, path in named.items():
        outputs.check_output_file(option.split()[0], path, args.overwrite)
    outputs.check_distinct(named)
    outputs.check_not_inputs(named, args.videos)
    settings = DetectorSettings(width=None if args.full_width else DetectorSettings().width, transfer=args.transfer)
    with parallel_options(args) as parallel:
        cache = _cache_dir(args, args.output)
        events = detect_events(args.videos, settings, cache_dir=cache, progress=progress_wanted(args), **parallel)
    save_events(events, args.output)
    log.info("events: %s", args.output)
    if args.plot:
        from flashsync_bayes.plots import write_plots

        for path in write_plots(args.plot, events=events, settings=settings, cache_dir=_cache_dir(args, args.output)):
            log.info("plot: %s", path)
    for camera in events["camera"].values:
        mine = events["event_camera"].values == camera
        leading = int(np.sum(mine & (events["edge"].values == "leading")))
        print(f"{camera}: {leading} flash edges ({int(np.sum(mine)) - leading} trailing)")
    return 0


def sync(args: argparse.Namespace) -> int:
    """``flashsync sync``: synchronize videos; write the JSON, result, figures and videos asked for; print the table."""
    from flashsync_bayes.detection import DetectorSettings
    from flashsync_bayes.pipeline import synchronize

    check_result_outputs(args, args.videos)
    cache = _cache_dir(args, args.json, args.output, *(args.plot or []), args.preview, args.synchronized_dir)
    with parallel_options(args) as parallel:
        settings = DetectorSettings(transfer=args.transfer)
        result = synchronize(args.videos, settings=settings, cache_dir=cache, **fit_options(args), **parallel)
    write_result_files(result, args, cache_dir=cache)
    write_videos(result, args)
    show(result, args)
    return 0


def write_videos(result, args: argparse.Namespace) -> None:
    """The synchronized videos (``--synchronized-dir``) and the montage (``--preview``), when asked for."""
    progress = progress_wanted(args)
    if args.synchronized_dir:
        from flashsync_bayes.render import write_synchronized

        write_synchronized(result, None, args.synchronized_dir, overwrite=args.overwrite, progress=progress)
        log.info("synchronized videos: %s", args.synchronized_dir)
    if args.preview:
        from flashsync_bayes.render import write_preview

        write_preview(result, None, args.preview, overwrite=args.overwrite, progress=progress)
        log.info("preview: %s", args.preview)


def fit(args: argparse.Namespace) -> int:
    """``flashsync fit``: synchronize the cameras of an events file without decoding any video."""
    from flashsync_bayes.events import load_events
    from flashsync_bayes.pipeline import synchronize_events

    check_result_outputs(args, [args.events])
    events = load_events(args.events)
    result = synchronize_events(events, **fit_options(args))
    write_result_files(result, args)
    show(result, args)
    return 0


def report(args: argparse.Namespace) -> int:
    """``flashsync report``: show a saved synchronization again and write its JSON and figures (no decoding)."""
    from flashsync_bayes.result import SyncResult

    check_result_outputs(args, [args.result])
    result = SyncResult.load(args.result)
    write_result_files(result, args)
    show(result, args)
    return 0


def demo(args: argparse.Namespace) -> int:
    """``flashsync demo``: simulate a recording, synchronize it and print the error against the truth."""
    import tempfile

    from flashsync_bayes.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="flashsync-demo-") as workdir:
        outdir = args.outdir or workdir
        text = run_demo(outdir, seed=args.seed, method=args.method, progress=progress_wanted(args), overwrite=args.overwrite)
    print(text)
    return 0
