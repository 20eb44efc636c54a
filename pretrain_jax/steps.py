"""The jitted step functions: objective -> model -> weighted loss (-> optax update).

The state is a plain pytree `{"step": int32 scalar, "params": nnx.State, "opt_state": optax state}`;
the model's structure (`graphdef`) is static. Randomness comes from `fold_in(seed key, step)` only,
so a resumed run draws exactly the masks and dropout of the uninterrupted one.

Gradient accumulation (`microbatches` > 1): the objective runs once on the whole global batch (so
every row is masked exactly as without accumulation), then the model batch is cut into microbatches
that `lax.scan` runs forward and backward one at a time, summing gradients; one optimizer update
follows. `losses.loss_and_sums` divides each head's loss by its weight sum over the whole batch, so
the summed gradient is the gradient of the unsplit batch's loss (up to float rounding and dropout,
which draws per microbatch). A head whose targets the model computes itself (ELECTRA's `rtd`) is
normalised per microbatch instead and averaged: equal in expectation. The logged loss is the sum of
the microbatch losses, the one the gradients are taken of.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pretrain_jax import losses, sharding
from pretrain_jax.batch import ModelBatch, PackedBatch

TrainState = dict  # {"step": (), "params": nnx.State, "opt_state": optax.OptState}


def step_keys(seed: int, step: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(objective key, dropout key, sampling key) for one train step."""
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), step), 3)
    return keys[0], keys[1], keys[2]


def split_microbatches(batch: ModelBatch, microbatches: int) -> ModelBatch:
    """Every (B, ...) array -> (microbatches, B // microbatches, ...); microbatch m holds rows m::M.

    Strided rows keep each microbatch spread over all batch shards: a device holding rows
    [r, r + B/D) holds B/(D*M) rows of every microbatch, so splitting moves no data.
    Example, B=4, M=2: rows [r0 r1 r2 r3] -> [[r0 r2], [r1 r3]].
    """

    def split(x):
        rows = x.shape[0]
        if rows % microbatches:
            raise ValueError(f"batch of {rows} rows does not split into {microbatches} microbatches")
        return jnp.swapaxes(x.reshape(rows // microbatches, microbatches, *x.shape[1:]), 0, 1)

    return jax.tree.map(split, batch)


def make_train_step(
    objective_fn: Callable,
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    seed: int,
    loss_weights: dict,
    *,
    microbatches: int = 1,
    mesh: Mesh | None = None,
    param_shardings=None,
) -> Callable[[TrainState, PackedBatch], tuple[TrainState, dict]]:
    """Returns train_step(state, packed) -> (new state, metrics); jit it with shardings and donation.

    `mesh` and `param_shardings` (optional) pin the microbatches to the batch axes and the gradient
    accumulator to the parameters' shardings, so accumulation never gathers a sharded gradient.
    """

    def loss_fn(params, batch: ModelBatch, denominators: dict, dropout_key, sample_key):
        """(loss, {head: HeadSums}) of one (micro)batch, its batch-target heads normalised by `denominators`."""
        model = nnx.merge(graphdef, params)
        output = model(batch, rngs=nnx.Rngs(dropout=dropout_key, sample=sample_key))
        return losses.loss_and_sums(output, batch, loss_weights, denominators, microbatches)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def accumulate(params, batch: ModelBatch, denominators: dict, dropout_key, sample_key):
        micro = split_microbatches(batch, microbatches)
        if mesh is not None:
            micro = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, _microbatch_sharding(mesh, x)), micro)
        first = jax.tree.map(lambda x: x[0], micro)
        _, sums_shape = jax.eval_shape(loss_fn, params, first, denominators, dropout_key, sample_key)
        zero_grads = jax.tree.map(jnp.zeros_like, params)
        if param_shardings is not None:
            zero_grads = jax.lax.with_sharding_constraint(zero_grads, param_shardings)
        zero_sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape)

        def body(carry, inputs):
            grads, loss, sums = carry
            index, mb = inputs
            keys = jax.random.fold_in(dropout_key, index), jax.random.fold_in(sample_key, index)
            (mb_loss, mb_sums), mb_grads = grad_fn(params, mb, denominators, *keys)
            return (jax.tree.map(jnp.add, grads, mb_grads), loss + mb_loss, jax.tree.map(jnp.add, sums, mb_sums)), None

        carry = (zero_grads, jnp.float32(0.0), zero_sums)
        (grads, loss, sums), _ = jax.lax.scan(body, carry, (jnp.arange(microbatches), micro))
        return loss, grads, sums

    def train_step(state: TrainState, packed: PackedBatch):
        objective_key, dropout_key, sample_key = step_keys(seed, state["step"])
        batch = objective_fn(objective_key, packed)
        denominators = losses.weight_sums(batch)
        if microbatches == 1:
            (loss, sums), grads = grad_fn(state["params"], batch, denominators, dropout_key, sample_key)
        else:  # The loss is the optimised one: the sum of the microbatch losses the gradients come from.
            loss, grads, sums = accumulate(state["params"], batch, denominators, dropout_key, sample_key)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        # A non-finite loss or gradient never reaches the state: the update is skipped (the step
        # still advances, so the next step draws fresh masks) and `nonfinite` reports it. Written here
        # rather than with optax.apply_if_finite, which looks at the gradients only, and whose counters
        # in the optimizer state would change the checkpoint layout of every existing run.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        params, opt_state = keep(params, state["params"]), keep(opt_state, state["opt_state"])
        metrics = {"loss": loss, "grad_norm": grad_norm, "nonfinite": (~finite).astype(jnp.int32), "heads": sums}
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    return train_step


def _microbatch_sharding(mesh: Mesh, x: jax.Array) -> NamedSharding:
    """(M, B/M, ...): the microbatch axis unsharded, rows over the batch axes."""
    return NamedSharding(mesh, PartitionSpec(None, sharding.BATCH_AXES, *([None] * (x.ndim - 2))))


def make_eval_step(objective_fn: Callable, graphdef: nnx.GraphDef, seed: int) -> Callable:
    """Returns eval_step(params, packed, index) -> {head: HeadSums}, {head: (C,) target histogram}.

    Eval masks come from a key fixed by (seed, batch index), so every evaluation of a run scores
    the same corrupted inputs and numbers are comparable across checkpoints.
    """

    def eval_step(params, packed: PackedBatch, index: jax.Array):
        objective_key = jax.random.fold_in(jax.random.key(seed + 1_000_003), index)
        batch = objective_fn(objective_key, packed)
        output = nnx.merge(graphdef, params)(batch)
        _, sums = losses.loss_and_sums(output, batch, {})
        histograms = {
            h: jnp.zeros(output.logits[h].shape[-1], jnp.float32).at[t.ids.ravel()].add(
                t.weights.ravel().astype(jnp.float32))
            for h, t in losses.head_targets(output, batch).items()
        }
        return sums, histograms

    return eval_step
