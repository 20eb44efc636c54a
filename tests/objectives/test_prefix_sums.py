"""prefix_sums: the scans equal numpy's running sums, maxima and minima exactly, on any leading shape."""

import jax.numpy as jnp
import numpy as np
import pytest

from pretrain_jax.objectives import prefix_sums


@pytest.mark.parametrize("shape", [(1,), (9,), (4, 1), (3, 17), (2, 3, 64)])
def test_scans_equal_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        values = rng.integers(-50, 50, shape).astype(np.int32)
        np.testing.assert_array_equal(prefix_sums.cumsum(values), np.cumsum(values, -1))
        np.testing.assert_array_equal(prefix_sums.exclusive_cumsum(values), np.cumsum(values, -1) - values)
        np.testing.assert_array_equal(prefix_sums.cummax(values), np.maximum.accumulate(values, -1))
        np.testing.assert_array_equal(prefix_sums.cummin(values), np.minimum.accumulate(values, -1))
        reverse_min = np.flip(np.minimum.accumulate(np.flip(values, -1), -1), -1)
        np.testing.assert_array_equal(prefix_sums.cummin(values, reverse=True), reverse_min)


def test_bools_count_as_int32_and_floats_are_refused():
    out = prefix_sums.cumsum(jnp.array([[True, False, True, True]]))
    assert out.dtype == jnp.int32
    np.testing.assert_array_equal(out, [[1, 1, 2, 3]])
    with pytest.raises(TypeError, match="bool or integer"):
        prefix_sums.cummax(jnp.array([1.0, 2.0]))
