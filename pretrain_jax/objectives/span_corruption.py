"""T5 span corruption (google-research/text-to-text-transfer-transformer, t5/data/preprocessors.py),
and the denoising machinery the T5-family objectives share (UL2, the T5 baselines).

As in T5, an objective is `denoise` plus three swappable functions: a noise mask
(`documents.random_spans_noise_mask`, `documents.iid_noise_mask`, `documents.random_prefix_noise_mask`), an
`inputs_fn` and a `targets_fn` (below), each mapping a `Corruption` to an `Emission`.

Packed rows: every document of a row is corrupted on its own (its own counts, spans and sentinels,
its own EOS) and the documents stay separate and in order on both sides: encoder segment k is the
corrupted document k and decoder segment k its targets, so decoder segment k cross-attends to the
right document. Lengths are static: the encoder has data.seq_len tokens and the decoder
`targets_length` (T5's helper by default: 114 for 512). As T5 corrupts 568 raw tokens so that its
inputs + EOS fill 512 exactly, the packed rows hold raw text sized by the objective's row budget
(`span_corruption_budget`): 569 tokens (568 + EOS) at 512, and the packer adds a document to a row
only while the row's inputs and targets, which T5's counts fix from each document's length, still
fit. So no document overflows, and the encoder is full unless the next document would not fit (or
the decoder fills first, in rows of many short documents). A document that cannot be corrupted
(fewer than 2 ordinary tokens) is left out of the example on both sides; so is one that would
overflow, which only rows not packed under the budget (hand-made batches) can hold.

Span corruption of one row (L = 12, density 0.3, mean span 2, vocab_size V; 1 = EOS):

    tokens              [ 20  21  22  23  24  25   1 | 30  31  32   1 |  0 ]
    segment_ids         [  1   1   1   1   1   1   1 |  2   2   2   2 |  0 ]
    noise               [  F   F   F   F   T   T   F |  F   F   T   F |  F ]
    encoder_inputs      [ 20  21  22  23 V-1   1 | 30  31 V-1   1 |  0   0 ]
    encoder_segment_ids [  1   1   1   1   1   1 |  2   2   2   2 |  0   0 ]
    lm_targets          [ V-1 24  25   1 | V-1 32   1 |  0 ... ]        (decoder length from config)
    decoder_inputs      [  0 V-1  24  25 |  0 V-1  32 |  0 ... ]
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax import row_budget
from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives import documents, masks, prefix_sums
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


def compute_input_and_target_lengths(inputs_length: int, noise_density: float, mean_noise_span_length: float):
    """T5's helper: the raw tokens that corrupt to exactly `inputs_length` inputs (with EOS), and
    the targets length that then results: (raw_tokens_length, targets_length).

        compute_input_and_target_lengths(512, 0.15, 3.0) == (568, 114)
    """

    def lengths(tokens_length):
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    # T5's own adjustment: at density 0.5 keep targets no longer than inputs.
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def max_span_count(row_length: int, noise_density: float, mean_noise_span_length: float) -> int:
    """The most noise spans (hence sentinels) any document of a `row_length` row can get."""
    _, spans = documents.t5_span_counts(
        np.arange(2, max(row_length, 3)), noise_density, mean_noise_span_length, xp=np)
    return int(np.max(spans))


def default_targets_length(seq_len: int, noise_density: float, mean_noise_span_length: float) -> int:
    """T5's targets length for inputs of `seq_len` (compute_input_and_target_lengths)."""
    return compute_input_and_target_lengths(seq_len, noise_density, mean_noise_span_length)[1]


def span_costs(noise_density: float, mean_noise_span_length: float, prefix_tokens: int = 0) -> row_budget.CostFn:
    """A document's (inputs, targets) lengths under span corruption, from its n tokens of which e
    ordinary and i special between ordinary ones: n - num_noise + num_spans (+ `prefix_tokens`, UL2's
    mode token) and num_noise + num_spans + 1 (EOS), T5's counts of e; (0, 0) for e < 2, which is
    left out. Both + i at most: a special token inside a noise span splits it in two, each with
    its sentinel, so each costs one more sentinel on both sides when it does.

        n 569, e 568, i 0 (density 0.15, mean 3)  ->  (512, 114)
    """

    def cost(num_tokens, num_eligible, num_interior):
        noise, spans = documents.t5_span_counts(
            np.maximum(num_eligible, 2), noise_density, mean_noise_span_length, xp=np)
        corruptible = num_eligible >= 2
        inputs = num_tokens - noise + spans + num_interior + prefix_tokens
        targets = noise + spans + num_interior + 1
        return np.stack([np.where(corruptible, inputs, 0), np.where(corruptible, targets, 0)], -1)

    return cost


