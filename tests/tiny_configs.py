"""Test-sized configs shared by test modules (import as `from tiny_configs import ...`)."""

import glob
import importlib
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def overridden(config, overrides: dict):
    """Sets {dotted key: value} in `config` ("model.d_model", "objective.bert_mlm.rate") and returns it."""
    for key, value in overrides.items():
        section, _, leaf = key.rpartition(".")
        node = config
        for part in section.split("."):
            node = node[part]
        node[leaf] = value
    return config


def project_config(name: str, arg=None, **overrides):
    """configs/<name>.py:<arg> with {dotted key: value} overrides."""
    return overridden(importlib.import_module(f"configs.{name}").get_config(arg), overrides)


def shrunk_bert_config(**overrides):
    """bert_mlm:tiny shrunk to a 2-layer width-32 encoder on 8 rows of 32 tokens (512-id tokenizer).

    overrides: "section.name" -> value, e.g. `shrunk_bert_config(**{"train.num_steps": 4})`.
    """
    c = project_config("bert_mlm", "tiny")
    c.tokenizer.vocab_size = 512
    c.tokenizer.num_sentinels = 4
    c.data.seq_len = 32
    c.data.batch_size = 8
    c.data.eval_batch_size = 8
    c.model.max_len = 32
    c.model.d_model = 32
    c.model.d_ff = 64
    c.model.num_layers = 2
    return overridden(c, overrides)


def tiny_bert_config(**overrides):
    """`shrunk_bert_config` training for seconds: 6 steps on 300 built-in documents, checkpoint every 3."""
    defaults = {
        "data.max_documents": 300,
        "train.num_steps": 6,
        "train.eval_every": 0,
        "train.eval_steps": 2,
        "train.checkpoint_every": 3,
        "train.log_every_secs": 0.0,
    }
    return shrunk_bert_config(**{**defaults, **overrides})


def tiny_config_names() -> list[str]:
    """configs/*.py files whose get_config("tiny") is a variant of their default (base.py is not), except the
    skip-gram baseline's (it has a `baseline` section and pre-trains no transformer): the configs that
    tests/configs/test_tiny_configs_train.py trains end to end on the 8-device data-parallel mesh."""
    names = []
    for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))):
        module = importlib.import_module(f"configs.{os.path.basename(path)[:-3]}")
        get_config = getattr(module, "get_config", None)
        if get_config is not None and get_config("tiny") != get_config() and "baseline" not in get_config():
            names.append(module.__name__.split(".")[-1])
    return names
