"""flashsync_bayes: synchronize rolling-shutter videos from camera flashes, with uncertainty.

Time model (all times in ms): a stored row ``r`` of a frame with timestamp ``p`` of camera ``c``
happens at reference time ``t_ref = drift_c * p + shift_c + r * time_per_row_c``.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from flashsync_bayes.compile_cache import enable_compilation_cache  # noqa: E402
from flashsync_bayes.detection import DetectorSettings, detect_events  # noqa: E402
from flashsync_bayes.errors import FlashsyncError  # noqa: E402
from flashsync_bayes.events import load_events, save_events  # noqa: E402
from flashsync_bayes.matching import match_events  # noqa: E402
from flashsync_bayes.pipeline import fit, synchronize  # noqa: E402
from flashsync_bayes.result import SyncResult  # noqa: E402

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
