"""Matched events -> the arrays of one synchronization problem, and the priors over it.

Every matched leading edge ``e`` of flash ``j`` in camera ``c`` (frame time ``p_e``, row ``y_e``)
satisfies ``d_c * (p_e + y_e * T_c / L_c) + s_c ≈ φ_j`` with drift ``d_c`` (reference: 1), shift
``s_c`` (reference: 0), total sensor rows ``L_c``, frame period ``T_c`` and flash time ``φ_j``.
Times are centred: camera ``c``'s frame times on the mean frame time ``m_c`` of its events and the
flash times on the reference camera's mean ``M``; ``X`` is the largest centred frame time (ms).

Priors (:class:`Priors`): drift ``Normal(1, drift_ppm·1e-6)``; readout fraction ``R / L``
``Beta`` over real sensors' range; shift ``Normal(coarse shift, shift_sd_ms)`` when the events
carry the matching's coarse mapping, else around the lsq shift; edge noise ``Exponential(mean
sigma_rows)``; flash times flat; ``ν`` fixed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flashsync_bayes.errors import FlashsyncError
from flashsync_bayes.events import camera_index, event_camera_indices, frame_clocks, validate_events
from flashsync_bayes.inference.flicker_ruler import MAINS_RELATIVE_SD, FlickerRuler, band_ruler, no_ruler
from flashsync_bayes.sensors import READOUT_FRACTION_PRIOR, known_total_rows
from flashsync_bayes.timing import snap_frame_times


class Priors(NamedTuple):
    """Prior settings of the model.

    Attributes:
        drift_ppm: sd of the drift around 1 (parts per million); consumer clocks differ by up
            to ~270 ppm (FACTS.md).
        readout_fraction: Beta(α, β) of the readout fraction ``R / L`` (stored rows over total
            sensor rows), :data:`~flashsync_bayes.sensors.READOUT_FRACTION_PRIOR` by default: 90 %
            of it lies at ``L / R`` 1.04-2.0, real sensors' range.
        shift_sd_ms: sd of each shift around the coarse offset (ms).
        sigma_rows: mean of the exponential prior of each camera's edge noise beyond the edges'
            own ``row_sd`` (rows).
        nu: degrees of freedom of the Student-t likelihood.
        mains_relative_sd: relative sd of the lamps' flicker frequency around 100 or 120 Hz, where the reference
            camera's phase step does not measure it (:mod:`~flashsync_bayes.inference.flicker_ruler`).
    """

    drift_ppm: float = 300.0
    readout_fraction: tuple[float, float] = READOUT_FRACTION_PRIOR
    shift_sd_ms: float = 1000.0
    sigma_rows: float = 0.5
    nu: float = 4.0
    mains_relative_sd: float = MAINS_RELATIVE_SD

    def readout_moments(self) -> tuple[float, float]:
        """Mean and sd of the readout-fraction prior."""
        return beta_moments(*self.readout_fraction)

    def readout_per_camera(self, n_free: int) -> tuple[float, float]:
        """Beta(α', β') of each of ``n_free`` cameras' readout fractions: the prior to the power ``1 / n_free``.

        Where the flash edges pin only the ratios of the cameras' times per row (one frame rate,
        locked phases), the posterior along the common scale is the product of the cameras'
        priors. Independent full priors would count the readout prior ``n_free`` times and
        narrow it by ``sqrt(n_free)`` — confidently wrong for a rig of identical cameras. With
        ``Beta(1 + (α - 1) / n, 1 + (β - 1) / n)`` each, the product along that ridge is one
        ``Beta(α, β)``: what is known about sensors counts once.
        """
        n = max(int(n_free), 1)
        alpha, beta = self.readout_fraction
        return 1.0 + (alpha - 1.0) / n, 1.0 + (beta - 1.0) / n


def beta_moments(alpha, beta):
    """Mean and sd of Beta(α, β) distributions (floats or arrays)."""
    total = alpha + beta
    return alpha / total, np.sqrt(alpha * beta / (total**2 * (total + 1.0)))


class Problem(NamedTuple):
    """Matched leading edges and per-camera facts, ready for fitting (NumPy, unpadded).

    Attributes:
        cameras: camera labels; ``paths`` their paths.
        reference: index of the reference camera.
        event_index: ``(E,)`` positions of the used events in the input dataset.
        event_camera, event_flash: ``(E,)`` camera index and flash index (into ``flash_ids``).
        frame_time_ms: ``(E,)`` (snapped) frame times p; ``row``, ``row_sd``: ``(E,)`` rows.
        flash_ids: ``(F,)`` matched flash ids in use.
        stored_rows: ``(C,)`` R; ``frame_period_ms``: ``(C,)`` T used; ``fixed_total_rows``:
            ``(C,)`` L where known, NaN where free; ``facts``: per camera the fact that fixed
            it ("total rows", "readout time") or None.
        camera_centre_ms: ``(C,)`` m_c; ``centre_ms``: M; ``time_scale_ms``: X.
        shift_prior_ms: ``(C,)`` coarse shift relative to the reference, NaN where unknown.
        frame_clocks: per camera FrameClock or None.
        ruler: what the mains-flicker bands say about the times per row (:class:`FlickerRuler`).
    """

    cameras: tuple
    paths: tuple
    reference: int
    event_index: np.ndarray
    event_camera: np.ndarray
    event_flash: np.ndarray
    frame_time_ms: np.ndarray
    row: np.ndarray
    row_sd: np.ndarray
    flash_ids: np.ndarray
    stored_rows: np.ndarray
    frame_period_ms: np.ndarray
    fixed_total_rows: np.ndarray
    facts: tuple
    camera_centre_ms: np.ndarray
    centre_ms: float
    time_scale_ms: float
    shift_prior_ms: np.ndarray
    frame_clocks: tuple
    ruler: FlickerRuler


def _camera_values(events, name: str) -> np.ndarray | None:
    """Per-camera float variable ``name`` of the events dataset, or None if absent."""
    if name not in events or events[name].dims != ("camera",):
        return None
    return np.asarray(events[name].values, dtype=np.float64)


def _facts_per_camera(events, facts, what: str) -> dict[int, float]:
    """``{camera index: value}`` of a mapping keyed by camera label or path."""
    return {camera_index(events, key, what): float(value) for key, value in (facts or {}).items()}


def _frame_periods(events, labels, clocks, frame_period_ms) -> np.ndarray:
    """Frame period T (ms) ``(C,)`` in use: a given fact, else the frame clock's, else the container's."""
    period = np.asarray(events["frame_period_ms"].values, dtype=np.float64).copy()
    for c, clock in enumerate(clocks):
        if clock is not None:
            period[c] = clock.period_ms
    for c, value in _facts_per_camera(events, frame_period_ms, "frame_period_ms").items():
        if not value > 0:
            raise FlashsyncError(f"frame period of camera '{labels[c]}' must be positive, got {value}")
        period[c] = value
    return period


def _fixed_rows(events, labels, stored_rows, period, total_rows, readout_ms) -> tuple[np.ndarray, tuple]:
    """Total rows L ``(C,)`` fixed by a fact (NaN where free) and per camera the fact's name or None."""
    rows_given = _facts_per_camera(events, total_rows, "total_rows")
    readout_given = _facts_per_camera(events, readout_ms, "readout_ms")
    n_cameras = len(labels)
    fixed_rows = np.array(
        [
            known_total_rows(labels[c], int(stored_rows[c]), period[c], rows_given.get(c), readout_given.get(c))
            for c in range(n_cameras)
        ]
    )
    facts = tuple(
        "total rows" if c in rows_given else "readout time" if c in readout_given else None for c in range(n_cameras)
    )
    return fixed_rows, facts


