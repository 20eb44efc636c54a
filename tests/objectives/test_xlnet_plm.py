"""xlnet_plm: golden example, visibility invariants over random packings, n-gram statistics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import build_objective, get_spec, masks, xlnet_plm
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)


def plm_config(**overrides):
    cfg = get_config().objective.xlnet_plm
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def jitted(seq_len, **overrides):
    return jax.jit(xlnet_plm.build(plm_config(**overrides), SPECIALS, seq_len))


@functools.cache
def jitted_sampler():
    """sample_ngram_targets (max_ngram 5) vmapped over keys, K and the cap traced: one compile."""

    def sample(rng, eligible, segment_ids, word_starts, tokens_per_target, max_targets):
        return xlnet_plm.sample_ngram_targets(
            rng, eligible, segment_ids, word_starts,
            tokens_per_target=tokens_per_target, max_ngram=5, max_targets=max_targets,
        )

    return jax.jit(jax.vmap(sample, in_axes=(0, None, None, None, None, None)))


def random_packed(seed, batch, seq_len, word_start_prob=0.7, special_prob=0.05):
    """Rows of random EOS-terminated documents, a few special ids inside, padding at the end."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((batch, seq_len), np.int32)
    segment_ids = np.zeros((batch, seq_len), np.int32)
    positions = np.zeros((batch, seq_len), np.int32)
    for b in range(batch):
        used = int(rng.integers(0, seq_len + 1)) if rng.random() < 0.8 else seq_len
        start, doc = 0, 1
        while start < used:
            size = int(min(used - start, rng.integers(1, seq_len + 1)))
            tokens[b, start : start + size] = rng.integers(SPECIALS.first_normal_id, SPECIALS.normal_id_end, size)
            tokens[b, start + size - 1] = SPECIALS.eos
            segment_ids[b, start : start + size] = doc
            positions[b, start : start + size] = np.arange(size)
            start, doc = start + size, doc + 1
    inner = (rng.random((batch, seq_len)) < special_prob) & (segment_ids > 0)
    specials = rng.choice([SPECIALS.cls, SPECIALS.sep, SPECIALS.mask, SPECIALS.vocab_size - 1], (batch, seq_len))
    tokens = np.where(inner, specials, tokens).astype(np.int32)
    word_starts = ((rng.random((batch, seq_len)) < word_start_prob) | (positions == 0)) & (segment_ids > 0)
    return PackedBatch(tokens, segment_ids, positions, np.zeros_like(tokens), word_starts)


def eligible_of(packed):
    tok, seg = np.asarray(packed.tokens), np.asarray(packed.segment_ids)
    return (seg > 0) & (tok >= SPECIALS.first_normal_id) & (tok < SPECIALS.normal_id_end)


def document_rows(rows, docs, num_words, seq_len):
    """`docs` documents of `num_words` one-piece words plus EOS per row, then padding.

    Returns (eligible, segment_ids, word_starts) as jnp arrays of shape (rows, seq_len).
    """
    size = num_words + 1
    segment_ids = np.zeros((rows, seq_len), np.int32)
    segment_ids[:, : docs * size] = np.repeat(np.arange(1, docs + 1), size)
    eligible = segment_ids > 0
    eligible[:, size - 1 : docs * size : size] = False  # EOS
    return jnp.asarray(eligible), jnp.asarray(segment_ids), jnp.asarray(segment_ids > 0)


def reference_ngram_lengths(seed, docs, num_words, k, max_ngram):
    """XLNet's `_sample_mask` loop in word units (integer K): the n-grams it keeps, words covered."""
    rng = np.random.default_rng(seed)
    max_units = num_words + 1
    ngrams = rng.choice(np.arange(1, max_ngram + 1), size=(docs, max_units), p=masks.harmonic_probs(max_ngram))
    uniforms = rng.random((docs, max_units))
    kept, covered = [], 0
    for doc in range(docs):
        pos = 0
        for n, u in zip(ngrams[doc].tolist(), uniforms[doc].tolist(), strict=True):
            context = (k - 1) * n
            left = int(u * max(context, 1))
            if pos + left + n > num_words:
                break
            kept.append(n)
            covered += n
            pos += n + context
    return np.array(kept), covered / (docs * num_words)


