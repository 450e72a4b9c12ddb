"""Detection over many videos: local processes and a dask LocalCluster give exactly the serial events."""

import concurrent.futures
import pickle
import subprocess
import sys
import warnings

import pytest
import xarray as xr

from flashsync_bayes.cli import main
from flashsync_bayes.cli.arguments import UsageError, build_parser
from flashsync_bayes.detection import detect_events, distribute
from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import load_events
from flashsync_bayes.simulate import random_setup, simulate_recording

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


#: Serial detection in a fresh process: pickles ``detect_events(videos)`` to a file (argv: file, videos...).
SERIAL = (
    "import pickle, sys; from flashsync_bayes.detection import detect_events; "
    "pickle.dump(detect_events(sys.argv[2:], progress=False), open(sys.argv[1], 'wb'))"
)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A JAX compilation cache for every process started here, filled by the serial run (compiles once, not per worker)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("jax-cache")))
        env.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        yield


@pytest.fixture(scope="module")
def videos(tmp_path_factory, compile_cache):
    """Two 160x96 cameras, 2 s, 3 flashes, and their events found one after the other in one process."""
    outdir = tmp_path_factory.mktemp("videos")
    cameras, flashes = random_setup(2, 2.0, 3, seed=4, width=160, height=96, max_shift_ms=200.0)
    truth = simulate_recording(outdir, cameras, flashes, 2.0, seed=4, progress=False)
    paths = [str(outdir / name) for name in truth["cameras"]]
    subprocess.run([sys.executable, "-c", SERIAL, str(outdir / "serial.pickle"), *paths], check=True)
    with open(outdir / "serial.pickle", "rb") as handle:
        return paths, pickle.load(handle)


@pytest.fixture(scope="module")
def client(compile_cache):
    """A dask client of a LocalCluster with two single-threaded worker processes."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as connected:
            yield connected


def test_serial_events_are_not_empty(videos):
    _, serial = videos
    assert serial.sizes["camera"] == 2 and serial.sizes["event"] >= 4


def test_local_processes_give_the_serial_events(videos):
    paths, serial = videos
    xr.testing.assert_identical(detect_events(paths, progress=False, jobs=2), serial)


def test_dask_cluster_gives_the_serial_events(videos, client):
    paths, serial = videos
    xr.testing.assert_identical(detect_events(paths, progress=False, client=client), serial)


@pytest.mark.parametrize("where", ["jobs", "client"])
def test_a_missing_video_is_named(client, tmp_path, where):
    missing = [str(tmp_path / "missing.mp4"), str(tmp_path / "other.mp4")]
    parallel = {"jobs": 2} if where == "jobs" else {"client": client}
    with pytest.raises(FlashsyncError, match="video file not found: .*missing.mp4"):
        detect_events(missing, progress=False, **parallel)


def test_jobs_are_checked():
    assert distribute.worker_count("auto", 100) == distribute.cpu_count()
    assert distribute.worker_count(0, 1) == 1 and distribute.worker_count(8, 3) == 3
    for bad in (-1, 1.5, "two", True):
        with pytest.raises(FlashsyncError, match="jobs"):
            distribute.worker_count(bad, 3)
    with pytest.raises(FlashsyncError, match="not both"):
        distribute.in_process(3, jobs=2, client=object())


class InlineClient:
    """A stand-in for a dask client: ``submit`` runs each task at once, here."""

    def __init__(self):
        self.pure = []

    def submit(self, function, *args, pure=True):
        self.pure.append(pure)
        future = concurrent.futures.Future()
        try:
            future.set_result(function(*args))
        except Exception as error:
            future.set_exception(error)
        return future


def shout(path: str) -> str:
    """``path`` in capitals, with a warning; FlashsyncError for "bad"."""
    warnings.warn(f"{path} is odd", UserWarning)
    if path == "bad":
        raise FlashsyncError("bad: broken")
    return path.upper()


def test_any_client_gets_one_impure_task_per_video_and_its_warnings_reach_the_caller():
    client = InlineClient()
    with pytest.warns(UserWarning) as raised:
        assert distribute.map_videos(shout, ["a", "b"], client=client, progress=False) == ["A", "B"]
    assert [str(w.message) for w in raised] == ["a is odd", "b is odd"]
    assert client.pure == [False, False]
    with pytest.raises(FlashsyncError, match="^bad: broken$"):
        distribute.map_videos(shout, ["a", "bad"], client=client, progress=False)


class Recorded:
    """``detect_events`` that records its keyword arguments and returns the serial events; a client to close."""

    def __init__(self, events):
        self.events, self.calls, self.closed = events, [], False

    def detect_events(self, paths, settings=None, **options):
        self.calls.append(options)
        return self.events

    def close(self):
        self.closed = True


@pytest.mark.parametrize("option", [["--jobs", "2"], ["--scheduler", "tcp://cluster:8786"]])
def test_cli_detect_passes_jobs_or_a_client_and_writes_the_events(videos, tmp_path, monkeypatch, capsys, option):
    """The CLI's part only (the events of jobs and clients are compared above): options in, client closed, file out."""
    paths, serial = videos
    recorded = Recorded(serial)
    monkeypatch.setattr("flashsync_bayes.detection.detect_events", recorded.detect_events)
    monkeypatch.setattr(distribute, "connect", lambda address: recorded if address == option[1] else None)
    out = tmp_path / "e.nc"
    assert main(["detect", *paths, "-o", str(out), *option, "--no-cache", "--no-progress"]) == 0
    xr.testing.assert_identical(load_events(out), serial)
    assert "flash edges" in capsys.readouterr().out
    expected = {"jobs": 2} if option[0] == "--jobs" else {"client": recorded}
    assert {k: recorded.calls[0][k] for k in ("jobs", "client") if k in recorded.calls[0]} == expected
    assert recorded.closed == (option[0] == "--scheduler")


def test_sync_takes_jobs_or_a_scheduler():
    parse = build_parser().parse_args
    assert parse(["sync", "a", "b", "-j", "0"]).jobs == 0 and parse(["sync", "a", "b"]).jobs == 1
    assert parse(["sync", "a", "b", "--scheduler", "tcp://h:8786"]).scheduler == "tcp://h:8786"
    for bad in (["-j", "-1"], ["-j", "2", "--scheduler", "tcp://h:8786"]):
        with pytest.raises(UsageError):
            parse(["sync", "a", "b", *bad])


def test_cli_rejects_jobs_with_a_scheduler_and_an_unreachable_scheduler(videos, tmp_path, capsys, monkeypatch):
    paths, _ = videos
    out = str(tmp_path / "e.nc")
    assert main(["detect", *paths, "-o", out, "-j", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "not allowed with" in capsys.readouterr().err
    monkeypatch.setattr(distribute, "CONNECT_TIMEOUT_S", 1.0)
    assert main(["detect", *paths, "-o", out, "--scheduler", "tcp://127.0.0.1:1", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("flashsync: error: cannot reach the dask scheduler at tcp://127.0.0.1:1") and "\n" not in error


def test_a_scheduler_without_dask_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(FlashsyncError, match=r"pip install 'flashsync_bayes\[cluster\]'"):
        distribute.connect("tcp://host:8786")
