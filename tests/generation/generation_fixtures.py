"""Tiny generative models and the uncached reference that cached generation must reproduce."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs.base import get_config
from pretrain_jax.generate import sample_logits, step_keys
from pretrain_jax.models import build_model

VOCAB = 100
REFERENCE_LEN = 24  # Every uncached forward pass runs on rows padded to this length: one compile.
PROMPT = [17, 42, 23, 88, 51]
PROMPTS = [PROMPT, [64, 13, 29, 77, 35, 90, 48]]  # Every batch is (2, 7): the loop compiles once per model.


def build_tiny(family: str, seed: int = 0, **overrides) -> nnx.Module:
    """2 blocks of width 32 over 100 ids; init_std 0.2 so that logits are far from uniform."""
    c = get_config().model
    c.family = family
    c.num_layers, c.d_model, c.num_heads, c.d_ff, c.max_len = 2, 32, 4, 64, 32
    c.init_std = 0.2
    for key, value in overrides.items():
        setattr(c, key, value)
    with nnx.use_eager_sharding(False):
        return build_model(c, VOCAB, rngs=nnx.Rngs(seed))


@nnx.jit
def _forward(model, batch):
    return model(batch).logits["lm"]


_sample = jax.jit(sample_logits)


def _padded(ids: list[int]) -> tuple[jax.Array, jax.Array]:
    """ids -> (tokens (1, REFERENCE_LEN), segment_ids (1, REFERENCE_LEN)): one document, then padding."""
    tokens = np.zeros((1, REFERENCE_LEN), np.int32)
    tokens[0, : len(ids)] = ids
    return jnp.asarray(tokens), jnp.asarray((np.arange(REFERENCE_LEN) < len(ids)).astype(np.int32)[None])


def uncached_logits(model, prompt: list[int], generated: list[int], *, prefix_lm: bool = False) -> np.ndarray:
    """(V,) logits of the token after `generated`, from the full model on the whole sequence."""
    if hasattr(model, "encoder"):  # encoder-decoder: decoder inputs start with the start token 0.
        encoder_inputs, encoder_segment_ids = _padded(prompt)
        decoder_inputs, decoder_segment_ids = _padded([0, *generated])
        batch = {"encoder_inputs": encoder_inputs, "encoder_segment_ids": encoder_segment_ids,
                 "decoder_inputs": decoder_inputs, "decoder_segment_ids": decoder_segment_ids}
        last = len(generated)
    else:
        inputs, segment_ids = _padded([*prompt, *generated])
        batch = {"inputs": inputs, "segment_ids": segment_ids,
                 "positions": jnp.arange(REFERENCE_LEN, dtype=jnp.int32)[None] * segment_ids}
        # Always given (all False = plain causal), so prefix LM needs no second compile.
        batch["prefix_mask"] = (jnp.arange(REFERENCE_LEN)[None] < len(prompt)) & prefix_lm
        last = len(prompt) + len(generated) - 1
    return np.asarray(_forward(model, batch)[0, last])


def uncached_generate(model, prompt: list[int], max_new_tokens: int, *, row: int = 0, temperature=0.0, top_k=0,
                      top_p=1.0, seed=0, prefix_lm=False) -> tuple[list[int], np.ndarray]:
    """Generation without a cache: re-runs the full model on the growing sequence for every token,
    drawing as batch row `row` does. -> (tokens, logits (N, V))."""
    key = jax.random.key(seed)
    tokens, all_logits = [], []
    for step in range(max_new_tokens):
        logits = uncached_logits(model, prompt, tokens, prefix_lm=prefix_lm)
        keys = step_keys(key, jnp.int32(step), row + 1)[row:]
        token = _sample(keys, jnp.asarray(logits)[None], jnp.float32(temperature), jnp.int32(top_k),
                        jnp.float32(top_p))
        tokens.append(int(token[0]))
        all_logits.append(logits)
    return tokens, np.stack(all_logits)
