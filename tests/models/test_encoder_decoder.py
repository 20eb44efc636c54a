"""T5-like encoder-decoder: shapes, causal decoder, cross-attention by document, sentinels."""

import jax.numpy as jnp
import numpy as np
import pytest
from model_fixtures import VOCAB, build_family, family_batch, forward, replace_tokens


@pytest.fixture(scope="module")
def model():
    return build_family("encoder_decoder")


def logits(model, batch):
    return np.asarray(forward(model, batch).logits["lm"])


def test_shape_and_sentinels(model):
    batch = family_batch("encoder_decoder")
    assert model.embeddings.token.table.shape[0] == VOCAB
    # The top id (the first T5 sentinel) embeds like any other.
    batch["encoder_inputs"] = batch["encoder_inputs"].at[0, 2].set(VOCAB - 1)
    out = forward(model, batch)
    assert set(out.logits) == {"lm"} and out.targets == {}
    assert out.logits["lm"].shape == (2, 12, VOCAB) and out.logits["lm"].dtype == jnp.float32
    assert np.isfinite(out.logits["lm"]).all()


def test_decoder_is_causal(model):
    batch = family_batch("encoder_decoder")
    base = logits(model, batch)
    changed = logits(model, replace_tokens(batch, "decoder_inputs", 1, slice(5, 12)))
    np.testing.assert_allclose(changed[1, :5], base[1, :5], atol=1e-6)
    assert np.abs(changed[1, 5] - base[1, 5]).max() > 1e-4


def test_cross_attention_stays_within_document(model):
    # Row 0: encoder documents at 0-4 and 5-10; decoder documents at 0-3 and 4-8.
    batch = family_batch("encoder_decoder")
    base = logits(model, batch)
    changed = logits(model, replace_tokens(batch, "encoder_inputs", 0, slice(5, 11)))
    np.testing.assert_allclose(changed[0, :4], base[0, :4], atol=1e-6)
    assert np.abs(changed[0, 4:9] - base[0, 4:9]).max() > 1e-4
    changed = logits(model, replace_tokens(batch, "encoder_inputs", 0, slice(0, 5)))
    np.testing.assert_allclose(changed[0, 4:9], base[0, 4:9], atol=1e-6)
    # Padding of the encoder reaches nothing.
    changed = logits(model, replace_tokens(batch, "encoder_inputs", 0, slice(11, 16)))
    np.testing.assert_allclose(changed[0, :9], base[0, :9], atol=1e-6)
    # Decoder document 1 does not see decoder document 2.
    changed = logits(model, replace_tokens(batch, "decoder_inputs", 0, slice(0, 4)))
    np.testing.assert_allclose(changed[0, 4:9], base[0, 4:9], atol=1e-6)
