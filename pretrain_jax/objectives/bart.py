"""BART denoising (model family encoder_decoder): noise the documents, reconstruct the originals.

References: the BART paper (Lewis et al. 2019, §2.2 and §5.1) and fairseq's
fairseq/data/denoising_dataset.py. Noises are composable and applied in this order, each acting on
every document of a packed row separately:

  1. sentence permutation  shuffle ceil(rate * S) of a document's S sentences among their places
                           (fairseq `permute_sentence_ratio`; 1.0 = shuffle all, the final recipe)
  2. token masking         each token becomes [MASK] with probability `token_mask_rate`
  3. token deletion        each token is dropped with probability `token_delete_rate`
  4. text infilling        span lengths ~ Poisson(lambda) (fairseq's table of k = 0..127), drawn until
                           ceil(ratio * units) units are covered (the last span trimmed); spans are
                           placed at random without overlap; each becomes ONE [MASK] and a span of
                           length 0 inserts a [MASK]. Units are tokens (the paper, default) or whole
                           words (fairseq counts word starts and masks whole words).
  5. random insertion      ceil(rate * tokens) [MASK]s inserted at uniform places of a document
  6. document rotation     with probability `rotate_rate`, a document is rotated so that a uniformly
                           chosen token starts it

Default (configs/base.py) = the paper's final objective: text infilling (0.3, Poisson 3) plus
sentence permutation. `random_ratio` turns that share of noise tokens into random ordinary ids
(fairseq `--mask-random`, 0.1 in its released run; the paper uses [MASK] only).

Special tokens and padding are never noised: they keep their place in the document (EOS stays last),
while the ordinary tokens and noise tokens move around them. Sentences come from
`packed.sentence_ids` (a special token inside a sentence splits it into two moved pieces).

Lengths. The decoder side keeps the packed layout (Ld = L). The encoder side has
Le = L + `encoder_extra_len` slots: deletion and infilling shrink documents, and the only growth is
from inserted [MASK]s (0-length spans, random insertion). Inserts are kept from the left of the row
while the whole row fits in Le, so an insert is dropped only when the row is already full (never
with the default recipe, which removes about 20% of the tokens).

Example (L = 8, one document: the two sentences swap, then text infilling replaces 44 45 46,
ceil(0.3 * 7) = 3 tokens, by one [MASK]):
    original tokens       [ 40 41 42 | 43 44 45 46 | 1 ]      sentence_ids [ 0 0 0 1 1 1 1 1 ]
    encoder_inputs        [ 43  4 | 40 41 42 |  1  0  0 ]      (4 = [MASK], 0 = pad)
    decoder_inputs        [  0 40 41 42 43 44 45 46 ]
    lm_targets            [ 40 41 42 43 44 45 46  1 ]         lm_weights 1 except on pad
"""

import fractions
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives import documents, masks, prefix_sums, relayout
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds

POISSON_TABLE_SIZE = 128  # fairseq's truncation of the span-length distribution: k = 0 .. 127


class NoiseState(NamedTuple):
    """A packed row being noised. Every field is (B, N); documents stay contiguous in row order.

    fixed:       bool, special tokens and padding of the original: never noised.
    word_starts: bool, True where a piece starts a word (inserted noise tokens start words).
    """

    tokens: jax.Array
    segment_ids: jax.Array
    fixed: jax.Array
    word_starts: jax.Array


class InfillStats(NamedTuple):
    """What text infilling drew, for tests. Every field is (B, N), indexed by draw: span k of a
    document is drawn at the document's first slot + k.

    used:          bool, draws that became spans (0-length ones included).
    drawn_length:  int32, their Poisson length before the budget trim (0 if unused).
    span_length:   int32, units they cover after the trim.
    """

    used: jax.Array
    drawn_length: jax.Array
    span_length: jax.Array


# --------------------------------------------------------------------------------------------------
# Row helpers. Documents are runs of equal segment ids, numbered upwards along the row (the packer's
# layout); per-document values are read at every slot of the document.
# --------------------------------------------------------------------------------------------------


def _at(table, index):
    return jnp.take_along_axis(table, index, axis=1)


def _ceil_fraction(count, rate: fractions.Fraction):
    """ceil(count * rate) in exact integer arithmetic (in float32, ceil(10 * 0.3) = 4).

    `rate` is a Fraction or any pair of int `numerator` / `denominator` (possibly traced values).
    """
    return (count * rate.numerator + rate.denominator - 1) // rate.denominator


def _content(state: NoiseState):
    return (state.segment_ids > 0) & ~state.fixed


