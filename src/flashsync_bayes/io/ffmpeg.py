"""The one ffmpeg binary (imageio-ffmpeg): finding it, running it, one-line errors from its stderr."""

from __future__ import annotations

import functools
import subprocess

from flashsync_bayes.errors import FlashsyncError


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg (or IMAGEIO_FFMPEG_EXE)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        message = f"ffmpeg not found ({err}); install imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE"
        raise FlashsyncError(message) from err


def last_line(text: str) -> str:
    """Last non-empty line of ffmpeg's stderr, or a placeholder."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message from ffmpeg"


def log_last_line(log) -> str:
    """:func:`last_line` of a binary file that collected ffmpeg's stderr (read from its start)."""
    log.seek(0)
    return last_line(log.read().decode(errors="replace"))


def ffmpeg_command(*args: str) -> list[str]:
    """Command line running ffmpeg with ``args``, without banner or keyboard interaction."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]


def run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess:
    """Finished ffmpeg run with ``args`` (stdout bytes, stderr text)."""
    cmd = ffmpeg_command(*args)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    return subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def check_ffmpeg(args: list[str], failure: str = "ffmpeg failed") -> subprocess.CompletedProcess:
    """:func:`run_ffmpeg`; FlashsyncError ``"{failure}: {last line of stderr}"`` if ffmpeg fails."""
    proc = run_ffmpeg(args)
    if proc.returncode != 0:
        raise FlashsyncError(f"{failure}: {last_line(proc.stderr)}")
    return proc


def close_encoder(process: subprocess.Popen | None, kill: bool = False) -> None:
    """Close an encoder's stdin (ignoring a broken pipe), kill it first if ``kill`` and still running, and reap it."""
    if process is None:
        return
    if process.stdin and not process.stdin.closed:
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
    if kill and process.poll() is None:
        process.kill()
    process.wait()


def read_exact(stream, buf: memoryview) -> int:
    """Bytes read into ``buf`` (all of it unless the stream ends first)."""
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def stop_process(proc: subprocess.Popen) -> None:
    """Kill ``proc`` if still running, close its pipe and reap it (no zombie left)."""
    if proc.poll() is None:
        proc.kill()
    proc.stdout.close()
    proc.wait()
