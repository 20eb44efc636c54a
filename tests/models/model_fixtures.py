"""Tiny model configs and packed rows shared by the model tests (imported by tests/models/*)."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs.base import get_config
from pretrain_jax.batch import Targets
from pretrain_jax.models import build_model

VOCAB = 100


def tiny_model_config(family: str = "encoder", **overrides):
    c = get_config().model
    c.family = family
    c.num_layers = 2
    c.d_model = 32
    c.num_heads = 4
    c.d_ff = 64
    c.max_len = 32
    for key, value in overrides.items():
        setattr(c, key, value)
    return c


def build_tiny(family: str = "encoder", seed: int = 0, **overrides):
    with nnx.use_eager_sharding(False):
        return build_model(tiny_model_config(family, **overrides), VOCAB, rngs=nnx.Rngs(seed))


def packed_row_arrays(segments: list[list[int]], seed: int = 0):
    """segment_ids rows -> (tokens, segment_ids, positions) int32 arrays, tokens random in [13, VOCAB)."""
    seg = np.asarray(segments, np.int32)
    rng = np.random.default_rng(seed)
    tokens = np.where(seg > 0, rng.integers(13, VOCAB, seg.shape), 0).astype(np.int32)
    positions = np.zeros_like(seg)
    for b, row in enumerate(seg):
        for s in set(row.tolist()) - {0}:
            idx = np.nonzero(row == s)[0]
            positions[b, idx] = np.arange(len(idx))
    return jnp.asarray(tokens), jnp.asarray(seg), jnp.asarray(positions)



# Row 0: documents 1 and 2, then padding; row 1: one document filling the row.
SEGMENTS = [[1] * 5 + [2] * 6 + [0] * 5, [1] * 16]
DECODER_SEGMENTS = [[1] * 4 + [2] * 5 + [0] * 3, [1] * 12]


def family_batch(family: str, seed: int = 0) -> dict:
    """A small ModelBatch (B=2, L=16) for `family` ("electra" = the encoder keys ELECTRA needs)."""
    tokens, seg, pos = packed_row_arrays(SEGMENTS, seed)
    if family in ("encoder", "electra"):
        return {
            "inputs": tokens, "segment_ids": seg, "positions": pos,
            "token_type_ids": jnp.zeros_like(tokens).at[:, 3:].set(1),
            "mlm_positions": jnp.array([[1, 3, 6, 9], [0, 2, 7, 15]], jnp.int32),
            "targets": {"mlm": Targets(jnp.array([[20, 21, 22, 23], [24, 25, 26, 27]], jnp.int32),
                                       jnp.ones((2, 4), jnp.float32))},
        }
    if family == "decoder":
        return {"inputs": tokens, "segment_ids": seg, "positions": pos}
    if family == "two_stream":
        ranks = np.random.default_rng(seed).permuted(np.tile(np.arange(16), (2, 1)), axis=1)
        return {"inputs": tokens, "segment_ids": seg, "positions": pos,
                "perm_ranks": jnp.asarray(ranks, jnp.int32),
                "plm_positions": jnp.array([[1, 3, 8], [0, 5, 15]], jnp.int32)}
    if family == "encoder_decoder":
        dec_tokens, dec_seg, dec_pos = packed_row_arrays(DECODER_SEGMENTS, seed + 1)
        return {"encoder_inputs": tokens, "encoder_segment_ids": seg, "encoder_positions": pos,
                "decoder_inputs": dec_tokens, "decoder_segment_ids": dec_seg, "decoder_positions": dec_pos}
    raise ValueError(family)


def build_family(family: str, seed: int = 0, **overrides):
    if family == "electra":
        return build_tiny("encoder", seed, electra=True, **overrides)
    return build_tiny(family, seed, **overrides)


def replace_tokens(batch: dict, key: str, row: int, index, seed: int = 1) -> dict:
    """A copy of `batch` with batch[key][row, index] set to other random ids in [13, VOCAB)."""
    values = np.asarray(batch[key]).copy()
    old = values[row, index]
    new = np.random.default_rng(seed).integers(13, VOCAB - 1, np.shape(old))
    values[row, index] = np.where(new >= old, new + 1, new)  # never the same id
    return dict(batch, **{key: jnp.asarray(values)})


@nnx.jit
def forward(model, batch):
    """model(batch) without dropout, compiled once per model structure and batch shapes."""
    return model(batch)


@nnx.jit
def forward_train(model, batch, rngs):
    """model(batch, rngs=rngs): dropout on."""
    return model(batch, rngs=rngs)


@nnx.jit
def encode(model, batch):
    return model.encode(batch)
