"""Pairwise relations of all cameras chained into mappings to the reference clock along a spanning tree.

Accepted pairs form a graph weighted by matched pairs; a maximum spanning tree grown from the
reference chains the pairwise relations ``t_a ≈ drift * t_b + shift_ms`` into a mapping of every
reachable camera to the reference clock.
"""

from __future__ import annotations

import numpy as np

from flashsync_bayes.matching.edges import LeadingEdges, camera_order
from flashsync_bayes.matching.pairwise import MatchSettings, PairMatch, match_pair


def pairwise_matches(edges: LeadingEdges, n_cameras: int, settings: MatchSettings) -> dict[tuple[int, int], PairMatch]:
    """:class:`PairMatch` for every camera pair ``(a, b)`` with ``a < b`` (``t_a ≈ drift * t_b + shift_ms``)."""
    order = [camera_order(edges, c) for c in range(n_cameras)]
    matches = {}
    for a in range(n_cameras):
        for b in range(a + 1, n_cameras):
            ia, ib = order[a], order[b]
            matches[(a, b)] = match_pair(
                edges.own_time_ms[ia], edges.polarity[ia], edges.own_time_ms[ib], edges.polarity[ib], settings
            )
    return matches


def spanning_tree(weights: np.ndarray, root: int) -> np.ndarray:
    """Parent of each camera (n,) in a maximum spanning tree of ``weights`` (n, n) grown from ``root``; -1 if none."""
    n = weights.shape[0]
    parent = np.full(n, -1)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[root] = True
    best = weights[root].astype(np.float64).copy()
    best_from = np.full(n, root)
    while True:
        candidate = np.where(in_tree, 0.0, best)
        v = int(np.argmax(candidate))
        if candidate[v] <= 0:
            return parent
        parent[v] = best_from[v]
        in_tree[v] = True
        better = (weights[v] > best) & ~in_tree
        best[better] = weights[v][better]
        best_from[better] = v


def chain_mappings(parent: np.ndarray, relations: dict, root: int) -> tuple[np.ndarray, np.ndarray]:
    """``(drift, shift_ms)`` arrays (n,) mapping each camera's time to the root's along the tree; NaN if unreachable."""
    n = parent.size
    drift = np.full(n, np.nan)
    shift = np.full(n, np.nan)
    drift[root], shift[root] = 1.0, 0.0

    def resolve(c):
        if np.isnan(drift[c]) and parent[c] >= 0:
            up = parent[c]
            resolve(up)
            d, s = relations[(up, c)]
            drift[c], shift[c] = drift[up] * d, drift[up] * s + shift[up]

    for c in range(n):
        resolve(c)
    return drift, shift


def invert(drift: float, shift_ms: float) -> tuple[float, float]:
    """``(drift, shift_ms)`` of the inverse of the mapping ``t_a = drift * t_b + shift_ms``."""
    return 1.0 / drift, -shift_ms / drift


def tree_mappings(matches: dict, n_cameras: int, root: int) -> tuple[np.ndarray, np.ndarray]:
    """``(drift, shift_ms)`` arrays (n_cameras,) to the root's clock along a maximum spanning tree; NaN if unreached."""
    weights = np.zeros((n_cameras, n_cameras))
    relations = {}
    for (a, b), pair in matches.items():
        if pair.status == "linked":
            weights[a, b] = weights[b, a] = pair.n_matched
            relations[(a, b)] = (pair.drift, pair.shift_ms)
            relations[(b, a)] = invert(pair.drift, pair.shift_ms)
    return chain_mappings(spanning_tree(weights, root), relations, root)