# ---- registry, shapes, validation ---------------------------------------------------------------


def test_registered_for_the_two_stream_family_and_built_from_config():
    assert get_spec("xlnet_plm").family == "two_stream"
    config = get_config()
    config.objective.name = "xlnet_plm"
    fn, family = build_objective(config.objective, SPECIALS, 512)
    assert family == "two_stream"
    packed = jax.ShapeDtypeStruct((3, 512), jnp.int32)
    shapes = jax.eval_shape(
        fn, jax.random.key(0), PackedBatch(packed, packed, packed, packed, jax.ShapeDtypeStruct((3, 512), bool))
    )
    expected = {
        "inputs": ((3, 512), jnp.int32),
        "segment_ids": ((3, 512), jnp.int32),
        "positions": ((3, 512), jnp.int32),
        "perm_ranks": ((3, 512), jnp.int32),
        "plm_positions": ((3, 85), jnp.int32),
        "plm_targets": ((3, 85), jnp.int32),
        "plm_weights": ((3, 85), jnp.float32),
    }
    assert {k: (v.shape, v.dtype) for k, v in shapes.items()} == expected


@pytest.mark.parametrize(
    "overrides",
    [{"tokens_per_target": 0.5}, {"max_ngram": 0}, {"num_predict": 0}, {"num_predict": 65}],
)
def test_impossible_values_fail_at_build_time(overrides):
    with pytest.raises(ValueError, match="xlnet_plm"):
        xlnet_plm.build(plm_config(**overrides), SPECIALS, 64)


# ---- golden example -----------------------------------------------------------------------------


# One compiled objective serves the golden example and the invariants: (B, L) = (4, 48), K = 2.5.
SEQ, NUM_PREDICT = 48, 12


def objective():
    return jitted(SEQ, tokens_per_target=2.5, num_predict=NUM_PREDICT)


def test_golden_example():
    # Row 0, document 1: words [40] [41 42] [43] [44 45] [46] [47] [48] + EOS; document 2: [50]..[53]
    # + EOS. With this key the words [41 42] [43] of document 1 and [51], [53] of document 2 are
    # predicted in the order 43, 41, 51, 42, 53 (the pieces of a word are separate targets, ordered
    # like any others).
    # Rows 1-3 are padding only: no targets, all ranks 0.
    tokens, segment_ids, positions = (np.zeros((4, SEQ), np.int32) for _ in range(3))
    word_starts = np.zeros((4, SEQ), bool)
    tokens[0, :16] = [40, 41, 42, 43, 44, 45, 46, 47, 48, 1, 50, 51, 52, 53, 1, 0]
    segment_ids[0, :16] = [1] * 10 + [2] * 5 + [0]
    positions[0, :16] = list(range(10)) + list(range(5)) + [0]
    word_starts[0, :16] = [1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    packed = PackedBatch(tokens, segment_ids, positions, np.zeros_like(tokens), word_starts)
    out = jax.device_get(objective()(jax.random.key(6), packed))
    np.testing.assert_array_equal(out["perm_ranks"][0, :16], [0, 2, 4, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 5, 0, 0])
    np.testing.assert_array_equal(out["perm_ranks"][:, 16:], 0)
    np.testing.assert_array_equal(out["perm_ranks"][1:], 0)
    np.testing.assert_array_equal(out["plm_positions"][0], [1, 2, 3, 11, 13] + [0] * 7)
    np.testing.assert_array_equal(out["plm_targets"][0], [41, 42, 43, 51, 53] + [0] * 7)
    np.testing.assert_array_equal(out["plm_weights"][0], [1] * 5 + [0] * 7)
    np.testing.assert_array_equal(out["plm_weights"][1:], 0)
    np.testing.assert_array_equal(out["inputs"], tokens)
    np.testing.assert_array_equal(out["segment_ids"], segment_ids)
    np.testing.assert_array_equal(out["positions"], positions)


def test_same_key_same_batch_and_fresh_keys_differ():
    packed = random_packed(0, 4, SEQ)
    first, again = objective()(jax.random.key(5), packed), objective()(jax.random.key(5), packed)
    other = objective()(jax.random.key(6), packed)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["perm_ranks"], other["perm_ranks"])


