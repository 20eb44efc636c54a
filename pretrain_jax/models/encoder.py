"""BERT-like encoder: embeddings -> N blocks (post-LN by default) -> masked-LM and NSP/SOP heads.

Token order comes from BERT's learned position table (spec.position_encoding="learned"), or from a
bias on every layer's attention logits: T5's bucketed relative bias ("relative", one learned table
shared by the layers, started at random or at ALiBi's values) or ALiBi's fixed -slope * |distance|
("alibi", as MosaicBERT; symmetric, so nothing but the content tells left from right).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.batch import TARGETS, ModelBatch, ModelOutput
from pretrain_jax.models.heads import ClassificationHead, MlmHead
from pretrain_jax.models.layers import Embeddings, Stack
from pretrain_jax.models.masks import segment_mask
from pretrain_jax.models.relative_position import RelativePositionBias, alibi_bias
from pretrain_jax.models.spec import ModelSpec


class Encoder(nnx.Module):
    """Bidirectional encoder over packed rows; attention stays within each document.

    batch: `inputs`, `segment_ids`, `positions` (B, L), optional `token_type_ids` (B, L);
    `mlm_positions` (B, P) -> logits "mlm" (B, P, V); targets["nsp"] present -> logits "nsp" (B, 2)
    from position 0 ([CLS]).
    """

    segment_key = "segment_ids"

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.position_encoding = spec.position_encoding
        self.num_heads = spec.num_heads
        self.embeddings = Embeddings(spec, positions=spec.position_encoding == "learned", token_types=True, rngs=rngs)
        self.relative_bias = (RelativePositionBias(spec, bidirectional=True, rngs=rngs)
                              if spec.position_encoding == "relative" else None)
        self.stack = Stack(spec, in_dim=spec.embed_dim, rngs=rngs)
        self.mlm_head = MlmHead(spec, rngs=rngs)
        self.nsp_head = ClassificationHead(spec, 2, pooling="cls", rngs=rngs)

    def encode(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """-> hidden states (B, L, D)."""
        x, mask, bias = self._stack_inputs(batch, rngs)
        return self.stack(x, mask, bias=bias, rngs=rngs)

    def encode_at(self, batch: ModelBatch, positions: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """-> hidden states at positions (B, Q) int32: (B, Q, D), equal to gathering `encode(batch)`;
        the last block runs at those positions only."""
        x, mask, bias = self._stack_inputs(batch, rngs)
        return self.stack.at_positions(x, positions, mask, bias=bias, rngs=rngs)

    def _stack_inputs(self, batch: ModelBatch, rngs: nnx.Rngs | None) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """-> embeddings (B, L, E), the document mask (B, 1, L, L) and the position bias or None."""
        segment_ids = batch["segment_ids"]
        x = self.embeddings(batch["inputs"], batch["positions"], batch.get("token_type_ids"), rngs=rngs)
        return x, segment_mask(segment_ids, segment_ids), self._position_bias(x.shape[1])

    def _position_bias(self, length: int) -> jax.Array | None:
        """(1, H, L, L) float32 added to attention logits, or None with learned positions."""
        if self.position_encoding == "relative":
            return self.relative_bias(length, length)
        if self.position_encoding == "alibi":
            return alibi_bias(self.num_heads, length, length)
        return None

    def __call__(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> ModelOutput:
        """The heads read only [CLS] (NSP) and the predicted slots, so the last block runs there alone
        (`encode_at`; exact, since no loss reads the last layer's other outputs). Fine-tuning and
        ELECTRA read every position through `encode`."""
        positions = batch.get("mlm_positions")
        nsp = "nsp" in batch.get(TARGETS, {})
        if nsp:
            cls = jnp.zeros((batch["inputs"].shape[0], 1), jnp.int32)
            positions = cls if positions is None else jnp.concatenate([cls, positions], axis=1)
        if positions is None:
            return ModelOutput({}, {})
        hidden = self.encode_at(batch, positions, rngs=rngs)
        logits = {}
        if nsp:
            logits["nsp"] = self.nsp_head(hidden, batch["segment_ids"], rngs=rngs)  # Reads hidden[:, 0].
            hidden = hidden[:, 1:]
        if "mlm_positions" in batch:
            logits["mlm"] = self.mlm_head(hidden, self.embeddings.token)
        return ModelOutput(logits, {})
