"""End to end: local text corpus -> SentencePiece -> skip-gram -> BiLSTM on a fortunes-style task."""

import json
import os

import numpy as np
import pytest
from baseline_helpers import write_fake_fortunes
from train_records import check_train_records

from configs.base import get_config
from pretrain_jax.baselines import pipeline

KEYWORDS = ("computer", "science", "food", "politics")  # The fake fortunes topics' keywords.
COMMON_WORDS = ["the", "a", "of", "is"]


def _topical_paragraphs(num_paragraphs=300, seed=0):
    """Paragraph i is about topic i % 4: its keyword (often), 20 made-up words of that topic, common words."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    topic_words = [[keyword] * 10 + ["".join(rng.choice(letters, rng.integers(3, 8))) for _ in range(20)]
                   for keyword in KEYWORDS]
    return [" ".join(rng.choice(topic_words[i % 4] + COMMON_WORDS, 40)) + "." for i in range(num_paragraphs)]


def _config(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(_topical_paragraphs()), encoding="utf-8")
    config = pipeline.with_baseline_section(get_config())
    config.data.source = "files"
    config.data.files = str(corpus)
    config.data.eval_fraction = 0.1
    config.tokenizer.vocab_size = 100
    config.tokenizer.num_sentinels = 10
    config.tokenizer.num_threads = 1
    baseline = config.baseline
    baseline.skipgram.update(dict(embedding_dim=16, subsample_t=1e-3, num_epochs=5, batch_size=256, learning_rate=1e-2))
    baseline.bilstm.update(dict(hidden_size=16, max_length=16, batch_size=16, eval_batch_size=32, num_epochs=30))
    baseline.task.fortunes_dir = write_fake_fortunes(tmp_path / "fortunes")
    baseline.task.fortunes_topics = "computers,science,food,politics"
    baseline.task.test_fraction = 0.25
    baseline.task.min_entries = 5
    return config


def test_pipeline_runs_end_to_end_and_reuses_embeddings(tmp_path):
    config = _config(tmp_path)
    workdir = str(tmp_path / "work")
    results = pipeline.run(config, workdir)
    assert results["label_names"] == ["computers", "science", "food", "politics"]
    assert results["num_test_examples"] == 19 and results["num_train_examples"] == 53
    assert results["accuracy"] >= 0.9, results  # Each fake topic has its own keyword.
    embeddings_path = os.path.join(workdir, pipeline.EMBEDDINGS_FILENAME)
    embeddings = np.load(embeddings_path)
    assert embeddings.shape == (100, 16)
    with open(os.path.join(workdir, pipeline.RESULTS_FILENAME), encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["macro_f1"] == results["macro_f1"] and saved["config"]["bilstm"]["hidden_size"] == 16
    check_train_records(workdir, num_steps=30 * 4)  # 30 epochs of ceil(53 / 16) = 4 steps, as pre-training's.

    # A second run reuses the tokenizer and the embeddings, and a JSONL task can be given directly.
    mtime = os.path.getmtime(embeddings_path)
    task_dir = os.path.join(workdir, "fortunes_task")
    config.baseline.task.train_file = os.path.join(task_dir, "train.jsonl")
    config.baseline.task.test_file = os.path.join(task_dir, "test.jsonl")
    again = pipeline.run(config, workdir)
    assert os.path.getmtime(embeddings_path) == mtime
    # Without task.label_names, the labels are the train file's, sorted.
    assert again["label_names"] == ["computers", "food", "politics", "science"]
    assert again["num_test_examples"] == 19

    # Embeddings trained with other settings are never reused silently.
    config.baseline.skipgram.window = 2
    with pytest.raises(ValueError, match=r"\['window'\]"):
        pipeline.run(config, workdir)