# ---- invariants over random packings ------------------------------------------------------------


def visible(ranks, segment_ids, query):
    """(L, L) bool from the contract: i sees j within its document iff rank[j] <(=) rank[i]."""
    same_doc = (segment_ids[:, None] == segment_ids[None, :]) & (segment_ids[:, None] > 0)
    order = ranks[None, :] < ranks[:, None] if query else ranks[None, :] <= ranks[:, None]
    return same_doc & order


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), key=st.integers(0, 2**31 - 1))
def test_factorization_order_and_targets_invariants(seed, key):
    seq_len, num_predict = SEQ, NUM_PREDICT
    packed = random_packed(seed, 4, seq_len)
    out = jax.device_get(objective()(jax.random.key(key), packed))
    eligible = eligible_of(packed)
    starts, _ = masks.unit_and_run_starts(jnp.asarray(eligible), jnp.asarray(packed.segment_ids),
                                          jnp.asarray(packed.word_starts))
    starts = np.asarray(starts)
    for b in range(4):
        seg, ranks = packed.segment_ids[b], out["perm_ranks"][b]
        valid = out["plm_weights"][b] > 0
        positions = out["plm_positions"][b][valid]
        targets = np.zeros(seq_len, bool)
        targets[positions] = True
        # Lists: ascending, real ordinary tokens only, targets read from the inputs, padded with 0.
        assert valid.sum() <= num_predict and (np.diff(positions) > 0).all()
        assert valid[: valid.sum()].all() and eligible[b][positions].all()
        np.testing.assert_array_equal(out["plm_targets"][b][valid], packed.tokens[b][positions])
        assert (out["plm_targets"][b][~valid] == 0).all() and (out["plm_positions"][b][~valid] == 0).all()
        # Whole words: a continuation piece is a target exactly when its word's first piece is.
        first_piece = np.flatnonzero(starts[b])[np.cumsum(starts[b])[eligible[b]] - 1]
        np.testing.assert_array_equal(targets[eligible[b]], targets[first_piece])
        # Ranks: 0 for non-targets; targets hold 1..T, each once.
        assert (ranks[~targets] == 0).all()
        assert sorted(ranks[targets].tolist()) == list(range(1, targets.sum() + 1))
        # Visibility (rows i, columns j) within a document, from the contract's rule on ranks.
        same_doc = (seg[:, None] == seg[None, :]) & (seg[:, None] > 0)
        earlier = same_doc & (~targets[None, :] | (ranks[None, :] < ranks[:, None]))
        itself = np.eye(seq_len, dtype=bool) & (seg[:, None] > 0)
        query, content = visible(ranks, seg, True), visible(ranks, seg, False)
        # A target sees the non-targets and earlier targets of its document, never itself (query
        # stream) nor a later target; a non-target sees exactly the non-targets of its document.
        np.testing.assert_array_equal(query[targets], earlier[targets])
        np.testing.assert_array_equal(content[targets], (earlier | itself)[targets])
        np.testing.assert_array_equal(content[~targets], (same_doc & ~targets[None, :])[~targets])
        assert not (query[targets] & itself[targets]).any()


# ---- statistics over many rows ------------------------------------------------------------------

# 12 documents of 30 one-piece words + EOS per row: a document's first n-gram always fits
# (context before it < 5 * 5 words), so its length is exactly the drawn one.
ROWS, SEEDS, DOCS, WORDS, SEQ_LEN = 64, 16, 12, 30, 401


