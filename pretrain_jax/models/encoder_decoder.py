"""T5-like encoder-decoder: shared embedding, bucketed relative position bias, RMSNorm pre-LN, no biases."""

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.batch import ModelBatch, ModelOutput
from pretrain_jax.models.cache import DecodeState
from pretrain_jax.models.layers import Dense, Embeddings, Stack
from pretrain_jax.models.masks import decoder_mask, segment_mask
from pretrain_jax.models.relative_position import RelativePositionBias
from pretrain_jax.models.spec import ModelSpec


class EncoderDecoder(nnx.Module):
    """Encoder over `encoder_inputs`, decoder over `decoder_inputs` (targets shifted right).

    batch: `encoder_inputs`, `encoder_segment_ids` (B, Le); `decoder_inputs`, `decoder_segment_ids`
    (B, Ld) (the `*_positions` keys are not needed: positions are relative) -> logits "lm" (B, Ld, V).
    Decoder self-attention is causal within its document; decoder document k cross-attends only to
    encoder document k. The embedding covers the full vocabulary, sentinels included.
    """

    segment_key = "encoder_segment_ids"

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.embeddings = Embeddings(spec, positions=False, token_types=False, rngs=rngs)
        self.encoder_bias = RelativePositionBias(spec, bidirectional=True, rngs=rngs)
        self.decoder_bias = RelativePositionBias(spec, bidirectional=False, rngs=rngs)
        self.encoder = Stack(spec, in_dim=spec.embed_dim, rngs=rngs)
        self.decoder = Stack(spec, in_dim=spec.embed_dim, cross_attention=True, rngs=rngs)
        self.out_proj = (Dense(spec.d_model, spec.embed_dim, ("embed", "embed_in"), spec, rngs=rngs)
                         if spec.embed_dim != spec.d_model else None)

    def encode(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """-> encoder hidden states (B, Le, D)."""
        tokens, segment_ids = batch["encoder_inputs"], batch["encoder_segment_ids"]
        length = tokens.shape[1]
        x = self.embeddings(tokens, rngs=rngs)
        return self.encoder(x, segment_mask(segment_ids, segment_ids),
                            bias=self.encoder_bias(length, length), rngs=rngs)

    def decode(self, batch: ModelBatch, encoded: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """encoded: (B, Le, D) -> logits (B, Ld, V) float32."""
        tokens, segment_ids = batch["decoder_inputs"], batch["decoder_segment_ids"]
        length = tokens.shape[1]
        x = self.embeddings(tokens, rngs=rngs)
        hidden = self.decoder(
            x, decoder_mask(segment_ids), bias=self.decoder_bias(length, length), context=encoded,
            context_mask=segment_mask(segment_ids, batch["encoder_segment_ids"]), rngs=rngs)
        return self.logits(hidden)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Decoder hidden states (B, L, D) -> lm logits (B, L, V) float32."""
        if self.out_proj is not None:
            hidden = self.out_proj(hidden)
        return self.embeddings.token.attend(hidden)

    def __call__(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> ModelOutput:
        return ModelOutput({"lm": self.decode(batch, self.encode(batch, rngs=rngs), rngs=rngs)}, {})

    def prefill(self, prompt: jax.Array, lengths: jax.Array, max_new_tokens: int, *,
                prefix_lm: bool = False) -> tuple[DecodeState, jax.Array]:
        """Encodes the prompt once, caches every decoder block's cross-attention keys and values and
        feeds the start token (pad, 0), leaving room for max_new_tokens - 1 more decoder tokens.

        prompt: (B, P) int32, row b's document in its first lengths[b] slots, then padding (encoder
        segment id 1 on real tokens, 0 on padding); lengths: (B,) int32.
        -> (state, logits (B, V) float32 of the first output token).
        """
        if prefix_lm:
            raise ValueError("prefix_lm applies to decoders; the encoder already reads the prompt bidirectionally")
        batch, length = prompt.shape
        encoder_segment_ids = (jnp.arange(length)[None] < lengths[:, None]).astype(jnp.int32)
        encoded = self.encode({"encoder_inputs": prompt, "encoder_segment_ids": encoder_segment_ids})
        state = DecodeState.empty(self.decoder.empty_caches(batch, max_new_tokens),
                                  cross=self.decoder.cross_caches(encoded), encoder_segment_ids=encoder_segment_ids)
        return self.decode_step(state, jnp.zeros((batch,), jnp.int32))

    def decode_step(self, state: DecodeState, tokens: jax.Array) -> tuple[DecodeState, jax.Array]:
        """tokens: (B,) int32, one more decoder token per row -> (state, logits (B, V) of the next)."""
        segment_ids = jnp.ones_like(tokens)[:, None]  # (B, 1)
        slots, mask = state.query(segment_ids)
        bias = self.decoder_bias.between(slots, state.segment_ids.shape[1])
        hidden, caches = self.decoder.extend(
            self.embeddings(tokens[:, None]), mask, state.caches, state.index, bias=bias, cross=state.cross,
            context_mask=segment_mask(segment_ids, state.encoder_segment_ids))
        return state.advance(caches, segment_ids), self.logits(hidden)[:, 0]