def check_sentinels(budget: row_budget.RowBudget, density, mean, specials: SpecialIds, where: str) -> None:
    """Every document a row of the budget can hold gets a sentinel per noise span."""
    needed = max_span_count(budget.row_length, density, mean)
    if needed > specials.num_sentinels:
        raise ValueError(
            f"{where}: documents of up to {budget.row_length} tokens need up to {needed} sentinels at density"
            f" {density}, mean span {mean}, but tokenizer.num_sentinels={specials.num_sentinels};"
            " raise tokenizer.num_sentinels (and vocab_size with it)"
        )


class Corruption(NamedTuple):
    """A packed row and its noise, as `inputs_fn` and `targets_fn` see it. Every field is (B, L).

    tokens, segment_ids: the packed row.
    noise:           bool, tokens to corrupt (never padding or a special id).
    span_starts:     bool, first token of each run of noise within a document.
    sentinels:       int32, sentinel id of the span each noise token belongs to: the k-th span of
                     a document gets specials.sentinel(k) = vocab_size - 1 - k.
    document_starts, document_ends: bool, first / last position of each document.
    """

    tokens: jax.Array
    segment_ids: jax.Array
    noise: jax.Array
    span_starts: jax.Array
    sentinels: jax.Array
    document_starts: jax.Array
    document_ends: jax.Array


class Emission(NamedTuple):
    """Up to E output tokens per input position, in order: tokens (B, L, E) int32, keep (B, L, E)."""

    tokens: jax.Array
    keep: jax.Array


def describe_corruption(tokens, segment_ids, noise, specials: SpecialIds) -> Corruption:
    start, end = documents.document_bounds(segment_ids)
    index = jnp.arange(tokens.shape[-1], dtype=jnp.int32)
    previous = jnp.pad(noise[..., :-1], ((0, 0), (1, 0))) & (index > start)
    span_starts = noise & ~previous
    span_index = documents.cumsum_within_documents(span_starts, start) - 1
    real = segment_ids > 0
    return Corruption(
        tokens=tokens,
        segment_ids=segment_ids,
        noise=noise,
        span_starts=span_starts,
        sentinels=specials.vocab_size - 1 - span_index,
        document_starts=real & (index == start),
        document_ends=real & (index == end),
    )


def noise_span_to_sentinel(c: Corruption, with_sentinels=True) -> Emission:
    """Inputs: each noise span becomes its sentinel (T5's noise_span_to_unique_sentinel). Where
    `with_sentinels` (bool or (B, L)) is False the noise is dropped instead (T5's drop_noise_tokens).

        tokens [ 20  21  22   1 ]  noise [ F  T  T  F ]  ->  [ 20  V-1  1 ]
    """
    mark = c.span_starts & with_sentinels
    keep = (c.segment_ids > 0) & (~c.noise | mark)
    return Emission(jnp.where(mark, c.sentinels, c.tokens)[..., None], keep[..., None])


def drop_noise_tokens(c: Corruption) -> Emission:
    """Inputs without the noise: [ 20  21  22   1 ], noise [ F  T  T  F ]  ->  [ 20  1 ]."""
    return noise_span_to_sentinel(c, with_sentinels=False)


def noise_to_mask_token(c: Corruption, mask_id: int) -> Emission:
    """Inputs with every noise token replaced by `mask_id` (MASS-style): [ 20  4  4  1 ]."""
    tokens = jnp.where(c.noise, mask_id, c.tokens)
    return Emission(tokens[..., None], (c.segment_ids > 0)[..., None])


def original_tokens(c: Corruption) -> Emission:
    """The document itself, unchanged (targets of MASS-style and deshuffling)."""
    return Emission(c.tokens[..., None], (c.segment_ids > 0)[..., None])