def test_first_ngram_of_each_document_is_one_over_n():
    eligible, segment_ids, word_starts = document_rows(ROWS, DOCS, WORDS, SEQ_LEN)
    keys = jax.random.split(jax.random.key(0), SEEDS)
    chosen = jitted_sampler()(keys, eligible, segment_ids, word_starts, 6.0, SEQ_LEN)
    lengths = np.asarray(chosen.ngram_len).reshape(SEEDS * ROWS, SEQ_LEN)[:, : DOCS * (WORDS + 1)]
    lengths = lengths.reshape(-1, WORDS + 1)  # one document per row
    assert (lengths > 0).any(1).all()  # the first n-gram always fits
    first = lengths[np.arange(len(lengths)), (lengths > 0).argmax(1)]
    observed = np.bincount(first, minlength=6)[1:]
    expected = masks.harmonic_probs(5) * observed.sum()
    assert ((observed - expected) ** 2 / expected).sum() < 18.47  # chi-square 0.999 quantile, 4 dof


@pytest.mark.parametrize("k", [6.0, 3.0, 4.5])
def test_ngram_lengths_and_target_fraction_match_xlnets_loop(k):
    """One long document per row; all kept n-grams and the covered fraction, vs the reference loop."""
    eligible, segment_ids, word_starts = document_rows(ROWS, 1, SEQ_LEN - 1, SEQ_LEN)
    keys = jax.random.split(jax.random.key(1), SEEDS)
    chosen = jitted_sampler()(keys, eligible, segment_ids, word_starts, k, SEQ_LEN)
    targets, lengths = np.asarray(chosen.targets), np.asarray(chosen.ngram_len)
    assert not targets[..., -1].any()  # EOS is never a target
    per_row = targets.sum(-1).ravel() / (SEQ_LEN - 1)
    se = per_row.std() / np.sqrt(per_row.size)
    assert abs(per_row.mean() * k - 1.0) < 0.04  # about 1 token in K (end effects cost ~1-2%)
    if k != int(k):
        return
    reference, covered = reference_ngram_lengths(2, 2000, SEQ_LEN - 1, int(k), 5)
    assert abs(per_row.mean() - covered) < 4 * se + 0.001
    observed = np.bincount(lengths[lengths > 0], minlength=6)[1:]
    table = np.stack([observed, np.bincount(reference, minlength=6)[1:]]).astype(float)
    fitted = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    assert ((table - fitted) ** 2 / fitted).sum() < 18.47  # homogeneity, chi-square 0.999 quantile, 4 dof


def test_num_predict_keeps_whole_ngrams_from_the_left():
    eligible, segment_ids, word_starts = document_rows(ROWS, 1, SEQ_LEN - 1, SEQ_LEN)
    keys = jax.random.split(jax.random.key(2), SEEDS)
    free = jax.device_get(jitted_sampler()(keys, eligible, segment_ids, word_starts, 6.0, SEQ_LEN))
    capped = jax.device_get(jitted_sampler()(keys, eligible, segment_ids, word_starts, 6.0, 10))
    counts = capped.targets.sum(-1)
    assert counts.max() <= 10 and counts.mean() > 7
    np.testing.assert_array_equal(counts, capped.ngram_len.sum(-1))  # one-piece words: whole n-grams
    # The capped targets are the uncapped ones up to the first n-gram that does not fit.
    np.testing.assert_array_equal(capped.targets, free.targets & (np.cumsum(free.targets, -1) <= counts[..., None]))


def test_special_tokens_and_padding_are_never_targets():
    packed = random_packed(7, 4, SEQ, special_prob=0.3)
    eligible, total = eligible_of(packed), 0
    for key in range(40):
        out = jax.device_get(objective()(jax.random.key(key), packed))
        chosen = np.zeros((4, SEQ), bool)
        valid = out["plm_weights"] > 0
        chosen[np.repeat(np.arange(4)[:, None], NUM_PREDICT, 1)[valid], out["plm_positions"][valid]] = True
        assert not (chosen & ~eligible).any()
        assert (out["perm_ranks"][~chosen] == 0).all()
        total += chosen.sum()
    assert total > 200
