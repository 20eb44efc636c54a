"""T5's relative position bias: attention logits get a learned scalar per (distance bucket, head).

Used by the encoder-decoder (always) and by the encoder with model.position_encoding="relative"; and
ALiBi's fixed biases (model.position_encoding="alibi", or as the relative table's starting values).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pretrain_jax.models.layers import make_param
from pretrain_jax.models.spec import ModelSpec


def relative_position_bucket(relative_position: jax.Array, *, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> jax.Array:
    """T5's bucketing of relative_position = key index - query index (int32, any shape).

    Half the buckets (per direction when bidirectional) are exact small distances; the rest grow
    logarithmically up to max_distance, beyond which everything shares the last bucket. A causal
    decoder only sees keys at or before the query, so it keeps one direction with all buckets.
    Example (bidirectional, 32 buckets, max 128): -1 -> 1, 0 -> 0, 1 -> 17, 20 -> 26, 500 -> 31.
    """
    distance = -relative_position
    bucket = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (distance < 0).astype(jnp.int32) * num_buckets
        distance = jnp.abs(distance)
    else:
        distance = jnp.maximum(distance, 0)
    max_exact = num_buckets // 2
    log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact) / math.log(
        max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return bucket + jnp.where(distance < max_exact, distance, large)


class RelativePositionBias(nnx.Module):
    """A learned scalar per (bucket, head), added to attention logits; one table per stack, shared by
    its layers (as T5). Distances are row offsets, equal to in-document offsets for every pair a
    packed row lets attend. -> (1, H, Lq, Lk) float32.

    spec.relative_bias_init: "normal" (T5: small random values, every distance alike at first) or
    "alibi" (`alibi_bucket_table`: starts as ALiBi's -slope_h * distance, so every head attends
    locally from the first step, and stays learnable per direction).
    """

    def __init__(self, spec: ModelSpec, *, bidirectional: bool, rngs: nnx.Rngs):
        self.bidirectional = bidirectional
        self.num_buckets = spec.relative_attention_num_buckets
        self.max_distance = spec.relative_attention_max_distance
        if spec.relative_bias_init == "alibi":
            table = alibi_bucket_table(spec.num_heads, bidirectional=bidirectional, num_buckets=self.num_buckets,
                                       max_distance=self.max_distance)
            init = lambda key, shape, dtype: jnp.asarray(table, dtype)  # noqa: E731
        else:
            init = nnx.initializers.normal(spec.init_std)
        self.table = make_param(rngs, init, (self.num_buckets, spec.num_heads), ("relpos", "heads"), spec.param_dtype)

    def __call__(self, q_len: int, k_len: int) -> jax.Array:
        return self.between(jnp.arange(q_len)[None], k_len)

    def between(self, query_positions: jax.Array, k_len: int) -> jax.Array:
        """query_positions: (1|B, Lq) int32 against keys 0 .. k_len - 1 -> (1|B, H, Lq, Lk) float32."""
        relative = jnp.arange(k_len)[None, None, :] - query_positions[:, :, None]  # (1|B, Lq, Lk)
        buckets = relative_position_bucket(relative, bidirectional=self.bidirectional,
                                           num_buckets=self.num_buckets, max_distance=self.max_distance)
        # A one-hot matmul, not a gather: its gradient is a matmul too, where the gather's would be
        # a scatter-add of Lq x Lk values into a few dozen rows (~10% of a tiny CPU step).
        one_hot = jax.nn.one_hot(buckets, self.num_buckets, dtype=jnp.float32)  # (1|B, Lq, Lk, NB)
        return jnp.einsum("bqkn,nh->bhqk", one_hot, self.table[...].astype(jnp.float32))


def alibi_slopes(num_heads: int) -> jax.Array:
    """ALiBi's head slopes (Press et al., 2022): the geometric sequence 2^(-8/H), 2^(-16/H), ..., 2^-8.

    For a number of heads that is not a power of two, the paper's rule: the slopes of the next lower
    power of two, then every other slope of twice that many. 4 heads -> [1/4, 1/16, 1/64, 1/256].
    """

    def powers(n):
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    lower = 2 ** math.floor(math.log2(num_heads))
    slopes = powers(lower) + powers(2 * lower)[0::2][: num_heads - lower]
    return jnp.asarray(slopes, jnp.float32)


def alibi_bias(num_heads: int, q_len: int, k_len: int) -> jax.Array:
    """Symmetric ALiBi for a bidirectional encoder (as MosaicBERT): -slope_h * |key - query|, no
    parameters. Distances are row offsets, equal to in-document offsets for every pair a packed row
    lets attend. -> (1, H, Lq, Lk) float32."""
    distance = jnp.abs(jnp.arange(k_len)[None, :] - jnp.arange(q_len)[:, None]).astype(jnp.float32)
    return (-alibi_slopes(num_heads)[:, None, None] * distance[None])[None]


# alibi_bucket_table, bidirectional: the extra logit penalty on the side a head does not lean to.
DIRECTION_PENALTY = 1.0


def alibi_bucket_table(num_heads: int, *, bidirectional: bool, num_buckets: int, max_distance: int) -> np.ndarray:
    """(num_buckets, H) float32: -alibi_slopes[h] * the mean distance of the offsets in each bucket
    (offsets up to 2 * max_distance; the last buckets gather every longer one). Exact buckets get
    exactly ALiBi's values: with 4 heads, head 0 has 0, -0.25, -0.5, ... for distances 0, 1, 2.

    Bidirectional: ALiBi's penalty is symmetric, and a model whose only positional signal is
    symmetric cannot tell "the [MASK]" from "[MASK] the". So even heads start leaning left and odd
    heads right: keys on the other side get DIRECTION_PENALTY more (head 0: -0.25 for the key just
    before, -1.25 for the key just after), and the table learns from there.
    """
    reach = 2 * max_distance
    offsets = np.arange(-reach, reach + 1) if bidirectional else np.arange(-reach, 1)
    with jax.ensure_compile_time_eval():  # Concrete values even when the model is built under jit.
        buckets = np.asarray(relative_position_bucket(jnp.asarray(offsets), bidirectional=bidirectional,
                                                      num_buckets=num_buckets, max_distance=max_distance))
        slopes = np.asarray(alibi_slopes(num_heads))
    distance = np.zeros(num_buckets)
    for bucket in range(num_buckets):
        in_bucket = np.abs(offsets[buckets == bucket])
        distance[bucket] = in_bucket.mean() if in_bucket.size else 0.0
    table = -slopes[None, :] * distance[:, None]
    if bidirectional:
        after = np.arange(num_buckets) >= num_buckets // 2  # Buckets of keys after the query.
        before = ~after & (np.arange(num_buckets) > 0)  # Bucket 0: the query itself.
        leans_left = np.arange(num_heads) % 2 == 0
        table -= DIRECTION_PENALTY * np.where(leans_left[None, :], after[:, None], before[:, None])
    return table.astype(np.float32)
