"""ELECTRA: a small MLM generator and a discriminator sharing the embeddings (token, position, type).

The generator (width, MLP width and heads scaled by `electra_generator_fraction`, same depth) fills
the masked positions with samples from its own MLM distribution; the discriminator reads the
corrupted row and predicts, for every token, whether it was replaced. The generator's `mlm` logits
train it as a masked LM; the sampled ids are integers, so no gradient flows through them.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.batch import TARGETS, ModelBatch, ModelOutput, Targets
from pretrain_jax.models.heads import MlmHead, RtdHead
from pretrain_jax.models.layers import Embeddings, Stack
from pretrain_jax.models.masks import segment_mask
from pretrain_jax.models.spec import ModelSpec


def sample_key(rngs: nnx.Rngs | None) -> jax.Array:
    """The call's 'sample' stream, else its 'dropout' stream; a fixed key when deterministic."""
    if rngs is None:
        return jax.random.key(0)
    return rngs["sample"]() if "sample" in rngs else rngs.dropout()


def scatter_at(tokens: jax.Array, positions: jax.Array, values: jax.Array, weights: jax.Array):
    """Writes values (B, P) into tokens (B, L) at positions (B, P) where weights > 0.

    Entries with weight 0 (padding of the prediction list) write nothing, even where they repeat a
    real position. Example: tokens [7 8 9], positions [2 2], values [5 6], weights [1 0] -> [7 8 5].
    """
    hit = (positions[:, :, None] == jnp.arange(tokens.shape[1])[None, None, :]) & (weights[:, :, None] > 0)
    value = jnp.max(jnp.where(hit, values[:, :, None], jnp.iinfo(jnp.int32).min), axis=1)
    return jnp.where(jnp.any(hit, axis=1), value, tokens)


class Electra(nnx.Module):
    """batch: the encoder keys plus `mlm_positions` and targets["mlm"] (B, P), with `inputs` already
    masked. Returns logits "mlm" (B, P, V) from the generator and "rtd" (B, L, 2), and the rtd head's
    own targets: ids (B, L) int32 (1 where the discriminator's input differs from the original; a
    sample equal to the original counts as not replaced) and weights (B, L) float32 (1 on real tokens).
    Replacements are sampled from the call's rngs (see `sample_key`).
    """

    segment_key = "segment_ids"

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        generator_spec = spec.scaled(spec.electra_generator_fraction)
        self.embeddings = Embeddings(spec, positions=True, token_types=True, rngs=rngs)
        self.generator = Stack(generator_spec, in_dim=spec.embed_dim, rngs=rngs)
        self.generator_head = MlmHead(generator_spec, rngs=rngs)
        self.discriminator = Stack(spec, in_dim=spec.embed_dim, rngs=rngs)
        self.rtd_head = RtdHead(spec, rngs=rngs)

    def _embed(self, batch: ModelBatch, tokens: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        return self.embeddings(tokens, batch["positions"], batch.get("token_type_ids"), rngs=rngs)

    def encode(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """Discriminator hidden states (B, L, D) of the uncorrupted `inputs` (fine-tuning)."""
        segment_ids = batch["segment_ids"]
        return self.discriminator(self._embed(batch, batch["inputs"], rngs),
                                  segment_mask(segment_ids, segment_ids), rngs=rngs)

    def __call__(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> ModelOutput:
        segment_ids, inputs = batch["segment_ids"], batch["inputs"]
        positions, mlm = batch["mlm_positions"], batch[TARGETS]["mlm"]
        weights = mlm.weights
        mask = segment_mask(segment_ids, segment_ids)
        generated = self.generator.at_positions(self._embed(batch, inputs, rngs), positions, mask, rngs=rngs)
        mlm_logits = self.generator_head(generated, self.embeddings.token)
        samples = jax.random.categorical(sample_key(rngs), jax.lax.stop_gradient(mlm_logits))
        corrupted = scatter_at(inputs, positions, samples.astype(inputs.dtype), weights)
        original = scatter_at(inputs, positions, mlm.ids.astype(inputs.dtype), weights)
        hidden = self.discriminator(self._embed(batch, corrupted, rngs), mask, rngs=rngs)
        replaced = Targets((corrupted != original).astype(jnp.int32), (segment_ids > 0).astype(jnp.float32))
        return ModelOutput({"mlm": mlm_logits, "rtd": self.rtd_head(hidden)}, {"rtd": replaced})
