"""causal_lm: golden row, shapes, and no weighted target across a document boundary (any layout)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flat_batch import flat
from hypothesis import given, settings
from hypothesis import strategies as st

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import build_objective, causal_lm
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
OBJECTIVE = jax.jit(causal_lm.build(get_config().objective.causal_lm, SPECIALS, 32))


def test_golden_row():
    tokens = np.array([[17, 52, 9, 1, 33, 8, 1, 0]], np.int32)
    segment_ids = np.array([[1, 1, 1, 1, 2, 2, 2, 0]], np.int32)
    positions = np.array([[0, 1, 2, 3, 0, 1, 2, 0]], np.int32)
    build = causal_lm.build(get_config().objective.causal_lm, SPECIALS, 8)
    out = build(None, PackedBatch(tokens, segment_ids, positions))
    np.testing.assert_array_equal(out["inputs"], tokens)
    np.testing.assert_array_equal(out["targets"]["lm"].ids, [[52, 9, 1, 0, 8, 1, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].weights, [[1, 1, 1, 0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(out["segment_ids"], segment_ids)
    np.testing.assert_array_equal(out["positions"], positions)
    assert out["targets"]["lm"].weights.dtype == jnp.float32 and out["targets"]["lm"].ids.dtype == jnp.int32


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.lists(st.integers(1, 12), max_size=6), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_no_weighted_target_crosses_a_boundary(lengths, seed):
    rng = np.random.default_rng(seed)
    tokens, segment_ids, positions = (np.zeros((4, 32), np.int32) for _ in range(3))
    for b, row in enumerate(lengths):
        at = 0
        for doc, size in enumerate(row, start=1):
            if at + size > 32:
                break
            tokens[b, at : at + size] = rng.integers(13, 8092, size)
            tokens[b, at + size - 1] = SPECIALS.eos
            segment_ids[b, at : at + size], positions[b, at : at + size] = doc, np.arange(size)
            at += size
    out = jax.device_get(OBJECTIVE(jax.random.key(0), PackedBatch(tokens, segment_ids, positions)))
    weighted = out["targets"]["lm"].weights > 0
    following = np.pad(segment_ids[:, 1:], ((0, 0), (0, 1)))
    same_document = (segment_ids > 0) & (following == segment_ids)
    np.testing.assert_array_equal(weighted, same_document)  # every in-document pair, nothing else
    np.testing.assert_array_equal(out["targets"]["lm"].ids[weighted], np.pad(tokens[:, 1:], ((0, 0), (0, 1)))[weighted])
    assert not np.any(out["targets"]["lm"].ids[~weighted])


def test_shapes_and_family():
    cfg = get_config()
    cfg.objective.name = "causal_lm"
    objective, family = build_objective(cfg.objective, SPECIALS, 512)
    assert family == "decoder"
    packed = jax.ShapeDtypeStruct((8, 512), jnp.int32)
    shapes = jax.eval_shape(objective, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert {k: v.shape for k, v in flat(shapes).items()} == {
        k: (8, 512) for k in ("inputs", "segment_ids", "positions", "targets.lm.ids", "targets.lm.weights")
    }


def test_too_short_fails_at_build():
    with pytest.raises(ValueError, match="too short"):
        causal_lm.build(get_config().objective.causal_lm, SPECIALS, 1)