def _shared_edges(events, event_camera_all, n_cameras):
    """Positions ``(E,)`` of the matched leading edges of flashes seen by two or more cameras.

    Also returns the flash ids in use ``(F,)``, each edge's flash index ``(E,)`` and which camera
    saw which flash ``(F, C)``. Flashes seen by a single camera carry no information about the mapping.
    """
    flash = np.asarray(events["flash"].values, dtype=np.int64)
    use = (np.asarray(events["edge"].values).astype(str) == "leading") & (flash >= 0)
    while True:
        index = np.flatnonzero(use)
        ids, inverse = np.unique(flash[index], return_inverse=True)
        seen = np.zeros((ids.size, n_cameras), dtype=bool)
        seen[inverse, event_camera_all[index]] = True
        shared = seen.sum(axis=1) >= 2
        if shared.all():
            return index, ids, inverse, seen
        use[index[~shared[inverse]]] = False


def _check_links(labels, ref: int, event_camera: np.ndarray, seen: np.ndarray) -> None:
    """Raise FlashsyncError unless every camera has shared edges and is linked to the reference through flashes."""
    n_cameras = len(labels)
    for c in range(n_cameras):
        if not np.any(event_camera == c):
            raise FlashsyncError(
                f"camera '{labels[c]}' has no matched leading edge of a flash that another camera also saw; "
                "check its flash detection and matching, or leave the camera out"
            )
    linked = np.zeros(n_cameras, dtype=bool)
    linked[ref] = True
    while True:
        reached = seen[seen[:, linked].any(axis=1)].any(axis=0) | linked
        if (reached == linked).all():
            break
        linked = reached
    if not linked.all():
        lost = [labels[c] for c in np.flatnonzero(~linked)]
        raise FlashsyncError(
            f"cameras {lost} share no flash, directly or through other cameras, with the reference "
            f"'{labels[ref]}'; they cannot be synchronized together"
        )


