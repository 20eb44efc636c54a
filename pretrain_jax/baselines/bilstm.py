"""A BiLSTM text classifier over static (skip-gram) embeddings, trained from scratch.

    results = train_and_evaluate(train_examples, test_examples, tokenizer, embeddings, default_config())
    results["accuracy"], results["macro_f1"]

Model: embedding lookup (frozen by default) -> dropout -> bidirectional LSTM (nnx.Bidirectional of two
nnx.RNN(nnx.LSTMCell)) -> max over the valid time steps -> dropout -> linear layer to class logits.
Examples are (text, label_id) pairs; texts are encoded with the pre-training tokenizer, truncated to
`max_length` tokens and padded with the pad id. Lengths go to the RNNs as `seq_lengths`, so the
backward LSTM starts at each text's last real token and padding never reaches the pooled features.
"""

import functools
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from pretrain_jax import flops, loop, losses, metrics
from pretrain_jax.batch import TARGETS, ModelOutput, Targets
from pretrain_jax.finetune import metrics as finetune_metrics
from pretrain_jax.specials import SpecialIds

PAD_ID = SpecialIds.pad
HEAD = "cls"  # The one loss head, named as fine-tuning's classifier names it.


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.hidden_size = 128  # LSTM units per direction (the pooled features have 2x this).
    c.max_length = 128  # Tokens kept per text (longer texts are truncated); the padded length L.
    c.dropout = 0.3  # Dropout rate on the embedded tokens and on the pooled features.
    c.fine_tune_embeddings = False  # True: the optimizer also updates the skip-gram table.
    c.num_epochs = 20  # Passes over the training examples.
    c.batch_size = 32  # Examples per training step.
    c.eval_batch_size = 128  # Examples per prediction step.
    c.learning_rate = 2e-3  # Adam step size (constant).
    c.max_grad_norm = 1.0  # Gradients are clipped to this global norm (0 = no clipping).
    c.seed = 0  # Seeds initialisation, example order and dropout.
    return c


class FrozenEmbedding(nnx.Variable):
    """An embedding table that is not an nnx.Param, so the optimizer never updates it."""


class BiLSTMClassifier(nnx.Module):
    """tokens (B, L) int32, lengths (B,) int32 -> logits (B, num_classes) float32."""

    def __init__(self, embeddings: np.ndarray, hidden_size: int, num_classes: int, dropout: float,
                 fine_tune_embeddings: bool, *, rngs: nnx.Rngs):
        table = jnp.asarray(embeddings, jnp.float32)  # (V, E)
        self.embedding = nnx.Param(table) if fine_tune_embeddings else FrozenEmbedding(table)
        dim = table.shape[1]
        self.hidden_size = hidden_size
        # rngs=False: no RNG streams for the carry; it starts at zeros (passed in __call__), so the
        # module holds no mutable RNG state and runs the same inside any transform.
        self.bilstm = nnx.Bidirectional(
            nnx.RNN(nnx.LSTMCell(dim, hidden_size, rngs=rngs), rngs=False),
            nnx.RNN(nnx.LSTMCell(dim, hidden_size, rngs=rngs), rngs=False),
            rngs=False,
        )
        self.dropout = nnx.Dropout(dropout)
        self.output = nnx.Linear(2 * hidden_size, num_classes, rngs=rngs)

    def __call__(self, tokens: jax.Array, lengths: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """dropout_key None: deterministic (evaluation); else a key for this step's dropout masks."""
        keys = (None, None) if dropout_key is None else tuple(jax.random.split(dropout_key))
        x = self.embedding[...][tokens]  # (B, L, E)
        x = self.dropout(x, deterministic=keys[0] is None, rngs=keys[0])
        zeros = jnp.zeros((tokens.shape[0], self.hidden_size), x.dtype)  # (B, H)
        h = self.bilstm(x, seq_lengths=lengths, initial_carry=((zeros, zeros), (zeros, zeros)))  # (B, L, 2H)
        valid = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, L)
        pooled = jnp.max(jnp.where(valid[:, :, None], h, -jnp.inf), axis=1)  # (B, 2H)
        pooled = jnp.where(lengths[:, None] > 0, pooled, 0.0)  # An empty text pools to zeros.
        pooled = self.dropout(pooled, deterministic=keys[1] is None, rngs=keys[1])
        return self.output(pooled)


