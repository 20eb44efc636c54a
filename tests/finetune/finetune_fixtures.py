"""Tiny pre-trained workdirs and a synthetic, learnable classification task (imported by tests/finetune/*)."""

import json
import os

import numpy as np
from tiny_configs import tiny_bert_config

from configs.finetune import classify
from pretrain_jax import experiment, train

KEYWORD = "function"
FILLERS = ("the", "list", "value", "object", "string", "file", "module", "returns", "number", "method", "class",
           "data", "type", "name", "error", "module", "line", "default")
LABELS = ("absent", "present")


def keyword_examples(n: int, seed: int, words: int = 6) -> list[dict]:
    """n texts of `words` common words; label "present" iff KEYWORD is one of them (half the texts)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = list(rng.choice(FILLERS, words))
        present = i % 2 == 1
        if present:
            text[rng.integers(words)] = KEYWORD
        rows.append({"text": " ".join(text), "label": LABELS[present]})
    return rows


def write_jsonl(path: str, rows: list[dict]) -> str:
    with open(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def keyword_task_files(directory: str, num_train: int = 128, num_test: int = 64) -> tuple[str, str]:
    return (write_jsonl(os.path.join(directory, "train.jsonl"), keyword_examples(num_train, seed=0)),
            write_jsonl(os.path.join(directory, "test.jsonl"), keyword_examples(num_test, seed=1)))


def pretrain_encoder(workdir: str) -> str:
    """A tiny BERT workdir as `pretrain-jax train` leaves it after 2 steps of masked LM."""
    train.run(tiny_bert_config(**{"train.num_steps": 2, "train.checkpoint_every": 2, "train.eval_steps": 1}), workdir)
    return workdir


def architecture_workdir(workdir: str, family: str, objective: str, tokenizer_path: str) -> str:
    """A workdir with a config and a (shared) tokenizer but no checkpoint: enough for init="scratch"."""
    config = tiny_bert_config(**{"model.family": family, "objective.name": objective,
                                 "model.position_encoding": "auto", "tokenizer.path": tokenizer_path})
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, experiment.CONFIG_FILE), "w") as f:
        f.write(config.to_json(indent=2))
    return workdir


def finetune_config(init_from: str, train_file: str, test_file: str, **overrides):
    """configs/finetune/classify.py:tiny on the keyword task, shrunk to seconds."""
    c = classify.get_config("tiny")
    c.init_from, c.dataset, c.train_file, c.test_file = init_from, "files", train_file, test_file
    c.seq_len, c.batch_size, c.eval_batch_size = 16, 16, 32
    c.num_steps, c.dropout, c.log_every_steps = 40, 0.0, 10
    c.optim.lr = 3e-3
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        (c[section] if section else c)[name] = value
    return c
