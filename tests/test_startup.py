"""What starting flashsync costs: the package and the command line import only what they use, and exit cleanly."""

import json
import os
import subprocess
import sys

import flashsync_bayes

HEAVY = ("numpyro", "arviz", "matplotlib", "xarray", "pandas", "scipy", "dask", "distributed")


def _imported_after(code: str) -> list[str]:
    """The :data:`HEAVY` packages imported by a fresh interpreter running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_package_imports_no_heavy_library():
    assert _imported_after("import flashsync_bayes") == []


def test_parsing_a_command_line_imports_no_heavy_library():
    code = "from flashsync_bayes.cli import build_parser\nbuild_parser().parse_args(['sync', 'a.mp4', 'b.mp4'])"
    assert _imported_after(code) == []


def test_public_names_resolve_to_their_modules():
    from flashsync_bayes import pipeline, result

    assert flashsync_bayes.fit is pipeline.fit and flashsync_bayes.SyncResult is result.SyncResult
    assert set(flashsync_bayes.__all__) <= set(dir(flashsync_bayes))
    for name in flashsync_bayes.__all__:
        assert getattr(flashsync_bayes, name) is not None


def test_the_program_exits_with_main_s_code(tmp_path):
    env = os.environ | {"XDG_CACHE_HOME": str(tmp_path)}
    script = os.path.join(os.path.dirname(sys.executable), "flashsync")
    command = [script] if os.path.exists(script) else [sys.executable, "-c", "import sys; from flashsync_bayes.cli import run; sys.exit(run())"]
    done = subprocess.run([*command, "--version"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and flashsync_bayes.__version__ in done.stdout
    done = subprocess.run([*command, "sync", str(tmp_path / "missing.mp4")], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and done.stderr.startswith("flashsync: error:")
