"""Joint refit of the cameras' coarse mappings against their events' flashes (:mod:`flashsync_bayes.joint_lsq`).

Unknowns per camera with events: drift, shift at its mean frame time ``p̄_c`` and time per row
(the reference: time per row only, with drift 1 and shift 0), and one time ``ψ_j`` per flash. Each
event gives ``drift_c (p - p̄_c) + shift_c + time_per_row_c r - ψ_j = 0`` (the reference's
``p`` moved to the right-hand side), with unit weights; weak priors hold each camera near its
current mapping where the flashes cannot tell (few events, or time per row traded against shift
when frame phases are locked).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flashsync_bayes.joint_lsq import normal_equations, solve_blocks
from flashsync_bayes.matching.mappings import Mappings


class EdgeRows(NamedTuple):
    """Sparse rows of the events' equations (see the module docstring).

    Attributes:
        index: ``(n, 4)`` columns of each event's unknowns (drift, shift, time per row, flash);
            ``n_unknowns`` where the reference has none.
        value: ``(n, 4)`` their coefficients ``(p - p̄_c, 1, r, -1)``.
        target: ``(n,)`` right-hand side (ms): ``-p`` for the reference's events, else 0.
        columns: ``(k,)`` camera unknowns as ``3 * camera + j`` (j: 0 drift, 1 shift, 2 time per row).
        p_mean: ``(C,)`` mean frame time p̄_c (ms) of each camera's events (0 without events).
        n_unknowns: camera unknowns k plus flashes.
    """

    index: np.ndarray
    value: np.ndarray
    target: np.ndarray
    columns: np.ndarray
    p_mean: np.ndarray
    n_unknowns: int


def edge_rows(p, r, cam, flash, n_cameras: int, root: int) -> EdgeRows:
    """:class:`EdgeRows` of events with frame times ``p`` (ms), rows ``r``, cameras ``cam`` and flash ids ``flash``, all (n,)."""
    cameras = np.unique(cam)
    p_mean = np.zeros(n_cameras)
    p_mean[cameras] = [p[cam == c].mean() for c in cameras]
    columns = np.array([3 * c + j for c in cameras for j in range(3) if c != root or j == 2])
    position = np.full(3 * n_cameras, -1)
    position[columns] = np.arange(columns.size)
    _, flash_index = np.unique(flash, return_inverse=True)
    n_unknowns = columns.size + int(flash_index.max(initial=-1)) + 1
    index = np.stack([position[3 * cam], position[3 * cam + 1], position[3 * cam + 2], columns.size + flash_index], axis=1)
    index = np.where(index >= 0, index, n_unknowns)
    value = np.stack([p - p_mean[cam], np.ones(p.size), r, -np.ones(p.size)], axis=1)
    target = np.where(cam == root, -p, 0.0)
    return EdgeRows(index, value, target, columns, p_mean, n_unknowns)


def prior_equations(p, cam, rows: EdgeRows, mappings: Mappings, root: int, row_scales) -> tuple[np.ndarray, np.ndarray]:
    """Normal matrix ``(P, P)`` and right-hand side ``(P,)`` of weak priors holding each camera near ``mappings``.

    Prior sds: drift 10 / span of the camera's frame times (at least 1 s), shift 1000 ms, time per
    row 10 / ``row_scales`` (ms), as pseudo-observations of unit weight.
    """
    normal = np.zeros((rows.n_unknowns, rows.n_unknowns))
    rhs = np.zeros(rows.n_unknowns)
    for c in np.unique(cam):
        span = max(float(np.ptp(p[cam == c])), 1000.0)
        weights = (0.1 * span, 1e-3, 0.1 * row_scales[c])
        drift, shift_ms, time_per_row_ms = mappings.at(c)
        current = (drift, shift_ms + drift * rows.p_mean[c], time_per_row_ms)
        for j in range(3) if c != root else (2,):
            column = int(np.flatnonzero(rows.columns == 3 * c + j)[0])
            normal[column, column] += weights[j] ** 2
            rhs[column] += weights[j] ** 2 * current[j]
    return normal, rhs


def unpack_solution(fitted: Mappings, solution, columns, cameras, p_mean, root, max_slope) -> Mappings:
    """``fitted`` with the solved ``cameras``' mappings, drift clipped to ``1 ± max_slope``; the root keeps 1, 0."""
    theta = np.zeros(3 * fitted.n_cameras)
    theta[columns] = solution
    for c in cameras:
        drift = 1.0 if c == root else 1.0 + float(np.clip(theta[3 * c] - 1.0, -max_slope, max_slope))
        shift = 0.0 if c == root else float(theta[3 * c + 1] - drift * p_mean[c])
        fitted = fitted.with_camera(c, drift, shift, theta[3 * c + 2])
    return fitted


def refit_cameras(frame_time_ms, row, camera, flash, mappings: Mappings, root, row_scales, max_slope) -> Mappings:
    """Mappings refitted so each flash's mapped times (events (n,), flash ids (n,)) agree.

    Least squares over all cameras and flashes at once (:func:`~flashsync_bayes.joint_lsq.solve_blocks`).
    One pass drops events further than 5 robust sds from their flash and refits. Cameras without
    flashes keep their mapping.
    """
    fitted = mappings
    keep = flash >= 0
    for _ in range(2):
        sel = np.flatnonzero(keep)
        if sel.size == 0:
            return mappings
        cam, p, r = camera[sel], frame_time_ms[sel], row[sel]
        rows = edge_rows(p, r, cam, flash[sel], mappings.n_cameras, root)
        prior = prior_equations(p, cam, rows, mappings, root, row_scales)
        normal, rhs = normal_equations(rows.index, np.ones(sel.size), rows.value, rows.target, prior)
        vector = solve_blocks(normal, rhs, rows.columns.size)[0]
        residual = np.sum(np.append(vector, 0.0)[rows.index] * rows.value, axis=1) - rows.target
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        fitted = unpack_solution(fitted, vector[: rows.columns.size], rows.columns, np.unique(cam), rows.p_mean, root, max_slope)
        keep[sel] = np.abs(residual) <= max(5.0 * spread, 1e-3)
    return fitted
