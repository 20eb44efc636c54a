"""Boolean attention masks, built inside the model from (B, L) arrays (never shipped as (B, L, L)).

Every mask is (B, 1, Lq, Lk), True where query i may attend to key j; the singleton axis broadcasts
over heads. Example, segment_ids [1 1 2 0] (two documents and one pad):

    segment_mask            causal & segment_mask
    1 1 0 0                 1 0 0 0
    1 1 0 0                 1 1 0 0
    0 0 1 0                 0 0 1 0
    0 0 0 0                 0 0 0 0
"""

import jax
import jax.numpy as jnp


def segment_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array) -> jax.Array:
    """q: (B, Lq), kv: (B, Lk) int32 -> (B, 1, Lq, Lk): same non-zero segment (0 = padding)."""
    q = q_segment_ids[:, None, :, None]
    k = kv_segment_ids[:, None, None, :]
    return (q == k) & (q > 0)


def padding_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array) -> jax.Array:
    """q: (B, Lq), kv: (B, Lk) int32 -> (B, 1, Lq, Lk): both tokens real (segment id > 0), any segment."""
    return (q_segment_ids[:, None, :, None] > 0) & (kv_segment_ids[:, None, None, :] > 0)


def causal_mask_at(query_slots: jax.Array, num_keys: int) -> jax.Array:
    """query_slots: (B, Lq) int32 -> (B, 1, Lq, num_keys): key slot <= the query's slot (a KV cache).

    Example, query_slots [[1 2]], num_keys 4:  1 1 0 0
                                               1 1 1 0
    """
    return jnp.arange(num_keys)[None, None, None, :] <= query_slots[:, None, :, None]


def causal_mask(length: int) -> jax.Array:
    """(1, 1, L, L): key index <= query index (row order; packed documents are contiguous)."""
    idx = jnp.arange(length)
    return (idx[None, :] <= idx[:, None])[None, None]


def decoder_mask(segment_ids: jax.Array, prefix_mask: jax.Array | None = None) -> jax.Array:
    """Causal within each document; prefix tokens also see each other (prefix LM).

    segment_ids: (B, L) int32; prefix_mask: (B, L) bool or None -> (B, 1, L, L).
    Example, segment_ids [1 1 1 1], prefix_mask [1 1 0 0]:
        1 1 0 0
        1 1 0 0
        1 1 1 0
        1 1 1 1
    """
    allowed = causal_mask(segment_ids.shape[1])
    if prefix_mask is not None:
        allowed = allowed | (prefix_mask[:, None, :, None] & prefix_mask[:, None, None, :])
    return allowed & segment_mask(segment_ids, segment_ids)


def permutation_masks(segment_ids: jax.Array, perm_ranks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """XLNet two-stream masks from factorization-order ranks, within each document.

    segment_ids, perm_ranks: (B, L) int32 -> (content, query), each (B, 1, L, L):
    content i sees j iff rank[j] <= rank[i]; query i sees j iff rank[j] < rank[i] (never itself).
    Example, ranks [2 0 1]:  content  1 1 1    query  0 1 1
                                      0 1 0           0 0 0
                                      0 1 1           0 1 0
    """
    same = segment_mask(segment_ids, segment_ids)
    rq = perm_ranks[:, None, :, None]
    rk = perm_ranks[:, None, None, :]
    return same & (rk <= rq), same & (rk < rq)
