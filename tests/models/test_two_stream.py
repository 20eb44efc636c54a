"""XLNet-like two-stream model: the query stream never sees its own content, only earlier ranks."""

import jax.numpy as jnp
import numpy as np
import pytest
from model_fixtures import VOCAB, build_family, family_batch, forward, replace_tokens


@pytest.fixture(scope="module")
def model():
    return build_family("two_stream")


@pytest.fixture(scope="module")
def batch():
    # Row 1 (one document): non-targets rank 0..12, then targets 5, 0, 15 (ranks 13, 14, 15).
    batch = family_batch("two_stream")
    ranks = np.asarray(batch["perm_ranks"]).copy()
    others = [i for i in range(16) if i not in (5, 0, 15)]
    ranks[1, others] = np.random.default_rng(3).permutation(13)
    ranks[1, [5, 0, 15]] = [13, 14, 15]
    return dict(batch, perm_ranks=jnp.asarray(ranks))


def logits(model, batch):
    return np.asarray(forward(model, batch).logits["plm"])  # row 1 predicts positions [0, 5, 15]


def test_shape(model, batch):
    out = forward(model, batch)
    assert set(out.logits) == {"plm"} and out.targets == {}
    assert out.logits["plm"].shape == (2, 3, VOCAB) and out.logits["plm"].dtype == jnp.float32


def test_query_stream_never_sees_its_own_content(model, batch):
    base = logits(model, batch)
    changed = logits(model, replace_tokens(batch, "inputs", 1, 0))  # target at position 0, rank 14
    np.testing.assert_allclose(changed[1, 0], base[1, 0], atol=1e-6)  # itself
    np.testing.assert_allclose(changed[1, 1], base[1, 1], atol=1e-6)  # position 5, rank 13: earlier
    assert np.abs(changed[1, 2] - base[1, 2]).max() > 1e-4  # position 15, rank 15: later, sees it


def test_query_stream_sees_earlier_ranks(model, batch):
    base = logits(model, batch)
    changed = logits(model, replace_tokens(batch, "inputs", 1, 5))  # rank 13
    assert np.abs(changed[1, 0] - base[1, 0]).max() > 1e-4  # position 0, rank 14
    np.testing.assert_allclose(changed[1, 1], base[1, 1], atol=1e-6)  # itself
    non_target = int(np.argmin(np.asarray(batch["perm_ranks"])[1]))  # rank 0: seen by every target
    changed = logits(model, replace_tokens(batch, "inputs", 1, non_target))
    assert (np.abs(changed[1] - base[1]).max(axis=-1) > 1e-4).all()


def test_documents_are_isolated(model, batch):
    # Row 0 predicts positions 1, 3 (document 1, positions 0-4) and 8 (document 2, positions 5-10).
    base = logits(model, batch)
    changed = logits(model, replace_tokens(batch, "inputs", 0, [5, 6, 7, 9, 10, 11, 12, 13, 14, 15]))
    np.testing.assert_allclose(changed[0, :2], base[0, :2], atol=1e-6)
