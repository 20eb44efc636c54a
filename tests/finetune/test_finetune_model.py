"""Building the fine-tuned model from given weights (no checkpoint, no training): what is loaded where."""

import types

import jax
import numpy as np
import pytest
from finetune_fixtures import finetune_config
from flax import nnx
from tiny_configs import tiny_bert_config

from pretrain_jax import models
from pretrain_jax.finetune import classification, formats

VOCAB = 512


def random_encoder_weights(model_config, seed: int = 0) -> nnx.State:
    """Encoder weights of the right shapes, random values (numpy: no op-by-op init)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: models.build_model(model_config, VOCAB, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), nnx.state(abstract, nnx.Param))


@pytest.mark.parametrize("objective,pooler_from_nsp", [("nsp", True), ("sop", True), ("bert_mlm", False)])
def test_the_pooler_trained_by_sentence_pairs_is_fine_tuned(objective, pooler_from_nsp):
    pretrain_config = tiny_bert_config(**{"objective.name": objective})
    weights = random_encoder_weights(pretrain_config.model)
    pretrained = classification.Pretrained(pretrain_config, types.SimpleNamespace(vocab_size=VOCAB), weights, 7)
    config = finetune_config("unused", "unused", "unused", dropout=0.2)
    fmt = formats.PooledClassifier("cls", None, config.seq_len)
    model = classification.build_model(config, pretrained, fmt, 3)
    for a, b in zip(jax.tree.leaves(nnx.state(model.backbone, nnx.Param)), jax.tree.leaves(weights), strict=True):
        np.testing.assert_array_equal(a, b)
    pooler = np.asarray(model.head.pooler.kernel[...])
    nsp_pooler = np.asarray(weights["nsp_head"]["pooler"]["kernel"][...])
    assert np.array_equal(pooler, nsp_pooler) == pooler_from_nsp
    assert model.head.classifier.kernel.shape == (32, 3)
    assert model.head.rate == 0.2  # Fine-tuning's dropout, not the pre-training's 0.


def test_data_efficiency_curve_runs_every_init_count_and_seed(monkeypatch, tmp_path):
    calls = []

    def fake_run(config, workdir):
        calls.append((config.init, config.max_train_examples, config.seed, workdir))
        return {"accuracy": 0.5, "macro_f1": 0.4, "num_train_examples": config.max_train_examples, "steps": 3}

    monkeypatch.setattr(classification, "run", fake_run)
    config = finetune_config("pre", "train.csv", "test.csv")
    rows = classification.data_efficiency_curve(config, str(tmp_path), [8, 32], seeds=[0, 1],
                                                inits=["pretrained", "scratch"])
    assert [c[:3] for c in calls] == [(init, n, seed) for init in ("pretrained", "scratch") for n in (8, 32)
                                      for seed in (0, 1)]
    assert calls[-1][3] == str(tmp_path / "scratch_n32_seed1")
    assert len({c[3] for c in calls}) == 8
    assert rows[0] == {"init": "pretrained", "max_train_examples": 8, "seed": 0, "accuracy": 0.5, "macro_f1": 0.4,
                       "num_train_examples": 8, "steps": 3}
    assert (config.init, config.max_train_examples, config.seed) == ("pretrained", 0, 0)  # Not modified.
