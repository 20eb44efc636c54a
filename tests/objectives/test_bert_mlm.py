"""bert_mlm: golden examples, statistics over many rows, invariants over random packing layouts."""

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
from pretrain_jax.objectives import bert_mlm, build_objective, get_spec, masks
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
SMALL_VOCAB = SpecialIds(vocab_size=13 + 20 + 2, num_sentinels=2)  # 20 ordinary ids: 13..32
MASK = SPECIALS.mask


def mlm_config(**overrides):
    cfg = get_config().objective.bert_mlm
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def settings_of(seq_len, **overrides):
    return bert_mlm.MaskedLmSettings.from_config(mlm_config(**overrides), seq_len)


@functools.cache
def jitted(seq_len, specials=SPECIALS, **overrides):
    """One compiled objective per configuration, shared by all tests that use it."""
    return jax.jit(bert_mlm.build(mlm_config(**overrides), specials, seq_len))


@functools.cache
def jitted_choice(seq_len, **overrides):
    settings = settings_of(seq_len, **overrides)
    return jax.jit(lambda rng, tok, seg, ws: bert_mlm.choose_positions(rng, tok, seg, ws, settings, SPECIALS))


def random_packed(seed, batch, seq_len, specials=SPECIALS, word_start_prob=0.7, special_prob=0.05):
    """Rows of random documents: EOS-terminated, a few special ids inside, padding at the end."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((batch, seq_len), np.int32)
    segment_ids = np.zeros((batch, seq_len), np.int32)
    positions = np.zeros((batch, seq_len), np.int32)
    for b in range(batch):
        used = rng.integers(0, seq_len + 1) if rng.random() < 0.9 else seq_len
        start, doc = 0, 1
        while start < used:
            size = int(min(used - start, rng.integers(1, seq_len + 1)))
            tokens[b, start : start + size] = rng.integers(specials.first_normal_id, specials.normal_id_end, size)
            tokens[b, start + size - 1] = specials.eos
            segment_ids[b, start : start + size] = doc
            positions[b, start : start + size] = np.arange(size)
            start, doc = start + size, doc + 1
    inner_special = (rng.random((batch, seq_len)) < special_prob) & (segment_ids > 0)
    tokens = np.where(inner_special, rng.choice([specials.cls, specials.sep, MASK, specials.vocab_size - 1],
                                                (batch, seq_len)), tokens).astype(np.int32)
    word_starts = (rng.random((batch, seq_len)) < word_start_prob) | (positions == 0)
    return PackedBatch(tokens, segment_ids, positions, np.zeros_like(tokens), word_starts & (segment_ids > 0))


def eligible_of(packed, specials=SPECIALS):
    tok, seg = np.asarray(packed.tokens), np.asarray(packed.segment_ids)
    return (seg > 0) & (tok >= specials.first_normal_id) & (tok < specials.normal_id_end)


def chosen_mask(out, seq_len):
    """(B, L) bool from the mlm_positions/mlm_weights lists."""
    pos, w = np.asarray(out["mlm_positions"]), np.asarray(out["targets"]["mlm"].weights) > 0
    chosen = np.zeros((pos.shape[0], seq_len), bool)
    rows = np.repeat(np.arange(pos.shape[0])[:, None], pos.shape[1], 1)
    chosen[rows[w], pos[w]] = True
    return chosen


def words_of(packed):
    """Per row, the list of word spans (start, end) as defined by masks.unit_and_run_starts."""
    eligible = eligible_of(packed)
    starts, _ = masks.unit_and_run_starts(jnp.asarray(eligible), jnp.asarray(packed.segment_ids),
                                          jnp.asarray(packed.word_starts))
    starts = np.asarray(starts)
    rows = []
    for b in range(eligible.shape[0]):
        spans, begin = [], None
        for i in range(eligible.shape[1] + 1):
            if begin is not None and (i == eligible.shape[1] or starts[b, i] or not eligible[b, i]):
                spans.append((begin, i))
                begin = None
            if i < eligible.shape[1] and starts[b, i]:
                begin = i
        rows.append(spans)
    return rows


# ---- golden examples ----------------------------------------------------------------------------


def test_golden_every_eligible_token_chosen_and_masked():
    # Row 0: 4 eligible tokens, round(4 * 0.9) = 4 = P, so all are chosen and all become [MASK].
    # Row 1: only padding: nothing chosen, all-zero weights.
    packed = PackedBatch(
        tokens=np.array([[21, 40, 41, 1, 30, 1, 0, 0], [0] * 8], np.int32),
        segment_ids=np.array([[1, 1, 1, 1, 2, 2, 0, 0], [0] * 8], np.int32),
        positions=np.array([[0, 1, 2, 3, 0, 1, 0, 0], [0] * 8], np.int32),
    )
    out = jitted(8, rate=0.9, max_predictions=4, mask_prob=1.0, random_prob=0.0)(jax.random.key(7), packed)
    np.testing.assert_array_equal(out["inputs"], [[4, 4, 4, 1, 4, 1, 0, 0], [0] * 8])
    np.testing.assert_array_equal(out["mlm_positions"], [[0, 1, 2, 4], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["mlm"].ids, [[21, 40, 41, 30], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["mlm"].weights, [[1, 1, 1, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(out["segment_ids"], packed.segment_ids)
    np.testing.assert_array_equal(out["positions"], packed.positions)
    np.testing.assert_array_equal(out["token_type_ids"], np.zeros((2, 8)))


def test_golden_whole_word_skips_a_word_longer_than_the_budget():
    # Row 0 words: [50 51 52] [60] | [70]: 5 eligible, round(5 * 0.5) = round(2.5) = 2 (half to even).
    #   The 3-piece word never fits a budget of 2, so whatever the order, the two 1-piece words are
    #   chosen: positions 3 and 5.
    # Row 1 words: [50 51] | [52 53] (52 starts a new document, so a new word even without a "▁"):
    #   budget 2, exactly one of the two words is chosen, never one piece of each.
    packed = PackedBatch(
        tokens=np.array([[50, 51, 52, 60, 1, 70, 1, 0], [50, 51, 1, 52, 53, 0, 0, 0]], np.int32),
        segment_ids=np.array([[1, 1, 1, 1, 1, 2, 2, 0], [1, 1, 1, 2, 2, 0, 0, 0]], np.int32),
        positions=np.array([[0, 1, 2, 3, 4, 0, 1, 0], [0, 1, 2, 0, 1, 0, 0, 0]], np.int32),
        word_starts=np.array([[1, 0, 0, 1, 1, 1, 1, 0], [1, 0, 1, 0, 0, 0, 0, 0]], bool),
    )
    fn = jitted(8, rate=0.5, max_predictions=4, unit="word", mask_prob=0.0, random_prob=0.0)
    for seed in range(5):
        out = fn(jax.random.key(seed), packed)
        np.testing.assert_array_equal(out["inputs"], packed.tokens)  # mask_prob = random_prob = 0
        np.testing.assert_array_equal(out["mlm_positions"][0], [3, 5, 0, 0])
        np.testing.assert_array_equal(out["targets"]["mlm"].ids[0], [60, 70, 50, 50])
        np.testing.assert_array_equal(out["targets"]["mlm"].weights, [[1, 1, 0, 0], [1, 1, 0, 0]])
        assert out["mlm_positions"][1].tolist() in ([0, 1, 0, 0], [3, 4, 0, 0])


def test_golden_random_replacement_is_an_ordinary_id():
    packed = PackedBatch(np.array([[21, 40, 41, 1]], np.int32), np.ones((1, 4), np.int32), np.arange(4)[None])
    out = jitted(4, rate=0.9, max_predictions=3, mask_prob=0.0, random_prob=1.0)(jax.random.key(3), packed)
    np.testing.assert_array_equal(out["mlm_positions"], [[0, 1, 2]])
    assert out["inputs"][0, 3] == SPECIALS.eos
    assert all(SPECIALS.first_normal_id <= t < SPECIALS.normal_id_end for t in out["inputs"][0, :3].tolist())


# ---- statistics over many rows ------------------------------------------------------------------

ROWS = 2000


def test_fixed_count_matches_the_bert_formula_exactly():
    packed = random_packed(0, ROWS, 64)
    out = jitted(64, max_predictions=8)(jax.random.key(0), packed)
    num_eligible = eligible_of(packed).sum(1)
    expected = [min(8, max(1, round(n * 0.15)), n) for n in num_eligible.tolist()]
    np.testing.assert_array_equal(np.asarray(out["targets"]["mlm"].weights).sum(1), expected)


def test_bernoulli_rate_within_three_standard_errors():
    packed = random_packed(1, ROWS, 64)
    out = jitted(64, max_predictions=64, count="bernoulli", rate=0.2)(jax.random.key(1), packed)
    chosen = chosen_mask(out, 64)
    total = eligible_of(packed).sum()
    assert not (chosen & ~eligible_of(packed)).any()
    se = np.sqrt(0.2 * 0.8 / total)
    assert abs(chosen.sum() / total - 0.2) < 3 * se
    # The count varies from row to row (it is a draw, not the fixed formula).
    long_rows = eligible_of(packed).sum(1) >= 40
    assert len(set(np.asarray(out["targets"]["mlm"].weights).sum(1)[long_rows].tolist())) > 3


def test_bernoulli_is_capped_at_max_predictions():
    packed = random_packed(2, 200, 64, special_prob=0.0)
    out = jitted(64, max_predictions=4, count="bernoulli", rate=0.5)(jax.random.key(2), packed)
    counts = np.asarray(out["targets"]["mlm"].weights).sum(1)
    assert counts.max() == 4


def test_mask_random_keep_split_and_uniform_random_ids():
    packed = random_packed(3, ROWS, 64, specials=SMALL_VOCAB)
    fn = jitted(64, specials=SMALL_VOCAB, rate=0.5, max_predictions=32)
    out = fn(jax.random.key(3), packed)
    chosen = chosen_mask(out, 64)
    original, inputs = np.asarray(packed.tokens)[chosen], np.asarray(out["inputs"])[chosen]
    n, vocab = chosen.sum(), SMALL_VOCAB.normal_id_end - SMALL_VOCAB.first_normal_id
    # A random id equals the original with probability 1/vocab: it then counts as "kept".
    expected = {"mask": 0.8, "random": 0.1 * (1 - 1 / vocab), "keep": 0.1 + 0.1 / vocab}
    observed = {"mask": np.mean(inputs == MASK), "random": np.mean((inputs != MASK) & (inputs != original)),
                "keep": np.mean(inputs == original)}
    for name, p in expected.items():
        assert abs(observed[name] - p) < 3 * np.sqrt(p * (1 - p) / n), (name, observed[name], p)
    np.testing.assert_array_equal(np.asarray(out["inputs"])[~chosen], np.asarray(packed.tokens)[~chosen])

    # Random replacements alone (mask_prob 0, random_prob 1): uniform over the 20 ordinary ids.
    out = jitted(64, specials=SMALL_VOCAB, rate=0.5, max_predictions=32, mask_prob=0.0, random_prob=1.0)(
        jax.random.key(4), packed)
    draws = np.asarray(out["inputs"])[chosen_mask(out, 64)]
    assert draws.min() >= SMALL_VOCAB.first_normal_id and draws.max() < SMALL_VOCAB.normal_id_end
    counts = np.bincount(draws - SMALL_VOCAB.first_normal_id, minlength=vocab)
    chi2 = ((counts - draws.size / vocab) ** 2 / (draws.size / vocab)).sum()
    assert chi2 < 43.82  # chi-square 0.999 quantile, 19 degrees of freedom


@pytest.mark.parametrize("unit", ["span", "token"])
def test_spanbert_decides_mask_random_keep_once_per_span(unit):
    """unit="span" (SpanBERT): a span is all [MASK], all random ids or all kept, 80/10/10 of spans.
    Read off the output alone: runs of chosen positions of 3+ tokens (one span, or more that touch) are
    homogeneous, all [MASK] or none, at least 90% of the time (two touching spans disagree at most
    32% of the time, and few spans touch); deciding per token, as unit="token" does, a run of k is
    homogeneous with probability 0.8^k + 0.2^k <= 0.52. Over the tokens of multi-token runs, [MASK]
    is 80% within 4 standard errors counted per run (tokens of one span are not independent)."""
    rows, seq_len = 256, 128
    tokens = np.random.default_rng(0).integers(SPECIALS.first_normal_id, SPECIALS.normal_id_end,
                                               (rows, seq_len)).astype(np.int32)
    tokens[:, -1] = SPECIALS.eos
    ones = np.ones((rows, seq_len), np.int32)
    packed = PackedBatch(tokens, ones, np.broadcast_to(np.arange(seq_len, dtype=np.int32), (rows, seq_len)),
                         0 * ones, ones.astype(bool))
    masked_share, homogeneous, runs = [], 0, 0
    for key in range(4):
        out = jax.device_get(jitted(seq_len, unit=unit, max_predictions=40)(jax.random.key(key), packed))
        chosen = chosen_mask(out, seq_len)
        for b in range(rows):
            edges = np.flatnonzero(np.diff(np.concatenate([[0], chosen[b].astype(int), [0]])))
            for start, end in zip(edges[::2], edges[1::2], strict=True):
                if end - start >= 3:
                    masked = out["inputs"][b, start:end] == MASK
                    runs += 1
                    homogeneous += masked.all() or not masked.any()
                    masked_share.append(masked.mean())
    assert runs > (500 if unit == "span" else 200)
    if unit == "token":
        assert homogeneous / runs < 0.6
        return
    assert homogeneous / runs >= 0.9, homogeneous / runs
    share = np.array(masked_share)
    assert abs(share.mean() - 0.8) < 4 * share.std() / np.sqrt(len(share)), share.mean()


def _first_span_lengths(unit, seed, **overrides):
    """Units covered by the first span considered in each row, for rows where it is not clipped.

    One document of 63 one-piece words + EOS and a budget of 32 tokens: the first anchor in the random
    order always fits, so its length is the drawn length unless the run ends within max_len words.
    """
    seq_len, rows = 64, 4000
    tokens = np.full((rows, seq_len), 100, np.int32)
    tokens[:, -1] = SPECIALS.eos
    segment_ids = np.ones((rows, seq_len), np.int32)
    choice = jitted_choice(seq_len, unit=unit, rate=0.5, max_predictions=seq_len, **overrides)
    selection = choice(jax.random.key(seed), tokens, segment_ids, np.ones((rows, seq_len), bool))
    units, rank = np.asarray(selection.units), np.asarray(selection.rank)
    first = rank.argmin(1)  # the unit start with rank 0
    max_len = overrides.get("span_max_len", 10) if unit == "span" else overrides.get("ngram_max", 3)
    unclipped = first <= seq_len - 1 - max_len
    lengths = units[np.arange(rows), first][unclipped]
    assert (lengths >= 1).all()
    return lengths


def test_span_lengths_follow_the_truncated_geometric():
    lengths = _first_span_lengths("span", 6)
    probs = masks.truncated_geometric_probs(0.2, 10)
    support = np.arange(1, 11)
    mean, sd = (probs * support).sum(), np.sqrt((probs * support**2).sum() - (probs * support).sum() ** 2)
    assert abs(mean - 3.797) < 1e-3  # SpanBERT's reported mean of 3.8 words
    assert abs(lengths.mean() - mean) < 3 * sd / np.sqrt(lengths.size), lengths.mean()
    assert lengths.max() <= 10


def test_ngram_n_is_proportional_to_one_over_n():
    lengths = _first_span_lengths("ngram", 7)
    probs = np.array([6, 3, 2]) / 11
    for n, p in enumerate(probs, start=1):
        assert abs(np.mean(lengths == n) - p) < 3 * np.sqrt(p * (1 - p) / lengths.size), (n, np.mean(lengths == n))


# ---- properties over random layouts -------------------------------------------------------------

# Every unit and both counts, in few configurations (each one compiles once).
CASES = [("token", "fixed"), ("token", "bernoulli"), ("word", "fixed"), ("span", "fixed"), ("ngram", "bernoulli")]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), case=st.sampled_from(CASES), word_start_prob=st.sampled_from([0.3, 1.0]),
       special_prob=st.sampled_from([0.0, 0.1]))
def test_invariants_over_random_layouts(seed, case, word_start_prob, special_prob):
    unit, count = case
    seq_len, rows, P, rate = 32, 8, 6, 0.4
    packed = random_packed(seed, rows, seq_len, word_start_prob=word_start_prob, special_prob=special_prob)
    out = jitted(seq_len, unit=unit, count=count, max_predictions=P, rate=rate)(jax.random.key(seed), packed)
    assert {k: v.shape for k, v in flat(out).items()} == {
        "inputs": (rows, seq_len), "segment_ids": (rows, seq_len), "positions": (rows, seq_len),
        "token_type_ids": (rows, seq_len), "mlm_positions": (rows, P), "targets.mlm.ids": (rows, P),
        "targets.mlm.weights": (rows, P)}
    eligible = eligible_of(packed)
    pos, w = np.asarray(out["mlm_positions"]), np.asarray(out["targets"]["mlm"].weights)
    chosen = chosen_mask(out, seq_len)
    # Special and padding tokens are never chosen, weighted or changed; nothing unchosen changes.
    assert not (chosen & ~eligible).any()
    np.testing.assert_array_equal(np.asarray(out["inputs"])[~chosen], packed.tokens[~chosen])
    counts = w.sum(1).astype(int)
    budget = [min(P, max(1, round(n * rate))) for n in eligible.sum(1).tolist()]
    for b in range(rows):
        k = counts[b]
        assert (w[b, :k] == 1).all() and (w[b, k:] == 0).all() and (pos[b, k:] == 0).all()
        assert (np.diff(pos[b, :k]) > 0).all()
        np.testing.assert_array_equal(out["targets"]["mlm"].ids[b, :k], packed.tokens[b, pos[b, :k]])
        if count == "fixed":
            assert k <= budget[b]
            if unit == "token":
                assert k == min(budget[b], eligible[b].sum())
    if unit == "token":
        return
    for b, words in enumerate(words_of(packed)):
        unchosen_lengths = []
        for start, end in words:
            assert chosen[b, start:end].all() or not chosen[b, start:end].any(), (b, start, end)
            if not chosen[b, start:end].any():
                unchosen_lengths.append(end - start)
        if unit == "word" and count == "fixed" and unchosen_lengths:
            # Greedy with skipping: every word left out is longer than the budget left over.
            assert min(unchosen_lengths) > budget[b] - counts[b], b


def test_random_order_puts_marked_positions_first_uniformly():
    first = np.zeros((4000, 12), bool)
    first[:, [1, 4, 5, 9, 10]] = True
    order = np.asarray(jax.jit(masks.random_order)(jax.random.key(0), jnp.asarray(first)))
    assert (np.sort(order[:, :5], 1) == [1, 4, 5, 9, 10]).all()
    np.testing.assert_array_equal(np.sort(order[:, 5:], 1), np.broadcast_to([0, 2, 3, 6, 7, 8, 11], (4000, 7)))
    for place in (0, 4):  # each marked position is equally likely at any place
        counts = np.array([np.sum(order[:, place] == p) for p in (1, 4, 5, 9, 10)])
        assert (((counts - 800) ** 2) / 800).sum() < 18.47  # chi-square 0.999 quantile, 4 dof


@pytest.mark.parametrize("length", [1, 7, 64, 512, 1000])
def test_first_in_random_order_takes_the_smallest_scores(length):
    """The budget eligible tokens of smallest score, equal scores going to the earlier position;
    rows past 512 tokens drop a score bit, so there only the count is exact."""
    rng = np.random.default_rng(length)
    for trial in range(6):
        scores = np.asarray(jax.random.uniform(jax.random.key(trial), (16, length)))
        if trial % 2:
            scores = np.round(scores * 8) / 9  # many equal scores
        eligible = rng.random((16, length)) < rng.random()
        budget = rng.integers(0, length + 2, 16).astype(np.int32)
        got = np.asarray(jax.jit(masks.first_in_random_order)(scores, eligible, budget))
        for row in range(16):
            order = sorted(np.flatnonzero(eligible[row]), key=lambda i: (scores[row, i], i))
            want = np.zeros(length, bool)
            want[order[: budget[row]]] = True
            if length <= 512 or trial % 2:
                np.testing.assert_array_equal(got[row], want)
            assert got[row].sum() == min(budget[row], len(order))


@pytest.mark.parametrize("length, fits", [(2**24, True), (2**24 + 1, False)])
def test_position_keys_refuse_rows_over_2_to_the_24_tokens(length, fits):
    """Shapes alone (eval_shape allocates nothing): 2^24 tokens fit the keys' position bits, one more does not."""
    scores, eligible = jax.ShapeDtypeStruct((1, length), jnp.float32), jax.ShapeDtypeStruct((1, length), jnp.bool_)
    budget = jax.ShapeDtypeStruct((1,), jnp.int32)
    for fn, args in ((masks.first_in_random_order, (scores, eligible, budget)),
                     (masks.random_order, (jax.random.key(0), eligible))):
        if fits:
            assert jax.eval_shape(fn, *args).shape == (1, length)
        else:
            with pytest.raises(ValueError, match=r"supports rows up to 2\^24 tokens"):
                jax.eval_shape(fn, *args)