def _noise_tokens(rng, shape, random_ratio: float, specials: SpecialIds):
    """[MASK], or with probability random_ratio a uniformly random ordinary id."""
    pick_key, id_key = jax.random.split(rng)
    random_ids = masks.random_ordinary_ids(id_key, shape, specials)
    return jnp.where(jax.random.uniform(pick_key, shape) < random_ratio, random_ids, specials.mask)


def _move_content(state: NoiseState, new_rank) -> NoiseState:
    """Moves content token i to the content slot of row-wide content rank new_rank[i]."""
    tokens, word_starts = relayout.move_within_documents((state.tokens, state.word_starts), _content(state), new_rank)
    return state._replace(tokens=tokens, word_starts=word_starts)


def _relayout(rng, state: NoiseState, keep, before, after, random_ratio, specials) -> NoiseState:
    """`relayout.relayout` of a NoiseState: new slots are noise tokens that start words.

        tokens [ 40 41 42  1  0 ]  keep [ T F T T F ]  before [ 0 1 0 0 0 ]
        ->     [ 40  4 42  1  0 ]                       (4 = [MASK])
    """
    fields = (state.tokens, state.fixed, state.word_starts)
    (tokens, fixed, word_starts), segment_ids, new = relayout.relayout(fields, state.segment_ids, keep, before, after)
    noise = _noise_tokens(rng, tokens.shape, random_ratio, specials)
    return NoiseState(jnp.where(new, noise, tokens), segment_ids, fixed | (segment_ids == 0), word_starts | new)


# --------------------------------------------------------------------------------------------------
# The noises: (rng, state, hyper-parameters) -> state.
# --------------------------------------------------------------------------------------------------


def permute_sentences(rng, state: NoiseState, sentence_ids, rate: fractions.Fraction) -> NoiseState:
    """Shuffles ceil(rate * S) randomly chosen sentences of each document among their own places.

        tokens [ 40 41 | 42 | 43 44  1 ]  sentence_ids [ 0 0 1 2 2 2 ]  rate 1
        ->     [ 43 44 | 40 41 | 42  1 ]
    """
    batch, length = state.tokens.shape
    rows = jnp.arange(batch)[:, None]
    content, seg = _content(state), state.segment_ids
    prev = lambda x, fill: jnp.pad(x[:, :-1], ((0, 0), (1, 0)), constant_values=fill)
    starts = content & (~prev(content, False) | (prev(seg, 0) != seg) | (prev(sentence_ids, -1) != sentence_ids))
    sentence = prefix_sums.cumsum(starts) - 1
    by_sentence = jnp.where(content, sentence, length)
    # Tables over sentences (row order): length and document; unused entries have document 0.
    sentence_len = jnp.zeros((batch, length), jnp.int32).at[rows, by_sentence].add(1, mode="drop")
    sentence_doc = jnp.zeros((batch, length), jnp.int32).at[rows, by_sentence].max(seg, mode="drop")
    first, last = documents.document_bounds(sentence_doc)
    index = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    # Each document's sentences in a random order, in place (unused table entries last).
    by_score = masks.random_order_within(rng, jnp.where(sentence_doc > 0, sentence_doc, length + 1), length + 2)
    score_rank = jnp.zeros((batch, length), jnp.int32).at[rows, by_score].set(index) - first
    selected = (sentence_doc > 0) & (score_rank < _ceil_fraction(last - first + 1, rate))  # lowest scores
    # The r-th selected place of a document (by index) gets its r-th selected sentence by score.
    rank = documents.cumsum_within_documents(selected, first, exclusive=True)
    ordering = jnp.where(selected, _at(by_score, jnp.clip(first + rank, 0, length - 1)), index)
    ordered_start = prefix_sums.exclusive_cumsum(_at(sentence_len, ordering))
    new_start = jnp.zeros((batch, length), jnp.int32).at[rows, ordering].set(ordered_start)
    sentence_c = jnp.clip(sentence, 0, length - 1)
    offset = prefix_sums.exclusive_cumsum(content) - _at(prefix_sums.exclusive_cumsum(sentence_len), sentence_c)
    return _move_content(state, _at(new_start, sentence_c) + offset)


def mask_tokens(rng, state: NoiseState, rate: float, random_ratio: float, specials) -> NoiseState:
    """Each content token becomes [MASK] (or a random id) with probability `rate`."""
    hit_key, noise_key = jax.random.split(rng)
    hit = _content(state) & (jax.random.uniform(hit_key, state.tokens.shape) < rate)
    noise = _noise_tokens(noise_key, state.tokens.shape, random_ratio, specials)
    return state._replace(tokens=jnp.where(hit, noise, state.tokens))


