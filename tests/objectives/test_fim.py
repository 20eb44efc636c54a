"""fim: golden rewrites, rates and cut distribution, permutation and loss properties over layouts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packed_rows import pack_documents

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import build_objective, fim
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
    [(False, [10, 20, 12, 23, 11, 21, 22, 1, 30, 1]), (True, [10, 12, 23, 11, 20, 21, 22, 1, 30, 1])],
)
def test_golden_rewrite(spm, expected):
    """Text 20..26 + EOS keeps m = 4 tokens; cuts 1 and 3: prefix [20], middle [21 22], suffix [23]."""
    tokens = jnp.array([[20, 21, 22, 23, 24, 25, 26, 1, 30, 1]])
    segment_ids = jnp.array([[1] * 8 + [2] * 2])
    full = jnp.ones_like(tokens)
    plan = fim.FimPlan(segment_ids > 0, full.astype(bool) & spm, full, 3 * full)
    out, middle_start = fim.apply_plan(tokens, segment_ids, plan, SPECIALS)
    np.testing.assert_array_equal(out, [expected])  # the second document (m < 1) is untouched
    assert int(middle_start[0, 0]) == 5


def test_golden_objective_middle_loss():
    tokens = np.array([[20, 21, 22, 23, 24, 25, 26, 1, 30, 1]], np.int32)
    segment_ids = np.array([[1] * 8 + [2] * 2], np.int32)
    positions = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 0, 1]], np.int32)
    out = jitted(10, fim_rate=1.0, loss_on="middle")(jax.random.key(1), PackedBatch(tokens, segment_ids, positions))
    # key 1: cuts 2 and 4 -> <PRE> 20 21 <SUF> <MID> 22 23 EOS (empty suffix); loss on 22, 23, EOS.
    np.testing.assert_array_equal(out["inputs"], [[PRE, 20, 21, SUF, MID, 22, 23, 1, 30, 1]])
    np.testing.assert_array_equal(out["lm_targets"], [[20, 21, SUF, MID, 22, 23, 1, 0, 1, 0]])
    np.testing.assert_array_equal(out["lm_weights"], [[0, 0, 0, 0, 1, 1, 1, 0, 1, 0]])
    np.testing.assert_array_equal(out["positions"], positions)


def test_rates_and_cut_distribution():
    """fim_rate and spm_rate per document; (lo, hi) distributed as two sorted uniform draws on [0, m]."""
    packed = pack([[7, 7]] * 4096, 14)  # text of 6 tokens: m = 3
    settings_ = fim.FimSettings(0.5, 0.3, "all")
    plan = jax.device_get(draw_plan(jax.random.key(0), packed.tokens, packed.segment_ids, settings_))
    starts = (slice(None), [0, 7])
    applied, spm = plan.applied[starts].ravel(), plan.spm[starts].ravel()
    lo, hi = plan.lo[starts].ravel(), plan.hi[starts].ravel()
    n = applied.size

    def within(frequency, p, count):
        return abs(frequency - p) < 3 * np.sqrt(p * (1 - p) / count)

    assert within(applied.mean(), 0.5, n) and within(spm.mean(), 0.3, n)
    for a in range(4):
        for b in range(a, 4):
            p = (1 if a == b else 2) / 16
            assert within(np.mean((lo == a) & (hi == b)), p, n), (a, b)


def split_back(doc_out):
    """Text recovered from a rewritten document: prefix + middle + suffix, in either order."""
    suf, mid = list(doc_out).index(SUF), list(doc_out).index(MID)
    end = len(doc_out) - (doc_out[-1] == EOS)
    return list(doc_out[1:suf]) + list(doc_out[mid + 1 : end]) + list(doc_out[suf + 1 : mid])


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 14), max_size=6), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
    special_prob=st.sampled_from([0.0, 0.1]),
    loss_on=st.sampled_from(["all", "middle"]),
)
def test_documents_are_permutations_plus_three_sentinels(rows, seed, special_prob, loss_on):
    packed = pack(rows, 32, seed, special_prob, eos_prob=0.8)
    key = jax.random.key(seed)
    out = jax.device_get(jitted(32, fim_rate=1.0, spm_rate=0.5, loss_on=loss_on)(key, packed))
    # The objective's own draws, to know where each middle starts (SPM hides the prefix/middle cut).
    plan = jax.device_get(draw_plan(key, packed.tokens, packed.segment_ids, fim.FimSettings(1.0, 0.5, loss_on)))
    segment_ids = packed.segment_ids
    np.testing.assert_array_equal(out["segment_ids"], segment_ids)
    np.testing.assert_array_equal(out["positions"], packed.positions)
    following = np.pad(segment_ids[:, 1:], ((0, 0), (0, 1)))
    same_document = (segment_ids > 0) & (following == segment_ids)
    next_inputs = np.pad(out["inputs"][:, 1:], ((0, 0), (0, 1)))
    np.testing.assert_array_equal(out["lm_targets"][same_document], next_inputs[same_document])
    weighted = out["lm_weights"] > 0
    for b in range(4):
        for k in np.unique(segment_ids[b][segment_ids[b] > 0]):
            where = segment_ids[b] == k
            doc, doc_out = packed.tokens[b][where], out["inputs"][b][where]
            doc_weights, doc_pairs = weighted[b][where], same_document[b][where]
            text = len(doc) - (doc[-1] == EOS)
            if text - 3 < 1:  # too short: untouched, plain causal
                assert np.array_equal(doc_out, doc) and np.array_equal(doc_weights, doc_pairs)
                continue
            kept = doc[: text - 3]
            assert doc_out[0] == PRE and (doc[-1] != EOS or doc_out[-1] == EOS)
            assert sorted(doc_out.tolist()) == sorted(kept.tolist() + [PRE, SUF, MID] + doc[text:].tolist())
            assert split_back(doc_out) == kept.tolist()
            spm, lo = bool(plan.spm[b][where][0]), int(plan.lo[b][where][0])
            assert doc_out[1 if spm else lo + 1] == SUF
            middle_start = list(doc_out).index(MID) + 1 + (lo if spm else 0)
            if loss_on == "all":
                np.testing.assert_array_equal(doc_weights, doc_pairs)
            else:  # exactly the predictions of middle tokens and of the final EOS
                np.testing.assert_array_equal(doc_weights, doc_pairs & (np.arange(len(doc)) + 1 >= middle_start))


def test_shapes_and_family():
    cfg = get_config()
    cfg.objective.name = "fim"
    objective, family = build_objective(cfg.objective, SPECIALS, 512)
    assert family == "decoder"
    packed = jax.ShapeDtypeStruct((8, 512), jnp.int32)
    shapes = jax.eval_shape(objective, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert all(v.shape == (8, 512) for v in shapes.values()) and "prefix_mask" not in shapes


@pytest.mark.parametrize(
    "overrides, seq_len, message",
    [
        ({"fim_rate": 1.5}, 64, "fim_rate"),
        ({"spm_rate": -0.1}, 64, "spm_rate"),
        ({"loss_on": "prefix"}, 64, "loss_on"),
        ({}, 4, "too short"),
    ],
)
def test_invalid_settings_fail_at_build(overrides, seq_len, message):
    with pytest.raises(ValueError, match=message):
        fim.build(fim_config(**overrides), SPECIALS, seq_len)
