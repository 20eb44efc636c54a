"""GLUE's own distribution, read without TFDS: GLUE_DIR/<TASK>/{train,dev}.tsv as the GLUE download
script leaves them (`--config.dataset=glue/rte --config.glue_dir=~/glue_data`).

    data = load("glue/rte", "~/glue_data")      # the same Dataset as the TFDS name gives

Each task keeps TFDS's label names and order, its field names (so T5's input reads the same words,
"rte sentence1: ... sentence2: ...") and its test split (the dev file: GLUE's test labels are
hidden). A label cell is a class name ("entailment") or a class index ("1"), as each task's file has it.
"""

import dataclasses
import os

import numpy as np

from pretrain_jax.finetune import datasets


@dataclasses.dataclass(frozen=True)
class GlueFiles:
    directory: str  # under glue_dir, e.g. "RTE"
    columns: tuple[str, ...]  # the TSV's text columns: A, then B for a pair
    label_column: str
    label_names: tuple[str, ...]  # TFDS's ClassLabel order; () for regression
    test_file: str = "dev.tsv"


GLUE_FILES = {
    "glue/sst2": GlueFiles("SST-2", ("sentence",), "label", ("negative", "positive")),
    "glue/mnli": GlueFiles("MNLI", ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"),
                           "dev_matched.tsv"),
    "glue/rte": GlueFiles("RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment")),
    "glue/mrpc": GlueFiles("MRPC", ("#1 String", "#2 String"), "Quality", ("not_equivalent", "equivalent")),
    "glue/qqp": GlueFiles("QQP", ("question1", "question2"), "is_duplicate", ("not_duplicate", "duplicate")),
    "glue/qnli": GlueFiles("QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment")),
    "glue/stsb": GlueFiles("STS-B", ("sentence1", "sentence2"), "score", ()),
}


def load(name: str, glue_dir: str) -> datasets.Dataset:
    """The train and dev examples of GLUE task `name` ("glue/rte") from the TSV files under glue_dir."""
    task = GLUE_FILES.get(name.split(":")[0])
    if task is None:
        raise ValueError(f"glue_dir reads the GLUE tasks {sorted(GLUE_FILES)}; {name!r} is not one of them")
    known = datasets.KNOWN_TFDS[name.split(":")[0]]
    directory = os.path.join(os.path.expanduser(glue_dir), task.directory)
    a_column, b_columns = task.columns[0], task.columns[1:]
    train, test = (_read(os.path.join(directory, file), task) for file in ("train.tsv", task.test_file))
    pair_names = (known.text_keys[0], known.text_b_keys[0]) if b_columns else None
    return datasets.Dataset(name, task.label_names, train, test, pair_names, known.kind,
                            bool(pair_names and pair_names[1] < pair_names[0]), (a_column,), b_columns,
                            task.label_column)


def _read(path: str, task: GlueFiles) -> datasets.Examples:
    texts, texts_b, labels = datasets.read_labelled_file(path, task.columns[:1], task.label_column, task.columns[1:])
    if not task.label_names:
        return datasets.Examples(texts, datasets.scores(path, labels), texts_b)
    ids = np.zeros(len(labels), np.int32)
    for i, label in enumerate(labels):
        class_id = datasets.class_id(label, task.label_names)
        if class_id is None:
            raise ValueError(f"{path}: example {i + 1} has label {label!r}, neither one of {list(task.label_names)}"
                             " nor a class index")
        ids[i] = class_id
    return datasets.Examples(texts, ids, texts_b)
