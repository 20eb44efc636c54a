"""XLNet permutation language modelling with partial prediction (model family two_stream).

Reference: zihangdai/xlnet data_utils.py (`_sample_mask`, `_local_perm`) and the XLNet paper, §2.3
and §3.1 ("a consecutive span of L tokens as prediction targets within a context of KL tokens").

1. Targets: XLNet's `_sample_mask` walk, per document, without its num_predict stop. From the
   document's start: draw n in 1..max_ngram (p proportional to 1/n) and a context of
   ctx = n * mask_alpha // mask_beta tokens (6n at XLNet's 6 / 1), split as l uniform in [0, ctx)
   before and ctx - l after; the n-gram is the n tokens from the first word start at or after
   cur + l, and the walk goes on at its end + ctx - l. As in XLNet, n counts tokens (its loop
   compares the start piece, not the current one, so its "n-gram" is n pieces from a word start,
   as the paper's "span of L tokens" says). XLNet stops the walk at an n-gram that would reach the
   end of its segment, so the last tokens of every segment are targets less often; here that
   n-gram is cut to end with the document's text, and the walk stops after it. An n-gram that would
   cross a special token inside the document is skipped. Word starts are those of
   `masks.unit_and_run_starts` (a "▁" piece, or the first ordinary token after a special one).
2. num_predict (`fit_to_num_predict`). XLNet stops the walk once it has num_predict targets, so when
   the n-grams cover more than 1 token in 6 the end of every segment is thinned (by how much depends
   on how many pieces start a word: the tokenizer). Here the walk covers the whole row; if its
   n-grams hold more than num_predict tokens, whole n-grams are dropped at random (taken in a random
   order while they fit, as `masks.accept_in_random_order`), and when they hold fewer, uniformly
   random eligible tokens top the targets up to num_predict, as XLNet does. So every row predicts
   min(num_predict, eligible tokens) targets, and no position is favoured.
3. Factorization order. Every non-target token has rank 0, so non-targets see one another
   (bidirectional context, as XLNet's rank -1) and never see a target; the targets of a row get
   ranks 1..T in a uniformly random order, so a target sees all non-targets of its document and the
   targets before it. The model builds the masks from the ranks (docs/contracts.md): content stream
   i sees j iff rank[j] <= rank[i], query stream iff rank[j] < rank[i], within a document.

Example (L = 8, max_ngram 1, mask_alpha 1: every n-gram is 1 token with l = 0 and r = 1, so the walk
is cur -> next word start w, target w, cur = w + 2; num_predict 3):
    inputs        [ 40  41  42  43  44  45  46   1 ]
    word_starts   [  T   T   F   T   F   F   T   F ]
    walk          cur 0 -> target 0, cur 2 -> (42 continues a word) target 3, cur 5 -> target 6, cur 8
    plm_positions [ 0  3  6 ]   plm_targets [ 40  43  46 ]   plm_weights [ 1  1  1 ]
    perm_ranks    a random order of 1, 2, 3 at positions 0, 3, 6; 0 elsewhere
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives import documents, masks, prefix_sums
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


class NgramTargets(NamedTuple):
    """Result of `sample_ngram_targets` and `fit_to_num_predict`. Both fields are (B, L).

    targets:    bool, tokens to predict.
    ngram_len:  int32, at the first token of each n-gram among the targets, its length in tokens;
                else 0 (tokens added by the top-up are targets outside any n-gram).
    """

    targets: jax.Array
    ngram_len: jax.Array


def _covered(ngram_len):
    """(B, L) bool: the tokens of the n-grams whose lengths sit at their first tokens."""
    batch, length = ngram_len.shape
    rows = jnp.arange(batch)[:, None]
    index = jnp.arange(length)
    edges = jnp.zeros((batch, length + 1), jnp.int32)
    edges = edges.at[rows, jnp.where(ngram_len > 0, index, length)].add(1)
    edges = edges.at[rows, jnp.where(ngram_len > 0, index + ngram_len, length)].add(-1)
    return prefix_sums.cumsum(edges)[:, :length] > 0


def sample_ngram_targets(rng, eligible, segment_ids, word_starts, *, mask_alpha: int, mask_beta: int,
                         max_ngram: int) -> NgramTargets:
    """XLNet's n-gram walk over every document of each row (step 1 of the module docstring).

    eligible, segment_ids, word_starts: (B, L) (word_starts may be None: every token starts a word).

        eligible     [ T  T  T  T  T  T  F ]     (F: EOS)
        word_starts  [ T  F  T  T  T  T  T ]
        targets      [ F  F  T  T  F  F  F ]     e.g. one 2-token n-gram at a word start
        ngram_len    [ 0  0  2  0  0  0  0 ]
    """
    batch, length = eligible.shape
    rows = jnp.arange(batch)
    index = jnp.arange(length, dtype=jnp.int32)
    unit_starts, _ = masks.unit_and_run_starts(eligible, segment_ids, word_starts)
    doc_start, doc_end = documents.document_bounds(segment_ids)
    # Tables (B, L + 1), read at one position per row and step; entry L stands for "past the row".
    next_start = prefix_sums.cummin(jnp.where(unit_starts, index, length), reverse=True)
    blocked = ~eligible | (index == doc_start)  # an n-gram from p must end before the next of these after p
    next_blocked = prefix_sums.cummin(jnp.where(blocked, index, length), reverse=True)
    run_end = jnp.pad(next_blocked[:, 1:], ((0, 0), (0, 1)), constant_values=length)
    last_eligible = jnp.take_along_axis(prefix_sums.cummax(jnp.where(eligible, index, -1)), doc_end, axis=1)
    text_end = jnp.where(last_eligible >= doc_start, last_eligible + 1, doc_start)  # one past the text

    def pad(table, value):
        return jnp.pad(table, ((0, 0), (0, 1)), constant_values=value)

    next_start, run_end, text_end, real = (
        pad(next_start, length), pad(run_end, length), pad(text_end, length), pad(segment_ids > 0, False))
    probs = masks.harmonic_probs(max_ngram)

    def read(table, at):
        return table[rows, jnp.clip(at, 0, length)]

    def active(state):
        step, cur, _ = state
        return jnp.any(read(real, cur) & (cur < length)) & (step < length)

    def walk(state):
        step, cur, ngram_len = state
        n_key, l_key = jax.random.split(jax.random.fold_in(rng, step))
        n = masks.sample_lengths(n_key, probs, (batch,))
        context = n * mask_alpha // mask_beta
        left = jnp.floor(jax.random.uniform(l_key, (batch,)) * context).astype(jnp.int32)
        going = read(real, cur) & (cur < length)
        begin = read(next_start, cur + left)
        end_of_text = read(text_end, cur)
        ends_document = begin + n >= end_of_text
        n = jnp.minimum(n, end_of_text - begin)  # the last n-gram ends with the text
        kept = going & (n > 0) & (begin + n <= read(run_end, begin))
        ngram_len = ngram_len.at[rows, jnp.where(kept, begin, length)].set(n, mode="drop")
        after_document = read(jnp.pad(doc_end + 1, ((0, 0), (0, 1)), constant_values=length), cur)
        cur = jnp.where(going, jnp.where(ends_document, after_document, begin + n + context - left), length)
        return step + 1, cur, ngram_len

    init = (jnp.int32(0), jnp.zeros((batch,), jnp.int32), jnp.zeros((batch, length), jnp.int32))
    _, _, ngram_len = jax.lax.while_loop(active, walk, init)
    return NgramTargets(targets=_covered(ngram_len), ngram_len=ngram_len)


def fit_to_num_predict(rng, chosen: NgramTargets, eligible, num_predict: int) -> NgramTargets:
    """Step 2 of the module docstring: whole n-grams dropped at random while they hold more than
    `num_predict` tokens, then uniformly random eligible tokens added up to num_predict (or all)."""
    batch, _ = eligible.shape
    order_key, top_up_key = jax.random.split(rng)
    starts = chosen.ngram_len > 0
    budget = jnp.full((batch,), num_predict, jnp.int32)
    accepted = masks.accept_in_random_order(masks.random_order(order_key, starts), chosen.ngram_len, budget)
    ngram_number = jnp.clip(prefix_sums.cumsum(starts) - 1, 0, None)
    ngram_len = jnp.where(starts & jnp.take_along_axis(accepted, ngram_number, axis=1), chosen.ngram_len, 0)
    targets = _covered(ngram_len)
    left = num_predict - targets.sum(axis=1, dtype=jnp.int32)
    scores = jax.random.uniform(top_up_key, eligible.shape)
    top_up = masks.first_in_random_order(scores, eligible & ~targets, left)
    return NgramTargets(targets=targets | top_up, ngram_len=ngram_len)


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


def _validate(cfg, seq_len: int) -> tuple[int, int, int, int]:
    mask_alpha, mask_beta = cfg.mask_alpha, cfg.mask_beta
    max_ngram, num_predict = cfg.max_ngram, cfg.num_predict
    for name, value in (("mask_alpha", mask_alpha), ("mask_beta", mask_beta), ("max_ngram", max_ngram)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"xlnet_plm.{name}={value!r} must be an int >= 1 (XLNet: mask_alpha 6, mask_beta 1,"
                             " max_ngram 5)")
    if not isinstance(num_predict, int) or not 1 <= num_predict <= seq_len:
        raise ValueError(
            f"xlnet_plm.num_predict={num_predict!r} must be an int in [1, data.seq_len={seq_len}]"
            f" (XLNet: 85 at L=512, about 1 token in 6)"
        )
    return mask_alpha, mask_beta, max_ngram, num_predict


@register("xlnet_plm", family="two_stream", heads=("plm",))
def build(cfg, specials: SpecialIds, seq_len: int):
    """cfg = config.objective.xlnet_plm -> objective(rng, packed) -> two_stream ModelBatch."""
    mask_alpha, mask_beta, max_ngram, num_predict = _validate(cfg, seq_len)

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        tokens = jnp.asarray(packed.tokens, jnp.int32)
        segment_ids = jnp.asarray(packed.segment_ids, jnp.int32)
        walk_key, fit_key, order_key = jax.random.split(rng, 3)
        eligible = masks.eligible_tokens(tokens, segment_ids, specials)
        word_starts = None if packed.word_starts is None else jnp.asarray(packed.word_starts, bool)
        walked = sample_ngram_targets(walk_key, eligible, segment_ids, word_starts, mask_alpha=mask_alpha,
                                      mask_beta=mask_beta, max_ngram=max_ngram)
        chosen = fit_to_num_predict(fit_key, walked, eligible, num_predict)
        plm_positions, plm_weights = masks.compact_positions(chosen.targets, num_predict)
        plm_targets = jnp.where(plm_weights > 0, jnp.take_along_axis(tokens, plm_positions, 1), 0)
        return {
            "inputs": tokens,
            "segment_ids": segment_ids,
            "positions": jnp.asarray(packed.positions, jnp.int32),
            "perm_ranks": factorization_ranks(order_key, plm_positions, plm_weights, tokens.shape[1]),
            "plm_positions": plm_positions,
            TARGETS: {"plm": Targets(plm_targets, plm_weights)},
        }

    return objective
