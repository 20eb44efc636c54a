"""GPT-like decoder: no attention to future tokens, other documents or padding; prefix LM."""

import jax.numpy as jnp
import numpy as np
import pytest
from model_fixtures import VOCAB, build_family, family_batch, forward, replace_tokens


@pytest.fixture(scope="module")
def model():
    return build_family("decoder")


def logits(model, batch):
    return np.asarray(forward(model, batch).logits["lm"])


def test_shape(model):
    out = forward(model, family_batch("decoder"))
    assert set(out.logits) == {"lm"} and out.targets == {}
    assert out.logits["lm"].shape == (2, 16, VOCAB) and out.logits["lm"].dtype == jnp.float32


def test_future_tokens_do_not_leak(model):
    batch = family_batch("decoder")
    base = logits(model, batch)
    changed = logits(model, replace_tokens(batch, "inputs", 1, slice(7, 16)))  # row 1: one document
    np.testing.assert_allclose(changed[1, :7], base[1, :7], atol=1e-6)
    assert np.abs(changed[1, 7] - base[1, 7]).max() > 1e-4


def test_documents_are_isolated(model):
    batch = family_batch("decoder")
    base = logits(model, batch)
    # Document 1 of row 0 (positions 0-4) changes: document 2 (5-10) is causally after it but must not see it.
    changed = logits(model, replace_tokens(batch, "inputs", 0, slice(0, 5)))
    np.testing.assert_allclose(changed[0, 5:11], base[0, 5:11], atol=1e-6)
    assert np.abs(changed[0, 4] - base[0, 4]).max() > 1e-4


def test_prefix_attends_bidirectionally_within_prefix(model):
    batch = family_batch("decoder")
    prefix = jnp.zeros((2, 16), bool).at[1, :6].set(True)
    batch = dict(batch, prefix_mask=prefix)
    base = logits(model, batch)
    # A later prefix token reaches the first position; a token after the prefix does not.
    changed = logits(model, replace_tokens(batch, "inputs", 1, 5))
    assert np.abs(changed[1, 0] - base[1, 0]).max() > 1e-4
    changed = logits(model, replace_tokens(batch, "inputs", 1, slice(6, 16)))
    np.testing.assert_allclose(changed[1, :6], base[1, :6], atol=1e-6)
    # Row 0 has no prefix: still strictly causal.
    changed = logits(model, replace_tokens(batch, "inputs", 0, 3))
    np.testing.assert_allclose(changed[0, :3], base[0, :3], atol=1e-6)
