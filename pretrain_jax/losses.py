"""The one place that turns a model's output into the loss: weighted cross-entropy per head (squared
error for a head whose targets are real numbers), then a weighted sum over heads.

A model returns `ModelOutput(logits={head: (..., C)}, targets={...})`; each head is scored against
`Targets(ids, weights)` from the model's own `targets` when it has them (ELECTRA's replaced-token
labels), else from the batch's `targets`. Train, eval, fine-tuning and the BiLSTM baseline all call
`loss_and_sums`.
"""

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from pretrain_jax.batch import TARGETS, ModelBatch, ModelOutput, Targets


class HeadSums(NamedTuple):
    """Weighted sums of one head over a batch (scalars), so they add up across batches and devices."""

    loss: jax.Array  # sum of weight * cross-entropy (regression heads: squared error)
    correct: jax.Array  # sum of weight * (target predicted)
    weight: jax.Array  # sum of weights


def head_targets(output: ModelOutput, batch: ModelBatch) -> dict[str, Targets]:
    """{head: Targets} for every head in output.logits: the model's own, else the batch's."""
    given = batch.get(TARGETS, {})
    missing = [h for h in output.logits if h not in output.targets and h not in given]
    if missing:
        raise KeyError(f"no targets for head(s) {missing} in the model output or the batch")
    return {h: output.targets[h] if h in output.targets else given[h] for h in sorted(output.logits)}


def predicted_correctly(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """(..., C) logits, (...) int targets -> (...) bool: the target's logit is the largest.

    A tie for the largest counts as correct, unless every logit is equal (an untrained or collapsed
    head scores 0, not 100%). Unlike `argmax(logits) == targets` this reuses the maximum and the
    target logit the cross-entropy reads anyway: `argmax`'s paired value-and-index reduction over a
    (B, L, vocabulary) array cost about 5% of a small causal-LM train step on the CPU.
    """
    target_logit = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return (target_logit >= jnp.max(logits, axis=-1)) & (target_logit > jnp.min(logits, axis=-1))


def head_sums(output: ModelOutput, batch: ModelBatch) -> dict[str, HeadSums]:
    """{head: HeadSums} of the weighted cross-entropy, accuracy and weight of each head.

    A head whose target ids are floating point is a regression head: logits (..., 1), targets (...);
    its loss is the squared error and its accuracy 0 (nothing is a class).
    """
    sums = {}
    for h, target in head_targets(output, batch).items():
        logits = output.logits[h].astype(jnp.float32)  # (..., C)
        weights = target.weights.astype(jnp.float32)  # (...)
        if jnp.issubdtype(target.ids.dtype, jnp.floating):
            loss = jnp.square(logits[..., 0] - target.ids.astype(jnp.float32))
            correct = jnp.zeros_like(loss)
        else:
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, target.ids)
            correct = predicted_correctly(logits, target.ids).astype(jnp.float32)
        sums[h] = HeadSums(jnp.sum(loss * weights), jnp.sum(correct * weights), jnp.sum(weights))
    return sums


def loss_and_sums(output: ModelOutput, batch: ModelBatch, loss_weights: Mapping[str, float],
                  denominators: Mapping[str, jax.Array] | None = None,
                  microbatches: int = 1) -> tuple[jax.Array, dict[str, HeadSums]]:
    """(loss, {head: HeadSums}): the loss is the sum over heads of

        loss_weights.get(h, 1) * sums[h].loss / max(denominator_h, 1)

    where denominator_h is the head's weight sum in this batch. Under gradient accumulation this is
    one microbatch of `microbatches`: `denominators` gives each batch-target head's weight sum over
    the whole batch, so the microbatch losses add up to the whole batch's loss; a head whose targets
    the model computes (not known before the forward pass) is normalised within the microbatch and
    divided by `microbatches`, so the sum is the mean of the microbatch losses.
    """
    sums = head_sums(output, batch)
    total = jnp.float32(0.0)
    for h, s in sums.items():
        if denominators is not None and h not in output.targets:
            denominator = jnp.maximum(denominators[h], 1.0)
        else:
            denominator = jnp.maximum(s.weight, 1.0) * microbatches
        total = total + loss_weights.get(h, 1.0) * s.loss / denominator
    return total, sums


def weight_sums(batch: ModelBatch) -> dict[str, jax.Array]:
    """{head: sum of its weights} over the batch's targets: the denominators of `loss_and_sums`."""
    return {h: jnp.sum(t.weights.astype(jnp.float32)) for h, t in batch.get(TARGETS, {}).items()}


def summarize(sums: Mapping[str, HeadSums]) -> dict[str, float]:
    """{head: HeadSums} (summed over steps or batches) -> `{h}/loss`, `{h}/accuracy`, `{h}/perplexity`."""
    out = {}
    for h, s in sums.items():
        denominator = max(float(s.weight), 1.0)
        loss = float(s.loss) / denominator
        out[f"{h}/loss"] = loss
        out[f"{h}/accuracy"] = float(s.correct) / denominator
        out[f"{h}/perplexity"] = float(jnp.exp(jnp.minimum(loss, 50.0)))
    return out