def noise_spans_then_eos(c: Corruption, eos: int, with_sentinels=True) -> Emission:
    """Targets: sentinel_0 span_0 sentinel_1 span_1 ... EOS per document (T5's
    nonnoise_span_to_unique_sentinel, then EOS); where `with_sentinels` is False, the noise tokens
    then EOS (T5's keep_noise_tokens: drop-tokens targets, the prefix-LM continuation).

        tokens [ 20  21  22  23   1 ]  noise [ F  T  F  T  F ]  ->  [ V-1  21  V-2  23  1 ]
    """
    tokens = jnp.stack([c.sentinels, c.tokens, jnp.full_like(c.tokens, eos)], -1)
    keep = jnp.stack([c.span_starts & with_sentinels, c.noise, c.document_ends], -1)
    return Emission(tokens, keep)


def with_document_prefix(emission: Emission, c: Corruption, prefix_tokens, enabled=True) -> Emission:
    """Puts `prefix_tokens` ((B, L), constant per document) first in each document (UL2 modes)."""
    first = c.document_starts & enabled
    tokens = jnp.concatenate([jnp.broadcast_to(prefix_tokens, first.shape)[..., None], emission.tokens], -1)
    return Emission(tokens, jnp.concatenate([first[..., None], emission.keep], -1))


def compact(emission: Emission, segment_ids, length: int):
    """Writes the kept tokens one after another into `length` slots; documents stay in order and
    keep their segment ids. Returns (tokens, segment_ids, positions), each (B, length) int32, 0 after
    the last kept token; positions restart at 0 in each document. Tokens past `length` are lost
    (`denoise` leaves out documents that would not fit first).

        tokens [ [20 -] [99 21] [1 -] | [30 -] ]  keep [ [T F] [T T] [T F] | [T F] ],  length 6
        segment_ids [ 1  1  1 | 2 ]
        ->  tokens [ 20  99  21  1  30  0 ], segment_ids [ 1  1  1  1  2  0 ], positions [ 0  1  2  3  0  0 ]
    """
    batch, seq_len, width = emission.tokens.shape
    keep = emission.keep.reshape(batch, seq_len * width)
    slot = jnp.where(keep, prefix_sums.cumsum(keep) - 1, length)
    rows = jnp.arange(batch)[:, None]
    source_segments = jnp.broadcast_to(segment_ids[..., None], emission.tokens.shape).reshape(batch, -1)
    tokens = jnp.zeros((batch, length), jnp.int32).at[rows, slot].set(
        emission.tokens.reshape(batch, -1).astype(jnp.int32), mode="drop"
    )
    segments = jnp.zeros((batch, length), jnp.int32).at[rows, slot].set(source_segments, mode="drop")
    start, _ = documents.document_bounds(segments)
    positions = jnp.where(segments > 0, jnp.arange(length, dtype=jnp.int32) - start, 0)
    return tokens, segments, positions


def encoder_decoder_batch(encoder, decoder) -> ModelBatch:
    """The encoder_decoder ModelBatch from (tokens, segment_ids, positions) of each side; decoder
    inputs are the targets shifted right within each segment, starting with 0 (T5).

        target ids  [ 99  24  1 | 98  32  1 | 0 ]  ->  decoder_inputs [ 0  99  24 | 0  98  32 | 0 ]
    """
    targets, segments, positions = decoder
    previous_targets = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))
    previous_segments = jnp.pad(segments[:, :-1], ((0, 0), (1, 0)))
    decoder_inputs = jnp.where((previous_segments == segments) & (segments > 0), previous_targets, 0)
    return {
        "encoder_inputs": encoder[0].astype(jnp.int32),
        "encoder_segment_ids": encoder[1].astype(jnp.int32),
        "encoder_positions": encoder[2].astype(jnp.int32),
        "decoder_inputs": decoder_inputs.astype(jnp.int32),
        "decoder_segment_ids": segments,
        "decoder_positions": positions,
        TARGETS: {"lm": Targets(targets, (segments > 0).astype(jnp.float32))},
    }


EmissionFn = Callable[[Corruption], Emission]