def test_single_unit_fast_path_equals_the_general_greedy():
    # length_probs=None takes the prefix-sum path; [1.0] runs the one-anchor-per-step loop. Same key,
    # same order of anchors: the same choice, on layouts with many-piece words and tight budgets.
    packed = random_packed(11, 500, 64, word_start_prob=0.4, special_prob=0.1)
    eligible = jnp.asarray(eligible_of(packed))
    starts, runs = masks.unit_and_run_starts(eligible, jnp.asarray(packed.segment_ids), jnp.asarray(packed.word_starts))
    budget = jnp.asarray(np.random.default_rng(0).integers(0, 13, 500), jnp.int32)

    @jax.jit
    def both(rng):
        fast = masks.select_units(rng, eligible, starts, runs, budget, 12)
        slow = masks.select_units(rng, eligible, starts, runs, budget, 12, np.array([1.0]))
        return fast, slow

    fast, slow = both(jax.random.key(0))
    np.testing.assert_array_equal(fast.chosen, slow.chosen)
    np.testing.assert_array_equal(fast.units, slow.units)
    assert 0 < np.asarray(fast.chosen).sum(1).mean() < 12


# ---- shapes, determinism, config ---------------------------------------------------------------


def test_eval_shape_depends_on_config_only():
    objective = bert_mlm.build(mlm_config(unit="word", max_predictions=20), SPECIALS, 128)
    spec = jax.ShapeDtypeStruct((16, 128), jnp.int32)
    packed = PackedBatch(spec, spec, spec, spec, jax.ShapeDtypeStruct((16, 128), bool))
    shapes = jax.eval_shape(objective, jax.random.key(0), packed)
    assert {k: (v.shape, v.dtype) for k, v in flat(shapes).items()} == {
        "inputs": ((16, 128), jnp.int32), "segment_ids": ((16, 128), jnp.int32),
        "positions": ((16, 128), jnp.int32), "token_type_ids": ((16, 128), jnp.int32),
        "mlm_positions": ((16, 20), jnp.int32), "targets.mlm.ids": ((16, 20), jnp.int32),
        "targets.mlm.weights": ((16, 20), jnp.float32)}


