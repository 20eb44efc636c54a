"""BERT-like encoder: shapes, document isolation in packed rows, bfloat16, trainability; with learned
absolute positions (BERT), T5's relative position bias and ALiBi."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from model_fixtures import SEGMENTS, VOCAB, build_tiny, encode, forward, packed_row_arrays

from pretrain_jax.batch import ModelOutput, Targets

DOC1, DOC2, PAD = slice(0, 5), slice(5, 11), slice(11, 16)


def encoder_batch(seed=0, nsp=True):
    tokens, seg, pos = packed_row_arrays(SEGMENTS, seed)
    batch = {
        "inputs": tokens,
        "segment_ids": seg,
        "positions": pos,
        "token_type_ids": jnp.zeros_like(tokens).at[:, 3:].set(1),
        "mlm_positions": jnp.array([[1, 3, 6, 9], [0, 2, 7, 15]], jnp.int32),
        "targets": {"mlm": Targets(jnp.full((2, 4), 20, jnp.int32), jnp.ones((2, 4), jnp.float32))},
    }
    if nsp:
        batch["targets"]["nsp"] = Targets(jnp.array([0, 1], jnp.int32), jnp.ones((2,), jnp.float32))
    return batch


@pytest.fixture(scope="module", params=["learned", "relative", "alibi"])
def model(request):
    return build_tiny("encoder", position_encoding=request.param)


def test_output_shapes_and_dtypes(model):
    out = forward(model, encoder_batch())
    assert out.logits["mlm"].shape == (2, 4, VOCAB) and out.logits["mlm"].dtype == jnp.float32
    assert out.logits["nsp"].shape == (2, 2) and out.logits["nsp"].dtype == jnp.float32
    assert set(forward(model, encoder_batch(nsp=False)).logits) == {"mlm"}


def test_documents_and_padding_are_isolated(model):
    batch = encoder_batch()
    hidden = encode(model, batch)
    rng = np.random.default_rng(1)
    # Change document 2 and the padding tokens of row 0: document 1 must not move.
    inputs = np.asarray(batch["inputs"]).copy()
    inputs[0, DOC2] = rng.integers(13, VOCAB, 6)
    inputs[0, PAD] = rng.integers(13, VOCAB, 5)
    changed = dict(batch, inputs=jnp.asarray(inputs))
    hidden2 = encode(model, changed)
    np.testing.assert_allclose(hidden2[0, DOC1], hidden[0, DOC1], atol=1e-6)
    assert np.abs(hidden2[0, DOC2] - hidden[0, DOC2]).max() > 1e-3
    np.testing.assert_allclose(hidden2[1], hidden[1], atol=1e-6)
    # mlm positions 1, 3 of row 0 lie in document 1.
    mlm, mlm2 = forward(model, batch).logits["mlm"], forward(model, changed).logits["mlm"]
    np.testing.assert_allclose(mlm2[0, :2], mlm[0, :2], atol=1e-6)
    # Padding alone changed: every real token is unchanged.
    inputs = np.asarray(batch["inputs"]).copy()
    inputs[0, PAD] = rng.integers(13, VOCAB, 5)
    hidden3 = encode(model, dict(batch, inputs=jnp.asarray(inputs)))
    np.testing.assert_allclose(hidden3[0, :11], hidden[0, :11], atol=1e-6)


def test_a_document_reads_the_same_anywhere_in_a_row(model):
    """Positions restart per document (learned) or are offsets (relative): where a document is packed
    does not change its hidden states."""
    rng = np.random.default_rng(2)
    doc, other = rng.integers(13, VOCAB, 5), rng.integers(13, VOCAB, 4)
    inputs = np.zeros((2, 16), np.int32)
    inputs[0, :5], inputs[1, :4], inputs[1, 4:9] = doc, other, doc
    segment_ids = np.zeros((2, 16), np.int32)
    segment_ids[0, :5], segment_ids[1, :4], segment_ids[1, 4:9] = 1, 1, 2
    positions = np.zeros((2, 16), np.int32)
    positions[0, :5], positions[1, :4], positions[1, 4:9] = np.arange(5), np.arange(4), np.arange(5)
    batch = {"inputs": jnp.asarray(inputs), "segment_ids": jnp.asarray(segment_ids),
             "positions": jnp.asarray(positions), "token_type_ids": jnp.zeros((2, 16), jnp.int32)}
    hidden = np.asarray(encode(model, batch))
    np.testing.assert_allclose(hidden[1, 4:9], hidden[0, :5], atol=1e-5)


def test_relative_positions_replace_the_table():
    model = build_tiny("encoder", position_encoding="relative")
    assert model.embeddings.position is None and model.relative_bias.table.shape == (32, 4)
    assert build_tiny("encoder").relative_bias is None
    alibi = build_tiny("encoder", position_encoding="alibi")  # Fixed biases: no position parameters at all.
    assert alibi.embeddings.position is None and alibi.relative_bias is None
    parameters = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))  # noqa: E731
    assert parameters(build_tiny("encoder")) - parameters(alibi) == 32 * 32  # The (max_len, d_model) table.
    with pytest.raises(ValueError, match="position_encoding='relative'; expected 'auto' or one of"):
        build_tiny("decoder", position_encoding="relative")


def test_bfloat16_with_factorized_embedding():
    out = forward(build_tiny("encoder", dtype="bfloat16", embed_dim=16), encoder_batch())
    assert out.logits["mlm"].dtype == jnp.float32 and np.isfinite(out.logits["mlm"]).all()


def test_a_few_steps_reduce_the_loss():
    model = build_tiny("encoder", dropout=0.0, attention_dropout=0.0)
    batch = encoder_batch()
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    def loss_fn(model):
        out = forward(model, batch)
        mlm = optax.softmax_cross_entropy_with_integer_labels(out.logits["mlm"], batch["targets"]["mlm"].ids)
        nsp = optax.softmax_cross_entropy_with_integer_labels(out.logits["nsp"], batch["targets"]["nsp"].ids)
        return mlm.mean() + nsp.mean()

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(10)]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("norm_position, remat", [("post", "none"), ("pre", "full")])
def test_the_last_block_at_the_read_positions_equals_the_full_encoder(model, norm_position, remat):
    """model(batch) runs its last block at [CLS] and the predicted slots only: same hidden states,
    logits and gradients as the heads on the full `encode` (no dropout)."""
    model = build_tiny("encoder", position_encoding=model.position_encoding, norm_position=norm_position, remat=remat)
    assert model.stack.blocks[-1].pre_ln == (norm_position == "pre") and model.stack.blocks[-1].remat == remat
    batch = encoder_batch()
    positions = jnp.concatenate([jnp.zeros((2, 1), jnp.int32), batch["mlm_positions"]], axis=1)
    full = encode(model, batch)
    np.testing.assert_allclose(nnx.jit(lambda m, b: m.encode_at(b, positions))(model, batch),
                               jnp.take_along_axis(full, positions[..., None], axis=1), atol=2e-6)

    def from_full(model):
        hidden = model.encode(batch)
        mlm = model.mlm_head(jnp.take_along_axis(hidden, batch["mlm_positions"][..., None], axis=1),
                             model.embeddings.token)
        return ModelOutput({"mlm": mlm, "nsp": model.nsp_head(hidden, batch["segment_ids"])}, {})

    def loss(outputs):
        return outputs.logits["mlm"].std() + outputs.logits["nsp"].std()

    expected, got = nnx.jit(from_full)(model), forward(model, batch)
    for name in ("mlm", "nsp"):
        np.testing.assert_allclose(got.logits[name], expected.logits[name], atol=2e-5)
    grads_full = nnx.jit(nnx.grad(lambda m: loss(from_full(m))))(model)
    grads_at = nnx.jit(nnx.grad(lambda m: loss(m(batch))))(model)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), grads_at, grads_full)
    mlm_only = forward(model, encoder_batch(nsp=False)).logits["mlm"]
    np.testing.assert_allclose(mlm_only, expected.logits["mlm"], atol=2e-5)
