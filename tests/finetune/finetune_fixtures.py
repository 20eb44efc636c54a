"""Tiny pre-trained workdirs, and the synthetic tasks of finetune/toy_tasks.py as files (for tests/finetune/*)."""

import os

from tiny_configs import tiny_bert_config

from configs.finetune import classify
from pretrain_jax import experiment, train
from pretrain_jax.finetune import toy_tasks

KEYWORD, LABELS = toy_tasks.KEYWORD, toy_tasks.KEYWORD_LABELS
PAIR_LABELS = toy_tasks.PAIR_LABELS
keyword_examples, write_jsonl = toy_tasks.keyword_examples, toy_tasks.write_jsonl
pair_examples, score_examples = toy_tasks.same_word_examples, toy_tasks.distance_examples


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
