"""Skip-gram with negative sampling (Mikolov et al. 2013), over the pre-training tokenizer's ids.

    embeddings = train(documents, tokenizer, default_config())   # (V, E) float32, V = tokenizer.vocab_size

Each epoch, on the host (numpy):
1. subsampling: token w is kept with probability min(1, sqrt(t / f(w))), f = its corpus frequency
   (`keep_probabilities`); discarded tokens are removed before windows are formed, as in word2vec;
2. dynamic window: centre position i draws b_i uniformly from 1..window and pairs with every token of
   its document within distance b_i (`make_pairs`), so a context at distance d is used with
   probability (window - d + 1) / window;
3. the (centre, context) pairs are shuffled and cut into fixed-size batches.
In one jitted step: k negatives per pair from the noise distribution count^0.75 (`noise_distribution`),
drawn with fold_in(key, step), and the loss
    -log σ(u_context · v_centre) - Σ_k log σ(-u_negative_k · v_centre)
(a negative equal to the pair's context is masked, as word2vec skips it). The returned embeddings
are the input vectors v.

Why Adam and not word2vec's SGD: word2vec updates one pair at a time (Hogwild); a batch of thousands of
pairs sums many updates to the same frequent output vectors at once, which makes plain SGD at
word2vec's rate unstable. Adam's per-parameter scale absorbs that; the rate still decays linearly
with the work done, as in word2vec (to `min_lr_fraction` of the start at the last step).
"""

import functools
import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

_ENCODE_CHUNK = 1000  # Documents per tokenizer call (and per progress line while encoding).


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.embedding_dim = 128  # E: size of each token vector.
    c.window = 5  # Largest context distance; each centre draws its own distance uniformly from 1..window.
    c.negatives = 5  # k: noise tokens per (centre, context) pair.
    c.subsample_t = 1e-5  # t in keep = min(1, sqrt(t / frequency)); 0 keeps all. ~1e-4 suits corpora < 10M tokens.
    c.noise_power = 0.75  # Noise distribution ∝ count ** noise_power (0.75 in word2vec).
    c.num_epochs = 5  # Passes over the corpus (word2vec's default 5), each with fresh subsampling, windows, order.
    c.batch_size = 1024  # (centre, context) pairs per step.
    c.learning_rate = 2e-3  # Adam step size at the first step.
    c.min_lr_fraction = 1e-4  # The rate decays linearly to learning_rate * this at the last step.
    c.seed = 0  # Seeds initialisation, subsampling, windows, shuffling and negatives.
    c.log_every = 500  # Steps between progress lines.
    return c


