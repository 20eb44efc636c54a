"""The whole baseline run: pre-training corpus -> tokenizer -> skip-gram -> BiLSTM on a labelled task.

    config = pipeline.with_baseline_section(configs.base.get_config())   # adds config.baseline
    results = pipeline.run(config, workdir)   # also written to workdir/baseline_results.json

`config.data` and `config.tokenizer` are the pre-training run's sections: the documents are its
training split and the tokenizer is its tokenizer (`tokenizer.path`, or workdir/tokenizer.model, or
trained there exactly as pre-training would), so both models see the same ids. Files in the workdir:
    tokenizer.model             when trained here
    skipgram_embeddings.npy     (V, E) float32; reused by later runs with the same skipgram config
    skipgram_config.json        the skipgram config and vocab_size it was trained with
    fortunes_task/              train.jsonl, test.jsonl (when task.train_file is empty)
    metrics.jsonl, tensorboard/ the BiLSTM's progress records, as pre-training writes them
    baseline_results.json       accuracy, macro_f1, per-class F1, confusion matrix, label names, config
"""

import json
import os

import ml_collections
import numpy as np
from absl import logging

from pretrain_jax.baselines import bilstm, skipgram
from pretrain_jax.data import corpus, fortunes
from pretrain_jax.data import tokenizer as tokenizer_lib

EMBEDDINGS_FILENAME = "skipgram_embeddings.npy"
EMBEDDINGS_CONFIG_FILENAME = "skipgram_config.json"
RESULTS_FILENAME = "baseline_results.json"


def default_config() -> ml_collections.ConfigDict:
    """The `baseline` section a baseline run adds to the pre-training config: skipgram, bilstm, task."""
    c = ml_collections.ConfigDict()
    c.skipgram = skipgram.default_config()
    c.bilstm = bilstm.default_config()
    c.task = ml_collections.ConfigDict()
    c.task.train_file = ""  # {"text", "label"} JSONL to train on ("" = build the fortunes topic task).
    c.task.test_file = ""  # {"text", "label"} JSONL to score (required with task.train_file).
    c.task.label_names = ""  # Comma-separated labels, id = position ("" = sorted labels of the train file).
    c.task.fortunes_dir = fortunes.FORTUNES_DIR  # Fortune topic files (installed with apt-get if missing).
    c.task.fortunes_topics = ",".join(fortunes.DEFAULT_TOPICS)  # Topics of the fortunes task, comma-separated.
    c.task.test_fraction = 0.2  # Fraction of each fortunes topic held out for testing.
    c.task.split_seed = 0  # Seed of the fortunes train/test split.
    c.task.min_entries = 100  # Fail if a fortunes topic has fewer unique entries than this.
    return c


def with_baseline_section(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of a pre-training config (data, tokenizer, ...) with `baseline` = default_config() added."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.baseline = default_config()
    return config


def load_task(task_config, workdir: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]], tuple[str, ...]]:
    """(train examples, test examples, label names), examples as (text, label_id)."""
    if task_config.train_file:
        if not task_config.test_file:
            raise ValueError("baseline.task.train_file needs baseline.task.test_file")
        label_names = tuple(name for name in task_config.label_names.split(",") if name)
        if not label_names:
            with open(task_config.train_file, encoding="utf-8") as f:
                label_names = tuple(sorted({json.loads(line)["label"] for line in f if line.strip()}))
        train_path, test_path = task_config.train_file, task_config.test_file
    else:
        task = fortunes.build(
            os.path.join(workdir, "fortunes_task"),
            directory=task_config.fortunes_dir,
            topics=[topic for topic in task_config.fortunes_topics.split(",") if topic],
            test_fraction=task_config.test_fraction,
            seed=task_config.split_seed,
            min_entries=task_config.min_entries,
        )
        train_path, test_path, label_names = task.train_path, task.test_path, task.label_names
    return fortunes.read_examples(train_path, label_names), fortunes.read_examples(test_path, label_names), label_names


def load_or_train_embeddings(documents, tokenizer, skipgram_config, workdir: str) -> np.ndarray:
    """workdir/skipgram_embeddings.npy if it was trained with this skipgram config, else trained and saved.

    The config it was trained with is saved beside it (skipgram_config.json); a different one is an
    error rather than a silent reuse or overwrite.
    """
    path = os.path.join(workdir, EMBEDDINGS_FILENAME)
    config_path = os.path.join(workdir, EMBEDDINGS_CONFIG_FILENAME)
    settings = {"skipgram": skipgram_config.to_dict(), "vocab_size": tokenizer.vocab_size}
    if os.path.exists(path):
        with open(config_path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved != settings:
            changed = sorted(k for k in settings["skipgram"] if saved["skipgram"].get(k) != settings["skipgram"][k])
            raise ValueError(
                f"{path} was trained with other settings (skipgram keys {changed}, vocab_size"
                f" {saved['vocab_size']} vs {settings['vocab_size']}); use a fresh workdir or delete it"
            )
        logging.info("Reusing skip-gram embeddings %s.", path)
        return np.load(path)
    embeddings = skipgram.train(documents, tokenizer, skipgram_config)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)
    tmp_path = f"{path}.tmp-{os.getpid()}.npy"
    np.save(tmp_path, embeddings)
    os.replace(tmp_path, path)  # Last: the embeddings file exists only once its config does.
    logging.info("Saved skip-gram embeddings to %s.", path)
    return embeddings


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (or reuses) the embeddings, trains and scores the BiLSTM; returns and saves the results."""
    os.makedirs(workdir, exist_ok=True)
    baseline = config.baseline
    train_examples, test_examples, label_names = load_task(baseline.task, workdir)
    documents = corpus.load_documents(config.data, config.data.train_split, workdir)
    tokenizer = tokenizer_lib.load_or_train(config.tokenizer, workdir, documents)
    embeddings = load_or_train_embeddings(documents, tokenizer, baseline.skipgram, workdir)
    results = bilstm.train_and_evaluate(train_examples, test_examples, tokenizer, embeddings, baseline.bilstm,
                                        label_names, workdir)
    results["label_names"] = list(label_names)
    results["config"] = baseline.to_dict()
    path = os.path.join(workdir, RESULTS_FILENAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    logging.info("Baseline results in %s: accuracy %.4f, macro-F1 %.4f.", path, results["accuracy"],
                 results["macro_f1"])
    return results
