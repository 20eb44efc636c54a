"""Weighted losses and metrics: accuracy from the logits the cross-entropy reads."""

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax import losses


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
    batch = {"mlm_targets": jnp.array([[0, 0]]), "mlm_weights": jnp.array([[1.0, 3.0]])}
    sums = losses.head_sums({"mlm_logits": logits}, batch)
    np.testing.assert_allclose(sums["mlm/loss_sum"], -np.log(0.5) - 3 * np.log(0.1), rtol=1e-6)
    assert float(sums["mlm/correct_sum"]) == 1.0 and float(sums["mlm/weight_sum"]) == 4.0