def keep_probabilities(counts: np.ndarray, t: float) -> np.ndarray:
    """(V,) float64: P(keep w) = min(1, sqrt(t / f(w))), f(w) = counts[w] / counts.sum(); 1 where t == 0.

    keep_probabilities(np.array([90, 9, 1]), t=0.01) -> [0.105, 0.333, 1.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if t <= 0:
        return np.ones_like(counts)
    frequency = counts / counts.sum()
    with np.errstate(divide="ignore"):
        keep = np.sqrt(t / frequency)
    return np.minimum(1.0, keep)


def noise_distribution(counts: np.ndarray, power: float) -> np.ndarray:
    """(V,) float64: P(w) ∝ counts[w] ** power; tokens never seen have probability 0.

    noise_distribution(np.array([16, 1, 0]), 0.75) -> [8/9, 1/9, 0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.where(counts > 0, counts**power, 0.0)
    return weights / weights.sum()


def subsample(docs: Sequence[np.ndarray], keep: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Each token of each document kept independently with probability keep[token]; order preserved."""
    return [doc[rng.random(len(doc)) < keep[doc]] for doc in docs]


def make_pairs(docs: Sequence[np.ndarray], window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centres, contexts): (N,) int32 each, every pair inside one document, order not shuffled.

    Position i of a document draws b_i in 1..window and pairs with positions i ± d, 1 <= d <= b_i.
    With window=1 every neighbour pairs: docs=[[7, 8, 9]] -> centres [7, 8, 8, 9], contexts [8, 7, 9, 8]
    (up to order).
    """
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    if lengths.sum() == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    tokens = np.concatenate([np.asarray(d) for d in docs]).astype(np.int32)
    doc_ids = np.repeat(np.arange(len(docs)), lengths)
    reach = rng.integers(1, window + 1, size=len(tokens))  # b_i of every position.
    centres, contexts = [], []
    for distance in range(1, min(window, len(tokens) - 1) + 1):
        left = np.arange(len(tokens) - distance)
        right = left + distance
        same_doc = doc_ids[left] == doc_ids[right]
        for centre, context in ((left, right), (right, left)):
            chosen = same_doc & (reach[centre] >= distance)
            centres.append(tokens[centre[chosen]])
            contexts.append(tokens[context[chosen]])
    return np.concatenate(centres), np.concatenate(contexts)


def sample_negatives(key: jax.Array, noise_cdf: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """int32 ids of `shape`, drawn from the distribution whose cumulative sums are noise_cdf (V,).

    Inverse-CDF sampling: ids with probability 0 (a flat step of the CDF) are never drawn.
    """
    u = jax.random.uniform(key, shape, dtype=noise_cdf.dtype) * noise_cdf[-1]
    ids = jnp.searchsorted(noise_cdf, u, side="right")
    return jnp.minimum(ids, noise_cdf.shape[0] - 1).astype(jnp.int32)


def skipgram_loss(params, centres, contexts, negatives, weights):
    """Mean negative-sampling loss over pairs with weight 1.

    params:    {"input": (V, E), "output": (V, E)}
    centres, contexts: (B,) int32; negatives: (B, k) int32; weights: (B,) float32 (0 = padding pair)
    """
    v = params["input"][centres]  # (B, E)
    positive = jax.nn.log_sigmoid(jnp.sum(v * params["output"][contexts], axis=-1))  # (B,)
    negative_scores = jnp.einsum("be,bke->bk", v, params["output"][negatives])  # (B, k)
    negative_mask = (negatives != contexts[:, None]).astype(v.dtype)
    negative = jnp.sum(jax.nn.log_sigmoid(-negative_scores) * negative_mask, axis=-1)  # (B,)
    return -jnp.sum((positive + negative) * weights) / jnp.maximum(jnp.sum(weights), 1.0)


# Module-level with static k: runs with the same shapes share one compiled step.
@functools.partial(jax.jit, static_argnames=("num_negatives",), donate_argnums=(0, 1))
def _train_step(params, opt_state, batch, key, learning_rate, *, num_negatives):
    """One Adam step at `learning_rate`; key seeds this step's negatives (B, k)."""
    negatives = sample_negatives(key, batch["noise_cdf"], (batch["centres"].shape[0], num_negatives))
    loss, grads = jax.value_and_grad(skipgram_loss)(
        params, batch["centres"], batch["contexts"], negatives, batch["weights"]
    )
    updates, opt_state = optax.scale_by_adam().update(grads, opt_state, params)
    updates = jax.tree.map(lambda u: -learning_rate * u, updates)
    return optax.apply_updates(params, updates), opt_state, loss


def encode_documents(documents: Sequence[str], tokenizer) -> list[np.ndarray]:
    """Token ids of every document (no BOS/EOS), as int32 arrays; empty documents dropped."""
    docs = []
    for start in range(0, len(documents), _ENCODE_CHUNK):
        chunk = [documents[i] for i in range(start, min(start + _ENCODE_CHUNK, len(documents)))]
        docs.extend(np.asarray(ids, dtype=np.int32) for ids in tokenizer.encode_batch(chunk) if ids)
        if (start // _ENCODE_CHUNK) % 20 == 19:
            logging.info("Skip-gram: encoded %d / %d documents.", start + len(chunk), len(documents))
    return docs


def _validate(config) -> None:
    for key in ("embedding_dim", "window", "negatives", "num_epochs", "batch_size", "log_every"):
        if config[key] < 1:
            raise ValueError(f"skipgram.{key}={config[key]} must be >= 1")
    if config.subsample_t < 0:
        raise ValueError(f"skipgram.subsample_t={config.subsample_t} must be >= 0")
    if config.learning_rate <= 0 or not 0 <= config.min_lr_fraction <= 1:
        raise ValueError("skipgram.learning_rate must be > 0 and skipgram.min_lr_fraction in [0, 1]")


def _epoch_pairs(docs, keep, config, epoch):
    rng = np.random.default_rng([config.seed, epoch])
    centres, contexts = make_pairs(subsample(docs, keep, rng), config.window, rng)
    order = rng.permutation(len(centres))
    return centres[order], contexts[order]


def train(documents: Sequence[str], tokenizer, config: ml_collections.ConfigDict) -> np.ndarray:
    """Skip-gram input vectors (V, E) float32 for V = tokenizer.vocab_size, E = config.embedding_dim.

    documents: str documents, e.g. corpus.load_documents(config.data, config.data.train_split, workdir).
    tokenizer: a data.tokenizer.Tokenizer (anything with `encode_batch(texts)` and `vocab_size`).
    Ids that never occur keep their random initial vectors.
    """
    _validate(config)
    vocab_size, dim = tokenizer.vocab_size, config.embedding_dim
    docs = encode_documents(documents, tokenizer)
    counts = np.bincount(np.concatenate(docs), minlength=vocab_size) if docs else np.zeros(vocab_size, np.int64)
    if counts.sum() == 0:
        raise ValueError("Skip-gram: the documents encode to no tokens")
    keep = keep_probabilities(counts, config.subsample_t)
    noise_cdf = jnp.asarray(np.cumsum(noise_distribution(counts, config.noise_power)), dtype=jnp.float32)
    logging.info(
        "Skip-gram: %d documents, %d tokens, %d distinct ids of %d; subsampling keeps %.1f%% of tokens in expectation.",
        len(docs), counts.sum(), np.count_nonzero(counts), vocab_size, 100 * np.sum(counts * keep) / counts.sum(),
    )

    init_key, step_key = jax.random.split(jax.random.key(config.seed))
    params = {
        "input": jax.random.uniform(init_key, (vocab_size, dim), jnp.float32, -0.5 / dim, 0.5 / dim),
        "output": jnp.zeros((vocab_size, dim), jnp.float32),
    }
    opt_state = optax.scale_by_adam().init(params)
    batch_size, total_steps, step = config.batch_size, None, 0
    for epoch in range(config.num_epochs):
        centres, contexts = _epoch_pairs(docs, keep, config, epoch)
        num_batches = max(1, math.ceil(len(centres) / batch_size))
        if total_steps is None:  # Later epochs differ only by sampling noise; the first sets the schedule.
            total_steps = num_batches * config.num_epochs
            logging.info("Skip-gram: %d pairs in epoch 0, about %d steps in all.", len(centres), total_steps)
        start_time, loss_sum, losses_since_log = time.time(), 0.0, 0
        for batch_index in range(num_batches):
            batch = _batch(centres, contexts, batch_index, batch_size)
            batch["noise_cdf"] = noise_cdf
            fraction_left = max(config.min_lr_fraction, 1.0 - step / total_steps)
            params, opt_state, loss = _train_step(params, opt_state, batch, jax.random.fold_in(step_key, step),
                                                  config.learning_rate * fraction_left, num_negatives=config.negatives)
            step += 1
            loss_sum, losses_since_log = loss_sum + loss, losses_since_log + 1
            if step % config.log_every == 0 or batch_index == num_batches - 1:
                elapsed = time.time() - start_time
                logging.info(
                    "Skip-gram epoch %d step %d/%d: loss %.4f, lr %.2e, %.0f pairs/s.",
                    epoch, step, total_steps, float(loss_sum) / losses_since_log,
                    config.learning_rate * fraction_left, (batch_index + 1) * batch_size / max(elapsed, 1e-9),
                )
                loss_sum, losses_since_log = 0.0, 0
    return np.asarray(params["input"])


def _batch(centres: np.ndarray, contexts: np.ndarray, index: int, batch_size: int) -> dict[str, np.ndarray]:
    """Pairs [index * B, (index + 1) * B) as (B,) arrays; a short last batch is padded with weight 0."""
    chosen = slice(index * batch_size, (index + 1) * batch_size)
    c, o = centres[chosen], contexts[chosen]
    pad = batch_size - len(c)
    return {
        "centres": np.pad(c, (0, pad)),
        "contexts": np.pad(o, (0, pad)),
        "weights": np.pad(np.ones(len(c), np.float32), (0, pad)),
    }


def nearest_neighbours(embeddings: np.ndarray, token: int, k: int = 10) -> list[tuple[int, float]]:
    """The k ids whose vectors have the highest cosine with embeddings[token], with those cosines."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    cosines = unit @ unit[token]
    cosines[token] = -np.inf
    best = np.argsort(-cosines)[:k]
    return [(int(i), float(cosines[i])) for i in best]
