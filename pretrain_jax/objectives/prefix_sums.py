"""Prefix sums of integer arrays along the last axis, in O(L log L) on every backend.

`jnp.cumsum` lowers to a reduce-window that XLA's CPU backend runs in O(L^2): on a (128, 512) int32
array it took 0.3 ms against 0.2 ms for `lax.associative_scan` (ten in one jit: 3.0 vs 2.1 ms),
and the objectives take a few dozen per batch. Integer sums are exact in any order, so the result
is identical; float arrays keep `jnp.cumsum` (a different summation order would change the bits).
documents.py keeps `jnp.cumsum` too: there (the T5 span machinery, (S, B, L) arrays) the scan made
t5_span_corruption slower in a profile (11.0 against 7.2 ms per 128 x 512 batch), while here it
took bart from 17.3 to 12.5 ms.
"""

import jax
import jax.numpy as jnp


def cumsum(values: jax.Array) -> jax.Array:
    """Inclusive prefix sum along the last axis of a bool or integer array -> int32, same shape.

    [1 0 2 1] -> [1 1 3 4]
    """
    if not (jnp.issubdtype(values.dtype, jnp.integer) or values.dtype == jnp.bool_):
        raise TypeError(f"prefix_sums.cumsum takes bool or integer arrays, got {values.dtype}")
    return jax.lax.associative_scan(jnp.add, values.astype(jnp.int32), axis=values.ndim - 1)
