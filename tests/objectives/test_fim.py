"""fim: golden rewrites, rates and cut distribution, permutation and loss properties over layouts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flat_batch import flat
from hypothesis import given, settings
from hypothesis import strategies as st
from packed_rows import pack_documents

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import build_objective, build_row_budget, fim
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
EOS, SEP = SPECIALS.eos, SPECIALS.sep
PRE, MID, SUF = SPECIALS.fim_prefix, SPECIALS.fim_middle, SPECIALS.fim_suffix


def fim_config(**overrides):
    cfg = get_config().objective.fim
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def jitted(seq_len, **overrides):
    return jax.jit(fim.build(fim_config(**overrides), SPECIALS, seq_len))


draw_plan = jax.jit(functools.partial(fim.draw_plan, specials=SPECIALS), static_argnums=3)


pack = functools.partial(pack_documents, specials=SPECIALS)


@pytest.mark.parametrize(
    "spm, expected",
    [(False, [10, 20, 12, 23, 11, 21, 22, 1, 30, 1, 0]), (True, [10, 12, 23, 11, 20, 21, 22, 1, 30, 1, 0])],
)
def test_golden_rewrite(spm, expected):
    """By hand: text 20 21 22 23 + EOS, cuts 1 and 3: prefix [20], middle [21 22], suffix [23].
    PSM <PRE> 20 <SUF> 23 <MID> 21 22 EOS; SPM <PRE> <SUF> 23 <MID> 20 21 22 EOS. The document grows by
    the 3 sentinels, every text token kept; the second document (not planned) follows, unchanged."""
    tokens = jnp.array([[20, 21, 22, 23, 1, 30, 1, 0]])
    segment_ids = jnp.array([[1] * 5 + [2] * 2 + [0]])
    full = jnp.ones_like(tokens)
    plan = fim.FimPlan(segment_ids == 1, full.astype(bool) & spm, full, 3 * full)
    out, segments, positions, in_middle, transformed = fim.apply_plan(tokens, segment_ids, plan, SPECIALS, 11)
    np.testing.assert_array_equal(out, [expected])
    np.testing.assert_array_equal(segments, [[1] * 8 + [2] * 2 + [0]])
    np.testing.assert_array_equal(positions, [list(range(8)) + [0, 1, 0]])
    np.testing.assert_array_equal(in_middle, [[0] * 5 + [1] * 3 + [0] * 3])  # 21, 22 and the EOS after them
    np.testing.assert_array_equal(transformed, [[1] * 8 + [0] * 3])


def test_golden_sentinels_after_the_last_token_of_a_chunk_without_eos():
    """A chunk cut from a longer document has no EOS; cut at 4 and 4 (all prefix): <PRE> text <SUF> <MID>,
    the two markers after the last token."""
    tokens = jnp.array([[20, 21, 22, 23, 0, 0, 0]])
    segment_ids = jnp.array([[1, 1, 1, 1, 0, 0, 0]])
    fours = 4 * jnp.ones_like(tokens)
    plan = fim.FimPlan(segment_ids > 0, jnp.zeros_like(tokens, bool), fours, fours)
    out = fim.apply_plan(tokens, segment_ids, plan, SPECIALS, 7)[0]
    np.testing.assert_array_equal(out, [[PRE, 20, 21, 22, 23, SUF, MID]])


def test_golden_objective_middle_loss():
    tokens = np.array([[20, 21, 22, 23, 24, 1, 30, 1, 0, 0, 0, 0, 0]], np.int32)
    segment_ids = np.array([[1] * 6 + [2] * 2 + [0] * 5], np.int32)
    positions = np.array([[0, 1, 2, 3, 4, 5, 0, 1, 0, 0, 0, 0, 0]], np.int32)
    key = jax.random.key(1)
    plan = draw_plan(key, tokens, segment_ids, fim.FimSettings(1.0, 0.5, "middle"))
    # This key draws SPM for both documents: for document 1 cuts 1 and 5 (prefix [20], middle
    # [21 22 23 24], empty suffix), for document 2 cuts 0 and 0 (all suffix). So, by the SPM layout
    # <PRE> <SUF> suffix <MID> prefix middle EOS:
    #   <PRE> <SUF> <MID> 20 21 22 23 24 EOS | <PRE> <SUF> 30 <MID> EOS
    # and the loss falls where the next token is in a middle or is the EOS that ends it: the
    # predictions of 21, 22, 23, 24, EOS (positions 3-7; not of 20, the prefix) and of the second EOS
    # (position 12).
    assert [int(plan.lo[0, 0]), int(plan.hi[0, 0]), bool(plan.spm[0, 0])] == [1, 5, True]
    assert [int(plan.lo[0, 6]), int(plan.hi[0, 6]), bool(plan.spm[0, 6])] == [0, 0, True]
    out = jitted(16, fim_rate=1.0, loss_on="middle")(key, PackedBatch(tokens, segment_ids, positions))
    np.testing.assert_array_equal(out["inputs"], [[PRE, SUF, MID, 20, 21, 22, 23, 24, 1, PRE, SUF, 30, MID, 1, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].weights, [[0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(out["segment_ids"], [[1] * 9 + [2] * 5 + [0] * 2])
    np.testing.assert_array_equal(out["positions"], [list(range(9)) + list(range(5)) + [0, 0]])


def test_rates_and_cut_distribution():
    """fim_rate and spm_rate per document; (lo, hi) distributed as two sorted uniform draws on [0, m]."""
    packed = pack([[7, 7]] * 4096, 14)  # text of 6 tokens + EOS: m = 6
    settings_ = fim.FimSettings(0.5, 0.3, "all")
    plan = jax.device_get(draw_plan(jax.random.key(0), packed.tokens, packed.segment_ids, settings_))
    starts = (slice(None), [0, 7])
    applied, spm = plan.applied[starts].ravel(), plan.spm[starts].ravel()
    lo, hi = plan.lo[starts].ravel(), plan.hi[starts].ravel()
    n = applied.size

    def within(frequency, p, count):
        return abs(frequency - p) < 3 * np.sqrt(p * (1 - p) / count)

    assert within(applied.mean(), 0.5, n) and within(spm.mean(), 0.3, n)
    for a in range(7):
        for b in range(a, 7):
            p = (1 if a == b else 2) / 49
            assert within(np.mean((lo == a) & (hi == b)), p, n), (a, b)


def split_back(doc_out):
    """Text recovered from a rewritten document: prefix + middle + suffix, in either order."""
    suf, mid = list(doc_out).index(SUF), list(doc_out).index(MID)
    end = len(doc_out) - (doc_out[-1] == EOS)
    if suf == 1:  # SPM: <PRE> <SUF> suffix <MID> prefix middle
        return list(doc_out[mid + 1 : end]) + list(doc_out[suf + 1 : mid])
    return list(doc_out[1:suf]) + list(doc_out[mid + 1 : end]) + list(doc_out[suf + 1 : mid])


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 14), max_size=6), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
    special_prob=st.sampled_from([0.0, 0.1]),
    loss_on=st.sampled_from(["all", "middle"]),
)
def test_every_text_token_is_kept_around_three_sentinels(rows, seed, special_prob, loss_on):
    """Packed under FIM's row budget (each document + 3 fits the output row), every transformed
    document is its text, whole and in order once the three parts are put back, plus the three
    sentinels; every other document is unchanged; the documents stay in order; the loss falls on
    every next token, or (loss_on="middle") only on the middle's tokens and the EOS after them."""
    budget = fim._budget(fim_config(), SPECIALS, 32)
    packed = pack([fit(lengths, budget) for lengths in rows], budget.row_length, seed, special_prob, eos_prob=0.8)
    key = jax.random.key(seed)
    out = jax.device_get(jitted(32, fim_rate=1.0, loss_on=loss_on)(key, packed))
    # The objective's own draws, to know where each middle starts (SPM hides the prefix/middle cut).
    plan = jax.device_get(draw_plan(key, packed.tokens, packed.segment_ids, fim.FimSettings(1.0, 0.5, loss_on)))
    following = np.pad(out["segment_ids"][:, 1:], ((0, 0), (0, 1)))
    same_document = (out["segment_ids"] > 0) & (following == out["segment_ids"])
    next_inputs = np.pad(out["inputs"][:, 1:], ((0, 0), (0, 1)))
    np.testing.assert_array_equal(out["targets"]["lm"].ids[same_document], next_inputs[same_document])
    for b in range(4):
        ids_in, ids_out = (np.unique(x[b][x[b] > 0]) for x in (packed.segment_ids, out["segment_ids"]))
        assert len(ids_in) == len(ids_out)
        for k_in, k_out in zip(ids_in, ids_out, strict=True):
            where_in, where_out = packed.segment_ids[b] == k_in, out["segment_ids"][b] == k_out
            doc, doc_out = packed.tokens[b][where_in], out["inputs"][b][where_out]
            weights = out["targets"]["lm"].weights[b][where_out]
            np.testing.assert_array_equal(out["positions"][b][where_out], np.arange(len(doc_out)))
            text = len(doc) - (doc[-1] == EOS)
            if text < 1:  # nothing to cut: untouched
                np.testing.assert_array_equal(doc_out, doc)
                continue
            assert len(doc_out) == len(doc) + 3 and doc_out[0] == PRE
            assert doc[-1] != EOS or doc_out[-1] == EOS
            assert sorted(doc_out.tolist()) == sorted(doc.tolist() + [PRE, SUF, MID])
            assert split_back(doc_out) == doc[:text].tolist()
            predicts = np.arange(len(doc_out)) < len(doc_out) - 1
            if loss_on == "all":
                np.testing.assert_array_equal(weights, predicts)
            else:
                spm, lo = bool(plan.spm[b][where_in][0]), int(plan.lo[b][where_in][0])
                assert doc_out[1 if spm else lo + 1] == SUF
                middle_start = list(doc_out).index(MID) + 1 + (lo if spm else 0)
                np.testing.assert_array_equal(weights, predicts & (np.arange(len(doc_out)) + 1 >= middle_start))


