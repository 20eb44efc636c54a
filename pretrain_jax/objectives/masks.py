"""BERT-family masking helpers: eligible tokens, whole-unit grouping, budgets, greedy choice of units.

Pure jax functions on (B, L) arrays with static shapes. Per-document noise (T5 family) lives in
documents.py, BART's moves and insertions in relayout.py.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.objectives import prefix_sums
from pretrain_jax.specials import SpecialIds

# --------------------------------------------------------------------------------------------------
# BERT-family masking: eligible tokens, whole-unit grouping, budgets, greedy choice of units.
# --------------------------------------------------------------------------------------------------


def eligible_tokens(tokens, segment_ids, specials: SpecialIds):
    """(B, L) bool: real ordinary tokens, the only ones that may be corrupted or carry a loss.

    Padding (segment 0) and every special id (pad, EOS, [CLS], [SEP], [MASK], sentinels, ...) are
    excluded.
    """
    ordinary = (tokens >= specials.first_normal_id) & (tokens < specials.normal_id_end)
    return (segment_ids > 0) & ordinary


def random_ordinary_ids(rng, shape, specials: SpecialIds):
    """`shape` int32 ids drawn uniformly from the ordinary ids [first_normal_id, normal_id_end).

    One uint32 draw per id, reduced modulo the number of ordinary ids: the modulo bias is below
    n / 2^32 (2e-6 for a vocabulary of 8192), and it costs half of `jax.random.randint`'s two draws.
    """
    span = specials.normal_id_end - specials.first_normal_id
    offsets = jax.random.bits(rng, shape, jnp.uint32) % jnp.uint32(span)
    return specials.first_normal_id + offsets.astype(jnp.int32)


def unit_and_run_starts(eligible, segment_ids, word_starts=None):
    """Where masking units and runs start: ((B, L) bool, (B, L) bool).

    A run is a maximal stretch of eligible tokens within one document (special tokens, padding and
    document boundaries end it). A unit is a word: a piece marked in `word_starts` plus the
    continuation pieces after it in the same run; every run starts a unit, so a unit never crosses
    a document. With `word_starts=None` every eligible token is its own unit.

        tokens       [ 21  40  41   1 | 30  31   1 |  0 ]    (1 = EOS, 0 = pad)
        segment_ids  [  1   1   1   1 |  2   2   2 |  0 ]
        word_starts  [  T   T   F   T |  F   T   T |  F ]
        unit starts  [  T   T   F   F |  T   T   F |  F ]    (30 starts a run, so a unit)
        run starts   [  T   F   F   F |  T   F   F |  F ]
    """
    prev_eligible = jnp.pad(eligible[:, :-1], ((0, 0), (1, 0)))
    prev_segment = jnp.pad(segment_ids[:, :-1], ((0, 0), (1, 0)))
    run_starts = eligible & (~prev_eligible | (prev_segment != segment_ids))
    if word_starts is None:
        return eligible, run_starts
    return run_starts | (eligible & word_starts), run_starts


def fixed_budget_table(rate: float, max_predictions: int, seq_len: int) -> np.ndarray:
    """(seq_len + 1,) int32: entry k = min(max_predictions, max(1, round(k * rate))).

    The BERT count of tokens to predict for a row with k eligible tokens, computed once on the
    host in Python floats (float64, round half to even) so it matches the reference exactly;
    inside jit it is a table lookup.
    """
    return np.array(
        [min(max_predictions, max(1, round(k * rate))) for k in range(seq_len + 1)], np.int32
    )


def truncated_geometric_probs(p: float, max_len: int) -> np.ndarray:
    """(max_len,) probabilities of lengths 1..max_len: p (1-p)^(l-1), renormalised (SpanBERT).

    SpanBERT's code truncates and renormalises (it does not pile the tail onto max_len), which is
    what gives the paper's mean span of 3.8 words for p = 0.2, max_len = 10.
    """
    lengths = np.arange(1, max_len + 1)
    probs = p * (1.0 - p) ** (lengths - 1)
    return probs / probs.sum()


def sample_lengths(rng, probs: np.ndarray, shape) -> jax.Array:
    """int32 draws of 1..K with probabilities `probs` (K,), by inverse CDF: one uniform per draw,
    where `jax.random.categorical` draws K Gumbels (on the CPU 2.2 of XLNet's 8 ms per 128 x 512)."""
    cdf = jnp.asarray(np.cumsum(probs)[:-1], jnp.float32)
    u = jax.random.uniform(rng, shape)
    return 1 + jnp.sum(u[..., None] >= cdf, axis=-1, dtype=jnp.int32)


def harmonic_probs(n_max: int) -> np.ndarray:
    """(n_max,) probabilities of n = 1..n_max proportional to 1/n (ALBERT n-gram masking)."""
    probs = 1.0 / np.arange(1, n_max + 1)
    return probs / probs.sum()


def position_bits(length: int, caller: str) -> int:
    """Low bits of a uint32 sort key that hold a position in [0, length), at least 1. Rows over 2^24
    tokens are refused, so at least 8 random bits stay above the position."""
    shift = max(1, (length - 1).bit_length())
    if shift > 24:
        raise ValueError(f"{caller} supports rows up to 2^24 tokens, got {length}")
    return shift


def first_in_random_order(scores, eligible, budget):
    """(B, L) bool: the `budget` eligible tokens with the smallest `scores` in each row.

    scores: (B, L) float, i.i.d. uniform in [0, 1) (`jax.random.uniform`: 23 random bits);
    budget: (B,) int32. Rows with fewer eligible tokens than `budget` get all of them.

    Each token gets a distinct uint32 key: its score's bits above its position, so equal scores go
    to the earlier position. Up to L = 512 the key keeps all 23 bits (the order is exactly the
    scores'); longer rows keep the leading 32 - log2 L. A bitwise binary search then finds the
    largest key T with at most `budget` eligible keys <= T: 32 fused compare-and-count passes,
    about 3x faster on the CPU than `lax.top_k` of the scores.
    """
    length = eligible.shape[-1]
    shift = position_bits(length, "first_in_random_order")
    random_part = (scores * 2.0 ** (32 - shift)).astype(jnp.uint32)
    keys = random_part << shift | jnp.arange(length, dtype=jnp.uint32)

    def admit_bit(i, threshold):
        candidate = threshold | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        at_most = jnp.sum(eligible & (keys <= candidate[:, None]), axis=-1, dtype=jnp.int32)
        return jnp.where(at_most <= budget, candidate, threshold)

    # T = 0 admits at most one key, so it is the start for any budget >= 1; budget 0 chooses nothing.
    threshold = jax.lax.fori_loop(0, 32, admit_bit, jnp.zeros(eligible.shape[:1], jnp.uint32))
    return eligible & (keys <= threshold[:, None]) & (budget > 0)[:, None]


def random_order(rng, first):
    """(B, L) int32 positions: those where `first` is True in a uniformly random order, then the rest
    (also shuffled).

    One sort of packed uint32 keys (random bits above, position below), which XLA runs on CPU
    about 15x faster than an argsort of floats. Random parts tie with probability 2^-(31 - log2 L)
    per pair; a tie is broken by position.
    """
    batch, length = first.shape
    shift = position_bits(length, "random_order")
    random_part = jax.random.bits(rng, (batch, length), jnp.uint32) >> (shift + 1)
    keys = (
        (~first).astype(jnp.uint32) << 31
        | random_part << shift
        | jnp.arange(length, dtype=jnp.uint32)
    )
    return (jnp.sort(keys, axis=1) & ((1 << shift) - 1)).astype(jnp.int32)


def random_order_within(rng, group, num_groups: int):
    """(B, L) int32 positions ordered by `group`, each group's positions in a uniformly random order.

    group: (B, L) int32 in [0, num_groups). Example, group [1 1 0 1] -> e.g. [2 3 0 1] or [2 0 1 3].
    Two packed uint32 sorts, no multi-operand sort (on the CPU one packed sort of 128 x 512 took
    2.1 ms where a sort by (group, random float, index) took 16.3 ms): a random permutation of the
    positions (`random_order`), then the positions sorted by (group, place in that permutation).
    """
    batch, length = group.shape
    shift = position_bits(length, "random_order_within")
    if (num_groups - 1).bit_length() + shift > 32:
        raise ValueError(f"random_order_within: {num_groups} groups of rows of {length} do not fit a uint32 key")
    order = random_order(rng, jnp.zeros(group.shape, bool))
    place = jnp.zeros(group.shape, jnp.int32).at[jnp.arange(batch)[:, None], order].set(
        jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), group.shape))
    keys = group.astype(jnp.uint32) << shift | place.astype(jnp.uint32)
    by_place = (jnp.sort(keys, axis=1) & ((1 << shift) - 1)).astype(jnp.int32)
    return jnp.take_along_axis(order, by_place, axis=1)


