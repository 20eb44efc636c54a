"""The BiLSTM classifier: it learns a keyword task, ignores padding, and freezes or tunes the table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from baseline_helpers import WordTokenizer, keyword_examples
from flax import nnx

from pretrain_jax.baselines import bilstm

EMBEDDING_DIM = 16


def _config(**overrides):
    config = bilstm.default_config()
    config.update(dict(hidden_size=16, max_length=16, batch_size=16, eval_batch_size=32, num_epochs=10,
                       learning_rate=1e-2))
    config.update(overrides)
    return config


def _embeddings(tokenizer, seed=0):
    return np.random.default_rng(seed).normal(size=(tokenizer.vocab_size, EMBEDDING_DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def keyword_task():
    train_examples, tokenizer = keyword_examples(240, seed=0)
    test_examples, _ = keyword_examples(90, seed=1)
    return train_examples, test_examples, tokenizer, _embeddings(tokenizer)


def test_encode_examples_golden():
    tokenizer = WordTokenizer(["a", "b", "c"])  # ids 13, 14, 15
    tokens, lengths, labels = bilstm.encode_examples([("a b", 1), ("a b c a", 0), ("", 1)], tokenizer, 3)
    np.testing.assert_array_equal(tokens, [[13, 14, 0], [13, 14, 15], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [2, 3, 0])
    np.testing.assert_array_equal(labels, [1, 0, 1])


def test_learns_a_keyword_task(keyword_task):
    train_examples, test_examples, tokenizer, embeddings = keyword_task
    results = bilstm.train_and_evaluate(train_examples, test_examples, tokenizer, embeddings, _config(),
                                        label_names=["x", "y", "z"])
    assert results["num_train_examples"] == 240 and results["num_test_examples"] == 90
    assert results["accuracy"] >= 0.95, results
    assert results["macro_f1"] >= 0.95, results
    assert np.sum(results["confusion_matrix"]) == 90 and sorted(results["per_class_f1"]) == ["x", "y", "z"]


def test_frozen_embeddings_stay_fixed_while_the_lstm_learns(keyword_task):
    train_examples, _, tokenizer, embeddings = keyword_task
    config = _config(num_epochs=1)
    initial = bilstm.BiLSTMClassifier(embeddings, 16, 3, config.dropout, False, rngs=nnx.Rngs(0))
    model = bilstm.train(train_examples[:64], tokenizer, embeddings, config, num_classes=3)
    assert isinstance(model.embedding, bilstm.FrozenEmbedding)
    np.testing.assert_array_equal(np.asarray(model.embedding[...]), embeddings)
    assert not np.allclose(np.asarray(model.output.kernel[...]), np.asarray(initial.output.kernel[...]))


def test_fine_tuning_updates_only_the_rows_of_tokens_seen(keyword_task):
    train_examples, _, tokenizer, embeddings = keyword_task
    seen = {token for ids in tokenizer.encode_batch([text for text, _ in train_examples[:64]]) for token in ids}
    config = _config(num_epochs=1, fine_tune_embeddings=True)
    model = bilstm.train(train_examples[:64], tokenizer, embeddings, config, num_classes=3)
    assert isinstance(model.embedding, nnx.Param)
    changed = np.any(np.asarray(model.embedding[...]) != embeddings, axis=1)
    assert set(np.flatnonzero(changed)) == seen


def test_padding_does_not_change_the_logits(keyword_task):
    _, test_examples, tokenizer, embeddings = keyword_task
    graphdef, state = nnx.split(bilstm.BiLSTMClassifier(embeddings, 16, 3, 0.3, False, rngs=nnx.Rngs(1)))

    logits_fn = jax.jit(lambda state, tokens, lengths: nnx.merge(graphdef, state)(tokens, lengths))

    def model(tokens, lengths):
        return logits_fn(state, tokens, lengths)

    tokens, lengths, _ = bilstm.encode_examples(test_examples[:8], tokenizer, 16)
    logits = model(jnp.asarray(tokens), jnp.asarray(lengths))
    # Longer padding, filled with real token ids instead of the pad id: the valid steps are unchanged.
    junk = np.random.default_rng(0).integers(13, tokenizer.vocab_size, size=(8, 24)).astype(np.int32)
    longer = np.where(np.arange(24)[None, :] < lengths[:, None], np.pad(tokens, [(0, 0), (0, 8)]), junk)
    np.testing.assert_allclose(model(jnp.asarray(longer), jnp.asarray(lengths)), logits, rtol=1e-5, atol=1e-5)
    # A text gives the same logits whatever the other texts of its batch (and their lengths) are.
    others, other_lengths, _ = bilstm.encode_examples(test_examples[8:16], tokenizer, 16)
    others[5], other_lengths[5] = tokens[3], lengths[3]
    mixed = model(jnp.asarray(others), jnp.asarray(other_lengths))
    np.testing.assert_allclose(mixed[5], logits[3], rtol=1e-5, atol=1e-5)
    # But the valid tokens do matter.
    changed = tokens.copy()
    changed[:, 0] = np.where(changed[:, 0] == 13, 14, 13)
    assert not np.allclose(model(jnp.asarray(changed), jnp.asarray(lengths)), logits)


def test_bad_inputs_are_clear_errors(keyword_task):
    train_examples, _, tokenizer, embeddings = keyword_task
    with pytest.raises(ValueError, match="bilstm.dropout"):
        bilstm.train(train_examples, tokenizer, embeddings, _config(dropout=1.0), num_classes=3)
    with pytest.raises(ValueError, match="rows"):
        bilstm.train(train_examples, tokenizer, embeddings[:5], _config(), num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        bilstm.train(train_examples, tokenizer, embeddings, _config(), num_classes=2)
