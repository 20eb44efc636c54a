"""Position biases on attention logits: T5's relative buckets and ALiBi's slopes (golden values)."""

import jax.numpy as jnp
import numpy as np
import pytest
from model_fixtures import build_tiny

from pretrain_jax.models.relative_position import (
    DIRECTION_PENALTY,
    alibi_bias,
    alibi_bucket_table,
    alibi_slopes,
    relative_position_bucket,
)


def test_relative_position_buckets():
    rel = jnp.array([-1, 0, 1, 7, 8, 20, 500, -9, -500])
    got = relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    np.testing.assert_array_equal(got, [1, 0, 17, 23, 24, 26, 31, 8, 15])
    rel = -jnp.array([0, 1, 15, 16, 17, 40, 127, 128, 1000])
    got = relative_position_bucket(rel, bidirectional=False, num_buckets=32, max_distance=128)
    np.testing.assert_array_equal(got, [0, 1, 15, 16, 16, 23, 31, 31, 31])
    # Keys after the query all share bucket 0 in the causal direction.
    np.testing.assert_array_equal(
        relative_position_bucket(jnp.array([1, 5]), bidirectional=False, num_buckets=32, max_distance=128), [0, 0])


def test_alibi_slopes_and_bias():
    # Powers of two: 2^(-8/H) ... 2^-8; 6 heads: the 4-head slopes, then the odd ones of 8 heads.
    np.testing.assert_allclose(alibi_slopes(4), [2**-2, 2**-4, 2**-6, 2**-8])
    np.testing.assert_allclose(alibi_slopes(8), [2.0**-k for k in range(1, 9)])
    np.testing.assert_allclose(alibi_slopes(6), [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    bias = alibi_bias(4, 3, 3)
    assert bias.shape == (1, 4, 3, 3)
    np.testing.assert_allclose(bias[0, 0], [[0, -0.25, -0.5], [-0.25, 0, -0.25], [-0.5, -0.25, 0]])


def test_alibi_start_of_the_relative_table():
    table = alibi_bucket_table(4, bidirectional=True, num_buckets=32, max_distance=128)
    assert table.shape == (32, 4)
    # Exact buckets (distances 0..7 each way) hold ALiBi's values, plus the direction penalty on the
    # side a head does not lean to (even heads lean left: buckets 17.. are keys after the query).
    np.testing.assert_allclose(table[:8, 0], -0.25 * np.arange(8))
    np.testing.assert_allclose(table[17:24, 0], -0.25 * np.arange(1, 8) - DIRECTION_PENALTY)
    np.testing.assert_allclose(table[1:8, 1], -np.arange(1, 8) / 16 - DIRECTION_PENALTY)
    np.testing.assert_allclose(table[17:24, 1], -np.arange(1, 8) / 16)
    np.testing.assert_allclose(table[8, 0], -0.25 * np.mean([8, 9, 10, 11]))  # Bucket 8: distances 8-11.
    assert np.all(np.diff(table[:16, 0]) < 0) and np.all(np.diff(table[17:, 0]) < 0)  # Farther, lower.
    causal = alibi_bucket_table(4, bidirectional=False, num_buckets=32, max_distance=128)
    np.testing.assert_allclose(causal[:16, 3], -np.arange(16) / 256)  # One direction: nothing to lean to.


def test_encoder_with_an_alibi_started_table_leans_each_head_one_way():
    model = build_tiny("encoder", position_encoding="relative", relative_bias_init="alibi")
    bias = np.asarray(model.relative_bias(8, 8))[0]  # (H, Lq, Lk); offsets up to 7 are exact buckets.
    key_after_query = np.arange(8)[None, :] > np.arange(8)[:, None]
    key_before_query = np.arange(8)[None, :] < np.arange(8)[:, None]
    alibi = np.asarray(alibi_bias(4, 8, 8))[0]
    np.testing.assert_allclose(bias[0], alibi[0] - DIRECTION_PENALTY * key_after_query, atol=1e-6)
    np.testing.assert_allclose(bias[1], alibi[1] - DIRECTION_PENALTY * key_before_query, atol=1e-6)
    with pytest.raises(ValueError, match="relative_bias_init='sinusoid'"):
        build_tiny("encoder", position_encoding="relative", relative_bias_init="sinusoid")
