"""Key/value caches for incremental decoding (generation): plain data, preallocated, updated in place.

The model owns the layout: `Attention.empty_cache` allocates a layer's cache, and the masks come
from models/masks.py.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pretrain_jax.models import masks


def write_rows(buffer: jax.Array, update: jax.Array, index: jax.Array) -> jax.Array:
    """buffer: (B, T, ...), update: (B, Lq, ...), index: (B,) int32 -> buffer with row b's slots
    index[b] .. index[b] + Lq - 1 replaced by update[b] (in place under jit). Example, T=5, Lq=1:
    buffer [[a a a a a], [b b b b b]], update [[x], [y]], index [1, 3] -> [[a x a a a], [b b b y b]]."""
    return jax.vmap(lambda row, new, start: jax.lax.dynamic_update_slice_in_dim(row, new, start, axis=0))(
        buffer, update, index)


class KVCache(NamedTuple):
    """Keys and values of one attention layer, each (B, T, H, Dh), preallocated to T slots."""

    keys: jax.Array
    values: jax.Array

    def write(self, keys: jax.Array, values: jax.Array, index: jax.Array) -> "KVCache":
        """keys, values: (B, Lq, H, Dh) written at slots index[b] .. index[b] + Lq - 1 of row b."""
        return KVCache(write_rows(self.keys, keys, index), write_rows(self.values, values, index))


class DecodeState(NamedTuple):
    """What incremental decoding carries from one call to the next (a pytree; shapes fixed at prefill).

    caches: self-attention keys and values per block, (B, T, H, Dh). segment_ids: (B, T) int32, 1 on
    slots that hold a token, 0 on empty ones. index: (B,) int32, the slot of each row's next token.
    cross: cross-attention keys and values per block, (B, Le, H, Dh), and encoder_segment_ids (B, Le)
    (encoder-decoder only). New tokens come right-padded (token segment id 0 = padding); each row's
    padding slots are overwritten by its next tokens.
    """

    caches: tuple[KVCache, ...]
    segment_ids: jax.Array
    index: jax.Array
    cross: tuple[KVCache, ...] = ()
    encoder_segment_ids: jax.Array | None = None

    @classmethod
    def empty(cls, caches: tuple[KVCache, ...], **cross) -> "DecodeState":
        batch, length = caches[0].keys.shape[:2]
        return cls(caches, jnp.zeros((batch, length), jnp.int32), jnp.zeros((batch,), jnp.int32), **cross)

    def query(self, token_segment_ids: jax.Array, *, bidirectional: bool = False) -> tuple[jax.Array, jax.Array]:
        """For new tokens with token_segment_ids (B, Lq): (slots (B, Lq) int32, mask (B, 1, Lq, T)).

        A token sees the filled slots up to its own (causal), or, with `bidirectional` (a prefix-LM
        prompt), every new token too. Example, T=4, one row filled at slot 0, index 1, two new tokens:
            slots [1 2]      mask  1 1 0 0      (bidirectional:  1 1 1 0
                                   1 1 1 0                       1 1 1 0)
        """
        length = token_segment_ids.shape[1]
        slots = self.index[:, None] + jnp.arange(length, dtype=jnp.int32)[None]
        segment_ids = write_rows(self.segment_ids, token_segment_ids, self.index)
        last_visible = slots[:, -1:] if bidirectional else slots  # (B, 1|Lq)
        mask = (masks.causal_mask_at(last_visible, self.segment_ids.shape[1])
                & masks.padding_mask(token_segment_ids, segment_ids))
        return slots, mask

    def advance(self, caches: tuple[KVCache, ...], token_segment_ids: jax.Array) -> "DecodeState":
        """The state after the tokens with token_segment_ids (B, Lq) were written into `caches`."""
        return self._replace(
            caches=caches,
            segment_ids=write_rows(self.segment_ids, token_segment_ids, self.index),
            index=self.index + jnp.sum(token_segment_ids > 0, axis=1, dtype=jnp.int32))
