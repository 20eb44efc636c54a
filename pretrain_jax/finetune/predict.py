"""Labelling new examples with a saved fine-tuned model (`pretrain-jax predict`).

    summary = predict_file("/tmp/sst2", "new.jsonl", "preds.jsonl")
    # preds.jsonl: each input row with "prediction" added (a label name, or a score for regression).
    # When every row has the label field, summary holds the task's scores, as results.json reports them.

The input is a .jsonl, .csv or .tsv file with the fields the model was fine-tuned on (its
model.json says which: e.g. "sentence1" and "sentence2" for a pair task). Rows are read, encoded
and laid out exactly as in fine-tuning's evaluation, so the scores on the fine-tuning test file
reproduce its results.json.
"""

import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from flax import nnx

from pretrain_jax import sharding
from pretrain_jax.finetune import classification, datasets, saved


def predict_file(workdir: str, input_path: str, output_path: str,
                 devices: Sequence[jax.Device] | None = None) -> dict:
    """Writes `output_path` (JSONL, one row per input row, with "prediction") and returns a summary:
    num_examples, output, and (every row labelled) the task's report."""
    mesh = sharding.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1}), devices)
    finetuned = saved.load(workdir, mesh)
    keys = finetuned.inputs
    examples = list(datasets.read_rows(input_path))
    if not examples:
        raise ValueError(f"{input_path} has no examples")
    for where, row in examples:
        missing = [k for k in (*keys["text_keys"], *keys["text_b_keys"]) if k not in row]
        if missing:
            raise ValueError(f"{where}: no field {missing[0]!r} (the model reads {keys['text_keys']}"
                             f"{' and ' + str(keys['text_b_keys']) if keys['text_b_keys'] else ''})")
    rows = [row for _, row in examples]
    task, label_key = finetuned.task, keys["label_key"]
    labelled = all(label_key in row for row in rows)  # Then the summary holds the task's scores.
    labels = _labels(task, [row[label_key] for row in rows], input_path) if labelled else None
    tokenizer = finetuned.tokenizer
    token_ids = tokenizer.encode_batch([" ".join(str(row[k]) for k in keys["text_keys"]) for row in rows])
    token_ids_b = (tokenizer.encode_batch([" ".join(str(row[k]) for k in keys["text_b_keys"]) for row in rows])
                   if keys["text_b_keys"] else None)
    fmt = finetuned.fmt
    scores_step = jax.jit(lambda p, batch: fmt.scores(nnx.merge(finetuned.graphdef, p), batch))
    shards = sharding.data_parallel_size(mesh)
    batch_size = -(-finetuned.eval_batch_size // shards) * shards
    predictions = classification.predict(fmt, task, scores_step, finetuned.params, token_ids, token_ids_b,
                                         batch_size, mesh)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    with open(output_path, "w") as f:
        for row, prediction in zip(rows, predictions, strict=True):
            f.write(json.dumps({**row, "prediction": _readable(task, prediction)}) + "\n")
    summary = {"num_examples": len(rows), "output": output_path}
    if labels is not None:
        summary.update(task.report(labels, predictions))
    return summary


def _readable(task, prediction):
    """A class id -> its label name; a regression score -> a float."""
    return task.label_names[int(prediction)] if task.kind == "classification" else float(prediction)


def _labels(task, values: list, path: str) -> np.ndarray:
    """The rows' labels as the task's targets: class ids (by name, or a class index as GLUE's files write
    some), or floats."""
    if task.kind == "regression":
        return np.asarray([float(v) for v in values], np.float32)
    ids = [datasets.class_id(datasets.label_string(v), task.label_names) for v in values]
    if None in ids:
        bad = datasets.label_string(values[ids.index(None)])
        raise ValueError(f"{path} has label {bad!r}, not one of the model's labels {list(task.label_names)}")
    return np.asarray(ids, np.int32)
