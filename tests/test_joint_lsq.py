"""The joint least-squares solver of camera and flash unknowns, against dense solutions and exact mappings."""

import numpy as np

from flashsync_bayes.joint_lsq import normal_equations, solve_blocks
from flashsync_bayes.matching.mappings import Mappings
from flashsync_bayes.matching.refit import refit_cameras


def test_block_solution_equals_the_dense_least_squares_solution():
    rng = np.random.default_rng(3)
    n_camera, n_flash, n_events = 5, 12, 60
    n_unknowns = n_camera + n_flash
    index = np.stack([rng.choice(n_camera, (n_events, 3), replace=True).T[k] for k in range(3)] + [n_camera + rng.integers(0, n_flash, n_events)], axis=1)
    index[:, :3] = np.sort(rng.permuted(np.tile(np.arange(n_camera), (n_events, 1)), axis=1)[:, :3], axis=1)
    index[::7, 0] = n_unknowns  # some rows lack an unknown (the dummy column)
    index[:n_flash, 3] = n_camera + np.arange(n_flash)  # every flash is seen
    value = rng.normal(size=(n_events, 4))
    target, weight = rng.normal(size=n_events), rng.uniform(0.5, 2.0, n_events)
    prior = (np.diag(np.r_[rng.uniform(0.1, 1.0, n_camera), np.zeros(n_flash)]), rng.normal(size=n_unknowns))
    normal, rhs = normal_equations(index, weight, value, target, prior)
    dense = np.zeros((n_events, n_unknowns + 1))
    np.add.at(dense, (np.arange(n_events)[:, None], index), value)
    expected = np.linalg.solve(dense[:, :-1].T @ (weight[:, None] * dense[:, :-1]) + prior[0], dense[:, :-1].T @ (weight * target) + prior[1])
    solution, camera_cov, _, _ = solve_blocks(normal, rhs, n_camera)
    np.testing.assert_allclose(solution, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(camera_cov, np.linalg.inv(normal)[:n_camera, :n_camera], rtol=1e-8, atol=1e-10)


def test_matching_refit_recovers_exact_mappings():
    rng = np.random.default_rng(4)
    truth = Mappings(np.array([1.0, 1.0 + 80e-6, 1.0 - 30e-6]), np.array([0.0, -1234.5, 6789.0]), np.array([0.03, 0.025, 0.04]))
    flash_ms = np.sort(rng.uniform(0.0, 600e3, 30))
    camera = np.repeat(np.arange(3), flash_ms.size)
    flash = np.tile(np.arange(flash_ms.size), 3)
    row = rng.uniform(0.0, 700.0, camera.size)
    # invert t_ref = drift * p + shift + row * time_per_row for the frame time p of each event
    frame_time = (flash_ms[flash] - truth.shift_ms[camera] - row * truth.time_per_row_ms[camera]) / truth.drift[camera]
    start = Mappings(np.ones(3), truth.shift_ms + np.array([0.0, 0.4, -0.3]), np.full(3, 0.033))
    fitted = refit_cameras(frame_time, row, camera, flash, start, 0, np.full(3, 720.0), 5e-4)
    # unit weights (1 ms) against weak priors (time per row sd 10 / 720 ms): a coarse refit, which
    # brings every event within the tolerance floor of matching (0.25 ms) of its flash
    def spread(mappings):
        mapped = mappings.reference_times_ms(frame_time, row, camera)
        return np.max(np.abs(mapped - np.array([mapped[flash == j].mean() for j in flash])))

    assert spread(start) > 2.0
    assert spread(fitted) < 0.1
    np.testing.assert_allclose(fitted.drift, truth.drift, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fitted.time_per_row_ms, truth.time_per_row_ms, rtol=0.02)
    assert (fitted.drift[0], fitted.shift_ms[0]) == (1.0, 0.0)
