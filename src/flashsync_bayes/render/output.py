"""What every written output shares: checks before writing, and a progress bar over frames."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.io.frames import check_writable


def counted(items: Iterable, total: int, description: str | None, enabled: bool) -> Iterator:
    """``items`` passed through, counted on a tqdm bar on stderr when ``enabled``; closes ``items`` at the end."""
    bar = None
    if enabled:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=description, unit="frame", file=sys.stderr)
    try:
        for item in items:
            if bar is not None:
                bar.update(1)
            yield item
    finally:
        if bar is not None:
            bar.close()
        getattr(items, "close", lambda: None)()


def check_outputs(outputs: list[str], inputs: list[str], overwrite: bool) -> None:
    """FlashsyncError if an output would replace an input video, or exists without ``overwrite``."""
    folder = os.path.dirname(outputs[0]) if outputs else ""
    if folder and os.path.exists(folder) and not os.path.isdir(folder):
        raise FlashsyncError(f"{folder} is a file; give a folder to write into")
    for output in outputs:
        for path in inputs:
            if os.path.exists(output) and os.path.samefile(output, path):
                raise FlashsyncError(f"writing {output} would replace the input video {path}; choose another folder")
        check_writable(output, overwrite)
