"""Skip-gram with negative sampling: the sampling formulas, the pairs, the loss, and what it learns."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from baseline_helpers import WordTokenizer

from pretrain_jax.baselines import skipgram


def test_keep_probabilities_golden():
    # f = 0.9, 0.09, 0.01; keep = min(1, sqrt(0.01 / f)).
    keep = skipgram.keep_probabilities(np.array([90, 9, 1]), t=0.01)
    np.testing.assert_allclose(keep, [np.sqrt(1 / 90), 1 / 3, 1.0])
    np.testing.assert_array_equal(skipgram.keep_probabilities(np.array([90, 9, 1]), t=0.0), [1, 1, 1])


def test_subsampling_keeps_each_token_at_its_formula_rate():
    rng = np.random.default_rng(0)
    counts = np.array([0, 50_000, 20_000, 5_000, 1_000, 100])
    doc = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    t = 2e-3
    keep = skipgram.keep_probabilities(counts, t)
    expected = np.minimum(1.0, np.sqrt(t / (counts[1:] / counts.sum())))
    np.testing.assert_allclose(keep[1:], expected)
    kept = np.concatenate(skipgram.subsample([doc[:40_000], doc[40_000:]], keep, rng))
    kept_counts = np.bincount(kept, minlength=len(counts))
    for token in range(1, len(counts)):
        p, n = keep[token], counts[token]
        assert abs(kept_counts[token] - p * n) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9, token
    assert kept_counts[5] == counts[5]  # Rare enough to be always kept.
    # Order within a document is preserved.
    kept_first = skipgram.subsample([np.arange(1000)], np.full(1000, 0.5), rng)[0]
    assert np.all(np.diff(kept_first) > 0)


def test_noise_distribution_golden_and_formula():
    np.testing.assert_allclose(skipgram.noise_distribution(np.array([16, 1, 0]), 0.75), [8 / 9, 1 / 9, 0])
    counts = np.random.default_rng(1).integers(0, 1000, size=50)
    for power in (0.0, 0.5, 0.75, 1.0):
        expected = np.where(counts > 0, counts.astype(float) ** power, 0)
        np.testing.assert_allclose(skipgram.noise_distribution(counts, power), expected / expected.sum())


def test_negatives_are_drawn_from_the_noise_distribution():
    counts = np.array([0, 1000, 300, 0, 50, 7, 0])
    noise = skipgram.noise_distribution(counts, 0.75)
    cdf = jnp.asarray(np.cumsum(noise), jnp.float32)
    n = 200_000
    samples = np.asarray(skipgram.sample_negatives(jax.random.key(0), cdf, (n // 5, 5)))
    assert samples.shape == (n // 5, 5) and samples.dtype == np.int32
    observed = np.bincount(samples.ravel(), minlength=len(counts))
    assert np.all(observed[counts == 0] == 0)  # Unseen ids are never noise.
    sigma = np.sqrt(n * noise * (1 - noise))
    assert np.all(np.abs(observed - n * noise) <= 5 * sigma + 1e-9)


def test_make_pairs_golden_and_documents_never_mix():
    centres, contexts = skipgram.make_pairs([np.array([7, 8, 9]), np.array([10])], 1, np.random.default_rng(0))
    assert collections.Counter(zip(centres.tolist(), contexts.tolist(), strict=True)) == collections.Counter(
        [(7, 8), (8, 7), (8, 9), (9, 8)]
    )
    docs = [np.arange(0, 50), np.arange(100, 130), np.arange(200, 201)]
    centres, contexts = skipgram.make_pairs(docs, 5, np.random.default_rng(1))
    assert np.all(centres // 100 == contexts // 100)
    assert np.all((np.abs(centres - contexts) >= 1) & (np.abs(centres - contexts) <= 5))


def test_dynamic_window_uses_distance_d_with_probability_window_minus_d_plus_one_over_window():
    n, window = 100_000, 5
    centres, contexts = skipgram.make_pairs([np.arange(n)], window, np.random.default_rng(2))
    distances = np.bincount(np.abs(centres - contexts), minlength=window + 2)
    assert distances[0] == 0 and distances[window + 1] == 0
    for d in range(1, window + 1):
        p, trials = (window - d + 1) / window, 2 * (n - d)  # Each centre, both sides.
        assert abs(distances[d] - p * trials) <= 5 * np.sqrt(trials * p * (1 - p)) + 1e-9, d


def test_loss_matches_the_formula_and_masks_negatives_equal_to_the_context():
    rng = np.random.default_rng(3)
    params = {"input": rng.normal(size=(6, 4)).astype(np.float32), "output": rng.normal(size=(6, 4)).astype(np.float32)}
    centres, contexts = np.array([1, 2]), np.array([3, 4])
    negatives = np.array([[5, 3], [0, 1]])  # Row 0's second negative is its context: masked.
    weights = np.array([1.0, 1.0], np.float32)

    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    v, u = params["input"], params["output"]
    row0 = -(log_sigmoid(v[1] @ u[3]) + log_sigmoid(-(v[1] @ u[5])))
    row1 = -(log_sigmoid(v[2] @ u[4]) + log_sigmoid(-(v[2] @ u[0])) + log_sigmoid(-(v[2] @ u[1])))
    loss = skipgram.skipgram_loss(params, centres, contexts, negatives, weights)
    np.testing.assert_allclose(loss, (row0 + row1) / 2, rtol=1e-5)
    only_first = skipgram.skipgram_loss(params, centres, contexts, negatives, np.array([1.0, 0.0], np.float32))
    np.testing.assert_allclose(only_first, row0, rtol=1e-5)


def _topic_corpus(seed=0, num_docs=400):
    """Topic-0 documents hold a and b among fillers p*; topic-1 documents hold c and d among fillers q*."""
    rng = np.random.default_rng(seed)
    fillers = ([f"p{i}" for i in range(10)], [f"q{i}" for i in range(10)])
    documents = []
    for i in range(num_docs):
        topic = i % 2
        words = list(rng.choice(fillers[topic], 12))
        for word in ("ab", "cd")[topic]:
            words.insert(int(rng.integers(len(words) + 1)), word)
        documents.append(" ".join(words))
    return documents, WordTokenizer(fillers[0] + fillers[1] + list("abcd"))


def _small_config(**overrides):
    config = skipgram.default_config()
    config.update(dict(embedding_dim=16, subsample_t=0.0, num_epochs=3, batch_size=256, learning_rate=1e-2))
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def topic_embeddings():
    documents, tokenizer = _topic_corpus()
    return skipgram.train(documents, tokenizer, _small_config()), tokenizer


def test_skipgram_learns_cooccurrence(topic_embeddings):
    embeddings, tokenizer = topic_embeddings
    assert embeddings.shape == (tokenizer.vocab_size, 16) and embeddings.dtype == np.float32
    assert np.all(np.isfinite(embeddings))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)

    def cosine(x, y):
        return float(unit[tokenizer.ids[x]] @ unit[tokenizer.ids[y]])

    assert cosine("a", "b") > 0.8 and cosine("c", "d") > 0.8
    assert cosine("a", "b") > cosine("a", "c") + 0.5
    assert cosine("c", "d") > cosine("b", "d") + 0.5
    neighbours = [token for token, _ in skipgram.nearest_neighbours(embeddings, tokenizer.ids["a"], k=5)]
    assert tokenizer.ids["b"] in neighbours and tokenizer.ids["c"] not in neighbours


def test_skipgram_is_deterministic_and_seeded():
    documents, tokenizer = _topic_corpus(seed=1, num_docs=40)
    config = _small_config(num_epochs=1, subsample_t=1e-2)
    first = skipgram.train(documents, tokenizer, config)
    np.testing.assert_array_equal(first, skipgram.train(documents, tokenizer, config))
    assert not np.array_equal(first, skipgram.train(documents, tokenizer, _small_config(num_epochs=1, seed=1)))


def test_bad_config_is_a_clear_error():
    documents, tokenizer = _topic_corpus(num_docs=4)
    with pytest.raises(ValueError, match="skipgram.window"):
        skipgram.train(documents, tokenizer, _small_config(window=0))