def _shift_prior(events, ref: int, n_cameras: int) -> np.ndarray:
    """Coarse shift (ms) ``(C,)`` of each camera relative to the reference from the matching, NaN where unknown."""
    shift_prior = np.full(n_cameras, np.nan)
    coarse_drift = _camera_values(events, "coarse_drift")
    coarse_shift = _camera_values(events, "coarse_shift_ms")
    if coarse_shift is not None:
        if coarse_drift is None:
            coarse_drift = np.ones(n_cameras)
        if np.isfinite(coarse_shift[ref]) and np.isfinite(coarse_drift[ref]) and coarse_drift[ref] > 0:
            shift_prior = (coarse_shift - coarse_shift[ref]) / coarse_drift[ref]
            shift_prior[ref] = np.nan
    return shift_prior


def _ruler(events, period, stored_rows, fixed_rows, reference: int, use: bool) -> FlickerRuler:
    """The cameras' :class:`FlickerRuler` from the events' flicker variables (none where absent or not ``use``); the
    reference camera's phase step measures the lamps' frequency."""
    if not use:
        return no_ruler(period.size, "flicker ruler switched off")
    names = ("flicker_period_rows", "flicker_period_rows_sd", "flicker_phase_step", "flicker_amplitude")
    values = [_camera_values(events, name) for name in names]
    if any(v is None for v in values):
        return no_ruler(period.size, "the events carry no flicker band measurements")
    lag = _camera_values(events, "flicker_lag_frames")  # absent from older events: one frame
    return band_ruler(*values, period, stored_rows, known=np.isfinite(fixed_rows), lag_frames=lag, reference=reference)