def delete_tokens(rng, state: NoiseState, rate: float, specials) -> NoiseState:
    """Each content token is dropped with probability `rate`; the row closes up."""
    drop = _content(state) & (jax.random.uniform(rng, state.tokens.shape) < rate)
    zeros = jnp.zeros(state.tokens.shape, jnp.int32)
    return _relayout(rng, state, (state.segment_ids > 0) & ~drop, zeros, zeros, 0.0, specials)


def poisson_cdf(lam: float) -> np.ndarray:
    """(POISSON_TABLE_SIZE,) float32 CDF of Poisson(lam) truncated to k < 128 (fairseq's table)."""
    k = np.arange(POISSON_TABLE_SIZE)
    log_pmf = k * math.log(lam) - lam - np.array([math.lgamma(i + 1) for i in k])
    pmf = np.exp(log_pmf - log_pmf.max())
    cdf = np.cumsum(pmf / pmf.sum())
    cdf[-1] = 1.0
    return cdf.astype(np.float32)


def infill_spans(
    rng, state: NoiseState, ratio: fractions.Fraction, length_cdf, by_word: bool, random_ratio, specials
) -> tuple[NoiseState, InfillStats]:
    """Text infilling: Poisson spans covering ceil(ratio * units) units per document, one [MASK] each.

    Span lengths are drawn until the budget is reached (the last one trimmed to fit); the m spans
    of a document are put in a random order and placed at m sorted uniform gaps among its F units
    left free, so they never overlap; a span of length 0 is a [MASK] inserted at its gap.

        tokens [ 40 41 42 43 44 45 46 47 48 49  1 ]  ratio 0.3: budget 3; spans of 2, 1 and 0
        ->     [ 40  4 43 44  4 46  4 47 48 49  1 ]
    """
    batch, length = state.tokens.shape
    rows = jnp.arange(batch)[:, None]
    seg = state.segment_ids
    keys = jax.random.split(rng, 5)
    content = _content(state)
    unit_starts, _ = masks.unit_and_run_starts(content, seg, state.word_starts if by_word else None)
    unit = jnp.clip(prefix_sums.cumsum(unit_starts) - 1, 0, length - 1)
    start, end = documents.document_bounds(seg)
    doc_units = documents.document_totals(unit_starts, start, end)
    budget = _ceil_fraction(doc_units, ratio)
    k = jnp.arange(length, dtype=jnp.int32) - start  # draw / place number within the document

    # Span k of a document is drawn at slot start + k: documents use disjoint, independent draws.
    u = jax.random.uniform(keys[0], (batch, length))
    drawn = jnp.minimum(jnp.searchsorted(jnp.asarray(length_cdf), u, side="right"), len(length_cdf) - 1)
    drawn_before = documents.cumsum_within_documents(drawn, start, exclusive=True)
    used = (seg > 0) & (drawn_before < budget)
    span_length = jnp.where(used, jnp.minimum(drawn, budget - drawn_before), 0)
    num_spans = documents.document_totals(used, start, end)
    free_units = doc_units - documents.document_totals(span_length, start, end)

    # Place k holds draw (k + shift) mod m: a uniform rotation puts the trimmed span anywhere (the
    # others are exchangeable). Gaps: sorted uniforms from normalised exponential spacings.
    placed = (seg > 0) & (k < num_spans)
    shift = _at(jnp.floor(jax.random.uniform(keys[1], (batch, length)) * num_spans).astype(jnp.int32), start)
    draw = start + jnp.mod(k + shift, jnp.maximum(num_spans, 1))
    place_len = jnp.where(placed, _at(span_length, jnp.clip(draw, 0, length - 1)), 0)
    spacing = jnp.where(placed, jax.random.exponential(keys[2], (batch, length)), 0.0)
    cum = jnp.cumsum(spacing, axis=1)
    cum = cum - _at(cum - spacing, start)
    total = _at(cum, end) + _at(jax.random.exponential(keys[3], (batch, length)), start)
    gap = jnp.minimum(jnp.floor(cum / total * (free_units + 1)).astype(jnp.int32), free_units)

    # Mark the units of each span: it starts after `gap` free units and the spans placed before it.
    placed_before = documents.cumsum_within_documents(place_len, start, exclusive=True)
    span_unit = _at(prefix_sums.exclusive_cumsum(unit_starts), start) + gap + placed_before
    real = placed & (place_len > 0)
    edges = jnp.zeros((batch, length + 1), jnp.int32)
    edges = edges.at[rows, jnp.where(real, span_unit, length + 1)].add(1, mode="drop")
    edges = edges.at[rows, jnp.where(real, span_unit + place_len, length + 1)].add(-1, mode="drop")
    masked = content & _at(prefix_sums.cumsum(edges)[:, :length] > 0, unit)
    head_unit = jnp.zeros((batch, length), bool).at[rows, jnp.where(real, span_unit, length)].set(True, mode="drop")

    empty = placed & (place_len == 0)
    before, after = relayout.gap_inserts(empty, gap, unit_starts & ~masked, content, start, end)
    # Each span's first token becomes its [MASK], so only the 0-length spans can be dropped.
    head = unit_starts & _at(head_unit, unit)
    noise_key, mask_key = jax.random.split(keys[4])
    head_tokens = _noise_tokens(mask_key, (batch, length), random_ratio, specials)
    state = state._replace(tokens=jnp.where(head, head_tokens, state.tokens))
    noised = _relayout(noise_key, state, (seg > 0) & (~masked | head), before, after, random_ratio, specials)
    return noised, InfillStats(used, jnp.where(used, drawn, 0).astype(jnp.int32), span_length)