def test_dynamic_masking_fresh_per_key_and_reproducible():
    packed = random_packed(0, ROWS, 64)  # the shapes and config of the fixed-count test: no new compile
    fn = jitted(64, max_predictions=8)
    outs = [fn(key, packed) for key in jax.random.split(jax.random.key(0), 3)]
    has_choice = eligible_of(packed).sum(1) > 8
    for other in outs[1:]:
        differs = (np.asarray(outs[0]["mlm_positions"]) != np.asarray(other["mlm_positions"])).any(1)
        assert differs[has_choice].mean() > 0.9
    again = fn(jax.random.split(jax.random.key(0), 3)[2], packed)
    np.testing.assert_array_equal(again["mlm_positions"], outs[2]["mlm_positions"])
    np.testing.assert_array_equal(again["inputs"], outs[2]["inputs"])


def test_registered_and_built_from_the_base_config():
    assert get_spec("bert_mlm").family == "encoder"
    config = get_config()
    config.objective.name = "bert_mlm"
    objective, family = build_objective(config.objective, SPECIALS, config.data.seq_len)
    assert family == "encoder"
    out = jax.jit(objective)(jax.random.key(0), random_packed(9, 2, config.data.seq_len))
    assert out["mlm_positions"].shape == (2, config.objective.bert_mlm.max_predictions)


@pytest.mark.parametrize("overrides, message", [
    ({"rate": 0.0}, "rate"), ({"rate": 1.0}, "rate"), ({"max_predictions": 0}, "max_predictions"),
    ({"max_predictions": 129}, "max_predictions"), ({"mask_prob": 0.95, "random_prob": 0.1}, "exceeds 1"),
    ({"random_prob": -0.1}, "random_prob"), ({"count": "poisson"}, "count"), ({"unit": "sentence"}, "unit"),
    ({"span_geometric_p": 1.0}, "span_geometric_p"), ({"span_max_len": 0}, "span_max_len"),
    ({"ngram_max": 0}, "ngram_max"),
])
def test_invalid_settings_fail_at_build_time(overrides, message):
    with pytest.raises(ValueError, match=message):
        bert_mlm.build(mlm_config(**overrides), SPECIALS, 128)


def test_word_unit_without_word_starts_is_an_error():
    packed = random_packed(10, 2, 16)._replace(word_starts=None)
    with pytest.raises(ValueError, match="word_starts"):
        bert_mlm.build(mlm_config(unit="word", max_predictions=4), SPECIALS, 16)(jax.random.key(0), packed)
