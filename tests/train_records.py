"""What the one loop writes to metrics.jsonl and TensorBoard, checked alike for pre-training, fine-tuning
and the BiLSTM baseline."""

import json
import math
import os

# The figures of every "train" record, whichever run wrote it (pretrain_jax.loop.Progress).
TRAIN_FIGURES = {"loss", "accuracy", "grad_norm", "nonfinite_steps", "tokens_per_sec", "examples_per_sec",
                 "step_losses"}


def check_train_records(workdir: str, num_steps: int) -> list[dict]:
    """The run's "train" records: each with TRAIN_FIGURES, every step's loss once (steps 1..num_steps, in
    order, finite), and TensorBoard events beside them. Returns the records."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [r for r in map(json.loads, f) if r["split"] == "train"]
    assert records and all(set(r) >= TRAIN_FIGURES for r in records), records[:1]
    step = 0
    for record in records:
        step += len(record["step_losses"])
        assert record["step"] == step  # A record's losses are those of the steps since the one before.
    assert step == num_steps and all(math.isfinite(loss) for r in records for loss in r["step_losses"])
    assert os.listdir(os.path.join(workdir, "tensorboard", "train"))
    return records
