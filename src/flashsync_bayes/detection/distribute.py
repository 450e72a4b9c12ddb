"""Run one function over many videos: in this process, in local worker processes, or on a dask cluster.

The function must be picklable (a top-level function or a :func:`functools.partial` of one) and
return picklable results. Worker processes start with "spawn" (JAX is not fork-safe; a script
must therefore start its work under ``if __name__ == "__main__":``) and get this process's JAX
settings (:data:`JAX_OPTIONS`) before each call; warnings a worker raises are raised again here.
With a dask client the videos (and any cache directory) must lie on a file system every worker
reads at the same path.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from tqdm.auto import tqdm

from flashsync_bayes.errors import FlashsyncError

#: JAX settings a worker takes over from the calling process: those results depend on, and the
#: persistent compilation cache (:mod:`~flashsync_bayes.compile_cache`), which spares each new worker the compiling.
JAX_OPTIONS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
)
#: What to ``pip install`` for dask.distributed.
CLUSTER_EXTRA = "flashsync_bayes[cluster]"
#: Seconds :func:`connect` tries to reach a scheduler.
CONNECT_TIMEOUT_S = 10.0


def cpu_count() -> int:
    """CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_count(jobs: int | str, n_items: int) -> int:
    """Processes to use for ``n_items`` videos: ``jobs`` (0 or "auto": every CPU), at most one per video."""
    if jobs == "auto" or jobs == 0:
        jobs = cpu_count()
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 0:
        raise FlashsyncError(f"jobs must be a whole number >= 0 or 'auto' (0 and 'auto': every CPU), got {jobs!r}")
    return max(1, min(int(jobs), n_items))


def in_process(n_items: int, jobs: int | str = 1, client=None) -> bool:
    """Whether :func:`map_videos` runs the function here, one video after the other."""
    if client is not None and jobs != 1:
        raise FlashsyncError("give either a dask client or jobs, not both")
    return client is None and worker_count(jobs, n_items) == 1


def jax_options() -> dict[str, object]:
    """This process's values of :data:`JAX_OPTIONS`."""
    import jax

    return {name: getattr(jax.config, name) for name in JAX_OPTIONS}


def _use_jax_options(options: dict[str, object]) -> None:
    """Set the JAX settings of the calling process in this worker (those that differ; unset ones leave the worker's)."""
    import jax

    for name, value in options.items():
        if value is not None and getattr(jax.config, name) != value:
            jax.config.update(name, value)


def run_one(function: Callable, path: str, options: dict[str, object]):
    """``(function(path), warnings raised)`` in a worker, with the caller's JAX ``options`` set first."""
    _use_jax_options(options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(path)
    return result, [record.message for record in caught]


def map_videos(function: Callable, paths: Sequence[str], *, jobs: int | str = 1, client=None, progress: bool = True) -> list:
    """``[function(path) for path in paths]``, in order, run as :func:`in_process` says (one task per video).

    ``jobs`` > 1 runs up to that many local processes (0 or "auto": one per CPU); ``client`` (a
    ``dask.distributed.Client``, or anything whose ``submit(function, *args, pure=False)`` returns
    futures) runs each video as a task on its cluster. When a video fails, the error of the first
    failing video in input order (the one serial detection would raise) is raised as the worker
    raised it, once the videos before it are done; the others are cancelled. The bar counts
    finished videos.
    """
    paths = list(paths)
    with tqdm(total=len(paths), desc="videos", unit="video", disable=not progress or len(paths) < 2) as bar:
        if in_process(len(paths), jobs, client):
            results = []
            for path in paths:
                results.append(function(path))
                bar.update()
            return results
        if client is not None:
            outcomes = _submit_all(client, function, paths, bar)
        else:
            outcomes = _in_processes(worker_count(jobs, len(paths)), function, paths, bar)
    for result, raised in outcomes:
        for message in raised:
            warnings.warn(message, stacklevel=3)
    return [result for result, _ in outcomes]


def _in_processes(n_workers: int, function: Callable, paths: list[str], bar: tqdm) -> list:
    """``run_one`` outcomes of every path from ``n_workers`` spawned local processes, in order."""
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=n_workers, mp_context=context)
    finished = False
    try:
        outcomes = _submit_all(executor, function, paths, bar)
        finished = True
    except BrokenProcessPool as error:
        raise FlashsyncError(
            "a video's worker process died (out of memory? try fewer --jobs); a script that runs detection "
            "in processes must start its work under `if __name__ == '__main__':`"
        ) from error
    finally:
        executor.shutdown(wait=finished, cancel_futures=True)
    return outcomes


def _submit_all(pool, function: Callable, paths: list[str], bar: tqdm) -> list:
    """``run_one`` outcomes of every path, one task each on ``pool`` (an executor or a dask client), in order."""
    options = jax_options()
    extra = {} if isinstance(pool, concurrent.futures.Executor) else {"pure": False}
    futures = [pool.submit(run_one, function, path, options, **extra) for path in paths]
    try:
        for future in _as_completed(futures):
            if future.exception() is not None:
                break  # raised below once the videos before it are done: the error serial detection raises
            bar.update()
        return [future.result() for future in futures]
    except BaseException:
        if hasattr(pool, "cancel"):
            pool.cancel(futures)
        raise


def _as_completed(futures: list):
    """The futures (of concurrent.futures or dask) as they finish."""
    if all(isinstance(future, concurrent.futures.Future) for future in futures):
        return concurrent.futures.as_completed(futures)
    from distributed import as_completed

    return as_completed(futures)


def connect(address: str):
    """A ``dask.distributed.Client`` of the scheduler at ``address`` (e.g. tcp://host:8786); close it after use."""
    try:
        from distributed import Client
    except ImportError as error:
        raise FlashsyncError(f"a dask scheduler needs dask.distributed: pip install '{CLUSTER_EXTRA}'") from error
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise FlashsyncError(f"cannot reach the dask scheduler at {address}: {message}") from error
