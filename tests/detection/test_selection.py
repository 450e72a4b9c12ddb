"""Medians by bisection on the floats' bits equal ``jnp.median`` / ``jnp.nanmedian`` exactly; sorts by their keys ``jnp.sort``."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flashsync_bayes.detection import selection

#: One shape per dtype (JAX compiles per shape): rows of 9 values, 3 rows.
SHAPE = (3, 9)


@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    data=st.data(),
    ignore_nan=st.booleans(),
)
def test_median_equals_numpy_style_median_exactly(dtype, data, ignore_nan):
    values = data.draw(hnp.arrays(dtype, SHAPE, elements=st.floats(width=8 * np.dtype(dtype).itemsize, allow_infinity=False)))
    values = jnp.asarray(values)
    expected = (jnp.nanmedian if ignore_nan else jnp.median)(values, axis=-1)
    got = selection.median(values, ignore_nan=ignore_nan)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    np.testing.assert_array_equal(
        np.asarray(selection.median(values, axis=0, keepdims=True, ignore_nan=ignore_nan)),
        np.asarray((jnp.nanmedian if ignore_nan else jnp.median)(values, axis=0, keepdims=True)),
    )


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=20))
def test_sortable_keys_order_like_the_floats_and_convert_back(values):
    floats = jnp.asarray(np.array(values + [0.0, -0.0], np.float32))
    keys = selection.sortable_keys(floats)
    np.testing.assert_array_equal(np.asarray(selection.from_keys(keys, floats.dtype)).view(np.int32), np.asarray(floats).view(np.int32))
    order = np.argsort(np.asarray(keys), kind="stable")
    assert np.all(np.diff(np.asarray(floats)[order]) >= 0)


@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    data=st.data(),
    axis=st.sampled_from([0, -1]),
)
def test_sort_orders_numbers_as_numpy_does(dtype, data, axis):
    values = data.draw(hnp.arrays(dtype, SHAPE, elements=st.floats(width=8 * np.dtype(dtype).itemsize, allow_nan=False)))
    got = np.asarray(selection.sort(jnp.asarray(values), axis=axis))
    # NumPy's order: XLA on CPU flushes subnormals to 0 when it compares floats, so jnp.sort may leave 1e-45 before 0
    expected = np.sort(values, axis=axis)
    np.testing.assert_array_equal(got, expected)  # -0 and +0 compare equal; infinities at the ends
    assert got.dtype == values.dtype
