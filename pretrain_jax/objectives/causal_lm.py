"""Causal language modelling (GPT), for the decoder family.

The targets are the inputs shifted left by one within each packed document: the last token of a
document (its EOS) predicts nothing, so no loss crosses a document boundary, and padding carries no
loss. Predicting EOS at the end of a document is weighted, as in GPT: it is how the model learns to
stop.

    tokens / inputs [ 17  52   9   1 | 33   8   1 |  0 ]
    segment_ids     [  1   1   1   1 |  2   2   2 |  0 ]
    targets["lm"]:
      ids           [ 52   9   1   0 |  8   1   0 |  0 ]
      weights       [  1   1   1   0 |  1   1   0 |  0 ]
"""

import jax.numpy as jnp
import ml_collections

from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


def next_token_targets(tokens, segment_ids):
    """(targets (B, L) int32, has_next (B, L) bool): the next token of the same document, else 0."""
    following = jnp.pad(tokens[:, 1:], ((0, 0), (0, 1)))
    following_segment = jnp.pad(segment_ids[:, 1:], ((0, 0), (0, 1)))
    has_next = (segment_ids > 0) & (following_segment == segment_ids)
    return jnp.where(has_next, following, 0).astype(jnp.int32), has_next


def decoder_batch(tokens, packed: PackedBatch, weights, prefix_mask=None) -> ModelBatch:
    """The decoder ModelBatch for rows laid out like `packed` (same documents, same positions)."""
    targets, _ = next_token_targets(tokens, packed.segment_ids)
    batch = {
        "inputs": jnp.asarray(tokens, jnp.int32),
        "segment_ids": jnp.asarray(packed.segment_ids, jnp.int32),
        "positions": jnp.asarray(packed.positions, jnp.int32),
        TARGETS: {"lm": Targets(targets, weights.astype(jnp.float32))},
    }
    if prefix_mask is not None:
        batch["prefix_mask"] = prefix_mask
    return batch


@register("causal_lm", family="decoder", heads=("lm",))
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    del cfg, specials  # no hyper-parameters
    if seq_len < 2:
        raise ValueError(f"causal_lm: data.seq_len={seq_len} is too short to predict a next token")

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        del rng  # deterministic
        _, has_next = next_token_targets(packed.tokens, packed.segment_ids)
        return decoder_batch(packed.tokens, packed, has_next)

    return objective
