"""Properties every family shares: logical names, dropout only with rngs, classifier, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from model_fixtures import VOCAB, build_family, family_batch, forward, forward_train, tiny_model_config

from configs.base import get_config
from pretrain_jax.models import build_classifier, build_model, count_params

FAMILIES = ["encoder", "decoder", "encoder_decoder", "two_stream", "electra"]
OUTPUT = {"encoder": "mlm", "decoder": "lm", "encoder_decoder": "lm", "two_stream": "plm", "electra": "rtd"}


@pytest.mark.parametrize("family", FAMILIES)
def test_names_and_dropout(family):
    model = build_family(family)
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))
    for variable in leaves:
        names = variable.get_metadata().get("out_sharding")
        assert names is not None and len(names) == variable.ndim, (variable, names)
        assert all(isinstance(n, str) for n in names), names
    batch = family_batch(family)
    key = OUTPUT[family]
    a, b = forward(model, batch).logits[key], forward(model, batch).logits[key]
    np.testing.assert_array_equal(a, b)
    c = forward_train(model, batch, nnx.Rngs(dropout=0, sample=1)).logits[key]
    assert np.isfinite(c).all() and np.abs(c - a).max() > 1e-4
    if family == "electra":  # replacements come from the call's 'sample' stream
        d = forward_train(model, batch, nnx.Rngs(dropout=0, sample=2)).logits[key]
        assert np.abs(c - d).max() > 1e-4


@pytest.mark.parametrize("family,pooling", [("encoder", "cls"), ("decoder", "last")])
def test_classifier(family, pooling):
    with nnx.use_eager_sharding(False):
        model = build_classifier(tiny_model_config(family), VOCAB, 3, pooling=pooling, rngs=nnx.Rngs(0))
    out = forward(model, family_batch(family))
    assert out.logits["cls"].shape == (2, 3) and out.logits["cls"].dtype == jnp.float32


def test_build_model_rejects_bad_values():
    with pytest.raises(ValueError, match="family"):
        build_model(tiny_model_config("nope"), VOCAB, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="norm_position"):
        build_model(tiny_model_config(norm_position="middle"), VOCAB, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="electra"):
        build_model(tiny_model_config("decoder", electra=True), VOCAB, rngs=nnx.Rngs(0))


def _published(family, vocab, layers, width, heads, d_ff, max_len=512):
    c = get_config().model
    c.family, c.num_layers, c.d_model, c.num_heads, c.d_ff, c.max_len = family, layers, width, heads, d_ff, max_len
    return c, vocab


@pytest.mark.parametrize("name,config,published_millions", [
    ("bert-base", _published("encoder", 30522, 12, 768, 12, 3072), 110),
    ("gpt2-small", _published("decoder", 50257, 12, 768, 12, 3072, max_len=1024), 124),
    ("t5-small", _published("encoder_decoder", 32128, 6, 512, 8, 2048), 60),
    ("t5-base", _published("encoder_decoder", 32128, 12, 768, 12, 3072), 220),
])
def test_parameter_counts_match_published_sizes(name, config, published_millions):
    count = count_params(*config)  # nnx.eval_shape: shapes only, nothing allocated
    assert abs(count / 1e6 - published_millions) / published_millions < 0.02, (name, count)
