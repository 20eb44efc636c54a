"""Configs and synthetic batches shared by the scale tests (no tokenizer, no corpus: shapes only)."""

import json
import os
import sys

import numpy as np

from pretrain_jax.batch import PackedBatch

# The model tests' hand-made ModelBatches and tiny model configs, reused here.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
from model_fixtures import family_batch, tiny_model_config  # noqa: E402
from tiny_configs import shrunk_bert_config  # noqa: E402

__all__ = ["family_batch", "random_packed_batch", "step_losses", "tiny_config", "tiny_model_config"]


def tiny_config(mesh=(8, 1, 1), **overrides):
    """bert_mlm:tiny shrunk to a 2-layer width-32 encoder on 8 rows of 32 tokens, over `mesh`."""
    data, fsdp, tensor = mesh
    return shrunk_bert_config(**{"mesh.data": data, "mesh.fsdp": fsdp, "mesh.tensor": tensor, **overrides})


def random_packed_batch(config, seed: int = 0) -> PackedBatch:
    """(B, L) rows of two documents each, ordinary ids only: what the loader would hand the objective."""
    rng = np.random.default_rng(seed)
    rows, length = config.data.batch_size, config.data.seq_len
    split = rng.integers(length // 4, length - length // 4, rows)[:, None]
    columns = np.arange(length)[None, :]
    segment_ids = np.where(columns < split, 1, 2).astype(np.int32)
    positions = np.where(columns < split, columns, columns - split).astype(np.int32)
    first_normal, end = 13, config.tokenizer.vocab_size - config.tokenizer.num_sentinels
    tokens = rng.integers(first_normal, end, (rows, length)).astype(np.int32)
    tokens[np.arange(rows), split[:, 0] - 1] = 1  # EOS closes the first document.
    tokens[:, -1] = 1
    sentence_ids = np.zeros((rows, length), np.int32)
    word_starts = rng.random((rows, length)) < 0.7
    return PackedBatch(tokens, segment_ids, positions, sentence_ids, word_starts)


def step_losses(workdir: str) -> dict[int, float]:
    """Every step's training loss in WORKDIR/metrics.jsonl (later records win after a resume)."""
    losses = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if record["split"] == "train":
                first = record["step"] - len(record["step_losses"]) + 1
                losses.update({first + i: loss for i, loss in enumerate(record["step_losses"])})
    return losses
