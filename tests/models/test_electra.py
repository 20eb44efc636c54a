"""ELECTRA generator + discriminator: corruption, targets, weights, shared embeddings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_fixtures import VOCAB, build_family, encode, family_batch, forward

from pretrain_jax.models.electra import scatter_at


@pytest.fixture(scope="module")
def model():
    return build_family("electra")


def test_scatter_at_skips_padded_predictions():
    tokens = jnp.array([[7, 8, 9]])
    got = scatter_at(tokens, jnp.array([[2, 2]]), jnp.array([[5, 6]]), jnp.array([[1.0, 0.0]]))
    np.testing.assert_array_equal(got, [[7, 8, 5]])
    got = scatter_at(tokens, jnp.array([[0, 2]]), jnp.array([[5, 6]]), jnp.array([[0.0, 0.0]]))
    np.testing.assert_array_equal(got, tokens)


def test_outputs_and_shapes(model):
    batch = family_batch("electra")
    out = forward(model, batch)
    assert set(out.logits) == {"mlm", "rtd"} and set(out.targets) == {"rtd"}
    assert out.logits["mlm"].shape == (2, 4, VOCAB) and out.logits["mlm"].dtype == jnp.float32
    assert out.logits["rtd"].shape == (2, 16, 2) and out.logits["rtd"].dtype == jnp.float32
    assert out.targets["rtd"].ids.dtype == jnp.int32 and out.targets["rtd"].weights.dtype == jnp.float32
    np.testing.assert_array_equal(out.targets["rtd"].weights, np.asarray(batch["segment_ids"]) > 0)
    assert model.generator.blocks[0].mlp.wi.kernel.shape == (8, 16)  # a quarter of 32 and 64
    assert model.discriminator.blocks[0].mlp.wi.kernel.shape == (32, 64)


def test_replacements_and_targets():
    """A generator forced to always sample id 20: the discriminator must see 20 at every masked
    position, and a position whose original is 20 counts as not replaced."""
    model = build_family("electra", seed=1)
    model.generator_head.bias[...] = model.generator_head.bias[...].at[20].set(1e4)
    batch = family_batch("electra")  # mlm target ids row 0: [20, 21, 22, 23] at positions [1, 3, 6, 9]
    mlm = batch["targets"]["mlm"]
    batch["targets"]["mlm"] = mlm._replace(weights=mlm.weights.at[1, 3].set(0.0))  # padded prediction at position 15
    out = forward(model, batch)
    expected = np.zeros((2, 16), np.int32)
    expected[0, [3, 6, 9]] = 1
    expected[1, [0, 2, 7]] = 1
    np.testing.assert_array_equal(out.targets["rtd"].ids, expected)
    corrupted = np.asarray(batch["inputs"]).copy()
    corrupted[0, [1, 3, 6, 9]] = 20
    corrupted[1, [0, 2, 7]] = 20
    hidden = encode(model, dict(batch, inputs=jnp.asarray(corrupted)))
    np.testing.assert_allclose(model.rtd_head(hidden), out.logits["rtd"], atol=1e-5)



def test_one_token_table_shared_by_both(model):
    tables = [v for v in jax.tree.leaves(nnx.state(model, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))
              if v.get_metadata()["out_sharding"] == ("vocab", "embed")]
    assert len(tables) == 1