class UnitSelection(NamedTuple):
    """Result of `select_units`. Every field is (B, L).

    chosen: bool, tokens covered by the accepted spans.
    units:  int32, at the first token of an accepted span, the number of units it covers; else 0.
    rank:   int32, the place of each unit start in the random order the spans were considered.
    """

    chosen: jax.Array
    units: jax.Array
    rank: jax.Array


def _gather(table, index):
    """table (B, N), index (B, L, K) -> (B, L, K) = table[b, index[b, i, k]]."""
    batch, length, k = index.shape
    flat = jnp.take_along_axis(table, index.reshape(batch, length * k), axis=1)
    return flat.reshape(batch, length, k)


def select_units(rng, eligible, unit_starts, run_starts, budget, max_steps: int, length_probs=None):
    """Greedy choice of whole-unit spans in a random order until `budget` tokens are covered.

    The reference loop (BERT whole-word masking, ALBERT n-grams) vectorised with static shapes:
    every unit start is a candidate anchor with a span length l (in units) drawn from
    `length_probs` (lengths 1..K; None: always 1), clipped at the end of its run. The anchors are
    taken in a uniformly random order; each one in turn
      - is shrunk to its longest prefix of whole units that fits the remaining budget,
      - is skipped if not even one unit fits, or if it overlaps an earlier accepted span,
      - is accepted otherwise.
    So a unit is never split and a unit longer than the remaining budget is skipped, not cut.

    eligible, unit_starts, run_starts: (B, L) bool (see `unit_and_run_starts`);
    budget: (B,) int32 tokens to cover per row, at most `max_steps`.
    """
    batch, length = eligible.shape
    order_key, length_key = jax.random.split(rng)
    positions = jnp.arange(length, dtype=jnp.int32)
    rows = jnp.arange(batch)[:, None]

    order = random_order(order_key, unit_starts)  # anchors first, in random order
    rank = jnp.zeros((batch, length), jnp.int32).at[rows, order].set(positions)

    # Tables indexed by unit number (0, 1, ... from the left): its run and one past its last token.
    unit_index = prefix_sums.cumsum(unit_starts) - 1
    next_starts = jnp.pad(unit_starts[:, 1:] | ~eligible[:, 1:], ((0, 0), (0, 1)), constant_values=True)
    unit_end = jnp.zeros((batch, length), jnp.int32).at[
        rows, jnp.where(eligible & next_starts, unit_index, length)
    ].set(positions + 1, mode="drop")
    if length_probs is None:
        anchor_tokens = jnp.take_along_axis(unit_end, jnp.maximum(unit_index, 0), axis=1) - positions
        accepted = accept_in_random_order(order, jnp.where(unit_starts, anchor_tokens, 0), budget)
        chosen = eligible & jnp.take_along_axis(accepted, jnp.maximum(unit_index, 0), axis=1)
        return UnitSelection(chosen=chosen, units=(unit_starts & chosen).astype(jnp.int32), rank=rank)

    run_index = prefix_sums.cumsum(run_starts)
    unit_run = jnp.zeros((batch, length), jnp.int32).at[
        rows, jnp.where(unit_starts, unit_index, length)
    ].set(run_index, mode="drop")
    num_units = unit_starts.sum(axis=1, dtype=jnp.int32)
    max_len = len(length_probs)
    logits = jnp.log(jnp.asarray(length_probs, jnp.float32))
    span_units = jax.random.categorical(length_key, logits, shape=(batch, length)) + 1

    # Candidate k = 1..K: anchor's units w .. w+k-1; valid while inside the run and k <= l.
    k = jnp.arange(1, max_len + 1, dtype=jnp.int32)
    last_unit = unit_index[:, :, None] + k - 1  # (B, L, K)
    last_unit_c = jnp.clip(last_unit, 0, length - 1)
    valid = (
        unit_starts[:, :, None]
        & (last_unit < num_units[:, None, None])
        & (_gather(unit_run, last_unit_c) == run_index[:, :, None])
        & (k <= span_units[:, :, None])
    )
    span_tokens = _gather(unit_end, last_unit_c) - positions[None, :, None]  # (B, L, K)
    covered, units = _spans(valid, span_tokens, rank, budget, max_steps)
    return UnitSelection(chosen=covered, units=units, rank=rank)


