"""xlnet_plm: golden examples derived by hand, visibility through the model's permutation masks, the
n-gram walk against a plain-Python transcription of XLNet's loop, num_predict without positional bias."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flat_batch import flat
from hypothesis import given, settings
from hypothesis import strategies as st

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.models.masks import permutation_masks
from pretrain_jax.objectives import build_objective, get_spec, xlnet_plm
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
def jitted_walk(seq_len):
    """sample_ngram_targets at XLNet's defaults (6 / 1, n <= 5), vmapped over keys: one compile."""

    def walk(rng, eligible, segment_ids, word_starts):
        return xlnet_plm.sample_ngram_targets(rng, eligible, segment_ids, word_starts, mask_alpha=6, mask_beta=1,
                                              max_ngram=5)

    return jax.jit(jax.vmap(walk, in_axes=(0, None, None, None)))


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


def reference_sample_mask(word_starts, rng, mask_alpha=6, mask_beta=1, max_gram=5):
    """zihangdai/xlnet data_utils.py `_sample_mask(sp, seg, goal_num_predict=None)`, transcribed
    line by line on a segment's word-start flags (`_is_start_piece`), numpy's legacy calls replaced by
    a Generator. Its end search tests the start piece `seg[beg]`, so an n-gram is n tokens. Returns
    [(beg, end)] of the n-grams, in order."""
    seg_len = len(word_starts)
    ngrams = np.arange(1, max_gram + 1, dtype=np.int64)
    pvals = 1.0 / np.arange(1, max_gram + 1)
    pvals /= pvals.sum(keepdims=True)
    spans, cur_len = [], 0
    while cur_len < seg_len:
        n = rng.choice(ngrams, p=pvals)
        ctx_size = (n * mask_alpha) // mask_beta
        l_ctx = rng.choice(ctx_size)
        r_ctx = ctx_size - l_ctx
        beg = cur_len + l_ctx
        while beg < seg_len and not word_starts[beg]:
            beg += 1
        if beg >= seg_len:
            break
        end = beg + 1
        cnt_ngram = 1
        while end < seg_len:
            if word_starts[beg]:  # sic: XLNet tests seg[beg], not seg[end]
                cnt_ngram += 1
                if cnt_ngram > n:
                    break
            end += 1
        if end >= seg_len:
            break
        spans.append((beg, end))
        cur_len = end + r_ctx
    return spans


def spans_of(ngram_len):
    """[(beg, end)] of the n-grams in one row of ngram_len."""
    begins = np.flatnonzero(ngram_len)
    return [(int(b), int(b + ngram_len[b])) for b in begins]


def homogeneous(a, b, bins):
    """Chi-square homogeneity of two samples over `bins` (np.digitize edges): below the 0.999 quantile."""
    table = np.stack([np.bincount(np.digitize(x, bins), minlength=len(bins) + 1) for x in (a, b)]).astype(float)
    table = table[:, table.sum(0) > 0]
    fitted = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    statistic = ((table - fitted) ** 2 / fitted).sum()
    critical = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32, 8: 26.12, 9: 27.88}
    return statistic < critical[table.shape[1] - 1], statistic


# ---- registry, shapes, validation ---------------------------------------------------------------


def test_registered_for_the_two_stream_family_and_built_from_config():
    assert get_spec("xlnet_plm").family == "two_stream"
    config = get_config()
    config.objective.name = "xlnet_plm"
    fn, family = build_objective(config.objective, SPECIALS, 512)
    assert family == "two_stream"
    ints = jax.ShapeDtypeStruct((3, 512), jnp.int32)
    shapes = jax.eval_shape(fn, jax.random.key(0), PackedBatch(ints, ints, ints, ints,
                                                               jax.ShapeDtypeStruct((3, 512), bool), ints))
    expected = {
        "inputs": ((3, 512), jnp.int32),
        "segment_ids": ((3, 512), jnp.int32),
        "positions": ((3, 512), jnp.int32),
        "perm_ranks": ((3, 512), jnp.int32),
        "plm_positions": ((3, 85), jnp.int32),
        "targets.plm.ids": ((3, 85), jnp.int32),
        "targets.plm.weights": ((3, 85), jnp.float32),
    }
    assert {k: (v.shape, v.dtype) for k, v in flat(shapes).items()} == expected


@pytest.mark.parametrize(
    "overrides",
    [{"mask_alpha": 0}, {"mask_beta": 0}, {"max_ngram": 0}, {"num_predict": 0},
     {"num_predict": 65}],
)
def test_impossible_values_fail_at_build_time(overrides):
    with pytest.raises(ValueError, match="xlnet_plm"):
        xlnet_plm.build(plm_config(**overrides), SPECIALS, 64)


# ---- golden examples ----------------------------------------------------------------------------

