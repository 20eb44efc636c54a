"""XLNet permutation language modelling with partial prediction (model family two_stream).

Reference: zihangdai/xlnet data_utils.py (`_sample_mask`, `_local_perm`) and the XLNet paper, §2.3.

1. Targets (XLNet's `_sample_mask` loop, per document). Each document is read from its start as a
   sequence of units: l context words, an n-gram of n whole words (n in 1..max_ngram, p
   proportional to 1/n: XLNet's `max_gram=5`), then r context words, where l + r = (K - 1) * n and
   l is uniform in [0, (K - 1) * n) as in XLNet. So the n-grams cover about one word in K (K =
   `tokens_per_target`, 6 in the paper; a fractional context is rounded stochastically so the mean
   is exact). XLNet itself uses a context of 6 * n words (`mask_alpha=6`) and then tops the targets
   up with random single tokens to num_predict = 85 ~ 512 / 6; here the context alone sets the rate
   and there is no top-up, so every target belongs to a word-aligned n-gram. As in XLNet, the
   n-gram that would run past the end of its document ends the document's targets (one that would
   cross a special token is skipped). Words are a word-start piece plus its continuation pieces
   (`masks.unit_and_run_starts`). N-grams are kept from the left of the row while their tokens fit
   in `num_predict`; the target lists are padded to `num_predict` with weight 0.
2. Factorization order. Every non-target token has rank 0, so non-targets see one another
   (bidirectional context, as XLNet's rank -1) and never see a target; the targets of a row get
   ranks 1..T in a uniformly random order, so a target sees all non-targets of its document and the
   targets before it. The model builds the masks from the ranks (docs/contracts.md): content stream
   i sees j iff rank[j] <= rank[i], query stream iff rank[j] < rank[i], within a document.

Example (L = 8, K = 3, one document ending with EOS; a 1-gram at 0 and a 2-gram at 3..4, predicted
in the order 4, 0, 3; P = 4):
    inputs        [ 40  41  42  43  44  45  46   1 ]
    perm_ranks    [  2   0   0   3   1   0   0   0 ]
    plm_positions [  0   3   4   0 ]   plm_targets [ 40  43  44   0 ]   plm_weights [ 1  1  1  0 ]
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.batch import ModelBatch, PackedBatch
from pretrain_jax.objectives import documents, masks, prefix_sums
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


class NgramTargets(NamedTuple):
    """Result of `sample_ngram_targets`. Both fields are (B, L).

    targets:    bool, tokens to predict.
    ngram_len:  int32, at the first token of each kept n-gram, its length in words; else 0.
    """

    targets: jax.Array
    ngram_len: jax.Array


def sample_ngram_targets(
    rng, eligible, segment_ids, word_starts, *, tokens_per_target: float, max_ngram: int, max_targets: int
) -> NgramTargets:
    """Chooses word-aligned n-grams covering about 1 / tokens_per_target of the eligible tokens.

    eligible, segment_ids, word_starts: (B, L) (word_starts may be None: every token is a word).
    At most `max_targets` tokens per row are chosen (whole n-grams, from the left).

        eligible     [ T  T  T  T  T  T  F ]     (F: EOS)
        word_starts  [ T  F  T  T  T  T  T ]
        targets      [ F  F  T  T  F  F  F ]     one 2-gram of single-piece words
        ngram_len    [ 0  0  2  0  0  0  0 ]
    """
    batch, length = eligible.shape
    rows = jnp.arange(batch)[:, None]
    unit_starts, run_starts = masks.unit_and_run_starts(eligible, segment_ids, word_starts)
    word_index = prefix_sums.cumsum(unit_starts) - 1  # word of each eligible token
    word_index_c = jnp.clip(word_index, 0, length - 1)
    run_index = prefix_sums.cumsum(run_starts)

    # Tables indexed by word number in the row: its run, and tokens in all words before it.
    word_run = jnp.zeros((batch, length), jnp.int32).at[
        rows, jnp.where(unit_starts, word_index, length)
    ].set(run_index, mode="drop")
    word_len = jnp.zeros((batch, length), jnp.int32).at[
        rows, jnp.where(eligible, word_index, length)
    ].add(1, mode="drop")
    tokens_before = jnp.pad(prefix_sums.cumsum(word_len), ((0, 0), (1, 0)))  # (B, L + 1)

    # Unit k of a document is drawn at its slot start + k (a document has at least as many slots
    # as words), so documents use disjoint, independent draws.
    doc_start, doc_end = documents.document_bounds(segment_ids)
    n_key, context_key, left_key = jax.random.split(rng, 3)
    ngram = masks.sample_lengths(n_key, masks.harmonic_probs(max_ngram), (batch, length))
    context = jnp.floor(
        (tokens_per_target - 1.0) * ngram + jax.random.uniform(context_key, (batch, length))
    ).astype(jnp.int32)
    left = jnp.floor(jax.random.uniform(left_key, (batch, length)) * jnp.maximum(context, 1)).astype(jnp.int32)
    unit_len = ngram + context
    first_in_doc = documents.cumsum_within_documents(unit_len, doc_start, exclusive=True) + left
    doc_words = documents.document_totals(unit_starts, doc_start, doc_end)
    doc_base = jnp.take_along_axis(prefix_sums.exclusive_cumsum(unit_starts), doc_start, 1)
    start = doc_base + first_in_doc  # first word of each n-gram, in the row's word numbering
    end = start + ngram

    inside = (segment_ids > 0) & (first_in_doc + ngram <= doc_words)
    first_c, last_c, end_c = (jnp.clip(w, 0, length - 1) for w in (start, end - 1, end))
    same_run = jnp.take_along_axis(word_run, first_c, 1) == jnp.take_along_axis(word_run, last_c, 1)
    usable = inside & same_run
    size = jnp.take_along_axis(tokens_before, jnp.where(usable, end_c, 0), 1) - jnp.take_along_axis(
        tokens_before, jnp.where(usable, first_c, 0), 1
    )
    kept = usable & (prefix_sums.cumsum(size) <= max_targets)

    edges = jnp.zeros((batch, length + 1), jnp.int32)
    edges = edges.at[rows, jnp.where(kept, start, length + 1)].add(1, mode="drop")
    edges = edges.at[rows, jnp.where(kept, end, length + 1)].add(-1, mode="drop")
    target_word = prefix_sums.cumsum(edges)[:, :length] > 0
    targets = eligible & jnp.take_along_axis(target_word, word_index_c, 1)
    ngram_at_word = jnp.zeros((batch, length), jnp.int32).at[
        rows, jnp.where(kept, start, length)
    ].set(ngram, mode="drop")
    ngram_len = jnp.where(unit_starts, jnp.take_along_axis(ngram_at_word, word_index_c, 1), 0)
    return NgramTargets(targets=targets, ngram_len=ngram_len)


def factorization_ranks(rng, target_positions, target_weights, seq_len: int):
    """(B, L) int32 ranks: 0 for every non-target, 1..T for the T targets in a random order.

    target_positions: (B, P) int32, target_weights: (B, P) float32 (0 = empty slot).

        target_positions [ 0  3  4  0 ]   target_weights [ 1  1  1  0 ]
        ranks            [ 2  0  0  3  1  0  0  0 ]      (order 4, 0, 3)
    """
    batch, num_slots = target_positions.shape
    rows = jnp.arange(batch)[:, None]
    valid = target_weights > 0
    order = masks.random_order(rng, valid)  # The valid slots first, in a random order.
    slot_rank = jnp.zeros((batch, num_slots), jnp.int32).at[rows, order].set(
        jnp.broadcast_to(jnp.arange(num_slots, dtype=jnp.int32), (batch, num_slots))
    )
    return jnp.zeros((batch, seq_len), jnp.int32).at[
        rows, jnp.where(valid, target_positions, seq_len)
    ].set(slot_rank + 1, mode="drop")


def _validate(cfg, seq_len: int) -> tuple[float, int, int]:
    tokens_per_target = float(cfg.tokens_per_target)
    max_ngram, num_predict = int(cfg.max_ngram), int(cfg.num_predict)
    if not (np.isfinite(tokens_per_target) and tokens_per_target >= 1.0):
        raise ValueError(f"xlnet_plm.tokens_per_target={cfg.tokens_per_target} must be >= 1 (1 = predict all)")
    if max_ngram < 1:
        raise ValueError(f"xlnet_plm.max_ngram={cfg.max_ngram} must be >= 1")
    if not 1 <= num_predict <= seq_len:
        raise ValueError(
            f"xlnet_plm.num_predict={cfg.num_predict} must be in [1, data.seq_len={seq_len}]"
            f" (XLNet: 85 at L=512, about L / tokens_per_target)"
        )
    return tokens_per_target, max_ngram, num_predict


@register("xlnet_plm", family="two_stream")
def build(cfg, specials: SpecialIds, seq_len: int):
    """cfg = config.objective.xlnet_plm -> objective(rng, packed) -> two_stream ModelBatch."""
    tokens_per_target, max_ngram, num_predict = _validate(cfg, seq_len)

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        tokens = jnp.asarray(packed.tokens, jnp.int32)
        segment_ids = jnp.asarray(packed.segment_ids, jnp.int32)
        target_key, order_key = jax.random.split(rng)
        eligible = masks.eligible_tokens(tokens, segment_ids, specials)
        chosen = sample_ngram_targets(
            target_key,
            eligible,
            segment_ids,
            packed.word_starts,
            tokens_per_target=tokens_per_target,
            max_ngram=max_ngram,
            max_targets=num_predict,
        )
        plm_positions, plm_weights = masks.compact_positions(chosen.targets, num_predict)
        plm_targets = jnp.where(plm_weights > 0, jnp.take_along_axis(tokens, plm_positions, 1), 0)
        return {
            "inputs": tokens,
            "segment_ids": segment_ids,
            "positions": jnp.asarray(packed.positions, jnp.int32),
            "perm_ranks": factorization_ranks(order_key, plm_positions, plm_weights, tokens.shape[1]),
            "plm_positions": plm_positions,
            "plm_targets": plm_targets,
            "plm_weights": plm_weights,
        }

    return objective