def accept_in_random_order(order, anchor_tokens, budget):
    """Non-overlapping units taken in the order `order` while they fit `budget` tokens, each one that
    does not fit skipped: (B, L) bool, True at the unit number (k-th anchor from the left) of each
    accepted unit. select_units for spans of one unit, and XLNet's n-grams beyond num_predict.

    order: (B, L) int32, the anchors' positions first, in the order to consider them
    (`random_order`); anchor_tokens: (B, L) int32, each anchor's token count, 0 elsewhere;
    budget: (B,) int32.

    Units never overlap, so the greedy only skips a unit longer than what is left. In rank order,
    each step accepts the longest run of candidates that fits (a prefix sum), then skips the first
    one that does not; units longer than the budget left are skipped for good. So a few steps do
    what the reference loop does one unit at a time.
    """
    length = order.shape[-1]
    tokens_by_rank = jnp.take_along_axis(anchor_tokens, order, axis=1)  # 0 past the last anchor
    index = jnp.arange(length)

    def step(state):
        accepted, remaining, next_rank, _ = state
        candidate = (index >= next_rank[:, None]) & (tokens_by_rank > 0) & (tokens_by_rank <= remaining[:, None])
        running = prefix_sums.cumsum(jnp.where(candidate, tokens_by_rank, 0))
        take = candidate & (running <= remaining[:, None])
        first_over = jnp.min(jnp.where(candidate & ~take, index, length), axis=1)
        remaining = remaining - jnp.sum(jnp.where(take, tokens_by_rank, 0), axis=1)
        return accepted | take, remaining, first_over + 1, jnp.any(first_over < length)

    init = (jnp.zeros(order.shape, bool), budget.astype(jnp.int32), jnp.zeros(order.shape[:1], jnp.int32),
            jnp.bool_(True))
    accepted_by_rank = jax.lax.while_loop(lambda state: state[3], step, init)[0]
    # Back from rank order to unit numbers (anchors are numbered left to right).
    anchor_accepted = jnp.zeros(order.shape, bool).at[jnp.arange(order.shape[0])[:, None], order].set(
        accepted_by_rank)
    unit_number = prefix_sums.cumsum(anchor_tokens > 0) - 1
    return jnp.zeros(order.shape, bool).at[
        jnp.arange(order.shape[0])[:, None], jnp.where(anchor_accepted, unit_number, length)
    ].set(True, mode="drop")


