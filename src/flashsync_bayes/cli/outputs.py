"""Where a command's results go: every path checked before any work, results written before anything is printed."""

from __future__ import annotations

import os

from flashsync_bayes.errors import FlashsyncError

#: The file name that means standard output (``--json -``).
STDOUT = "-"


def _check_parent(option: str, path: str) -> None:
    """Raise unless the directory that will hold ``path`` exists and is writable."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FlashsyncError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FlashsyncError(f"{option} {path}: directory {parent} is not writable")


def check_output_file(option: str, path: str | None, overwrite: bool, stdout_ok: bool = False) -> None:
    """Raise FlashsyncError unless ``path`` (the value of ``option``) can be written without losing anything."""
    if not path or (stdout_ok and path == STDOUT):
        return
    if path == STDOUT:
        raise FlashsyncError(f"{option} cannot write to standard output; give a file name")
    if os.path.isdir(path):
        raise FlashsyncError(f"{option} {path} is a directory; give a file name")
    if os.path.exists(path) and not overwrite:
        raise FlashsyncError(f"{path} exists; choose another name or pass --overwrite")
    _check_parent(option, path)


def check_output_dir(option: str, path: str | None, overwrite: bool) -> None:
    """Raise FlashsyncError unless ``path`` is a new or empty directory (or ``overwrite``) in a writable place."""
    if not path:
        return
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise FlashsyncError(f"{option} {path} is a file; give a directory")
        if os.listdir(path) and not overwrite:
            raise FlashsyncError(f"{path} is not empty; choose another directory or pass --overwrite")
        if not os.access(path, os.W_OK | os.X_OK):
            raise FlashsyncError(f"{option} {path} is not writable")
        return
    _check_parent(option, path)


def check_distinct(named_paths: dict[str, str | None]) -> None:
    """Raise FlashsyncError if two options name the same output file."""
    seen = {}
    for option, path in named_paths.items():
        if not path or path == STDOUT:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise FlashsyncError(f"{seen[key]} and {option} both name {path}; give each its own file")
        seen[key] = option


def check_not_inputs(named_paths: dict[str, str | None], inputs) -> None:
    """Raise FlashsyncError if an output would replace one of the ``inputs`` (inputs are never touched)."""
    real_inputs = {os.path.realpath(p) for p in inputs}
    for option, path in named_paths.items():
        if path and path != STDOUT and os.path.realpath(path) in real_inputs:
            raise FlashsyncError(f"{option} {path} is one of the inputs; inputs are never overwritten")