# One row of 8: words [40] [41 42] [43 44 45] [46] + EOS. With max_ngram 1 and mask_alpha 1, every
# draw is n = 1 with context 1: l is uniform in [0, 1), so 0, and r = 1. By hand, the walk is
#   cur 0: next word start at or after 0 is 0 -> target 0; cur = 0 + 1 + 1 = 2
#   cur 2: 42 continues a word, the next start is 3 -> target 3; cur = 5
#   cur 5: 45 continues, the next start is 6 -> target 6 (the last text token: it ends the text, the
#          walk stops)
# so the n-grams are {0}, {3}, {6} for every key.
GOLDEN_TOKENS = np.array([[40, 41, 42, 43, 44, 45, 46, 1]], np.int32)
GOLDEN_WORD_STARTS = np.array([[1, 1, 0, 1, 0, 0, 1, 0]], bool)
GOLDEN = PackedBatch(GOLDEN_TOKENS, np.ones((1, 8), np.int32), np.arange(8, dtype=np.int32)[None],
                     np.zeros((1, 8), np.int32), GOLDEN_WORD_STARTS)


@pytest.mark.parametrize("num_predict", [3, 2, 5])
def test_golden_walk_then_drop_or_top_up(num_predict):
    """num_predict 3: exactly {0, 3, 6}. 2: two of them, whole, each pair as likely (the walk's
    n-grams are dropped at random, not from the end). 5: {0, 3, 6} and two of the other 4 text
    tokens {1, 2, 4, 5}, uniformly (the top-up); never the EOS."""
    objective = jitted(8, max_ngram=1, mask_alpha=1, num_predict=num_predict)
    seen = {}
    for key in range(60):
        out = jax.device_get(objective(jax.random.key(key), GOLDEN))
        valid = out["targets"]["plm"].weights[0] > 0
        chosen = tuple(out["plm_positions"][0][valid].tolist())
        np.testing.assert_array_equal(out["targets"]["plm"].ids[0][valid], GOLDEN_TOKENS[0][list(chosen)])
        assert sorted(out["perm_ranks"][0][list(chosen)].tolist()) == list(range(1, num_predict + 1))
        seen[chosen] = seen.get(chosen, 0) + 1
    if num_predict == 3:
        assert set(seen) == {(0, 3, 6)}
    elif num_predict == 2:
        assert set(seen) == {(0, 3), (0, 6), (3, 6)} and min(seen.values()) >= 10  # 20 expected each
    else:
        extras = {tuple(sorted(set(c) - {0, 3, 6})) for c in seen}
        assert all(set(c) >= {0, 3, 6} and len(c) == 5 for c in seen)
        assert extras == {(1, 2), (1, 4), (1, 5), (2, 4), (2, 5), (4, 5)}


def test_same_key_same_batch_and_fresh_keys_differ():
    objective = jitted(SEQ, num_predict=NUM_PREDICT)
    packed = random_packed(0, 4, SEQ)
    first, again = objective(jax.random.key(5), packed), objective(jax.random.key(5), packed)
    other = objective(jax.random.key(6), packed)
    for key, value in flat(first).items():
        np.testing.assert_array_equal(value, flat(again)[key])
    assert not np.array_equal(first["perm_ranks"], other["perm_ranks"])


# ---- invariants over random packings, visibility through the model's masks ----------------------

SEQ, NUM_PREDICT = 48, 12


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), key=st.integers(0, 2**31 - 1))
def test_factorization_order_and_targets_invariants(seed, key):
    """Lists, ranks and what each position may see, read off the model's own permutation_masks."""
    packed = random_packed(seed, 4, SEQ)
    out = jax.device_get(jitted(SEQ, num_predict=NUM_PREDICT)(jax.random.key(key), packed))
    content, query = jax.device_get(permutation_masks(jnp.asarray(packed.segment_ids), jnp.asarray(out["perm_ranks"])))
    eligible = eligible_of(packed)
    for b in range(4):
        seg, valid = packed.segment_ids[b], out["targets"]["plm"].weights[b] > 0
        positions = out["plm_positions"][b][valid]
        targets = np.zeros(SEQ, bool)
        targets[positions] = True
        # Lists: ascending, real ordinary tokens only, targets read from the inputs, padded with 0;
        # as many targets as num_predict allows (the top-up), whatever the walk found.
        assert valid.sum() == min(NUM_PREDICT, eligible[b].sum())
        assert (np.diff(positions) > 0).all() and valid[: valid.sum()].all() and eligible[b][positions].all()
        np.testing.assert_array_equal(out["targets"]["plm"].ids[b][valid], packed.tokens[b][positions])
        assert (out["targets"]["plm"].ids[b][~valid] == 0).all() and (out["plm_positions"][b][~valid] == 0).all()
        same_doc = (seg[:, None] == seg[None, :]) & (seg[:, None] > 0)
        q, c = query[b, 0], content[b, 0]
        assert not (q & ~same_doc).any() and not (c & ~same_doc).any()
        # A non-target sees no target (content stream; its query stream predicts nothing).
        assert not c[~targets][:, targets].any()
        for t in np.flatnonzero(targets):
            doc = same_doc[t]
            # A target sees every non-target of its document, and never itself in the query stream;
            # its content stream adds only itself.
            assert q[t][doc & ~targets].all() and not q[t, t]
            np.testing.assert_array_equal(c[t], q[t] | (np.arange(SEQ) == t))
        for document in np.unique(seg[seg > 0]):
            members = np.flatnonzero(targets & (seg == document))
            seen = q[np.ix_(members, members)]
            # The targets of a document form one strict order: of two, exactly one sees the other,
            # and they see 0, 1, ..., T - 1 others (a permutation: no cycle, no tie).
            assert not (seen & seen.T).any() and ((seen | seen.T) | np.eye(len(members), dtype=bool)).all()
            assert sorted(seen.sum(1).tolist()) == list(range(len(members)))


