"""prefix_lm: golden rows, uniform split, no loss in the prefix or across documents."""

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
from pretrain_jax.objectives import build_objective, prefix_lm
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
EOS, SEP = SPECIALS.eos, SPECIALS.sep


def objective(seq_len):
    return jax.jit(prefix_lm.build(get_config().objective.prefix_lm, SPECIALS, seq_len))


OBJECTIVE_32 = objective(32)


pack = functools.partial(pack_documents, specials=SPECIALS)


def test_golden_rows():
    # Two ordinary tokens leave one possible split (s = 1); one ordinary token: no prefix, plain causal.
    tokens = np.array([[20, 21, 1, 30, 1, 0, 0, 0]], np.int32)
    segment_ids = np.array([[1, 1, 1, 2, 2, 0, 0, 0]], np.int32)
    out = objective(8)(jax.random.key(0), PackedBatch(tokens, segment_ids, np.zeros_like(tokens)))
    np.testing.assert_array_equal(out["prefix_mask"], [[1, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].ids, [[21, 1, 0, 1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].weights, [[1, 1, 0, 1, 0, 0, 0, 0]])
    tokens = np.array([[20, 21, 22, 23, 1, 30, 31, 1]], np.int32)
    segment_ids = np.array([[1, 1, 1, 1, 1, 2, 2, 2]], np.int32)
    out = objective(8)(jax.random.key(0), PackedBatch(tokens, segment_ids, np.zeros_like(tokens)))
    np.testing.assert_array_equal(out["prefix_mask"], [[1, 1, 0, 0, 0, 1, 0, 0]])  # splits 2 and 1
    np.testing.assert_array_equal(out["targets"]["lm"].weights, [[0, 1, 1, 1, 0, 1, 1, 0]])


def test_split_is_uniform():
    """Documents of 5 ordinary tokens: prefix lengths 1..4 equally likely."""
    out = jax.device_get(objective(6)(jax.random.key(1), pack([[6]] * 4096, 6)))
    prefix = out["prefix_mask"].sum(1)
    frequency = np.bincount(prefix, minlength=5)[1:] / len(prefix)
    assert np.all(np.abs(frequency - 0.25) < 3 * np.sqrt(0.25 * 0.75 / len(prefix))), frequency


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 12), max_size=6), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
    special_prob=st.sampled_from([0.0, 0.2]),
)
def test_no_loss_in_prefix_or_across_documents(rows, seed, special_prob):
    packed = pack(rows, 32, seed, special_prob)
    out = jax.device_get(OBJECTIVE_32(jax.random.key(seed), packed))
    segment_ids, prefix, weighted = packed.segment_ids, out["prefix_mask"], out["targets"]["lm"].weights > 0
    following = np.pad(segment_ids[:, 1:], ((0, 0), (0, 1)))
    same_document = (segment_ids > 0) & (following == segment_ids)
    next_in_prefix = np.pad(prefix[:, 1:], ((0, 0), (0, 1)))
    np.testing.assert_array_equal(weighted, same_document & ~next_in_prefix)
    next_tokens = np.pad(packed.tokens[:, 1:], ((0, 0), (0, 1)))
    np.testing.assert_array_equal(out["targets"]["lm"].ids[weighted], next_tokens[weighted])
    assert not np.any(prefix & (segment_ids == 0))
    for b in range(4):
        for k in np.unique(segment_ids[b][segment_ids[b] > 0]):
            doc, doc_prefix = packed.tokens[b][segment_ids[b] == k], prefix[b][segment_ids[b] == k]
            n = int(np.sum(doc > SEP))
            s = int(doc_prefix.sum())
            assert np.all(doc_prefix[:s]) and not np.any(doc_prefix[s:])  # one block from the start
            if n < 2:
                assert s == 0
            else:  # prefix ends right before the (s'+1)-th ordinary token, s' uniform in [1, n)
                ordinary_in_prefix = int(np.sum(doc[:s] > SEP))
                assert 1 <= ordinary_in_prefix < n and doc[s] > SEP


def test_shapes_and_family():
    cfg = get_config()
    cfg.objective.name = "prefix_lm"
    built, family = build_objective(cfg.objective, SPECIALS, 512)
    assert family == "decoder"
    packed = jax.ShapeDtypeStruct((8, 512), jnp.int32)
    shapes = jax.eval_shape(built, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert all(v.shape == (8, 512) for v in flat(shapes).values())
    assert shapes["prefix_mask"].dtype == jnp.bool_


def test_too_short_fails_at_build():
    with pytest.raises(ValueError, match="too short"):
        prefix_lm.build(get_config().objective.prefix_lm, SPECIALS, 2)
