"""The trainer end to end on the tiny config: sharded steps, exact resume, signals, eval and fill-mask."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from train_records import check_train_records

from pretrain_jax import config_validation, experiment, inference, sharding, steps, train
from pretrain_jax.data import corpus, pipeline

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def step_losses(workdir: str) -> dict[int, float]:
    """Every step's training loss recorded in metrics.jsonl (later records win after a resume)."""
    losses = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if record["split"] == "train":
                first = record["step"] - len(record["step_losses"]) + 1
                for offset, loss in enumerate(record["step_losses"]):
                    losses[first + offset] = loss
    return losses


@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (2, 2, 2), (1, 4, 2)])
def test_one_sharded_step_on_8_fake_devices(mesh_shape, make_tiny_bert_config, tmp_path):
    assert jax.device_count() == 8
    data, fsdp, tensor = mesh_shape
    config = make_tiny_bert_config(**{"mesh.data": data, "mesh.fsdp": fsdp, "mesh.tensor": tensor})
    docs = corpus.load_documents(config.data, config.data.train_split, str(tmp_path))
    exp = experiment.Experiment.create(config, str(tmp_path), train_documents=docs)
    state = exp.init_state()
    if fsdp > 1:  # Some parameter really is split over the fsdp axis.
        specs = [leaf.sharding.spec for leaf in jax.tree.leaves(state["params"])]
        assert any("fsdp" in tuple(spec) for spec in specs)
    loader = pipeline.make_loader(config.data, exp.tokenizer, docs, split_is_train=True, seed=0)
    packed = sharding.to_global_batch(next(loader), exp.mesh)
    assert packed.tokens.sharding.spec[0] == ("data", "fsdp")
    step = jax.jit(steps.make_train_step(exp.objective_fn, exp.graphdef, exp.tx, config.seed, {}),
                   in_shardings=(exp.state_shardings, None), out_shardings=(exp.state_shardings, None),
                   donate_argnums=0)
    new_state, metrics = step(state, packed)
    assert int(new_state["step"]) == 1
    loss = float(metrics["loss"])
    # Untrained: the masked-LM loss is near log(vocab size).
    assert np.isfinite(loss) and abs(loss - np.log(exp.tokenizer.vocab_size)) < 1.0


def test_resumed_run_equals_uninterrupted(make_tiny_bert_config, tmp_path):
    whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
    train.run(make_tiny_bert_config(), whole)
    check_train_records(whole, num_steps=6)  # As fine-tuning's and the baseline's.
    train.run(make_tiny_bert_config(**{"train.stop_after_steps": 4}), resumed)
    assert sorted(step_losses(resumed)) == [1, 2, 3, 4]
    train.run(make_tiny_bert_config(), resumed)
    expected, got = step_losses(whole), step_losses(resumed)
    assert sorted(got) == list(range(1, 7))
    assert got == expected  # Bit-identical on CPU, masks and data order included.


def test_resume_with_a_different_model_is_an_error(make_tiny_bert_config, tmp_path):
    workdir = str(tmp_path)
    train.run(make_tiny_bert_config(**{"train.num_steps": 1}), workdir)
    with pytest.raises(config_validation.ConfigError, match="model.d_model"):
        train.run(make_tiny_bert_config(**{"model.d_model": 64}), workdir)


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
    from tiny_configs import tiny_bert_config

    workdir = str(tmp_path_factory.mktemp("trained"))
    train.run(tiny_bert_config(**{"train.num_steps": 3}), workdir)
    return workdir


def test_eval_reports_loss_accuracy_and_baseline(trained_workdir):
    scalars = inference.evaluate_workdir(trained_workdir)
    assert scalars["step"] == 3
    for key in ("loss", "accuracy", "baseline_accuracy", "perplexity"):
        assert np.isfinite(scalars[key])
    assert 0.0 < scalars["baseline_accuracy"] <= 1.0
    assert scalars["perplexity"] == pytest.approx(np.exp(scalars["loss"]), rel=1e-5)


def test_fill_mask_returns_top_k_normal_pieces(trained_workdir):
    predictions = inference.fill_mask(trained_workdir, "The [MASK] function returns a [MASK].", top_k=5)
    assert len(predictions) == 2
    for row in predictions:
        assert len(row) == 5
        probs = [p for _, p in row]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert not any(piece in ("[MASK]", "<pad>", "</s>") for piece, _ in row)


def test_a_mask_takes_the_space_before_it(trained_workdir):
    """Pre-training replaced a word-start token (▁list) by one [MASK]: fill-mask drops the lone ▁
    that SentencePiece puts before a [MASK] written after a space, and only that."""
    exp, _, _ = inference.load(trained_workdir)
    tok, mask = exp.tokenizer, exp.specials.mask
    pieces = lambda ids: [tok.id_to_piece(i) for i in ids]  # noqa: E731
    raw = tok.encode("Return a [MASK] of it.")
    assert pieces(raw[raw.index(mask) - 1 : raw.index(mask)]) == ["\u2581"]
    ready = inference.mask_ready_ids(tok, "Return a [MASK] of it.")
    assert ready == raw[: raw.index(mask) - 1] + raw[raw.index(mask):]
    glued = tok.encode("Return a[MASK] of it.")  # No space: nothing to drop.
    assert inference.mask_ready_ids(tok, "Return a[MASK] of it.") == glued


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pretrain_jax.main", *args]


def test_cli_eval_json(trained_workdir):
    out = subprocess.run(_cli("eval", f"--workdir={trained_workdir}", "--json"), capture_output=True, text=True,
                         check=True, cwd=REPO)
    scalars = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"loss", "accuracy", "baseline_accuracy"} <= set(scalars)


def test_sigterm_saves_a_checkpoint_and_the_next_run_continues(tmp_path):
    workdir = str(tmp_path)
    args = ["train", "--config=configs/bert_mlm.py:tiny", f"--workdir={workdir}",
            "--config.tokenizer.vocab_size=512", "--config.tokenizer.num_sentinels=4",
            "--config.data.max_documents=300", "--config.data.seq_len=32", "--config.model.max_len=32",
            "--config.model.d_model=32", "--config.model.d_ff=64", "--config.model.num_layers=2",
            "--config.data.batch_size=8", "--config.train.num_steps=100000", "--config.train.eval_every=0",
            "--config.train.checkpoint_every=100000", "--config.train.log_every_secs=0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    lines = []
    deadline = time.time() + 240
    for line in proc.stdout:  # Wait until training is under way, then send the preemption notice.
        lines.append(line)
        if "step 5/" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "SIGTERM received" in output
    saved = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
    assert len(saved) == 1 and saved[0] >= 5
    resumed = subprocess.run(_cli(*args[:-4], "--config.train.num_steps=" + str(saved[0] + 2),
                                  "--config.train.eval_every=0", "--config.train.checkpoint_every=100000",
                                  "--config.train.log_every_secs=0"),
                             cwd=REPO, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from step {saved[0]}" in resumed.stdout + resumed.stderr
