"""flashsync_bayes: synchronize rolling-shutter videos from camera flashes, with uncertainty.

Time model (all times in ms): a stored row ``r`` of a frame with timestamp ``p`` of camera ``c``
happens at reference time ``t_ref = drift_c * p + shift_c + r * time_per_row_c``.

Importing the package turns on JAX's 64-bit floats (times need them) and nothing else: the public
names below are imported from their modules on first use.
"""

from typing import TYPE_CHECKING

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from flashsync_bayes.lazy import lazy_names  # noqa: E402

_MODULES = {
    "DetectorSettings": "flashsync_bayes.detection",
    "detect_events": "flashsync_bayes.detection",
    "enable_compilation_cache": "flashsync_bayes.compile_cache",
    "FlashsyncError": "flashsync_bayes.errors",
    "load_events": "flashsync_bayes.events",
    "save_events": "flashsync_bayes.events",
    "match_events": "flashsync_bayes.matching",
    "fit": "flashsync_bayes.pipeline",
    "synchronize": "flashsync_bayes.pipeline",
    "SyncResult": "flashsync_bayes.result",
}
__getattr__, __dir__ = lazy_names(__name__, _MODULES)
__all__ = [
    "DetectorSettings",
    "FlashsyncError",
    "SyncResult",
    "__version__",
    "detect_events",
    "enable_compilation_cache",
    "fit",
    "load_events",
    "match_events",
    "save_events",
    "synchronize",
]

if TYPE_CHECKING:
    from flashsync_bayes.compile_cache import enable_compilation_cache
    from flashsync_bayes.detection import DetectorSettings, detect_events
    from flashsync_bayes.errors import FlashsyncError
    from flashsync_bayes.events import load_events, save_events
    from flashsync_bayes.matching import match_events
    from flashsync_bayes.pipeline import fit, synchronize
    from flashsync_bayes.result import SyncResult