def insert_tokens(rng, state: NoiseState, rate: fractions.Fraction, random_ratio, specials) -> NoiseState:
    """Inserts ceil(rate * n) noise tokens at uniform places among a document's n content tokens."""
    batch, length = state.tokens.shape
    gap_key, noise_key = jax.random.split(rng)
    content = _content(state)
    start, end = documents.document_bounds(state.segment_ids)
    doc_tokens = documents.document_totals(content, start, end)
    active = (state.segment_ids > 0) & (jnp.arange(length) - start < _ceil_fraction(doc_tokens, rate))
    gap = jnp.floor(jax.random.uniform(gap_key, (batch, length)) * (doc_tokens + 1)).astype(jnp.int32)
    before, after = relayout.gap_inserts(active, gap, content, content, start, end)
    return _relayout(noise_key, state, state.segment_ids > 0, before, after, random_ratio, specials)


def rotate_documents(rng, state: NoiseState, rate: float) -> NoiseState:
    """With probability `rate` per document, rotates its content to start at a uniform token.

        tokens [ 40 41 42 43  1 ]  start at 42  ->  [ 42 43 40 41  1 ]
    """
    shape = state.tokens.shape
    pick_key, offset_key = jax.random.split(rng)
    content = _content(state)
    start, end = documents.document_bounds(state.segment_ids)
    doc_tokens = documents.document_totals(content, start, end)
    rotate = _at(jax.random.uniform(pick_key, shape) < rate, start)
    offset = _at(jnp.floor(jax.random.uniform(offset_key, shape) * doc_tokens).astype(jnp.int32), start)
    before = prefix_sums.exclusive_cumsum(content)
    base = _at(before, start)
    local = before - base
    rotated = jnp.mod(local - offset, jnp.maximum(doc_tokens, 1))
    return _move_content(state, base + jnp.where(rotate, rotated, local))


# --------------------------------------------------------------------------------------------------
# The objective.
# --------------------------------------------------------------------------------------------------


class BartSettings(NamedTuple):
    """Validated hyper-parameters of config.objective.bart (see configs/base.py)."""

    permute_sentence_rate: fractions.Fraction
    token_mask_rate: float
    token_delete_rate: float
    infill_ratio: fractions.Fraction
    infill_poisson_lambda: float
    infill_by_word: bool
    insert_rate: fractions.Fraction
    rotate_rate: float
    random_ratio: float
    encoder_len: int

    @classmethod
    def from_config(cls, cfg, seq_len: int) -> "BartSettings":
        def rate(name):
            value = float(cfg[name])
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"bart.{name}={cfg[name]} must be in [0, 1]")
            return value

        def exact(name):  # rates used in ceil(rate * count): exact integer arithmetic inside jit
            return fractions.Fraction(rate(name)).limit_denominator(10_000)

        lam = float(cfg.infill_poisson_lambda)
        if cfg.infill_ratio > 0 and not (np.isfinite(lam) and 0.0 < lam <= 64.0):
            raise ValueError(
                f"bart.infill_poisson_lambda={cfg.infill_poisson_lambda} must be in (0, 64] (span table k < 128)"
            )
        if cfg.infill_unit not in ("token", "word"):
            raise ValueError(f"bart.infill_unit={cfg.infill_unit!r} must be 'token' (paper) or 'word' (fairseq)")
        extra = cfg.encoder_extra_len
        if isinstance(extra, bool) or int(extra) != extra or extra < 0:
            raise ValueError(f"bart.encoder_extra_len={extra} must be an integer >= 0 (extra encoder slots)")
        return cls(
            permute_sentence_rate=exact("permute_sentence_rate"),
            token_mask_rate=rate("token_mask_rate"),
            token_delete_rate=rate("token_delete_rate"),
            infill_ratio=exact("infill_ratio"),
            infill_poisson_lambda=lam,
            infill_by_word=cfg.infill_unit == "word",
            insert_rate=exact("insert_rate"),
            rotate_rate=rate("rotate_rate"),
            random_ratio=rate("random_ratio"),
            encoder_len=seq_len + int(extra),
        )


