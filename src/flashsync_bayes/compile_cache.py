"""JAX's persistent compilation cache: compiled kernels kept on disk, so a new process does not compile again.

Compiling the detection kernels and the samplers takes seconds to tens of seconds on two cores;
with the cache a later process reuses every compilation of the same (padded) shapes. The
``flashsync`` command turns it on by default; ``--no-compile-cache`` or the environment variable
:data:`OPT_OUT_VARIABLE` turn it off. Library users call :func:`enable_compilation_cache`. The
cache holds compiled programs only; :mod:`flashsync_bayes.export_cache` keeps the traced programs
of inference in a subfolder of it, so that a new process neither traces nor compiles them.
"""

from __future__ import annotations

import os

import jax

#: Environment variable that, set to anything but "" or "0", keeps the command from using the cache.
OPT_OUT_VARIABLE = "FLASHSYNC_NO_COMPILE_CACHE"
#: Compilations faster than this (s) are not worth a file.
MIN_COMPILE_SECONDS = 0.2


def default_directory(environ=os.environ) -> str:
    """``$XDG_CACHE_HOME/flashsync_bayes/jax`` (``~/.cache/flashsync_bayes/jax`` without it)."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flashsync_bayes", "jax")


def opted_out(environ=os.environ) -> bool:
    """Whether :data:`OPT_OUT_VARIABLE` asks to keep the cache off."""
    return environ.get(OPT_OUT_VARIABLE, "") not in ("", "0")


def enable_compilation_cache(directory=None) -> str:
    """Turn JAX's persistent compilation cache on for this process; returns its directory (str).

    It changes JAX's process-wide configuration; ``directory`` defaults to :func:`default_directory`.
    """
    directory = os.fspath(directory or default_directory())
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
