"""Prefix language modelling (T5, UL2's S-denoiser) on a decoder, for the decoder family.

Per packed document with n ordinary tokens, a split s is drawn uniformly from [1, n): the tokens
before the (s+1)-th ordinary token form the prefix, which attends to itself bidirectionally
(`prefix_mask`, within the document) and carries no loss; the rest is causal with loss. So the
last prefix position predicts the first continuation token, and a document with n < 2 is plain
causal LM. Layout and positions are the packed row's.

    tokens / inputs [ 20  21  22  23   1 | 30  31   1 ]     (split s = 2 and s = 1)
    prefix_mask     [  T   T   F   F   F |  T   F   F ]
    lm_targets      [ 21  22  23   1   0 | 31   1   0 ]
    lm_weights      [  0   1   1   1   0 |  1   1   0 ]
"""

import jax.numpy as jnp
import ml_collections

from pretrain_jax.batch import ModelBatch, PackedBatch
from pretrain_jax.objectives import documents, masks
from pretrain_jax.objectives.causal_lm import decoder_batch, next_token_targets
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


def prefix_and_weights(rng, tokens, segment_ids, specials: SpecialIds):
    """(prefix_mask (B, L) bool, lm_weights (B, L) bool) of a random prefix per document."""
    eligible = masks.eligible_tokens(tokens, segment_ids, specials)
    continuation, splittable = documents.random_prefix_noise_mask(rng, eligible, segment_ids)
    start, _ = documents.document_bounds(segment_ids)
    prefix = splittable & (documents.cumsum_within_documents(continuation, start) == 0)
    _, has_next = next_token_targets(tokens, segment_ids)
    next_in_prefix = jnp.pad(prefix[:, 1:], ((0, 0), (0, 1)))
    return prefix, has_next & ~next_in_prefix


@register("prefix_lm", family="decoder", heads=("lm",))
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    del cfg  # no hyper-parameters: the split is uniform, as in T5 and UL2
    if seq_len < 3:
        raise ValueError(f"prefix_lm: data.seq_len={seq_len} is too short (a split needs 2 tokens + EOS)")

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        prefix, weights = prefix_and_weights(rng, packed.tokens, packed.segment_ids, specials)
        return decoder_batch(packed.tokens, packed, weights, prefix_mask=prefix)

    return objective
