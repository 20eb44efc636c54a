"""`pretrain-jax baseline --config=configs/skipgram_bilstm.py:tiny` end to end on a small local corpus and task."""

import json
import os

import numpy as np
import pytest
from cli_in_process import run_main

from configs import skipgram_bilstm
from pretrain_jax.baselines import pipeline

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPICS = {"cooking": ["bread", "oven", "salt", "flour"], "sailing": ["boat", "wind", "sail", "harbour"]}
COMMON = ["the", "a", "of", "is", "and", "with"]


def _texts(topic: str, n: int, words: int, rng: np.random.Generator) -> list[str]:
    return [" ".join(rng.choice(TOPICS[topic] + COMMON, words)) for _ in range(n)]


def _examples(per_topic: int, rng: np.random.Generator) -> list[dict]:
    return [{"text": text, "label": topic} for topic in TOPICS for text in _texts(topic, per_topic, 8, rng)]


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_tiny_config_differs_from_the_default_only_in_sizes():
    default, tiny = skipgram_bilstm.get_config(), skipgram_bilstm.get_config("tiny")
    assert default.baseline.skipgram.subsample_t == tiny.baseline.skipgram.subsample_t == 1e-4
    assert tiny.baseline.skipgram.embedding_dim < default.baseline.skipgram.embedding_dim
    assert tiny.baseline.bilstm.num_epochs < default.baseline.bilstm.num_epochs
    assert default.data == tiny.data and default.tokenizer == tiny.tokenizer
    with pytest.raises(ValueError, match="unknown config argument"):
        skipgram_bilstm.get_config("huge")


def test_cli_trains_and_scores_the_baseline(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"  # Documents about one topic each, so skip-gram can learn them.
    corpus.write_text("\n\n".join(text + "." for topic in TOPICS for text in _texts(topic, 100, 30, rng)),
                      encoding="utf-8")
    train_file = _write_jsonl(tmp_path / "train.jsonl", _examples(24, rng))
    test_file = _write_jsonl(tmp_path / "test.jsonl", _examples(16, rng))
    workdir = str(tmp_path / "work")
    args = ["pretrain-jax", "baseline", f"--config={REPO}/configs/skipgram_bilstm.py:tiny",
            "--config.data.source=files", f"--config.data.files={corpus}", "--config.data.eval_fraction=0.1",
            "--config.tokenizer.vocab_size=40", "--config.tokenizer.num_sentinels=4",
            "--config.tokenizer.num_threads=1", "--config.baseline.skipgram.embedding_dim=16",
            "--config.baseline.skipgram.batch_size=1024", "--config.baseline.skipgram.num_epochs=2",
            "--config.baseline.skipgram.subsample_t=0", "--config.baseline.skipgram.learning_rate=3e-2",
            "--config.baseline.bilstm.hidden_size=16", "--config.baseline.bilstm.dropout=0",
            "--config.baseline.bilstm.max_length=16", "--config.baseline.bilstm.batch_size=16",
            "--config.baseline.bilstm.num_epochs=40", "--config.baseline.bilstm.learning_rate=1e-2",
            f"--config.baseline.task.train_file={train_file}", f"--config.baseline.task.test_file={test_file}",
            f"--workdir={workdir}"]
    run_main(args, monkeypatch)

    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(os.path.join(workdir, pipeline.RESULTS_FILENAME), encoding="utf-8") as f:
        results = json.load(f)
    assert printed == {k: results[k] for k in ("accuracy", "macro_f1", "majority_baseline_accuracy",
                                               "num_train_examples", "num_test_examples")}
    assert printed["num_train_examples"] == 48 and printed["num_test_examples"] == 32
    assert results["label_names"] == ["cooking", "sailing"]
    assert results["config"]["skipgram"]["embedding_dim"] == 16  # The overrides reached the run.
    assert printed["accuracy"] >= 0.8, results  # Each topic has its own words.
    assert os.path.exists(os.path.join(workdir, pipeline.EMBEDDINGS_FILENAME))


def test_cli_without_a_baseline_section_is_a_usage_error(tmp_path, capsys, monkeypatch):
    args = ["pretrain-jax", "baseline", f"--config={REPO}/configs/bert_mlm.py:tiny", f"--workdir={tmp_path}"]
    with pytest.raises(SystemExit) as exit_info:
        run_main(args, monkeypatch)
    assert exit_info.value.code == 2
    assert "baseline needs --config=configs/skipgram_bilstm.py" in capsys.readouterr().err