def denoise(
    corruption: Corruption,
    corruptible,
    inputs_fn: EmissionFn,
    targets_fn: EmissionFn,
    inputs_length: int,
    targets_length: int,
    max_spans: int | None = None,
) -> ModelBatch:
    """Builds the encoder-decoder batch of a corrupted row (T5's `denoise`, per packed document).

    corruptible: (B, L) bool, documents the noise mask could corrupt; the others are left out.
    Documents whose inputs or targets would end past `inputs_length` / `targets_length`, or that
    have more than `max_spans` noise spans (sentinels), are left out too, with all documents after
    them, so what remains is whole documents that each reassemble into the original.
    """
    start, end = documents.document_bounds(corruption.segment_ids)
    fits = corruptible
    if max_spans is not None:
        fits = fits & (documents.document_totals(corruption.span_starts, start, end) <= max_spans)
    inputs, targets = inputs_fn(corruption), targets_fn(corruption)
    for emission, length in ((inputs, inputs_length), (targets, targets_length)):
        emitted = jnp.where(fits, emission.keep.sum(-1, dtype=jnp.int32), 0)
        through_document = jnp.take_along_axis(prefix_sums.cumsum(emitted), end, axis=-1)
        fits = fits & (through_document <= length)
    inputs = inputs._replace(keep=inputs.keep & fits[..., None])
    targets = targets._replace(keep=targets.keep & fits[..., None])
    segment_ids = corruption.segment_ids
    return encoder_decoder_batch(
        compact(inputs, segment_ids, inputs_length), compact(targets, segment_ids, targets_length)
    )


@dataclasses.dataclass(frozen=True)
class SpanCorruptionSettings:
    """Validated keys of config.objective.t5_span_corruption (targets_length resolved), and the
    row budget they give."""

    noise_density: float
    mean_noise_span_length: float
    targets_length: int
    budget: row_budget.RowBudget

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
        where = "config.objective.t5_span_corruption"
        density, mean = float(cfg.noise_density), float(cfg.mean_noise_span_length)
        validate_span_noise(density, mean, seq_len, where)
        targets_length = validate_targets_length(cfg.targets_length, where)
        if targets_length == 0:
            targets_length = default_targets_length(seq_len, density, mean)
        budget = row_budget.sized_by_cost(
            (seq_len, targets_length), span_costs(density, mean), specials.ordinary_range)
        check_sentinels(budget, density, mean, specials, where)
        return cls(density, mean, targets_length, budget)


def validate_span_noise(density, mean, seq_len: int, where: str) -> None:
    """Clear errors for span-noise settings that cannot work (used by every sentinel objective)."""
    if not 0.0 < density < 1.0:
        raise ValueError(f"{where}: noise_density={density} must be in (0, 1)")
    if not mean >= 1.0:
        raise ValueError(f"{where}: mean_noise_span_length={mean} must be >= 1 token")
    if seq_len < 3:
        raise ValueError(f"{where}: data.seq_len={seq_len} is too short (a document needs 2 tokens + EOS)")


def validate_targets_length(value, where: str) -> int:
    """Checks a configured decoder length: 0 (derive it) or an int >= 3."""
    if not isinstance(value, int) or value < 0 or 0 < value < 3:
        raise ValueError(f"{where}: targets_length={value!r} must be 0 (derived) or an int >= 3")
    return value


def _budget(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int) -> row_budget.RowBudget:
    return SpanCorruptionSettings.from_config(cfg, specials, seq_len).budget


@register("t5_span_corruption", family="encoder_decoder", heads=("lm",), row_budget=_budget)
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    settings = SpanCorruptionSettings.from_config(cfg, specials, seq_len)
    noise_mask_fn = functools.partial(
        documents.random_spans_noise_mask,
        noise_density=settings.noise_density,
        mean_noise_span_length=settings.mean_noise_span_length,
    )

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        eligible = masks.eligible_tokens(packed.tokens, packed.segment_ids, specials)
        noise, corruptible = noise_mask_fn(rng, eligible, packed.segment_ids)
        corruption = describe_corruption(packed.tokens, packed.segment_ids, noise, specials)
        return denoise(
            corruption,
            corruptible,
            inputs_fn=noise_span_to_sentinel,
            targets_fn=functools.partial(noise_spans_then_eos, eos=specials.eos),
            inputs_length=seq_len,
            targets_length=settings.targets_length,
            max_spans=specials.num_sentinels,
        )

    return objective