def prepare_problem(
    events, reference=None, total_rows=None, frame_period_ms=None, readout_ms=None, flicker_ruler: bool = True
) -> Problem:
    """The :class:`Problem` of the matched leading edges of ``events`` (raises FlashsyncError on bad input).

    With ``flicker_ruler`` the mains-flicker bands detection measured pin the times per row where
    they can (:mod:`~flashsync_bayes.inference.flicker_ruler`).
    """
    validate_events(events)
    labels = tuple(str(c) for c in events["camera"].values)
    n_cameras = len(labels)
    if n_cameras < 2:
        raise FlashsyncError(f"need at least two cameras to synchronize, got {n_cameras}")
    ref = 0 if reference is None else camera_index(events, reference, "reference")
    stored_rows = np.asarray(events["height"].values, dtype=np.float64)
    clocks = frame_clocks(events)
    period = _frame_periods(events, labels, clocks, frame_period_ms)
    fixed_rows, facts = _fixed_rows(events, labels, stored_rows, period, total_rows, readout_ms)
    event_camera_all = event_camera_indices(labels, events["event_camera"].values)
    index, ids, inverse, seen = _shared_edges(events, event_camera_all, n_cameras)
    _check_links(labels, ref, event_camera_all[index], seen)

    event_camera = event_camera_all[index]
    frame_time = np.asarray(events["frame_time_ms"].values, dtype=np.float64)[index]
    for c, clock in enumerate(clocks):
        if clock is not None:
            mine = event_camera == c
            frame_time[mine] = snap_frame_times(frame_time[mine], clock)
    centre = np.array([frame_time[event_camera == c].mean() for c in range(n_cameras)])
    scale = float(max(np.max(np.abs(frame_time - centre[event_camera])), 1.0))
    return Problem(
        cameras=labels,
        paths=tuple(str(p) for p in events["path"].values),
        reference=ref,
        event_index=index,
        event_camera=event_camera,
        event_flash=inverse.astype(np.int64),
        frame_time_ms=frame_time,
        row=np.asarray(events["row"].values, dtype=np.float64)[index],
        row_sd=np.asarray(events["row_sd"].values, dtype=np.float64)[index],
        flash_ids=ids,
        stored_rows=stored_rows,
        frame_period_ms=period,
        fixed_total_rows=fixed_rows,
        facts=facts,
        camera_centre_ms=centre,
        centre_ms=float(centre[ref]),
        time_scale_ms=scale,
        shift_prior_ms=_shift_prior(events, ref, n_cameras),
        frame_clocks=tuple(clocks),
        ruler=_ruler(events, period, stored_rows, fixed_rows, ref, flicker_ruler),
    )


class CameraPriors(NamedTuple):
    """Per-camera priors of drift and centred offset, ``(C,)`` arrays.

    ``drift ~ Normal(1, drift_sd)``; ``offset_ms ~ Normal(offset_loc_ms + offset_lever_ms * (drift - 1),
    offset_sd_ms)`` (offset = the camera's centre time mapped to the reference, minus M). For
    other cameras this is the shift prior ``Normal(coarse shift, shift_sd_ms)`` written in offsets
    (lever ``m_c``; loc NaN without a coarse shift). For the reference camera it is its frame clock's
    uncertainty: the snapped frame times ``p`` of a clock fitted to rounded or jittered timestamps
    are off the sensor's true clock by ``δ_c + (p - t_c) δ_T / T`` (``t_c`` the clock's centre), so
    its drift ``1 + δ_T / T`` has sd ``period_sd / T`` and its offset the lever ``m_ref - t_c``. A
    reference without a clock (or with exact timestamps) has sd 0: drift 1, shift 0 exactly.
    """

    drift_sd: np.ndarray
    offset_loc_ms: np.ndarray
    offset_lever_ms: np.ndarray
    offset_sd_ms: np.ndarray


def camera_priors(problem: Problem, priors: Priors) -> CameraPriors:
    """The :class:`CameraPriors` of a problem."""
    ref, centre = problem.reference, problem.camera_centre_ms
    drift_sd = np.full(len(problem.cameras), priors.drift_ppm * 1e-6)
    offset_loc = problem.shift_prior_ms + centre - problem.centre_ms
    offset_lever = centre.copy()
    offset_sd = np.full(len(problem.cameras), float(priors.shift_sd_ms))
    clock = problem.frame_clocks[ref]
    drift_sd[ref] = 0.0 if clock is None else clock.period_sd_ms / clock.period_ms
    offset_loc[ref] = 0.0
    offset_lever[ref] = 0.0 if clock is None else centre[ref] - clock.centre_ms
    offset_sd[ref] = 0.0 if clock is None else clock.centre_sd_ms
    return CameraPriors(drift_sd, offset_loc, offset_lever, offset_sd)


def prior_time_per_row(problem: Problem, priors: Priors):
    """Prior mean and sd ``(C,)`` of the time per row a (ms) implied by each camera's readout-fraction prior."""
    mean_q, sd_q = beta_moments(*priors.readout_per_camera(int(np.sum(~np.isfinite(problem.fixed_total_rows)))))
    return problem.frame_period_ms * mean_q / problem.stored_rows, problem.frame_period_ms * sd_q / problem.stored_rows
