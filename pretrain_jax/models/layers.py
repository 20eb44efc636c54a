"""Transformer layers shared by every family: dense, norms, embeddings, attention, MLP, blocks.

Every parameter carries logical axis names (`vocab`, `embed`, `embed_in`, `mlp`, `heads`, `kv`,
`pos`, `type`, `norm`, ...); the trainer maps them to mesh axes. Parameters are stored in
`spec.param_dtype`, computation runs in `spec.dtype`, and norm statistics, softmax and logits are
float32. Dropout is active only when a call gets `rngs` (an `nnx.Rngs` with a `dropout` stream); the
modules hold no RNG state.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from pretrain_jax.models.cache import KVCache
from pretrain_jax.models.spec import ModelSpec

Names = tuple[str, ...]


def make_param(rngs: nnx.Rngs, init: Callable, shape: tuple[int, ...], names: Names, dtype) -> nnx.Param:
    """A parameter of `shape` initialised by `init`, annotated with logical axis `names`."""
    return nnx.Param(nnx.with_partitioning(init, names)(rngs.params(), shape, dtype))


def gather(hidden: jax.Array, positions: jax.Array) -> jax.Array:
    """hidden: (B, L, D), positions: (B, P) int32 -> (B, P, D)."""
    return jnp.take_along_axis(hidden, positions[..., None], axis=1)


def dropout(x: jax.Array, rate: float, rngs: nnx.Rngs | None) -> jax.Array:
    """Inverted dropout; the identity when `rngs` is None (deterministic) or `rate` is 0."""
    if rngs is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rngs.dropout(), 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def activate(name: str, x: jax.Array) -> jax.Array:
    """Modules keep the activation's name, not a function: the graphdef must compare equal across
    builds of one config, so that jit caches hit."""
    if name == "relu":
        return jax.nn.relu(x)
    return jax.nn.gelu(x, approximate=name == "gelu_tanh")


class Dense(nnx.Module):
    """x: (..., in_dim) -> (..., out_dim), kernel named `names` = (in axis, out axis)."""

    def __init__(self, in_dim: int, out_dim: int, names: Names, spec: ModelSpec, *, rngs: nnx.Rngs,
                 use_bias: bool | None = None):
        init = nnx.initializers.normal(spec.init_std)
        self.kernel = make_param(rngs, init, (in_dim, out_dim), names, spec.param_dtype)
        use_bias = spec.use_bias if use_bias is None else use_bias
        self.bias = (make_param(rngs, nnx.initializers.zeros, (out_dim,), names[1:], spec.param_dtype)
                     if use_bias else None)
        self.dtype = spec.dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.einsum("...i,io->...o", x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        return y if self.bias is None else y + self.bias[...].astype(self.dtype)


class Norm(nnx.Module):
    """LayerNorm or RMSNorm over the last axis, statistics in float32. x: (..., dim)."""

    def __init__(self, dim: int, spec: ModelSpec, *, rngs: nnx.Rngs, eps: float = 1e-6):
        self.kind = spec.norm
        self.eps = eps
        self.dtype = spec.dtype
        self.scale = make_param(rngs, nnx.initializers.ones, (dim,), ("norm",), spec.param_dtype)
        self.bias = (make_param(rngs, nnx.initializers.zeros, (dim,), ("norm",), spec.param_dtype)
                     if spec.norm == "layernorm" and spec.use_bias else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        if self.kind == "layernorm":
            x = x - jnp.mean(x, axis=-1, keepdims=True)
        x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        x = x * self.scale[...].astype(jnp.float32)
        if self.bias is not None:
            x = x + self.bias[...].astype(jnp.float32)
        return x.astype(self.dtype)


class TokenEmbedding(nnx.Module):
    """Token table (V, E), used for input lookup and as the tied output projection."""

    def __init__(self, vocab_size: int, dim: int, spec: ModelSpec, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(spec.init_std)
        self.table = make_param(rngs, init, (vocab_size, dim), ("vocab", "embed"), spec.param_dtype)
        self.dtype = spec.dtype

    def __call__(self, ids: jax.Array) -> jax.Array:
        """ids: (B, L) int32 -> (B, L, E)."""
        return self.table[...][ids].astype(self.dtype)

    def attend(self, h: jax.Array) -> jax.Array:
        """h: (..., E) -> logits (..., V) float32 (tied output projection)."""
        table = self.table[...].astype(self.dtype)
        return jnp.einsum("...e,ve->...v", h.astype(self.dtype), table, preferred_element_type=jnp.float32)


class Embeddings(nnx.Module):
    """Token + learned position (+ token type) embeddings, then a norm (post-LN models) and dropout.

    tokens, positions, token_types: (B, L) int32 -> (B, L, E). Post-LN models (BERT) normalise the
    embedding sum; pre-LN models (GPT-2, T5) feed it to the first block as is.
    """

    def __init__(self, spec: ModelSpec, *, positions: bool, token_types: bool, rngs: nnx.Rngs):
        dim = spec.embed_dim
        init = nnx.initializers.normal(spec.init_std)
        self.token = TokenEmbedding(spec.vocab_size, dim, spec, rngs=rngs)
        self.position = (make_param(rngs, init, (spec.max_len, dim), ("pos", "embed"), spec.param_dtype)
                         if positions else None)
        self.token_type = (
            make_param(rngs, init, (spec.type_vocab_size, dim), ("type", "embed"), spec.param_dtype)
            if token_types and spec.type_vocab_size > 0 else None)
        self.norm = None if spec.pre_ln else Norm(dim, spec, rngs=rngs)
        self.rate = spec.dropout
        self.dtype = spec.dtype

    def position_embedding(self, positions: jax.Array) -> jax.Array:
        """positions: (B, L) int32 -> (B, L, E)."""
        return self.position[...][positions].astype(self.dtype)

    def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
                 token_types: jax.Array | None = None, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        x = self.token(tokens)
        if self.position is not None:
            x = x + self.position_embedding(positions)
        if self.token_type is not None and token_types is not None:
            x = x + self.token_type[...][token_types].astype(self.dtype)
        if self.norm is not None:
            x = self.norm(x)
        return dropout(x, self.rate, rngs)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, bias: jax.Array | None, *,
              dropout_rate: float, rngs: nnx.Rngs | None, impl: str) -> jax.Array:
    """Scaled dot-product attention with a boolean mask.

    q: (B, Lq, H, Dh); k, v: (B, Lk, H, Dh); mask: (B, 1|H, Lq, Lk) bool, True = may attend;
    bias: (1|B, H, Lq, Lk) float or None. Returns (B, Lq, H, Dh). A query that may attend to
    nothing (padding; the first position of an XLNet query stream) gets exactly 0, computed
    without NaNs on any backend. With attention dropout in training this takes an einsum path;
    otherwise `jax.nn.dot_product_attention` (cuDNN flash attention when impl="cudnn").
    """
    visible = jnp.any(mask, axis=-1, keepdims=True)  # (B, 1|H, Lq, 1)
    mask = mask | ~visible
    if rngs is not None and dropout_rate > 0.0:
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        logits = logits / jnp.sqrt(jnp.float32(q.shape[-1]))
        if bias is not None:
            logits = logits + bias.astype(jnp.float32)
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
        probs = dropout(jax.nn.softmax(logits, axis=-1), dropout_rate, rngs)
        out = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v)
    else:
        bias = None if bias is None else bias.astype(q.dtype)
        out = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, implementation=impl)
    return out * jnp.swapaxes(visible, 1, 2).astype(out.dtype)


class Attention(nnx.Module):
    """Multi-head attention. Kernels (D, H, Dh) / (H, Dh, D) keep `heads` separate for sharding."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        d, h, dh = spec.d_model, spec.num_heads, spec.head_dim
        init = nnx.initializers.normal(spec.init_std)
        pd = spec.param_dtype
        self.query = make_param(rngs, init, (d, h, dh), ("embed", "heads", "kv"), pd)
        self.key = make_param(rngs, init, (d, h, dh), ("embed", "heads", "kv"), pd)
        self.value = make_param(rngs, init, (d, h, dh), ("embed", "heads", "kv"), pd)
        self.out = make_param(rngs, init, (h, dh, d), ("heads", "kv", "embed"), pd)
        if spec.use_bias:
            zeros = nnx.initializers.zeros
            self.query_bias = make_param(rngs, zeros, (h, dh), ("heads", "kv"), pd)
            self.key_bias = make_param(rngs, zeros, (h, dh), ("heads", "kv"), pd)
            self.value_bias = make_param(rngs, zeros, (h, dh), ("heads", "kv"), pd)
            self.out_bias = make_param(rngs, zeros, (d,), ("embed",), pd)
        else:
            self.query_bias = self.key_bias = self.value_bias = self.out_bias = None
        self.dtype = spec.dtype
        self.rate = spec.attention_dropout
        self.impl = spec.attention_impl

    def _project(self, x: jax.Array, kernel: nnx.Param, bias: nnx.Param | None) -> jax.Array:
        """x: (B, L, D) -> (B, L, H, Dh)."""
        y = jnp.einsum("bld,dhk->blhk", x.astype(self.dtype), kernel[...].astype(self.dtype))
        return y if bias is None else y + bias[...].astype(self.dtype)

    def empty_cache(self, batch: int, length: int) -> KVCache:
        """A zeroed cache of this layer's keys and values, each (B=batch, T=length, H, Dh)."""
        _, heads, head_dim = self.key.shape
        zeros = jnp.zeros((batch, length, heads, head_dim), self.dtype)
        return KVCache(zeros, zeros)

    def project_kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x: (B, Lk, D) -> keys, values (B, Lk, H, Dh)."""
        return self._project(x, self.key, self.key_bias), self._project(x, self.value, self.value_bias)

    def attend(self, x: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array,
               bias: jax.Array | None = None, *, rngs: nnx.Rngs | None = None, impl: str | None = None) -> jax.Array:
        """x: (B, Lq, D) queries against projected k, v -> (B, Lq, D). impl overrides the spec's."""
        q = self._project(x, self.query, self.query_bias)
        o = attention(q, k, v, mask, bias, dropout_rate=self.rate, rngs=rngs, impl=impl or self.impl)
        y = jnp.einsum("blhk,hkd->bld", o, self.out[...].astype(self.dtype))
        return y if self.out_bias is None else y + self.out_bias[...].astype(self.dtype)

    def __call__(self, x: jax.Array, context: jax.Array, mask: jax.Array,
                 bias: jax.Array | None = None, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """x: (B, Lq, D) attends to context: (B, Lk, D) under mask (B, 1|H, Lq, Lk) -> (B, Lq, D)."""
        k, v = self.project_kv(context)
        return self.attend(x, k, v, mask, bias, rngs=rngs)


class Mlp(nnx.Module):
    """x: (..., D) -> dense (D, F) -> activation -> dense (F, D)."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.wi = Dense(spec.d_model, spec.d_ff, ("embed", "mlp"), spec, rngs=rngs)
        self.wo = Dense(spec.d_ff, spec.d_model, ("mlp", "embed"), spec, rngs=rngs)
        self.activation = spec.activation

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.wo(activate(self.activation, self.wi(x)))


# spec.remat -> what jax.checkpoint keeps of a block for the backward pass ("none": everything, no
# recomputation). "full" keeps only the block's inputs; the dots policies keep matmul outputs.
REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def rematerialised(method: Callable, remat: str) -> Callable:
    """`method(module, *args)`, recomputed in the backward pass under the policy named `remat`."""
    if remat == "none":
        return method
    return nnx.remat(method, policy=REMAT_POLICIES[remat])


class Block(nnx.Module):
    """Self-attention (+ cross-attention) + MLP, each a residual sub-layer, pre- or post-LN.

    pre-LN:  x + dropout(f(norm(x)))      post-LN (BERT):  norm(x + dropout(f(x)))
    With spec.remat != "none", each call is rematerialised (jax.checkpoint) as one unit.
    """

    def __init__(self, spec: ModelSpec, *, cross_attention: bool = False, rngs: nnx.Rngs):
        self.pre_ln = spec.pre_ln
        self.rate = spec.dropout
        self.attention = Attention(spec, rngs=rngs)
        self.attention_norm = Norm(spec.d_model, spec, rngs=rngs)
        if cross_attention:
            self.cross_attention = Attention(spec, rngs=rngs)
            self.cross_attention_norm = Norm(spec.d_model, spec, rngs=rngs)
        else:
            self.cross_attention = self.cross_attention_norm = None
        self.mlp = Mlp(spec, rngs=rngs)
        self.mlp_norm = Norm(spec.d_model, spec, rngs=rngs)
        self.remat = spec.remat

    def _sublayer(self, x: jax.Array, norm: Norm, fn: Callable, rngs: nnx.Rngs | None) -> jax.Array:
        y = dropout(fn(norm(x) if self.pre_ln else x), self.rate, rngs)
        return x + y if self.pre_ln else norm(x + y)

    def __call__(self, x: jax.Array, mask: jax.Array, *, bias: jax.Array | None = None,
                 context: jax.Array | None = None, context_mask: jax.Array | None = None,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        """x: (B, L, D); mask: (B, 1|H, L, L); bias: (1|B, H, L, L) added to self-attention logits;
        context: (B, Lc, D) with context_mask (B, 1|H, L, Lc) for cross-attention. -> (B, L, D)."""
        return rematerialised(Block._forward, self.remat)(self, x, mask, bias, context, context_mask, rngs)

    def _forward(self, x, mask, bias, context, context_mask, rngs):
        x = self._sublayer(x, self.attention_norm,
                           lambda y: self.attention(y, y, mask, bias, rngs=rngs), rngs)
        if self.cross_attention is not None:
            x = self._sublayer(x, self.cross_attention_norm,
                               lambda y: self.cross_attention(y, context, context_mask, rngs=rngs), rngs)
        return self._sublayer(x, self.mlp_norm, self.mlp, rngs)

    def at_positions(self, x: jax.Array, positions: jax.Array, mask: jax.Array, *, bias: jax.Array | None = None,
                     rngs: nnx.Rngs | None = None) -> jax.Array:
        """The block's outputs at `positions` only: x (B, L, D), positions (B, Q) int32, mask
        (B, 1, L, L), bias (1|B, H, L, L) -> (B, Q, D), equal to gathering `block(x, mask, bias=bias)`
        at `positions`. Keys and values come from all L positions; queries, the residuals and the MLP
        run at the Q positions. No cross-attention."""
        return rematerialised(Block._at_positions, self.remat)(self, x, positions, mask, bias, rngs)

    def _at_positions(self, x, positions, mask, bias, rngs):
        k, v = self.attention.project_kv(self.attention_norm(x) if self.pre_ln else x)
        rows = positions[:, None, :, None]
        mask = jnp.take_along_axis(mask, rows, axis=2)  # (B, 1, Q, L)
        if bias is not None:
            bias = jnp.take_along_axis(bias, rows, axis=2)  # (B, H, Q, L); a batch axis of 1 broadcasts.
        x = gather(x, positions)
        x = self._sublayer(x, self.attention_norm,
                           lambda y: self.attention.attend(y, k, v, mask, bias, rngs=rngs), rngs)
        return self._sublayer(x, self.mlp_norm, self.mlp, rngs)

    def two_stream(self, h: jax.Array, g: jax.Array, content_mask: jax.Array, query_mask: jax.Array, *,
                   rngs: nnx.Rngs | None = None) -> tuple[jax.Array, jax.Array]:
        """XLNet: content h and query g (B, L, D) both attend to the content stream, with shared
        weights; keys and values are projected once. Masks: (B, 1, L, L). -> (h, g)."""
        return rematerialised(Block._two_stream, self.remat)(self, h, g, content_mask, query_mask, rngs)

    def _two_stream(self, h, g, content_mask, query_mask, rngs):
        k, v = self.attention.project_kv(self.attention_norm(h) if self.pre_ln else h)
        h = self._sublayer(h, self.attention_norm,
                           lambda y: self.attention.attend(y, k, v, content_mask, rngs=rngs), rngs)
        g = self._sublayer(g, self.attention_norm,
                           lambda y: self.attention.attend(y, k, v, query_mask, rngs=rngs), rngs)
        return self._sublayer(h, self.mlp_norm, self.mlp, rngs), self._sublayer(g, self.mlp_norm, self.mlp, rngs)

    def extend(self, x: jax.Array, mask: jax.Array, cache: KVCache, index: jax.Array, *,
               bias: jax.Array | None = None, cross: KVCache | None = None,
               context_mask: jax.Array | None = None) -> tuple[jax.Array, KVCache]:
        """Incremental decoding, no dropout: x (B, Lq, D) are the tokens for slots index[b] ..
        index[b] + Lq - 1 (index: (B,) int32); their keys and values are written into `cache`
        (B, T, H, Dh) and the queries attend to all T slots under mask (B, 1, Lq, T) with bias
        (1|B, H, Lq, T). cross: the encoder's keys and values (B, Lc, H, Dh), context_mask
        (B, 1, Lq, Lc). -> (x (B, Lq, D), updated cache). XLA attention: flash kernels gain
        nothing for a few queries."""
        cache = cache.write(*self.attention.project_kv(self.attention_norm(x) if self.pre_ln else x), index)
        x = self._sublayer(x, self.attention_norm, lambda y: self.attention.attend(
            y, cache.keys, cache.values, mask, bias, impl="xla"), None)
        if cross is not None:
            x = self._sublayer(x, self.cross_attention_norm, lambda y: self.cross_attention.attend(
                y, cross.keys, cross.values, context_mask, impl="xla"), None)
        return self._sublayer(x, self.mlp_norm, self.mlp, None), cache


class Stack(nnx.Module):
    """(Input projection E -> D) + N blocks (+ final norm when pre-LN). (B, L, E) -> (B, L, D)."""

    def __init__(self, spec: ModelSpec, *, in_dim: int, cross_attention: bool = False, rngs: nnx.Rngs):
        self.in_proj = (Dense(in_dim, spec.d_model, ("embed_in", "embed"), spec, rngs=rngs)
                        if in_dim != spec.d_model else None)
        self.blocks = nnx.List(
            [Block(spec, cross_attention=cross_attention, rngs=rngs) for _ in range(spec.num_layers)])
        self.final_norm = Norm(spec.d_model, spec, rngs=rngs) if spec.pre_ln else None

    def project_in(self, x: jax.Array) -> jax.Array:
        return x if self.in_proj is None else self.in_proj(x)

    def finish(self, x: jax.Array) -> jax.Array:
        return x if self.final_norm is None else self.final_norm(x)

    def __call__(self, x: jax.Array, mask: jax.Array, *, bias: jax.Array | None = None,
                 context: jax.Array | None = None, context_mask: jax.Array | None = None,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        x = self.project_in(x)
        for block in self.blocks:
            x = block(x, mask, bias=bias, context=context, context_mask=context_mask, rngs=rngs)
        return self.finish(x)

    def at_positions(self, x: jax.Array, positions: jax.Array, mask: jax.Array, *, bias: jax.Array | None = None,
                     rngs: nnx.Rngs | None = None) -> jax.Array:
        """The stack's outputs at `positions` (B, Q) only: x (B, L, E) -> (B, Q, D), equal to gathering
        `stack(x, mask, bias=bias)` there. Every block but the last runs at all L positions; the last
        (`Block.at_positions`) computes its queries, MLP and the final norm at the Q positions alone,
        which is what a loss read at a few positions (masked LM, BERT's [CLS]) needs."""
        x = self.project_in(x)
        for block in self.blocks[:-1]:
            x = block(x, mask, bias=bias, rngs=rngs)
        return self.finish(self.blocks[-1].at_positions(x, positions, mask, bias=bias, rngs=rngs))

    def extend(self, x: jax.Array, mask: jax.Array, caches: tuple[KVCache, ...], index: jax.Array, *,
               bias: jax.Array | None = None, cross: tuple[KVCache, ...] = (),
               context_mask: jax.Array | None = None) -> tuple[jax.Array, tuple[KVCache, ...]]:
        """`Block.extend` through every block: x (B, Lq, E) -> (B, Lq, D) and the updated caches."""
        x = self.project_in(x)
        updated = []
        for layer, block in enumerate(self.blocks):
            x, cache = block.extend(x, mask, caches[layer], index, bias=bias,
                                    cross=cross[layer] if cross else None, context_mask=context_mask)
            updated.append(cache)
        return self.finish(x), tuple(updated)

    def empty_caches(self, batch: int, length: int) -> tuple[KVCache, ...]:
        """One zeroed self-attention cache (B, T=length, H, Dh) per block."""
        return tuple(block.attention.empty_cache(batch, length) for block in self.blocks)

    def cross_caches(self, context: jax.Array) -> tuple[KVCache, ...]:
        """context: (B, Lc, D) -> each block's cross-attention keys and values, projected once."""
        return tuple(KVCache(*block.cross_attention.project_kv(context)) for block in self.blocks)