def initial_state(packed: PackedBatch, specials: SpecialIds, length: int) -> NoiseState:
    """The packed rows as a NoiseState of `length` >= L slots (the extra slots are padding)."""
    tokens = jnp.asarray(packed.tokens, jnp.int32)
    segment_ids = jnp.asarray(packed.segment_ids, jnp.int32)
    eligible = masks.eligible_tokens(tokens, segment_ids, specials)
    word_starts = eligible if packed.word_starts is None else eligible & jnp.asarray(packed.word_starts, bool)
    grow = lambda x, fill: jnp.pad(x, ((0, 0), (0, length - x.shape[1])), constant_values=fill)
    return NoiseState(grow(tokens, specials.pad), grow(segment_ids, 0), grow(~eligible, True), grow(word_starts, False))


def noise(rng, packed: PackedBatch, settings: BartSettings, specials: SpecialIds) -> NoiseState:
    """Applies the enabled noises in the fixed order to every document of the rows."""
    s = settings
    keys = jax.random.split(rng, 6)
    state = initial_state(packed, specials, s.encoder_len)
    if s.permute_sentence_rate > 0:
        if packed.sentence_ids is None:
            raise ValueError("bart.permute_sentence_rate > 0 needs packed.sentence_ids from the packer")
        extra = s.encoder_len - packed.tokens.shape[1]
        sentence_ids = jnp.pad(jnp.asarray(packed.sentence_ids, jnp.int32), ((0, 0), (0, extra)))
        state = permute_sentences(keys[0], state, sentence_ids, s.permute_sentence_rate)
    if s.token_mask_rate > 0:
        state = mask_tokens(keys[1], state, s.token_mask_rate, s.random_ratio, specials)
    if s.token_delete_rate > 0:
        state = delete_tokens(keys[2], state, s.token_delete_rate, specials)
    if s.infill_ratio > 0:
        if s.infill_by_word and packed.word_starts is None:
            raise ValueError("bart.infill_unit='word' needs packed.word_starts from the packer")
        cdf = poisson_cdf(s.infill_poisson_lambda)
        state, _ = infill_spans(keys[3], state, s.infill_ratio, cdf, s.infill_by_word, s.random_ratio, specials)
    if s.insert_rate > 0:
        state = insert_tokens(keys[4], state, s.insert_rate, s.random_ratio, specials)
    if s.rotate_rate > 0:
        state = rotate_documents(keys[5], state, s.rotate_rate)
    return state


@register("bart", family="encoder_decoder", heads=("lm",))
def build(cfg, specials: SpecialIds, seq_len: int):
    """cfg = config.objective.bart -> objective(rng, packed) -> encoder_decoder ModelBatch."""
    settings = BartSettings.from_config(cfg, seq_len)

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        noised = noise(rng, packed, settings, specials)
        slots = jnp.arange(noised.tokens.shape[1], dtype=jnp.int32)
        starts = documents.document_bounds(noised.segment_ids)[0]
        encoder_positions = jnp.where(noised.segment_ids > 0, slots - starts, 0)
        tokens = jnp.asarray(packed.tokens, jnp.int32)
        segment_ids = jnp.asarray(packed.segment_ids, jnp.int32)
        shift = lambda x: jnp.pad(x[:, :-1], ((0, 0), (1, 0)))
        same_doc = (segment_ids > 0) & (shift(segment_ids) == segment_ids)
        return {
            "encoder_inputs": noised.tokens,
            "encoder_segment_ids": noised.segment_ids,
            "encoder_positions": encoder_positions,
            "decoder_inputs": jnp.where(same_doc, shift(tokens), specials.pad),
            "decoder_segment_ids": segment_ids,
            "decoder_positions": jnp.asarray(packed.positions, jnp.int32),
            # The decoder reconstructs the whole original, EOS included (so it learns to stop).
            TARGETS: {"lm": Targets(tokens, (segment_ids > 0).astype(jnp.float32))},
        }

    return objective
