"""GPT-like decoder: embeddings -> N pre-LN blocks, causal within each document -> tied LM head.

Generation (pretrain_jax/generate.py) uses `prefill` on the prompt, then `decode_step` per token,
with a key/value cache per block (`cache.DecodeState`).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.batch import ModelBatch, ModelOutput
from pretrain_jax.models.cache import DecodeState
from pretrain_jax.models.layers import Dense, Embeddings, Stack, gather
from pretrain_jax.models.masks import decoder_mask
from pretrain_jax.models.spec import ModelSpec


class Decoder(nnx.Module):
    """Causal LM over packed rows, optionally a prefix LM.

    batch: `inputs`, `segment_ids`, `positions` (B, L), optional `prefix_mask` (B, L) bool (prefix
    tokens of a document attend to each other bidirectionally) -> logits "lm" (B, L, V).
    """

    segment_key = "segment_ids"

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.embeddings = Embeddings(spec, positions=True, token_types=False, rngs=rngs)
        self.stack = Stack(spec, in_dim=spec.embed_dim, rngs=rngs)
        self.out_proj = (Dense(spec.d_model, spec.embed_dim, ("embed", "embed_in"), spec, rngs=rngs)
                         if spec.embed_dim != spec.d_model else None)

    def encode(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """-> hidden states (B, L, D) after the final norm."""
        x = self.embeddings(batch["inputs"], batch["positions"], rngs=rngs)
        mask = decoder_mask(batch["segment_ids"], batch.get("prefix_mask"))
        return self.stack(x, mask, rngs=rngs)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """hidden: (B, L, D) -> lm logits (B, L, V) float32."""
        if self.out_proj is not None:
            hidden = self.out_proj(hidden)
        return self.embeddings.token.attend(hidden)

    def __call__(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> ModelOutput:
        return ModelOutput({"lm": self.logits(self.encode(batch, rngs=rngs))}, {})

    def prefill(self, prompt: jax.Array, lengths: jax.Array, max_new_tokens: int, *,
                prefix_lm: bool = False) -> tuple[DecodeState, jax.Array]:
        """Runs the prompt through the model once, filling a cache sized for max_new_tokens more.

        prompt: (B, P) int32, row b's document in its first lengths[b] >= 1 slots, then padding;
        lengths: (B,) int32. Each row is one document at positions 0.. (segment id 1), as in training.
        prefix_lm: the prompt tokens attend to each other bidirectionally (`prefix_mask` in training).
        -> (state, logits (B, V) float32 of the token after each prompt).
        """
        batch, length = prompt.shape
        max_len = self.embeddings.position.shape[0]
        if length + max_new_tokens - 1 > max_len:
            raise ValueError(f"a prompt of {length} tokens and {max_new_tokens} new tokens need "
                             f"{length + max_new_tokens - 1} positions; the model has max_len={max_len}")
        segment_ids = (jnp.arange(length)[None] < lengths[:, None]).astype(jnp.int32)
        state = DecodeState.empty(self.stack.empty_caches(batch, length + max_new_tokens - 1))
        state, hidden = self._extend(state, prompt, segment_ids, bidirectional=prefix_lm)
        last = gather(hidden, (lengths - 1)[:, None])  # (B, 1, D)
        return state, self.logits(last)[:, 0]

    def decode_step(self, state: DecodeState, tokens: jax.Array) -> tuple[DecodeState, jax.Array]:
        """tokens: (B,) int32, one more token per row -> (state, logits (B, V) of the token after it)."""
        state, hidden = self._extend(state, tokens[:, None], jnp.ones_like(tokens)[:, None])
        return state, self.logits(hidden)[:, 0]

    def _extend(self, state: DecodeState, tokens: jax.Array, segment_ids: jax.Array, *,
                bidirectional: bool = False) -> tuple[DecodeState, jax.Array]:
        """tokens, segment_ids: (B, Lq) at the next slots -> (state, hidden (B, Lq, D))."""
        slots, mask = state.query(segment_ids, bidirectional=bidirectional)
        # Padding slots past the position table are never attended to; clip them to stay in range.
        positions = jnp.minimum(slots, self.embeddings.position.shape[0] - 1)
        hidden, caches = self.stack.extend(self.embeddings(tokens, positions), mask, state.caches, state.index)
        return state.advance(caches, segment_ids), hidden
