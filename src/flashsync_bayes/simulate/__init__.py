"""Rolling-shutter flash simulator: the ground truth every other module is tested against.

Physics (DESIGN §2, all times in ms): sensor frame ``k`` of a camera starts at camera time
``p_k = k * T``; stored row ``r`` is exposed over camera time ``[p_k + r*T/L, p_k + r*T/L + E]``,
which maps to reference time through ``t_ref = drift * t_cam + shift_ms``. Indoor footage
(:class:`Scene`, :func:`scene_preset`) adds mains flicker, flashes over part of the columns, a
saturated window and auto-exposure. Videos get exact, QuickTime-style (1/600 s) or whole-millisecond
container timestamps, optionally jittered, while the sensor keeps its exact clock.

Modules, from the bottom up:

- :mod:`.camera`: cameras and flashes, stored sensor frames, exact leading edges.
- :mod:`.physics`: light of flashes integrated over each row's exposure window.
- :mod:`.events`: event-level simulation, an events dataset without pixels.
- :mod:`.scene`: scene parameters, presets, flash span and window layout.
- :mod:`.lighting`: ambient light with mains flicker, auto-exposure gains.
- :mod:`.render`: frames of a scene as uint8 pixels.
- :mod:`.setups`: random cameras and flashes.
- :mod:`.truth`: truth.json of a recording.
- :mod:`.recording`: whole recordings, videos and truth.

The video writer and container timestamps live in :mod:`flashsync_bayes.io.writer` and
:mod:`flashsync_bayes.io.timestamps`; their names are re-exported here as before.
"""

from flashsync_bayes.io.timestamps import (
    BASE_TIMESCALE,
    JITTER_KINDS,
    TIMESTAMP_TIMESCALES,
    container_timescale,
    jittered_ticks,
    video_rate,
    video_timescale,
)
from flashsync_bayes.io.writer import write_video
from flashsync_bayes.simulate.camera import (
    Camera,
    Flashes,
    default_total_rows,
    leading_edges,
    sensor_frames_kept,
    stored_frame_times_ms,
)
from flashsync_bayes.simulate.events import simulate_events
from flashsync_bayes.simulate.lighting import (
    AE_METER_ROWS,
    AE_METER_TOP_FRACTION,
    Lighting,
    ambient_light,
    auto_exposure_gains,
    camera_ambient_light,
    exposure_gains,
    scene_lighting,
)
from flashsync_bayes.simulate.physics import (
    PULSE_SPAN_DECAYS,
    camera_flash_light,
    flash_light,
    pulse_fraction,
    row_windows,
    window_mean_sine,
)
from flashsync_bayes.simulate.recording import simulate_recording
from flashsync_bayes.simulate.render import (
    ALBEDO_RANGE,
    FrameModel,
    SceneObjects,
    Shake,
    camera_shake,
    default_chunk_frames,
    frame_model,
    render_chunks,
    render_frames,
    scene_background,
    scene_objects,
    shake_offsets,
)
from flashsync_bayes.simulate.scene import (
    SCENE_PRESETS,
    WINDOW_MARGIN,
    Scene,
    SceneLayout,
    flash_column_gain,
    scene_layout,
    scene_preset,
    window_mask,
)
from flashsync_bayes.simulate.setups import random_setup
from flashsync_bayes.simulate.truth import REFERENCE_CLOCK_NOTE

__all__ = [
    "AE_METER_ROWS",
    "AE_METER_TOP_FRACTION",
    "ALBEDO_RANGE",
    "BASE_TIMESCALE",
    "JITTER_KINDS",
    "PULSE_SPAN_DECAYS",
    "REFERENCE_CLOCK_NOTE",
    "SCENE_PRESETS",
    "TIMESTAMP_TIMESCALES",
    "WINDOW_MARGIN",
    "Camera",
    "Flashes",
    "FrameModel",
    "Lighting",
    "Scene",
    "SceneLayout",
    "SceneObjects",
    "Shake",
    "ambient_light",
    "auto_exposure_gains",
    "camera_ambient_light",
    "camera_flash_light",
    "camera_shake",
    "container_timescale",
    "default_chunk_frames",
    "default_total_rows",
    "exposure_gains",
    "flash_column_gain",
    "flash_light",
    "frame_model",
    "jittered_ticks",
    "leading_edges",
    "pulse_fraction",
    "random_setup",
    "render_chunks",
    "render_frames",
    "row_windows",
    "scene_background",
    "scene_layout",
    "scene_lighting",
    "scene_objects",
    "scene_preset",
    "sensor_frames_kept",
    "shake_offsets",
    "simulate_events",
    "simulate_recording",
    "stored_frame_times_ms",
    "video_rate",
    "video_timescale",
    "window_mask",
    "window_mean_sine",
    "write_video",
]
