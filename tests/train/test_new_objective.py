"""A new objective is one module and one config: registered here, in this file alone, it trains through the
one trainer with no edit to the package (docs/contracts.md, "Adding an objective")."""

import json
import os

import jax.numpy as jnp
import ml_collections
import pytest
from tiny_configs import tiny_bert_config

from pretrain_jax import train
from pretrain_jax.batch import TARGETS, PackedBatch, Targets
from pretrain_jax.objectives import registry

NAME = "toy_copy"


def register_toy_objective() -> None:
    """Copy task on a decoder: each real token predicts itself (learnable in a few steps by any model
    that attends to its own position), its loss head the decoder's "lm"."""

    @registry.register(NAME, family="decoder", heads=("lm",))
    def build(cfg, specials, seq_len):
        del specials, seq_len
        scale = float(cfg.weight)

        def objective(rng, packed: PackedBatch):
            del rng  # deterministic
            tokens, segment_ids = jnp.asarray(packed.tokens, jnp.int32), jnp.asarray(packed.segment_ids, jnp.int32)
            weights = (segment_ids > 0).astype(jnp.float32) * scale
            return {"inputs": tokens, "segment_ids": segment_ids, "positions": jnp.asarray(packed.positions, jnp.int32),
                    TARGETS: {"lm": Targets(tokens, weights)}}

        return objective


@pytest.fixture
def toy_objective(monkeypatch):
    # A registry of this test's own: the toy objective is gone for every other test.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_toy_objective()


def test_a_toy_objective_registered_here_trains_through_the_loop(toy_objective, tmp_path):
    config = tiny_bert_config(**{"train.num_steps": 8, "train.checkpoint_every": 8, "train.eval_steps": 1,
                                 "optim.lr": 1e-2, "optim.warmup_steps": 0, "model.position_encoding": "auto"})
    config.objective.name = NAME
    with config.unlocked():  # What the objective's config file adds: its section.
        config.objective[NAME] = ml_collections.ConfigDict({"weight": 1.0})
    config.model.family = "auto"  # Taken from the registration.
    workdir = str(tmp_path)

    last_eval = train.run(config, workdir)

    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["family"] == "decoder"
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    losses = [loss for r in records if r["split"] == "train" for loss in r["step_losses"]]
    assert len(losses) == 8
    assert losses[-1] < 0.9 * losses[0], losses  # Copying is learnt fast (5.86 -> 4.94 when written).
    # The registered head reaches the progress records and the eval, which reports it as the main head.
    assert all("lm/loss" in r for r in records if r["split"] == "train")
    assert last_eval["loss"] == last_eval["lm/loss"] and last_eval["accuracy"] == last_eval["lm/accuracy"]