def _spans(valid, span_tokens, rank, budget, max_steps: int):
    """select_units for multi-unit spans: (covered (B, L) bool, units (B, L) int32).

    Instead of a loop over anchors, each step accepts the next acceptable anchor after the last
    accepted one; a skipped anchor stays unacceptable (the covered set only grows and the budget
    only shrinks), so this is the reference greedy in at most `max_steps` (>= budget) steps.
    """
    batch, length, _ = valid.shape
    positions = jnp.arange(length, dtype=jnp.int32)

    def step(state):
        i, covered, remaining, last_rank, units, _ = state
        fits = valid & (span_tokens <= remaining[:, None, None])
        fit_units = fits.sum(axis=2, dtype=jnp.int32)  # valid k form a prefix
        fit_tokens = jnp.max(jnp.where(fits, span_tokens, 0), axis=2)
        covered_before = jnp.pad(prefix_sums.cumsum(covered), ((0, 0), (1, 0)))
        span_end = jnp.minimum(positions + fit_tokens, length)
        overlap = jnp.take_along_axis(covered_before, span_end, axis=1) > covered_before[:, :length]
        acceptable = (fit_units > 0) & ~overlap & (rank > last_rank[:, None])
        next_rank = jnp.min(jnp.where(acceptable, rank, length), axis=1)
        found = next_rank < length
        pick = acceptable & (rank == next_rank[:, None])  # one-hot, or empty when none is found
        start = jnp.sum(jnp.where(pick, positions, 0), axis=1, keepdims=True)
        size = jnp.sum(jnp.where(pick, fit_tokens, 0), axis=1, keepdims=True)
        covered = covered | ((positions >= start) & (positions < start + size))
        units = units + jnp.where(pick, fit_units, 0)
        last_rank = jnp.where(found, next_rank, last_rank)
        return i + 1, covered, remaining - size[:, 0], last_rank, units, jnp.any(found)

    def keep_going(state):
        return (state[0] < max_steps) & state[5]

    init = (
        jnp.int32(0),
        jnp.zeros((batch, length), bool),
        budget.astype(jnp.int32),
        jnp.full((batch,), -1, jnp.int32),
        jnp.zeros((batch, length), jnp.int32),
        jnp.bool_(True),
    )
    _, covered, _, _, units, _ = jax.lax.while_loop(keep_going, step, init)
    return covered, units


def compact_positions(chosen, max_predictions: int):
    """(B, L) bool -> positions (B, P) int32 ascending, weights (B, P) float32, P = max_predictions.

    Slots past a row's count hold position 0 with weight 0. At most P tokens per row may be chosen.

        chosen    [ F T F T T F ]  P = 4
        positions [ 1 3 4 0 ]
        weights   [ 1 1 1 0 ]
    """
    batch, length = chosen.shape
    slot = jnp.where(chosen, prefix_sums.cumsum(chosen) - 1, max_predictions)
    rows = jnp.arange(batch)[:, None]
    positions = jnp.zeros((batch, max_predictions), jnp.int32).at[rows, slot].set(
        jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length)), mode="drop"
    )
    count = chosen.sum(axis=1)
    weights = (jnp.arange(max_predictions) < count[:, None]).astype(jnp.float32)
    return positions, weights
