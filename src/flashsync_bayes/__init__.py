"""flashsync_bayes: synchronize rolling-shutter videos from camera flashes, with uncertainty.

Time model (all times in ms): a stored row ``r`` of a frame with timestamp ``p`` of camera ``c``
happens at reference time ``t_ref = drift_c * p + shift_c + r * time_per_row_c``.
"""

import jax

jax.config.update("jax_enable_x64", True)

from flashsync_bayes.errors import FlashsyncError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["FlashsyncError", "__version__"]
