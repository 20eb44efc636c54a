"""The train step at scale: placement on the mesh, microbatches, rematerialisation, bfloat16."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scale_fixtures import family_batch, random_packed_batch, tiny_config, tiny_model_config

from pretrain_jax import experiment, sharding
from pretrain_jax.models import build_model

DETERMINISTIC = {"model.attention_dropout": 0.0, "model.dropout": 0.0, "optim.warmup_steps": 0}


def one_step(config, seed: int = 0):
    """(new state, metrics) of one real train step from a fresh state, fetched to the host."""
    exp = experiment.Experiment.for_shapes(config)
    packed = sharding.to_global_batch(random_packed_batch(config, seed), exp.mesh)
    return jax.device_get(exp.jit_train_step({})(exp.init_state(), packed))


@pytest.fixture(scope="module")
def reference_step():
    """One deterministic step of the tiny encoder on a 2x2x2 mesh, float32, no microbatches."""
    return one_step(tiny_config((2, 2, 2), **DETERMINISTIC))


@pytest.mark.parametrize("mesh_shape", [(2, 2, 2), (1, 4, 2)])
def test_params_moments_and_batches_are_placed_by_the_rules(mesh_shape):
    exp = experiment.Experiment.for_shapes(tiny_config(mesh_shape))
    params = exp.state_shardings["params"]
    table = params["embeddings"]["token"]["table"].spec  # (vocab, embed)
    assert tuple(table) == ("tensor", "fsdp")
    query = params["stack"]["blocks"][0]["attention"]["query"].spec  # (embed, heads, kv)
    assert tuple(query) == ("fsdp", "tensor", None)
    # Adam's two moments are sharded exactly like the parameters; nothing else is params-shaped.
    structure = jax.tree.structure(params)
    moments = []
    jax.tree.map(lambda node: moments.append(node), exp.state_shardings["opt_state"],
                 is_leaf=lambda node: _same_structure(node, structure))
    moments = [m for m in moments if _same_structure(m, structure)]
    assert len(moments) == 2 and all(m == params for m in moments)
    batch = exp.abstract_batch()
    assert batch.tokens.sharding.spec == jax.sharding.PartitionSpec(("data", "fsdp"), None)


def _same_structure(node, structure) -> bool:
    try:
        return jax.tree.structure(node) == structure
    except TypeError:
        return False


def test_two_microbatches_of_4_equal_one_batch_of_8(reference_step):
    """Masks come from the objective on the whole batch, and each head is normalised by its weight
    over the whole batch, so accumulation changes nothing but float rounding. Adam's first step moves
    each weight by about lr = 2e-3 whatever its gradient's size, so a small gradient summed from
    cancelling terms in another order can move a weight by ~1e-7: atol 1e-6 is 1/2000 of a step."""
    state, metrics = one_step(tiny_config((2, 2, 2), **DETERMINISTIC, **{"train.microbatches": 2}))
    ref_state, ref_metrics = reference_step
    assert jax.tree.structure(metrics) == jax.tree.structure(ref_metrics)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), metrics, ref_metrics)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), state, ref_state)


def test_bfloat16_compute_keeps_float32_master_weights_and_losses(reference_step):
    config = tiny_config((2, 2, 2), **DETERMINISTIC, **{"model.dtype": "bfloat16"})
    exp = experiment.Experiment.for_shapes(config)
    outputs = jax.eval_shape(lambda p, b: exp.model(p)(b), exp.abstract_state()["params"],
                             jax.eval_shape(exp.objective_fn, jax.random.key(0), exp.abstract_batch()))
    assert outputs.logits["mlm"].dtype == jnp.float32
    state, metrics = one_step(config)
    assert {leaf.dtype for leaf in jax.tree.leaves(state["params"])} == {np.dtype("float32")}
    assert {leaf.dtype for leaf in jax.tree.leaves(state["opt_state"]) if leaf.ndim} == {np.dtype("float32")}
    assert metrics["loss"].dtype == np.float32
    np.testing.assert_allclose(metrics["loss"], reference_step[1]["loss"], rtol=2e-2)


REMATS = ("full", "dots_saveable", "dots_with_no_batch_dims_saveable")


def _loss_and_grads(family: str, remat: str):
    """Loss and gradients of a 2-layer model with dropout on (the same keys with and without remat)."""
    with nnx.use_eager_sharding(False):
        model = build_model(tiny_model_config(family, remat=remat, dropout=0.1), 100, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    batch = family_batch(family)

    def loss(p):
        outputs = nnx.merge(graphdef, p)(batch, rngs=nnx.Rngs(dropout=jax.random.key(1)))
        return sum(jnp.mean(v.astype(jnp.float32) ** 2) for v in outputs.logits.values())

    return jax.jit(jax.value_and_grad(loss))(params)


# Block.__call__ with cross-attention and a relative bias; Block.two_stream.
@pytest.mark.parametrize("family, remat", [("encoder_decoder", "full"), ("two_stream", "dots_saveable")])
def test_remat_keeps_losses_and_gradients(family, remat):
    loss, grads = _loss_and_grads(family, "none")
    remat_loss, remat_grads = _loss_and_grads(family, remat)
    np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), remat_grads, grads)


def test_remat_saves_fewer_activations_for_the_backward_pass():
    """Bytes the forward pass keeps for the backward pass (vjp residuals, parameters included)."""

    def residual_bytes(remat: str) -> int:
        config = tiny_model_config("decoder", remat=remat, num_layers=4, d_model=64, d_ff=256, max_len=128)
        with nnx.use_eager_sharding(False):
            graphdef, params = nnx.split(nnx.eval_shape(lambda: build_model(config, 256, rngs=nnx.Rngs(0))),
                                         nnx.Param)
        batch = {k: jax.ShapeDtypeStruct((8, 128), jnp.int32) for k in ("inputs", "segment_ids", "positions")}

        def vjp_fn(p, b):
            return jax.vjp(lambda q: jnp.mean(nnx.merge(graphdef, q)(b).logits["lm"]), p)[1]

        residuals = jax.tree.leaves(jax.eval_shape(vjp_fn, params, batch))
        return sum(math.prod(x.shape) * x.dtype.itemsize for x in residuals)

    saved = {remat: residual_bytes(remat) for remat in ("none",) + REMATS}
    assert saved["full"] < saved["dots_with_no_batch_dims_saveable"] < saved["dots_saveable"] < saved["none"]
    assert saved["full"] < saved["none"] / 5


def test_microbatches_compile_for_a_head_whose_weights_the_model_makes():
    """ELECTRA's rtd weights come from the model: each microbatch normalises them itself."""
    config = tiny_config((2, 2, 2), **{"objective.name": "electra", "model.electra": True,
                                       "train.microbatches": 2, "model.num_layers": 1})
    exp = experiment.Experiment.for_shapes(config)
    lowered = exp.jit_train_step({"rtd": 50.0}).lower(exp.abstract_state(), exp.abstract_batch())
    metrics = lowered.out_info[1]
    assert {"loss", "heads"} <= set(metrics) and set(metrics["heads"]) == {"mlm", "rtd"}
    lowered.compile(compiler_options={"xla_backend_optimization_level": 0})
