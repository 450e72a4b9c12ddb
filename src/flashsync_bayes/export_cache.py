"""Traced programs kept on disk (``jax.export``) beside the compilation cache, so a new process does not trace them.

JAX's persistent compilation cache (:mod:`flashsync_bayes.compile_cache`) skips XLA's compilation
only: every new process still traces and lowers each jitted function, which for the NUTS sampler
of the NumPyro model takes seconds. :func:`call` runs a jitted function from its exported
(traced and lowered) form, stored in :data:`SUBDIRECTORY` of the compilation cache directory and
keyed by the function, the shapes, dtypes and structure of its arguments, its static arguments,
the versions of JAX, jaxlib and NumPyro, the backend and a hash of the source code of the
subpackage that defines the function (a program must be traced from that code alone, e.g.
:mod:`flashsync_bayes.inference`).
Without the compilation cache (library default, ``--no-compile-cache``) it calls the function
directly. Both ways run the same program and give the same numbers.

NamedTuples in a program's arguments or results must be registered with :func:`serializable`.
Stale files (of older code or versions) are never read again; deleting the directory is safe.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pathlib
import sys
from importlib import metadata

import jax
import numpy as np
from jax import export

from flashsync_bayes.io.files import atomic_write

#: Folder of the exported programs inside the compilation cache directory.
SUBDIRECTORY = "flashsync_exported"
#: Packages whose versions are part of every key.
VERSIONED = ("jax", "jaxlib", "numpyro")

logger = logging.getLogger(__name__)
#: Programs read or exported by this process, by file path.
_LOADED: dict[str, export.Exported] = {}


def serializable(cls):
    """Class decorator: register a NamedTuple so that exported programs may take or return it."""
    export.register_namedtuple_serialization(cls, serialized_name=f"{cls.__module__}.{cls.__qualname__}")
    return cls


def directory() -> str | None:
    """Folder of the exported programs, or None while JAX's persistent compilation cache is off."""
    cache = jax.config.jax_compilation_cache_dir
    return os.path.join(cache, SUBDIRECTORY) if cache else None


@functools.lru_cache(maxsize=8)
def code_version(folder: str) -> str:
    """Hex digest of the Python sources under ``folder``, :data:`VERSIONED` packages' versions and the backend."""
    digest = hashlib.sha256()
    root = pathlib.Path(folder)
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in VERSIONED:
        digest.update(f"{name}={metadata.version(name)}\0".encode())
    digest.update(jax.default_backend().encode())
    return digest.hexdigest()


def _source_folder(function) -> str:
    """Folder of the (sub)package that defines ``function``: its programs are traced from that code."""
    return os.path.dirname(os.path.abspath(sys.modules[function.__module__].__file__))


def _key(function, leaves, treedef, static: dict) -> str:
    """File name (str) of ``function``'s export for these argument leaves, structure and static arguments."""
    name = getattr(function, "__name__", "program")
    signature = [(np.shape(leaf), str(np.result_type(leaf))) for leaf in leaves]
    text = repr((function.__module__, name, signature, str(treedef), sorted(static.items()), code_version(_source_folder(function))))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}.jaxexport"


def _read(path: str) -> export.Exported | None:
    """The export stored at ``path``, or None when there is none or it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return export.deserialize(bytearray(handle.read()))
    except FileNotFoundError:
        return None
    except Exception as error:  # a damaged or foreign file: export again
        logger.debug("ignoring unreadable exported program %s: %s", path, error)
        return None


def _export(function, args, static: dict, path: str) -> export.Exported:
    """Trace and export ``function`` for ``args`` and store it at ``path`` (silently kept in memory only if that fails)."""
    exported = export.export(jax.jit(functools.partial(function, **static)))(*args)
    try:
        atomic_write(path, lambda tmp: pathlib.Path(tmp).write_bytes(exported.serialize()))
    except (OSError, ImportError) as error:  # ImportError: JAX serializes with the flatbuffers package
        logger.debug("cannot store exported program %s: %s", path, error)
    return exported


def call(function, *args, **static):
    """``function(*args, **static)`` for a jitted ``function``, run from its stored export when the cache is on.

    Array arguments (pytrees of arrays and numbers, NamedTuples registered with
    :func:`serializable`) are passed as NumPy arrays, so Python numbers are never weakly typed;
    ``static`` holds the function's static (hashable) arguments.
    """
    args = jax.tree_util.tree_map(np.asarray, args)
    folder = directory()
    if folder is None:
        return function(*args, **static)
    leaves, treedef = jax.tree_util.tree_flatten(args)
    path = os.path.join(folder, _key(function, leaves, treedef, static))
    if path not in _LOADED:
        _LOADED[path] = _read(path) or _export(function, args, static, path)
    return _LOADED[path].call(*args)