def test_special_tokens_and_padding_are_never_targets():
    packed = random_packed(7, 4, SEQ, special_prob=0.3)
    eligible, total = eligible_of(packed), 0
    for key in range(40):
        out = jax.device_get(jitted(SEQ, num_predict=NUM_PREDICT)(jax.random.key(key), packed))
        chosen = np.zeros((4, SEQ), bool)
        valid = out["targets"]["plm"].weights > 0
        chosen[np.repeat(np.arange(4)[:, None], NUM_PREDICT, 1)[valid], out["plm_positions"][valid]] = True
        assert not (chosen & ~eligible).any()
        assert (out["perm_ranks"][~chosen] == 0).all()
        total += chosen.sum()
    assert total > 200


# ---- the walk against XLNet's loop; num_predict without positional bias -------------------------

ROWS, KEYS, LENGTH = 128, 4, 256


@functools.cache
def walked_and_reference():
    """One long document (no EOS, every token ordinary) per row, 85% of tokens starting a word: the
    n-grams of our walk and of the transcribed loop on the same rows, and the rows."""
    rng = np.random.default_rng(0)
    word_starts = rng.random((ROWS, LENGTH)) < 0.85
    eligible, segment_ids = jnp.ones((ROWS, LENGTH), bool), jnp.ones((ROWS, LENGTH), jnp.int32)
    keys = jax.random.split(jax.random.key(3), KEYS)
    ours = np.asarray(jitted_walk(LENGTH)(keys, eligible, segment_ids, jnp.asarray(word_starts)).ngram_len)
    ours = [spans_of(row) for row in ours.reshape(KEYS * ROWS, LENGTH)]
    reference = [reference_sample_mask(word_starts[r % ROWS], rng) for r in range(KEYS * ROWS)]
    return ours, reference


def test_ngram_lengths_and_spacing_match_xlnets_loop():
    """Lengths of the n-grams and the gaps between consecutive ones (from one's end to the next's
    start), ours against the transcription of XLNet's loop on the same rows. XLNet stops before an
    n-gram that would reach the end of the segment; ours cuts that one to end with the text, so the
    n-grams ending at the row's end are left out of our sample."""
    ours, reference = walked_and_reference()
    ours = [[span for span in row if span[1] < LENGTH] for row in ours]
    for sample in (ours, reference):
        assert sum(len(row) for row in sample) > 5000
    lengths = [np.array([e - b for row in sample for b, e in row]) for sample in (ours, reference)]
    ok, statistic = homogeneous(*lengths, bins=np.arange(1.5, 5.5))
    assert ok, statistic
    gaps = [np.array([b - e for row in sample for (_, e), (b, _) in zip(row[:-1], row[1:], strict=True)])
            for sample in (ours, reference)]
    ok, statistic = homogeneous(*gaps, bins=np.array([3, 6, 9, 12, 15, 20, 25, 30, 40]))
    assert ok, statistic
    first = [np.array([row[0][0] for row in sample if row]) for sample in (ours, reference)]
    ok, statistic = homogeneous(*first, bins=np.array([2, 4, 6, 9, 12, 16, 20]))
    assert ok, statistic


def test_target_rate_is_flat_over_positions_at_the_default_config():
    """Rows of 512 ordinary tokens (85% starting a word) at the default config (num_predict 85): the
    rate of targets over the last 16 positions is at least 0.9 of the rate elsewhere (XLNet's own
    num_predict stop thins the end of the row), over 16 keys."""
    rng = np.random.default_rng(1)
    rows = 64
    word_starts = rng.random((rows, 512)) < 0.85
    tokens = rng.integers(SPECIALS.first_normal_id, SPECIALS.normal_id_end, (rows, 512)).astype(np.int32)
    ones = np.ones((rows, 512), np.int32)
    packed = PackedBatch(tokens, ones, np.broadcast_to(np.arange(512, dtype=np.int32), (rows, 512)), 0 * ones,
                         word_starts)
    objective = jax.jit(jax.vmap(xlnet_plm.build(plm_config(), SPECIALS, 512), in_axes=(0, None)))
    out = jax.device_get(objective(jax.random.split(jax.random.key(0), 16), packed))
    counts = np.zeros(512)
    np.add.at(counts, out["plm_positions"][out["targets"]["plm"].weights > 0], 1)
    tail, body = counts[-16:].mean(), counts[:-16].mean()
    assert tail / body >= 0.9, tail / body
