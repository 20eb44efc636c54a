"""Fine-tuning end to end on tiny workdirs: encoder [CLS], decoder last token (via the CLI), T5 text-to-text,
and pre-trained against from-scratch weights."""

import json
import os

import jax
import numpy as np
import pytest
from cli_in_process import run_main
from finetune_fixtures import LABELS, finetune_config
from flax import nnx
from train_records import check_train_records

from pretrain_jax import inference
from pretrain_jax.config_validation import ConfigError
from pretrain_jax.finetune import classification, datasets, formats

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_results(results: dict, workdir: str, family: str, min_accuracy: float) -> None:
    """Valid predictions on the 64 test examples, and the results file equal to what `run` returned."""
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f) == json.loads(json.dumps(results))
    matrix = np.asarray(results["confusion_matrix"])
    assert matrix.shape == (2, 2) and matrix.sum() == 64 and matrix.sum(axis=1).tolist() == [32, 32]
    assert results["accuracy"] == pytest.approx(np.trace(matrix) / 64)
    assert results["accuracy"] >= min_accuracy, results
    assert 0.0 <= results["macro_f1"] <= 1.0 and results["majority_baseline_accuracy"] == 0.5
    assert results["label_names"] == list(LABELS) and results["family"] == family
    assert results["num_train_examples"] == 128 and results["train_class_counts"] == [64, 64]
    check_train_records(workdir, results["steps"])  # As pre-training's and the baseline's.
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if r["split"] == "eval"]
    assert evals[-1]["step"] == results["steps"] and evals[-1]["accuracy"] == results["accuracy"]


def test_encoder_learns_the_keyword_task(encoder_workdir, keyword_task, tmp_path):
    workdir = str(tmp_path)
    config = finetune_config(encoder_workdir, *keyword_task, num_steps=80, eval_every=40)
    results = classification.run(config, workdir)
    check_results(results, workdir, "encoder", min_accuracy=0.9)
    assert results["macro_f1"] >= 0.9
    assert results["init"] == "pretrained" and results["pretrain_step"] == 2 and results["steps"] == 80
    assert [h["step"] for h in results["history"]] == [40, 80]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["init_from"] == encoder_workdir


def test_pretrained_loads_the_backbone_exactly_and_scratch_does_not(encoder_workdir, keyword_task):
    def backbone_and_head(init: str, seed: int = 0):
        config = finetune_config(encoder_workdir, *keyword_task, init=init, seed=seed)
        pretrained = classification.load_pretrained(config)
        fmt = classification.make_format(config, pretrained, classification.format_args(config, pretrained, LABELS))
        assert isinstance(fmt, formats.PooledClassifier) and fmt.pooling == "cls"
        model = classification.build_model(config, pretrained, fmt, len(LABELS))
        return (jax.device_get(nnx.state(model.backbone, nnx.Param)),
                jax.device_get(nnx.state(model.head, nnx.Param)))

    _, checkpoint_params, step = inference.load(encoder_workdir)
    assert step == 2
    expected = jax.device_get(checkpoint_params)
    loaded, head = backbone_and_head("pretrained")
    assert jax.tree.structure(loaded) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)
    scratch, scratch_head = backbone_and_head("scratch")
    assert jax.tree.structure(scratch) == jax.tree.structure(expected)  # Same architecture, other weights.
    # Every randomly drawn weight (not the constant-initialised biases and norm scales) differs.
    drawn = [(a, b) for a, b in zip(jax.tree.leaves(scratch), jax.tree.leaves(expected), strict=True) if a.std() > 0]
    assert len(drawn) >= 10 and all(a.shape == b.shape and not np.allclose(a, b) for a, b in drawn)
    # The head is new either way: [CLS] pooler (32 x 32 + 32) and a 2-way linear layer (32 x 2 + 2).
    assert sorted(a.size for a in jax.tree.leaves(head)) == sorted(a.size for a in jax.tree.leaves(scratch_head))
    assert sum(a.size for a in jax.tree.leaves(head)) == 32 * 32 + 32 + 32 * 2 + 2


def test_decoder_pools_the_last_token_through_the_cli(decoder_workdir, keyword_task, tmp_path, capsys, monkeypatch):
    workdir = str(tmp_path)
    train_file, test_file = keyword_task
    args = ["pretrain-jax", "finetune", f"--config={REPO}/configs/finetune/classify.py:tiny",
            f"--config.init_from={decoder_workdir}", "--config.dataset=files", f"--config.train_file={train_file}",
            f"--config.test_file={test_file}", "--config.seq_len=16", "--config.batch_size=16",
            "--config.eval_batch_size=32", "--config.num_steps=40", "--config.dropout=0", "--config.optim.lr=3e-3",
            "--config.init=scratch", f"--workdir={workdir}"]
    run_main(args, monkeypatch)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert printed == {k: results[k] for k in ("score", "accuracy", "macro_f1", "num_train_examples", "steps")}
    check_results(results, workdir, "decoder", min_accuracy=0.75)
    assert results["steps"] == 40 and results["init"] == "scratch" and results["pretrain_step"] is None


def test_encoder_decoder_ranks_the_label_names(encoder_decoder_workdir, keyword_task, tmp_path):
    workdir = str(tmp_path)
    config = finetune_config(encoder_decoder_workdir, *keyword_task, init="scratch", num_steps=200,
                             log_every_steps=100)
    results = classification.run(config, workdir)
    check_results(results, workdir, "encoder_decoder", min_accuracy=0.75)
    assert results["num_params"] > 0 and results["pretrain_objective"] == "t5_span_corruption"


def test_bad_configs_fail_before_any_weights_load(keyword_task, tmp_path):
    cases = [
        (dict(init="frozen"), ConfigError, "init='frozen'"),
        (dict(init_from=""), ConfigError, "init_from is empty"),
        (dict(dropout=1.5), ConfigError, "dropout=1.5"),
        (dict(batch_size=12), ConfigError, "batch_size=12 does not split over the 8 devices"),
        (dict(max_train_examples=1), ValueError, "max_train_examples=1 is fewer than the 2 classes"),
        (dict(dataset="no_such_set_xyz"), ValueError, "Unknown TFDS dataset"),
    ]
    for overrides, error, message in cases:
        config = finetune_config(str(tmp_path / "no_workdir"), *keyword_task)
        config.update(overrides)
        with pytest.raises(error, match=message):
            classification.run(config, str(tmp_path / "out"))
    assert datasets.KNOWN_TFDS["glue/sst2"].test_split == "validation"
