"""Exact medians along an axis by bisection on the values' bits (pure JAX): no sort; and a faster sort.

XLA's sort on CPU is slow for long rows (a frame's 720 rows: ~0.1 ms a frame, most of the time
of scoring frames). An order statistic can be found instead by bisection on integers that order
like the floats (their IEEE bits, negatives' magnitude bits flipped): each step counts the values
at or below a midpoint, so 32 (float32) or 64 (float64) vectorised passes pin it down exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _key_type(dtype):
    """The signed integer type as wide as the float ``dtype``."""
    return jnp.int64 if jnp.dtype(dtype).itemsize == 8 else jnp.int32


def sortable_keys(values):
    """Integers ordered like the float ``values`` (same width): ``a < b`` iff ``key(a) < key(b)``; -0 just below +0."""
    itype = _key_type(values.dtype)
    bits = jax.lax.bitcast_convert_type(values, itype)
    return jnp.where(bits < 0, bits ^ jnp.iinfo(itype).max, bits)


def from_keys(keys, dtype):
    """The floats of ``dtype`` whose :func:`sortable_keys` are ``keys``."""
    bits = jnp.where(keys < 0, keys ^ jnp.iinfo(keys.dtype).max, keys)
    return jax.lax.bitcast_convert_type(bits, dtype)


def _kth_key(keys, valid, k):
    """The ``k``-th smallest (0-based, ``(...)``) of the ``valid`` ``keys`` along the last axis, by bisection.

    Keeps ``count(keys <= lo) <= k < count(keys <= hi)``; ``hi`` ends on the k-th key.
    """
    info = jnp.iinfo(keys.dtype)
    lo = jnp.min(jnp.where(valid, keys, info.max), axis=-1) - 1
    hi = jnp.max(jnp.where(valid, keys, info.min), axis=-1)

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor of the mean without overflow
        over = jnp.sum(valid & (keys <= mid[..., None]), axis=-1) > k
        return jnp.where(over, lo, mid), jnp.where(over, mid, hi)

    return jax.lax.fori_loop(0, 8 * keys.dtype.itemsize + 1, halve, (lo, hi))[1]


def median(values, axis: int = -1, keepdims: bool = False, ignore_nan: bool = False):
    """Median of float ``values`` along ``axis``, as ``jnp.median`` (``jnp.nanmedian`` with ``ignore_nan``).

    NaN where a median has no values (or, without ``ignore_nan``, where one is NaN).
    """
    moved = jnp.moveaxis(jnp.asarray(values), axis, -1)
    finite = ~jnp.isnan(moved)
    keys = sortable_keys(moved)
    n = jnp.sum(finite, axis=-1)
    lower = _kth_key(keys, finite, (n - 1) // 2)
    # the upper middle value: the lower one again if it repeats there, else the next larger value
    repeats = jnp.sum(finite & (keys <= lower[..., None]), axis=-1) > n // 2
    next_key = jnp.min(jnp.where(finite & (keys > lower[..., None]), keys, jnp.iinfo(keys.dtype).max), axis=-1)
    upper = jnp.where(repeats, lower, next_key)
    low, high = from_keys(lower, moved.dtype), from_keys(upper, moved.dtype)
    result = jnp.where(n % 2 == 1, low, low * 0.5 + high * 0.5)
    missing = (n == 0) if ignore_nan else (n < moved.shape[-1]) | (n == 0)
    result = jnp.where(missing, jnp.nan, result)
    return jnp.expand_dims(result, axis) if keepdims else result


def sort(values, axis: int = -1):
    """Float ``values`` sorted along ``axis`` through their :func:`sortable_keys`: as ``jnp.sort`` (NaNs aside; subnormals
    in order, as NumPy has them, where XLA on CPU takes them for 0),
    ~5x faster on CPU (an integer sort: 24 instead of 115 ms for 1060 x 720 float32 values)."""
    values = jnp.asarray(values)
    keys = jax.lax.sort(sortable_keys(values), dimension=axis % values.ndim, is_stable=False)
    return from_keys(keys, values.dtype)
