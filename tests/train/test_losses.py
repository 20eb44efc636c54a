"""Weighted losses and metrics: accuracy from the logits the cross-entropy reads."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tiny_configs import overridden, project_config

from pretrain_jax import experiment, losses, steps
from pretrain_jax.batch import ModelOutput, PackedBatch, Targets


def test_predicted_correctly_is_argmax_without_ties():
    logits = jax.random.normal(jax.random.key(0), (4, 50, 300))
    targets = jax.random.randint(jax.random.key(1), (4, 50), 0, 300)
    targets = jnp.where(jnp.arange(50) % 3 == 0, jnp.argmax(logits, -1), targets)  # a third are right
    want = np.asarray(jnp.argmax(logits, -1) == targets)
    np.testing.assert_array_equal(losses.predicted_correctly(logits, targets), want)
    assert 0.3 < want.mean() < 0.4


def test_predicted_correctly_ties_and_constant_logits():
    logits = jnp.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 5.0, 1.0]])
    # A tie for the largest counts for either tied class; all-equal logits count for none.
    np.testing.assert_array_equal(losses.predicted_correctly(logits, jnp.array([2, 0, 3])), [True, False, False])
    np.testing.assert_array_equal(losses.predicted_correctly(logits, jnp.array([1, 3, 2])), [True, False, True])


def test_head_sums_weight_loss_and_accuracy():
    logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
    batch = {"targets": {"mlm": Targets(jnp.array([[0, 0]]), jnp.array([[1.0, 3.0]]))}}
    sums = losses.head_sums(ModelOutput({"mlm": logits}, {}), batch)
    np.testing.assert_allclose(sums["mlm"].loss, -np.log(0.5) - 3 * np.log(0.1), rtol=1e-6)
    assert float(sums["mlm"].correct) == 1.0 and float(sums["mlm"].weight) == 4.0


def test_float_targets_are_scored_by_squared_error():
    # A regression head: one output per row. (2.5 - 3)^2 * 1 + (0 - -1)^2 * 2 = 0.25 + 2 = 2.25; nothing is
    # "correct" (no classes), the weights add to 3.
    logits = jnp.array([[2.5], [0.0]])
    batch = {"targets": {"cls": Targets(jnp.array([3.0, -1.0]), jnp.array([1.0, 2.0]))}}
    sums = losses.head_sums(ModelOutput({"cls": logits}, {}), batch)
    np.testing.assert_allclose(sums["cls"].loss, 2.25, rtol=1e-6)
    assert float(sums["cls"].correct) == 0.0 and float(sums["cls"].weight) == 3.0


def test_loss_and_sums_weights_heads_and_normalises_by_the_right_denominator():
    # Two-class logits that are equal: every position's cross-entropy is ln 2. Head "a" is scored against
    # the batch (weights 1 and 3: loss sum 4 ln2, weight 4); head "b" against the model's own targets
    # (weight 2: loss sum 2 ln2), so the model's targets win over the batch's "b".
    zeros = jnp.zeros((1, 2, 2))
    output = ModelOutput({"a": zeros, "b": zeros[:, :1]},
                         {"b": Targets(jnp.array([[1]]), jnp.array([[2.0]]))})
    batch = {"targets": {"a": Targets(jnp.array([[0, 1]]), jnp.array([[1.0, 3.0]])),
                         "b": Targets(jnp.array([[0]]), jnp.array([[0.0]]))}}
    ln2 = np.log(2.0)
    # Whole batch: mean ln2 per head, b weighted 50: ln2 + 50 ln2.
    total, sums = losses.loss_and_sums(output, batch, {"b": 50.0})
    np.testing.assert_allclose(float(total), 51 * ln2, rtol=1e-6)
    np.testing.assert_allclose([float(sums["a"].loss), float(sums["b"].loss)], [4 * ln2, 2 * ln2], rtol=1e-6)
    assert float(sums["b"].weight) == 2.0 and float(sums["a"].correct) == 0.0  # Ties count for no class.
    # One microbatch of 2 whose batch has a's weight 8: a gives 4 ln2 / 8; b (known only to the model)
    # is normalised within the microbatch and halved: 50 * (2 ln2 / 2) / 2.
    total, _ = losses.loss_and_sums(output, batch, {"b": 50.0}, denominators={"a": jnp.float32(8)}, microbatches=2)
    np.testing.assert_allclose(float(total), 0.5 * ln2 + 25 * ln2, rtol=1e-6)


def test_loss_weights_scale_that_heads_gradient():
    """train.loss_weights={"rtd": w} (ELECTRA's rtd=50) multiplies the replaced-token head's part of the
    gradient by w and leaves the rest: through the real train step with plain SGD at lr 1 (the update is
    -gradient), the update is affine in w, u(w) = u_mlm + w u_rtd, so u(50) - u(1) = 49 (u(2) - u(1)),
    and u_rtd is not zero; the logged loss is affine in w the same way."""
    config = overridden(project_config("electra", "tiny"), {
        "tokenizer.vocab_size": 512, "tokenizer.num_sentinels": 4, "data.seq_len": 32, "data.batch_size": 4,
        "model.max_len": 32, "model.d_model": 32, "model.d_ff": 64, "model.num_layers": 1,
        "objective.electra.max_predictions": 6})
    exp = experiment.Experiment.for_shapes(config, devices=jax.devices()[:1])
    rng = np.random.default_rng(0)
    tokens = rng.integers(exp.specials.first_normal_id, exp.specials.normal_id_end, (4, 32)).astype(np.int32)
    ones = np.ones((4, 32), np.int32)
    packed = PackedBatch(tokens, ones, np.tile(np.arange(32, dtype=np.int32), (4, 1)), 0 * ones,
                         ones.astype(bool), 0 * ones)
    state = exp.init_state()

    @jax.jit
    def step(weight):  # one compile: the weight is traced
        train_step = steps.make_train_step(exp.objective_fn, exp.graphdef, optax.sgd(1.0), config.seed,
                                           {"rtd": weight})
        new_state, metrics = train_step(state, packed)
        return jax.tree.map(lambda new, old: new - old, new_state["params"], state["params"]), metrics["loss"]

    def update(weight):
        delta, loss = step(jnp.float32(weight))
        return np.concatenate([np.ravel(x) for x in jax.tree.leaves(delta)]).astype(np.float64), float(loss)

    (u1, l1), (u2, l2), (u50, l50) = update(1.0), update(2.0), update(50.0)
    rtd = u2 - u1
    assert np.linalg.norm(rtd) > 1e-3 * np.linalg.norm(u1)
    np.testing.assert_allclose(u50 - u1, 49 * rtd, atol=1e-4 * np.abs(u50).max())
    np.testing.assert_allclose(l50 - l1, 49 * (l2 - l1), rtol=1e-4)
