"""The one joint least-squares solver of camera and flash unknowns (linear, sparse edge rows, weak priors).

Every matched leading edge ``e`` of flash ``j`` gives one linear equation in a few camera
unknowns (drift, offset, time per row of its camera) and its flash's time ``ψ_j``: each row of the
design touches at most four unknowns, ``index`` ``(E, 4)`` with ``value`` ``(E, 4)`` (column ``P``
is a dummy for an absent unknown). Priors enter as pseudo-observations (a normal matrix and
right-hand side). The flash-flash block of the normal matrix is diagonal, so the system is solved
through the Schur complement of the K camera unknowns. :mod:`flashsync_bayes.matching` refits the
coarse mappings with it (unit weights) and :mod:`flashsync_bayes.inference.lsq` the paper's robust
least squares (Student-t weights, Gauss-Newton).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack


def normal_equations(index, weight, value, target, prior):
    """Normal matrix ``(P, P)`` and right-hand side ``(P,)`` of weighted sparse rows plus the prior's."""
    n_par = prior[0].shape[0]
    normal = np.zeros((n_par + 1, n_par + 1))
    pairs = weight[:, None, None] * value[:, :, None] * value[:, None, :]
    np.add.at(normal, (index[:, :, None], index[:, None, :]), pairs)
    rhs = np.zeros(n_par + 1)
    np.add.at(rhs, index, (weight * target)[:, None] * value)
    return normal[:n_par, :n_par] + prior[0], rhs[:n_par] + prior[1]


def solve_blocks(normal: np.ndarray, rhs: np.ndarray, k: int):
    """Solution ``(P,)`` of the normal equations with K camera and F flash unknowns, by the Schur complement.

    The flash-flash block is diagonal (each edge sees one flash), so only the K x K Schur
    complement is factorised. Returns (solution, camera covariance ``(K, K)``, flash gain
    ``(F, K)`` = D⁻¹Bᵀ, conditional flash variances ``(F,)`` = 1/D).
    """
    a, b, d = normal[:k, :k], normal[:k, k:], np.diag(normal[k:, k:]).copy()
    d_inv = 1.0 / d
    gain = (b * d_inv[None, :]).T
    schur = a - b @ gain
    camera_cov = spd_inverse(0.5 * (schur + schur.T))
    camera = camera_cov @ (rhs[:k] - gain.T @ rhs[k:])
    flash = d_inv * rhs[k:] - gain @ camera
    return np.concatenate([camera, flash]), camera_cov, gain, d_inv


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive (semi)definite matrix: Jacobi-scaled Cholesky, pseudo-inverse if singular.

    Cholesky (LAPACK potrf/potri) rather than an eigen-decomposition: it is many times faster and
    far less sensitive to BLAS threads competing for a busy CPU.
    """
    scale = 1.0 / np.sqrt(np.maximum(np.diag(matrix), 1e-300))
    scaled = matrix * np.outer(scale, scale)
    factor, info = lapack.dpotrf(scaled, lower=True)
    if info == 0:
        inverse, info = lapack.dpotri(factor, lower=True)
        if info == 0:
            inverse = np.tril(inverse) + np.tril(inverse, -1).T
            return inverse * np.outer(scale, scale)
    return np.linalg.pinv(matrix, hermitian=True)
