"""Non-finite steps never reach the parameters or a checkpoint; a damaged checkpoint is set aside."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrain_jax import experiment, loop, sharding, steps, train
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.data import corpus, pipeline


def test_a_nan_at_a_chosen_step_skips_that_update(make_tiny_bert_config, tmp_path):
    config = make_tiny_bert_config(**{"optim.warmup_steps": 0})  # The first update has a non-zero lr.
    docs = corpus.load_documents(config.data, config.data.train_split, str(tmp_path))
    exp = experiment.Experiment.create(config, str(tmp_path), train_documents=docs)

    def poisoned(rng, packed):  # NaN loss weights on the batch whose first position is marked.
        batch = exp.objective_fn(rng, packed)
        marked = packed.positions[0, 0] == 99
        mlm = batch["targets"]["mlm"]
        return {**batch, "targets": {"mlm": mlm._replace(weights=mlm.weights * jnp.where(marked, jnp.nan, 1.0))}}

    step = jax.jit(steps.make_train_step(poisoned, exp.graphdef, exp.tx, config.seed, {}))
    loader = pipeline.make_loader(config.data, exp.tokenizer, docs, split_is_train=True, seed=0)
    state = exp.init_state()
    before = jax.device_get(state["params"])
    clean = next(loader)
    bad = clean._replace(positions=np.where(np.arange(clean.positions.size).reshape(clean.positions.shape) == 0,
                                            99, clean.positions))
    state, metrics = step(state, sharding.to_global_batch(bad, exp.mesh))
    assert int(metrics["nonfinite"]) == 1 and not np.isfinite(float(metrics["loss"]))
    assert int(state["step"]) == 1
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state["params"]), before)
    state, metrics = step(state, sharding.to_global_batch(clean, exp.mesh))
    assert int(metrics["nonfinite"]) == 0 and np.isfinite(float(metrics["loss"]))
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), jax.device_get(state["params"]), before)
    assert any(jax.tree.leaves(changed))


def _diverging(make_tiny_bert_config, policy: str):
    # An absurd learning rate drives the loss to inf/NaN within a few steps.
    return make_tiny_bert_config(**{"optim.lr": 1e30, "optim.warmup_steps": 0, "optim.grad_clip_norm": 0.0,
                                    "train.nonfinite": policy})


def test_stop_policy_raises_with_a_clear_message(make_tiny_bert_config, tmp_path):
    with pytest.raises(loop.NonFiniteError, match="non-finite loss or gradient at step"):
        train.run(_diverging(make_tiny_bert_config, "stop"), str(tmp_path))


def test_skip_policy_counts_and_never_writes_a_non_finite_checkpoint(make_tiny_bert_config, tmp_path):
    config = _diverging(make_tiny_bert_config, "skip")
    workdir = str(tmp_path)
    train.run(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert sum(r.get("nonfinite_steps", 0) for r in records if r["split"] == "train") > 0
    exp = experiment.Experiment.create(config, workdir)
    checkpointer = Checkpointer(workdir)
    for saved in checkpointer.all_steps():
        state, _, _ = checkpointer.restore(saved, exp.abstract_state())
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state["params"]))
    checkpointer.close()


def test_a_corrupted_latest_checkpoint_falls_back_to_the_previous_one(make_tiny_bert_config, tmp_path, caplog):
    from test_trainer import step_losses

    workdir = str(tmp_path)
    train.run(make_tiny_bert_config(), workdir)  # Checkpoints at steps 3 and 6.
    uninterrupted = step_losses(workdir)
    state_dir = os.path.join(workdir, "checkpoints", "6", "state")
    for root, _, files in os.walk(state_dir):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"not a checkpoint")
    caplog.set_level("INFO")
    train.run(make_tiny_bert_config(), workdir)
    assert any("checkpoint step 6" in r.getMessage() and "is damaged" in r.getMessage() for r in caplog.records)
    assert any("resuming from step 3" in r.getMessage() for r in caplog.records)  # the last good checkpoint...
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        recorded = [json.loads(line) for line in f]
    counted = sum(len(r["step_losses"]) for r in recorded if r["split"] == "train")
    assert counted == 6 and step_losses(workdir) == uninterrupted  # ...steps 4-6 redone exactly, recorded once.
    assert any(name.startswith("6.damaged") for name in os.listdir(os.path.join(workdir, "checkpoints")))
