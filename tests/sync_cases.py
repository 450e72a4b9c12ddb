"""Simulated recordings with known truth for the inference and result tests, and accuracy checks.

Accuracy is the synchronized-time error over a grid of frames and rows of every camera,
relative to the reference camera: the truth for camera c is
``t_ref = (drift_c * (p + r * T_c / L_c) + shift_c - shift_ref) / drift_ref``.
All fits of small problems share one padded shape, so each method compiles once per session.
"""

import numpy as np

from flashsync_bayes.simulate import Camera, Flashes, simulate_events, stored_frame_times_ms

RMS_LIMIT_MS = 0.1
MAX_LIMIT_MS = 0.5
SHORT_NUTS = {"num_warmup": 200, "num_samples": 400}  # one compiled NUTS shared by all tests

IDENTIFIABLE = [
    Camera(height=720, frame_rate=30.0, exposure_ms=4.0, drift=1 + 40e-6, shift_ms=1500.0),
    Camera(height=1080, frame_rate=25.0, exposure_ms=4.0, drift=1 - 90e-6, shift_ms=-2300.0),
    Camera(height=480, frame_rate=59.94, exposure_ms=4.0, drift=1 + 5e-6, shift_ms=4100.7),
]
IDENTIFIABLE_WINDOW = (8_000.0, 80_000.0)

#: Three 720p30 cameras of real sensors (L/R 1.39, 1.32, 1.53) with locked frame phases: frame
#: offsets of under a ms, so no flash band crosses a frame boundary, and no drift.
LOCKED = [
    Camera(height=720, total_rows=1000, frame_rate=30.0, exposure_ms=4.0, shift_ms=0.0),
    Camera(height=720, total_rows=950, frame_rate=30.0, exposure_ms=4.0, shift_ms=-2000 * 1000 / 30 + 0.6),
    Camera(height=720, total_rows=1100, frame_rate=30.0, exposure_ms=4.0, shift_ms=1500 * 1000 / 30 - 0.4),
]
LOCKED_WINDOW = (70_000.0, 110_000.0)


def simulate(cameras, flash_times_ms, duration_ms, seed, time_noise_ms=None, **kwargs):
    """Matched events (``flash = true_flash``) and kept-frame masks of a simulated recording.

    ``time_noise_ms`` (per camera) adds Gaussian event-time noise σ_c on top of the row noise.
    """
    flashes = Flashes(np.sort(np.asarray(flash_times_ms, dtype=float)), 0.5, 0.0, 100.0)
    events, kept = simulate_events(cameras, flashes, duration_ms, seed, **kwargs)
    events["flash"] = events["true_flash"]
    if time_noise_ms is not None:
        rng = np.random.default_rng(seed + 12345)
        labels = list(events["camera"].values)
        row = events["row"].values.copy()
        for c, camera in enumerate(cameras):
            mine = events["event_camera"].values == labels[c]
            row[mine] += rng.normal(0.0, time_noise_ms[c] / camera.line_period_ms, mine.sum())
        events["row"] = ("event", row)
    return events, kept


def true_time(cameras, c, p, r, ref=0):
    """True reference time (ms) of camera c's (frame time p, row r), relative to camera ``ref``."""
    cam, base = cameras[c], cameras[ref]
    return (cam.drift * (p + r * cam.line_period_ms) + cam.shift_ms - base.shift_ms) / base.drift


def grid_errors(result, cameras, kept, window_ms, ref=0, n_frames=12, n_rows=6, with_sd=False):
    """Errors (ms) of the posterior-mean time over frames (within the flash window) x rows of every camera.

    With ``with_sd`` also the posterior sd (ms) at the same points.
    """
    errors, sds = [], []
    for c, camera in enumerate(cameras):
        pts = stored_frame_times_ms(camera, kept[c])
        world = camera.drift * pts + camera.shift_ms
        inside = pts[(world >= window_ms[0]) & (world <= window_ms[1])]
        p = inside[np.linspace(0, inside.size - 1, n_frames).astype(int)]
        r = np.linspace(0.0, camera.height - 1, n_rows)
        P, R = np.meshgrid(p, r)
        mean, sd = result.time(f"cam{c}", P, R)
        errors.append((mean - true_time(cameras, c, P, R, ref)).ravel())
        sds.append(sd.ravel())
    return (np.concatenate(errors), np.concatenate(sds)) if with_sd else np.concatenate(errors)


def assert_accurate(result, cameras, kept, window_ms, ref=0):
    """Synchronized-time RMS and max error within the limits."""
    errors = grid_errors(result, cameras, kept, window_ms, ref)
    rms, worst = float(np.sqrt(np.mean(errors**2))), float(np.abs(errors).max())
    assert rms < RMS_LIMIT_MS and worst < MAX_LIMIT_MS, (rms, worst)
    return rms, worst


def with_flicker_bands(events, cameras, lamps_hz, relative_sd, seed, lag_frames=1.0):
    """``events`` with the flicker variables detection would measure under lamps at ``lamps_hz`` (reference time):
    band periods off by Gaussian errors of ``relative_sd`` (per camera or one for all), which their sds state,
    measured over ``lag_frames``."""
    rng = np.random.default_rng(seed)
    period = np.array([1000.0 / (lamps_hz * c.drift * c.line_period_ms) for c in cameras])
    relative_sd = np.broadcast_to(relative_sd, period.shape)
    measured = period * (1.0 + relative_sd * rng.standard_normal(period.size))
    step = np.array([(lamps_hz / c.frame_rate) % 1.0 for c in cameras])
    return events.assign(
        flicker_period_rows=("camera", measured),
        flicker_period_rows_sd=("camera", relative_sd * measured),
        flicker_phase_step=("camera", step),
        flicker_amplitude=("camera", np.full(period.size, 0.1)),
        flicker_lag_frames=("camera", np.full(period.size, float(lag_frames))),
    )
