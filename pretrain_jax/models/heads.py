"""Output heads: masked LM (tied), sequence classification (NSP/SOP, fine-tuning), ELECTRA RTD.

All logits are float32.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.models.layers import Dense, Norm, TokenEmbedding, activate, dropout, gather, make_param
from pretrain_jax.models.spec import ModelSpec

POOLINGS = ("cls", "last", "mean")


def last_token_index(segment_ids: jax.Array) -> jax.Array:
    """(B, L) -> (B,) index of the last non-padding token. [1 1 1 0 0] -> 2."""
    length = segment_ids.shape[1]
    return length - 1 - jnp.argmax((segment_ids > 0)[:, ::-1], axis=1)


class MlmHead(nnx.Module):
    """BERT's masked-LM head: dense (D -> E) + activation + norm, tied projection, output bias.

    hidden: (B, P, D) -> logits (B, P, V) float32.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.transform = Dense(spec.d_model, spec.embed_dim, ("embed", "embed_in"), spec, rngs=rngs)
        self.norm = Norm(spec.embed_dim, spec, rngs=rngs)
        self.activation = spec.activation
        self.bias = make_param(rngs, nnx.initializers.zeros, (spec.vocab_size,), ("vocab",), spec.param_dtype)

    def __call__(self, hidden: jax.Array, embedding: TokenEmbedding) -> jax.Array:
        h = self.norm(activate(self.activation, self.transform(hidden)))
        return embedding.attend(h) + self.bias[...].astype(jnp.float32)


class ClassificationHead(nnx.Module):
    """Sequence classification from one position: NSP/SOP (n = 2) and fine-tuning.

    pooling="cls": BERT's pooler (dense + tanh) on position 0 ([CLS]), then dropout and a linear
    layer; pooling="last": the last non-padding token (GPT-style); pooling="mean": the average over
    the non-padding tokens (Sentence-BERT); both then dropout and a linear layer.
    hidden: (B, L, D), segment_ids: (B, L) -> logits (B, num_classes) float32.
    """

    def __init__(self, spec: ModelSpec, num_classes: int, *, pooling: str = "cls", rngs: nnx.Rngs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS}")
        self.pooling = pooling
        self.pooler = (Dense(spec.d_model, spec.d_model, ("embed", "mlp"), spec, rngs=rngs, use_bias=True)
                       if pooling == "cls" else None)
        in_names = ("mlp", "classes") if pooling == "cls" else ("embed", "classes")
        self.classifier = Dense(spec.d_model, num_classes, in_names, spec, rngs=rngs, use_bias=True)
        self.rate = spec.dropout

    def __call__(self, hidden: jax.Array, segment_ids: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        if self.pooling == "cls":
            pooled = jnp.tanh(self.pooler(hidden[:, 0]))
        elif self.pooling == "mean":
            real = (segment_ids > 0)[..., None].astype(jnp.float32)
            pooled = (jnp.sum(hidden.astype(jnp.float32) * real, axis=1) / jnp.maximum(real.sum(axis=1), 1.0))
            pooled = pooled.astype(hidden.dtype)
        else:
            pooled = gather(hidden, last_token_index(segment_ids)[:, None])[:, 0]
        pooled = dropout(pooled, self.rate, rngs)
        return self.classifier(pooled).astype(jnp.float32)


class RtdHead(nnx.Module):
    """ELECTRA's discriminator head: dense + activation, then 2 logits (original, replaced) per token.

    hidden: (B, L, D) -> (B, L, 2) float32.
    """

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.dense = Dense(spec.d_model, spec.d_model, ("embed", "mlp"), spec, rngs=rngs)
        self.out = Dense(spec.d_model, 2, ("mlp", "classes"), spec, rngs=rngs)
        self.activation = spec.activation

    def __call__(self, hidden: jax.Array) -> jax.Array:
        return self.out(activate(self.activation, self.dense(hidden))).astype(jnp.float32)