def encode_examples(examples: Sequence[tuple[str, int]], tokenizer, max_length: int):
    """(tokens (N, max_length) int32 padded with PAD_ID, lengths (N,) int32, labels (N,) int32).

    With ids a=5, b=6, c=7 and max_length 3: [("a b", 1), ("a b c a", 0)] -> tokens [[5, 6, 0], [5, 6, 7]],
    lengths [2, 3], labels [1, 0].
    """
    texts = [text for text, _ in examples]
    tokens = np.full((len(examples), max_length), PAD_ID, np.int32)
    lengths = np.zeros(len(examples), np.int32)
    for row, ids in enumerate(tokenizer.encode_batch(texts) if texts else []):
        ids = ids[:max_length]
        tokens[row, : len(ids)] = ids
        lengths[row] = len(ids)
    labels = np.array([label for _, label in examples], np.int32)
    return tokens, lengths, labels


def _validate(config, num_classes: int) -> None:
    for key in ("hidden_size", "max_length", "num_epochs", "batch_size", "eval_batch_size"):
        if config[key] < 1:
            raise ValueError(f"bilstm.{key}={config[key]} must be >= 1")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"bilstm.dropout={config.dropout} must be in [0, 1)")
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, got {num_classes}")


def _padded_batch(arrays, indices: np.ndarray, batch_size: int):
    """Rows `indices` of each array, padded to batch_size rows, plus weights (B,) (0 = filler row)."""
    pad = batch_size - len(indices)
    rows = [np.pad(a[indices], [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in arrays]
    return (*rows, np.pad(np.ones(len(indices), np.float32), (0, pad)))


def _optimizer(learning_rate: float, max_grad_norm: float) -> optax.GradientTransformation:
    clip = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm > 0 else []
    # A non-finite gradient skips its update, as the pre-training and fine-tuning steps do.
    return optax.apply_if_finite(optax.chain(*clip, optax.adam(learning_rate)), max_consecutive_errors=2**30)


def _loss(params, rest, batch, dropout_key, graphdef):
    """(mean cross-entropy over the batch's real rows: the optimised loss, {HEAD: HeadSums}), through
    losses.loss_and_sums as every other step's loss."""
    tokens, lengths, labels, weights = batch  # (B, L), (B,), (B,), (B,)
    logits = nnx.merge(graphdef, params, rest)(tokens, lengths, dropout_key=dropout_key)  # (B, C)
    return losses.loss_and_sums(ModelOutput({HEAD: logits}, {}), {TARGETS: {HEAD: Targets(labels, weights)}}, {})


# Module-level and keyed on static (graphdef, hyper-parameters): every run of the same shapes reuses one
# compiled step.
@functools.partial(jax.jit, static_argnames=("graphdef", "learning_rate", "max_grad_norm"), donate_argnums=0)
def _train_step(state, batch, rest, dropout_key, *, graphdef, learning_rate, max_grad_norm):
    """(state {"step", "params", "opt_state"}, metrics as steps.make_train_step's); dropout from fold_in(key, step)."""
    params, opt_state = state["params"], state["opt_state"]
    step_key = jax.random.fold_in(dropout_key, state["step"])
    (loss, sums), grads = jax.value_and_grad(_loss, has_aux=True)(params, rest, batch, step_key, graphdef)
    updates, opt_state = _optimizer(learning_rate, max_grad_norm).update(grads, opt_state, params)
    grad_norm = optax.global_norm(grads)
    nonfinite = jnp.logical_not(jnp.isfinite(loss) & jnp.isfinite(grad_norm)).astype(jnp.int32)
    state = {"step": state["step"] + 1, "params": optax.apply_updates(params, updates), "opt_state": opt_state}
    return state, {"loss": loss, "grad_norm": grad_norm, "nonfinite": nonfinite, "heads": sums}


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _predict_step(state, tokens, lengths, *, graphdef):
    return jnp.argmax(nnx.merge(graphdef, state)(tokens, lengths), axis=-1)  # (B,)


def train_flops_per_token(embed_dim: int, hidden_size: int) -> float:
    """Model FLOPs of a train step per (padded) token: two directions of an LSTM cell's input and
    recurrent matmuls, 2 x 4H x (E + H) each, times 3 for forward and backward (the pooled output
    layer, once per text, is left out)."""
    return 3 * 2 * 2 * 4 * hidden_size * (embed_dim + hidden_size)


def train(train_examples: Sequence[tuple[str, int]], tokenizer, embeddings: np.ndarray,
          config: ml_collections.ConfigDict, num_classes: int, workdir: str | None = None) -> BiLSTMClassifier:
    """A BiLSTMClassifier trained on (text, label_id) pairs; embeddings (V, E) index tokenizer ids.

    Runs through loop.run with a progress line after each epoch; with a workdir, the same figures go to
    WORKDIR/metrics.jsonl and TensorBoard, as pre-training's and fine-tuning's do.
    """
    _validate(config, num_classes)
    if len(embeddings) < tokenizer.vocab_size:
        raise ValueError(f"embeddings have {len(embeddings)} rows but the tokenizer has {tokenizer.vocab_size} ids")
    tokens, lengths, labels = encode_examples(train_examples, tokenizer, config.max_length)
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"training labels must be ids in [0, {num_classes}) and there must be some")
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    model = BiLSTMClassifier(embeddings, config.hidden_size, num_classes, config.dropout,
                             config.fine_tune_embeddings, rngs=nnx.Rngs(init_key))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    hyper = {"learning_rate": config.learning_rate, "max_grad_norm": config.max_grad_norm}
    state = {"step": jnp.int32(0), "params": params, "opt_state": _optimizer(**hyper).init(params)}
    batch_size = config.batch_size
    steps_per_epoch = -(-len(labels) // batch_size)  # The last batch of an epoch is padded.

    @functools.lru_cache(maxsize=1)  # One permutation per epoch, not one per step.
    def epoch_order(epoch: int) -> np.ndarray:
        return np.random.default_rng([config.seed, epoch]).permutation(len(labels))

    def next_batch(step: int):
        epoch, index = divmod(step - 1, steps_per_epoch)
        rows = epoch_order(epoch)[index * batch_size:(index + 1) * batch_size]
        return _padded_batch((tokens, lengths, labels), rows, batch_size)

    num_steps = config.num_epochs * steps_per_epoch
    writer = None if workdir is None else metrics.MetricsWriter(workdir)
    if writer is not None:
        writer.forget_after(0)  # A baseline run starts over: an earlier run's records go.
    progress = loop.Progress(
        loop.Period(steps=steps_per_epoch), writer, num_steps=num_steps, label="BiLSTM ",
        tokens_per_step=batch_size * config.max_length, rows_per_step=batch_size,
        flops_per_token=train_flops_per_token(embeddings.shape[1], config.hidden_size),
        peak_flops=flops.peak_flops_per_device(0.0, jax.devices()[0]), nonfinite="skip")
    ending = loop.run(state, functools.partial(_train_step, rest=rest, dropout_key=dropout_key, graphdef=graphdef,
                                               **hyper),
                      next_batch, [progress], start_step=0, num_steps=num_steps)
    if writer is not None:
        writer.close()
    nnx.update(model, ending.state["params"])
    return model


def predict(model: BiLSTMClassifier, texts: Sequence[str], tokenizer, config: ml_collections.ConfigDict) -> np.ndarray:
    """(N,) int32 predicted label ids, in batches of config.eval_batch_size."""
    tokens, lengths, _ = encode_examples([(text, 0) for text in texts], tokenizer, config.max_length)
    graphdef, state = nnx.split(model)
    predictions = []
    for start in range(0, len(texts), config.eval_batch_size):
        indices = np.arange(start, min(start + config.eval_batch_size, len(texts)))
        batch_tokens, batch_lengths, _ = _padded_batch((tokens, lengths), indices, config.eval_batch_size)
        batch_predictions = _predict_step(state, batch_tokens, batch_lengths, graphdef=graphdef)
        predictions.append(np.asarray(batch_predictions)[: len(indices)])
    return np.concatenate(predictions).astype(np.int32) if predictions else np.zeros(0, np.int32)


def train_and_evaluate(train_examples: Sequence[tuple[str, int]], test_examples: Sequence[tuple[str, int]],
                       tokenizer, embeddings: np.ndarray, config: ml_collections.ConfigDict,
                       label_names: Sequence[str] | None = None, workdir: str | None = None) -> dict:
    """Trains on train_examples, scores test_examples; label id i is named label_names[i].

    label_names: None = "0", "1", ... up to the largest label id in either set.
    Returns finetune.metrics.classification_report's dict (accuracy, macro_f1, per_class_f1 by name,
    confusion_matrix (C, C), majority_baseline_accuracy, num_test_examples) plus num_train_examples and
    train_seconds, so baseline and fine-tuning results read the same.
    """
    if label_names is None:
        label_names = [str(i) for i in range(1 + max(label for _, label in [*train_examples, *test_examples]))]
    start_time = time.time()
    model = train(train_examples, tokenizer, embeddings, config, len(label_names), workdir)
    train_seconds = time.time() - start_time
    predictions = predict(model, [text for text, _ in test_examples], tokenizer, config)
    labels = np.array([label for _, label in test_examples], np.int64)
    results = finetune_metrics.classification_report(labels, predictions, list(label_names))
    results.update(num_train_examples=len(train_examples), train_seconds=train_seconds)
    logging.info("BiLSTM test: accuracy %.4f, macro-F1 %.4f on %d examples (majority class: %.4f).",
                 results["accuracy"], results["macro_f1"], len(test_examples), results["majority_baseline_accuracy"])
    return results