def fit(lengths, budget):
    """The documents of one row that fit the budget (raw tokens, and output tokens: length + 3)."""
    kept, raw, out = [], 0, 0
    for size in lengths:
        if raw + size > budget.row_length or out + size + 3 > budget.capacities[0]:
            break
        kept.append(size)
        raw, out = raw + size, out + size + 3
    return kept


def test_shapes_family_and_row_budget():
    """Rows of 509 raw tokens: one document of 509 (+ 3 sentinels) fills the 512 outputs."""
    cfg = get_config()
    cfg.objective.name = "fim"
    objective, family = build_objective(cfg.objective, SPECIALS, 512)
    budget = build_row_budget(cfg.objective, SPECIALS, 512)
    assert family == "decoder" and budget.row_length == 509 and budget.capacities == (512,)
    packed = jax.ShapeDtypeStruct((8, 509), jnp.int32)
    shapes = jax.eval_shape(objective, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert all(v.shape == (8, 512) for v in flat(shapes).values()) and "prefix_mask" not in shapes
    cfg.objective.fim.cut_unit = "char"
    assert build_row_budget(cfg.objective, SPECIALS, 512).row_length == 512


@pytest.mark.parametrize(
    "overrides, seq_len, message",
    [
        ({"fim_rate": 1.5}, 64, "fim_rate"),
        ({"spm_rate": -0.1}, 64, "spm_rate"),
        ({"loss_on": "prefix"}, 64, "loss_on"),
        ({"cut_unit": "word"}, 64, "cut_unit"),
        ({"cut_unit": "char", "loss_on": "middle"}, 64, "needs cut_unit='token'"),
        ({}, 4, "too short"),
    ],
)
def test_invalid_settings_fail_at_build(overrides, seq_len, message):
    with pytest.raises(ValueError, match=message):
        fim.build(fim_config(**overrides), SPECIALS, seq_len)


def test_character_cuts_on_the_host():
    """cut_unit="char": the host step cuts the text's characters at two uniform points, tokenizes each
    part on its own and lays them out as PSM or SPM (on device the document is then plain causal LM).
    With a character-level "tokenizer" (id = 13 + letter) every rewrite is read back by hand: the
    text is prefix + middle + suffix; <SUF> right after <PRE> means SPM, or PSM with an empty prefix
    (probability 1/2 + 1/2 * 13/49 for 6 letters: the lower of two cuts on 0..6 is 0 with 1 - (6/7)^2);
    a PSM rewrite with a prefix shows both cuts, each sorted pair (lo, hi) with lo >= 1 with
    probability 1/2 * (2 if lo < hi else 1) / 49."""
    encode_batch = lambda parts: [[13 + ord(c) - ord("a") for c in part] for part in parts]  # noqa: E731
    letters = lambda ids: "".join(chr(i - 13 + ord("a")) for i in ids)  # noqa: E731
    transform = fim.host_transform(fim_config(cut_unit="char", fim_rate=1.0, spm_rate=0.5), SPECIALS)
    text, rng, n = "abcdef", np.random.default_rng(0), 8000
    suffix_first, cuts = 0, np.zeros((7, 7), int)
    for _ in range(n):
        ids = transform(text, encode_batch, rng)
        assert ids[0] == PRE and ids.count(SUF) == ids.count(MID) == 1
        suf, mid = ids.index(SUF), ids.index(MID)
        front, suffix, after = letters(ids[1:suf]), letters(ids[suf + 1 : mid]), letters(ids[mid + 1 :])
        assert front + after + suffix == text
        if suf == 1:
            suffix_first += 1
        else:
            cuts[len(front), len(text) - len(suffix)] += 1

    def within(count, p):
        return abs(count / n - p) < 4 * np.sqrt(p * (1 - p) / n)

    assert within(suffix_first, 0.5 + 0.5 * 13 / 49)
    for lo in range(1, 7):
        for hi in range(lo, 7):
            assert within(cuts[lo, hi], 0.5 * (2 if lo < hi else 1) / 49), (lo, hi)
    never = fim.host_transform(fim_config(cut_unit="char", fim_rate=0.0), SPECIALS)
    assert never(text, encode_batch, rng) is None and transform("", encode_batch, rng) is None
    assert fim.host_transform(fim_config(), SPECIALS) is None  # cut_unit="token": no host step
