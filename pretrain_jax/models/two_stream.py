"""XLNet-like two-stream model for permutation language modelling.

The factorization order arrives as `perm_ranks` (B, L); the (L, L) masks are built here. The
content stream h is a normal encoder stream that sees positions ranked at or before its own; the
query stream g starts from a learned vector plus the position embedding (it knows where it predicts,
never what is there) and sees only the content of positions ranked strictly before its own. Both
streams share every weight. Positions are learned absolute embeddings (XLNet's relative encoding
and segment recurrence are left out).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.batch import ModelBatch, ModelOutput
from pretrain_jax.models.layers import Dense, Embeddings, Stack, dropout, gather, make_param
from pretrain_jax.models.masks import permutation_masks, segment_mask
from pretrain_jax.models.spec import ModelSpec


class TwoStream(nnx.Module):
    """batch: `inputs`, `segment_ids`, `positions`, `perm_ranks` (B, L); `plm_positions` (B, Np)
    -> logits "plm" (B, Np, V) from the query stream at those positions."""

    segment_key = "segment_ids"

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.embeddings = Embeddings(spec, positions=True, token_types=False, rngs=rngs)
        self.query_start = make_param(rngs, nnx.initializers.normal(spec.init_std), (spec.embed_dim,),
                                      ("embed",), spec.param_dtype)
        self.stack = Stack(spec, in_dim=spec.embed_dim, rngs=rngs)
        self.out_proj = (Dense(spec.d_model, spec.embed_dim, ("embed", "embed_in"), spec, rngs=rngs)
                         if spec.embed_dim != spec.d_model else None)
        self.lm_bias = make_param(rngs, nnx.initializers.zeros, (spec.vocab_size,), ("vocab",),
                                  spec.param_dtype)
        self.rate = spec.dropout
        self.dtype = spec.dtype

    def encode(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """Content stream with full attention within each document (fine-tuning). -> (B, L, D)."""
        segment_ids = batch["segment_ids"]
        x = self.embeddings(batch["inputs"], batch["positions"], rngs=rngs)
        return self.stack(x, segment_mask(segment_ids, segment_ids), rngs=rngs)

    def __call__(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> ModelOutput:
        content_mask, query_mask = permutation_masks(batch["segment_ids"], batch["perm_ranks"])
        h = self.embeddings(batch["inputs"], batch["positions"], rngs=rngs)
        g = self.query_start[...].astype(self.dtype) + self.embeddings.position_embedding(batch["positions"])
        g = dropout(g, self.rate, rngs)
        h, g = self.stack.project_in(h), self.stack.project_in(g)
        for block in self.stack.blocks:
            h, g = block.two_stream(h, g, content_mask, query_mask, rngs=rngs)
        g = gather(self.stack.finish(g), batch["plm_positions"])  # (B, Np, D)
        if self.out_proj is not None:
            g = self.out_proj(g)
        logits = self.embeddings.token.attend(g) + self.lm_bias[...].astype(jnp.float32)
        return ModelOutput({"plm": logits}, {})
