"""Model FLOPs of a train step and model FLOPs utilisation (MFU).

Counting follows the usual convention (Kaplan et al. 2020; PaLM, Chowdhery et al. 2022, app. B):
only matrix multiplications count, 2 FLOPs per multiply-add, and a training step costs 3x the
forward pass (the backward pass does two matmuls per forward one). Per token of a decoder this is
the familiar 6 N + 12 n_layers d_model L, with N the matmul parameters (the tied LM head included,
embedding lookups excluded) and L the attended length: the full L x L score matrix is counted even
for causal attention, as dense attention kernels compute it. Rematerialisation is not counted
(model FLOPs, not hardware FLOPs).

Family specifics, all derived from the ModelBatch shapes the objective produces:
- encoder: the masked-LM head, and the last block's queries, attention and MLP, run only at the P
  predicted slots per row (+ [CLS] with NSP/SOP), not at all L positions; NSP/SOP adds the pooler
  and classifier per row; ELECTRA adds its generator (at the generator's width, its last block at
  the P slots) and the full discriminator with the per-token replaced-token head.
- encoder_decoder: encoder over Le, decoder over Ld with self-attention over Ld and cross-attention
  over Le (keys and values projected from all Le encoder states in every decoder layer).
- two_stream: both streams run every block (keys and values projected once, from the content
  stream) except the last block's content stream, which feeds nothing; the LM head runs at the Np
  predicted slots.

FLOPs per token divide a row's FLOPs by the raw tokens a packed row holds (data.seq_len, or the
objective's row budget: 569 for T5 span corruption at 512), so `flops_per_token * tokens_per_sec`
is the achieved model FLOP/s whatever the family.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.batch import TARGETS
from pretrain_jax.models.spec import ModelSpec

# Dense bfloat16 peak FLOP/s of one JAX device (a GPU, or a TPU chip), by substring of
# `device.device_kind`, most specific first. Sources: NVIDIA H100/H200/A100 datasheets (dense, no
# sparsity); Google Cloud TPU system-architecture pages (per chip).
PEAK_FLOPS_BY_DEVICE_KIND = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM and NVL report "NVIDIA H100 80GB HBM3" / "NVIDIA H100 NVL".
    ("H200", 989e12),
    ("A100", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),  # v5e.
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),  # v5p reports "TPU v5".
    ("TPU v6 lite", 918e12),  # v6e (Trillium).
    ("TPU v6e", 918e12),
)
_MEASURED: dict[str, float] = {}


def _block(spec: ModelSpec, q_len: int, kv_len: int, cross_len: int = 0) -> float:
    """Forward FLOPs of one block for one row: q_len queries attending over kv_len keys (the block's
    inputs; q_len < kv_len when only some positions' outputs are computed)."""
    d, f = spec.d_model, spec.d_ff
    attn = spec.num_heads * spec.head_dim
    flops = 2 * q_len * d * attn * 2 + 2 * kv_len * d * attn * 2  # q and output; k and v projections.
    flops += 2 * 2 * q_len * kv_len * attn  # scores (q k^T) and the weighted sum of values.
    flops += 2 * 2 * q_len * d * f  # MLP in and out.
    if cross_len:
        flops += 2 * q_len * d * attn * 2 + 2 * cross_len * d * attn * 2  # q, out; k, v of the context.
        flops += 2 * 2 * q_len * cross_len * attn
    return flops


def _stack(spec: ModelSpec, length: int, cross_len: int = 0, last_queries: int | None = None) -> float:
    """An input projection (embed_dim != d_model) and every block, over one row of `length`; the last
    block computes its outputs at `last_queries` positions only when given (`Stack.at_positions`)."""
    proj = 2 * length * spec.embed_dim * spec.d_model if spec.embed_dim != spec.d_model else 0
    last = _block(spec, length if last_queries is None else last_queries, length, cross_len)
    return proj + (spec.num_layers - 1) * _block(spec, length, length, cross_len) + last


def _lm_head(spec: ModelSpec, positions: int) -> float:
    """Tied output projection (after a d_model -> embed_dim projection if they differ)."""
    proj = 2 * positions * spec.d_model * spec.embed_dim if spec.embed_dim != spec.d_model else 0
    return proj + 2 * positions * spec.embed_dim * spec.vocab_size


def _mlm_head(spec: ModelSpec, positions: int) -> float:
    """BERT's transform (d_model -> embed_dim) and the tied projection, at the predicted slots only."""
    return 2 * positions * spec.d_model * spec.embed_dim + 2 * positions * spec.embed_dim * spec.vocab_size


def forward_flops_per_row(spec: ModelSpec, batch_shapes: dict[str, tuple[int, ...]]) -> float:
    """Forward-pass model FLOPs for one row of the ModelBatch whose array shapes are `batch_shapes`."""
    d = spec.d_model
    if spec.family == "encoder_decoder":
        enc_len, dec_len = batch_shapes["encoder_inputs"][1], batch_shapes["decoder_inputs"][1]
        return _stack(spec, enc_len) + _stack(spec, dec_len, cross_len=enc_len) + _lm_head(spec, dec_len)
    length = batch_shapes["inputs"][1]
    if "cls" in batch_shapes.get(TARGETS, {}):  # A fine-tuned classifier: the pooled state's pooler only
        return _stack(spec, length) + 2 * d * d  # (its d_model x classes layer is under 1% and left out).
    if spec.family == "decoder":
        return _stack(spec, length) + _lm_head(spec, length)
    if spec.family == "two_stream":
        # Per block: k, v from the content stream once; q, out, scores and MLP for each of two streams.
        # The last block's content stream feeds nothing (predictions come from the query stream).
        attn = spec.num_heads * spec.head_dim
        key_value = 2 * length * d * attn * 2
        per_stream = _block(spec, length, length) - key_value
        blocks = spec.num_layers * (key_value + 2 * per_stream) - per_stream
        proj = 2 * 2 * length * spec.embed_dim * d if spec.embed_dim != d else 0
        return proj + blocks + _lm_head(spec, batch_shapes["plm_positions"][1])
    if spec.family != "encoder":
        raise ValueError(f"no FLOPs formula for model family {spec.family!r}")
    predicted = batch_shapes["mlm_positions"][1] if "mlm_positions" in batch_shapes else 0
    if spec.electra:
        generator = spec.scaled(spec.electra_generator_fraction)
        return (_stack(generator, length, last_queries=predicted) + _mlm_head(generator, predicted)
                + _stack(spec, length) + 2 * length * (d * d + d * 2))
    nsp = "nsp" in batch_shapes.get(TARGETS, {})
    read = predicted + nsp  # The last block's outputs: the slots and [CLS].
    flops = _stack(spec, length, last_queries=read) + _mlm_head(spec, predicted)
    if nsp:
        flops += 2 * (d * d + d * 2)  # Pooler and 2-way classifier at [CLS].
    return flops


def train_flops_per_token(spec: ModelSpec, batch_shapes: dict[str, tuple[int, ...]], row_length: int) -> float:
    """Model FLOPs of a train step (forward + backward = 3 x forward) per packed token."""
    return 3 * forward_flops_per_row(spec, batch_shapes) / row_length


def measure_matmul_flops(device: jax.Device, size: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of a jitted (size x size) float32 matmul on `device`, best of `repeats` (once per kind)."""
    if device.device_kind in _MEASURED:
        return _MEASURED[device.device_kind]
    x = jax.device_put(jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32), device)
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    _MEASURED[device.device_kind] = 2 * size**3 / best
    return _MEASURED[device.device_kind]


def peak_flops_per_device(configured: float, device: jax.Device) -> float:
    """Peak FLOP/s of one device: `configured` if > 0; 0 = the table by device kind, measured on CPU
    (a float32 matmul), unknown accelerators 0; < 0 = 0 (MFU not reported)."""
    if configured > 0:
        return float(configured)
    if configured < 0:
        return 0.0
    for kind, peak in PEAK_FLOPS_BY_DEVICE_KIND:
        if kind.lower() in device.device_kind.lower():
            return peak
    if device.platform == "cpu":
        return measure_matmul_flops(device)
    return 0.0


def mfu(flops_per_token: float, tokens_per_sec: float, peak_per_device: float, num_devices: int) -> float | None:
    """Achieved model FLOP/s over the mesh's peak; None when the peak is unknown."""
    if peak_per_device <= 0:
        return None
    return flops_per_token * tokens_per_sec / (peak_per_device * num_devices)
