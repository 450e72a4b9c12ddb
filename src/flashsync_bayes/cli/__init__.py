"""Command line front door ``flashsync`` (DESIGN §6): parse, set up logging and warnings, run one subcommand.

Every error a user can cause (bad arguments, bad files, a failed step) ends as one line
``flashsync: error: ...`` on stderr and exit code 2, never a traceback. Results go to stdout,
everything else (progress, ``-v`` logging, warnings) to stderr.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import warnings

from flashsync_bayes import compile_cache
from flashsync_bayes.cli.arguments import PROG, UsageError, build_parser
from flashsync_bayes.errors import FlashsyncError

__all__ = ["PROG", "build_parser", "main", "run", "use_compile_cache"]


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a library warning as one ``flashsync: warning: ...`` line on stderr."""
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def use_compile_cache(args: argparse.Namespace, environ=os.environ) -> bool:
    """Whether this command keeps JAX compilations on disk: commands that compile, unless opted out."""
    return not getattr(args, "no_compile_cache", True) and not compile_cache.opted_out(environ)


def _logging(args: argparse.Namespace) -> logging.Handler:
    """A stderr handler on the package logger: INFO by default, WARNING with -q, DEBUG with -v."""
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger = logging.getLogger("flashsync_bayes")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand with the package's logging and one-line warnings."""
    handler = _logging(args)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warn_in_one_line
            return args.run(args)
    finally:
        logging.getLogger("flashsync_bayes").removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Run ``flashsync`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code (0 ok, 2 error)."""
    try:
        args = build_parser().parse_args(argv)
        if use_compile_cache(args):
            compile_cache.enable_compilation_cache()
        return _run(args)
    except (UsageError, FlashsyncError, OSError, ValueError) as error:
        if isinstance(error, BrokenPipeError):
            return _closed_pipe()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def run() -> int:
    """The ``flashsync`` program: :func:`main` on the command line, then an exit without the final garbage collection.

    At exit Python collects every object of every imported module (JAX, NumPyro, ArviZ, xarray hold
    millions): seconds on a busy machine. Freezing them first leaves only that work out; files are
    closed and atexit handlers run as usual. Library callers and tests use :func:`main`.
    """
    code = main()
    gc.freeze()
    return code


def _closed_pipe() -> int:
    """Exit quietly when the reader of stdout went away (``| head``); results were written before printing."""
    try:  # later flushes at exit must not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
