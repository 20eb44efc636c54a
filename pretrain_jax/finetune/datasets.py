"""Labelled text and sentence pairs for classification and regression: TFDS datasets by name and local
CSV / TSV / JSONL files.

    data = load_dataset(config)            # config: configs/finetune/classify.py
    data.label_names                       # ('negative', 'positive')
    data.train.texts[0], data.train.labels[0]
    data.train.texts_b                     # sentence pairs (glue/mnli, text_b_keys): each second text; else None
    data.kind                              # "classification" (labels: int32 class ids) or "regression" (float32)
    subset = stratified_subset(data.train.labels, 100, seed=0)   # indices of 100 examples, every class kept

TFDS datasets are read through `tfds.data_source` (array_record, no TensorFlow) with download=False:
a dataset that is not prepared is a one-line error, never a download. Label names come from the
dataset's ClassLabel feature (regression, config.task or glue/stsb: none, the label is a number).
Files are read whole; their label names are sorted (numerically when every label is a number)
unless `config.labels` gives the order. Errors are one-line ValueErrors naming the file, field or
split at fault.
"""

import csv
import dataclasses
import json
import os

import numpy as np

from pretrain_jax.data import corpus, local_text_builder

FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclasses.dataclass(frozen=True)
class TfdsTask:
    """How a known TFDS classification dataset is read."""

    text_keys: tuple[str, ...]
    label_key: str = "label"
    train_split: str = "train"
    test_split: str = "test"
    text_b_keys: tuple[str, ...] = ()  # A sentence pair's second text (segment B); () = single text.
    kind: str = "classification"  # Or "regression": the label is a number.


def _pair(a: str, b: str, test_split: str = "validation", kind: str = "classification") -> TfdsTask:
    return TfdsTask((a,), test_split=test_split, text_b_keys=(b,), kind=kind)


# GLUE's and SuperGLUE's test labels are hidden (every label is -1), so their validation split is the
# test set. Pairs read A then B in BERT's order (premise before hypothesis, question before passage).
KNOWN_TFDS = {
    "glue/sst2": TfdsTask(("sentence",), test_split="validation"),
    "glue/cola": TfdsTask(("sentence",), test_split="validation"),
    "glue/mnli": _pair("premise", "hypothesis", "validation_matched"),
    "glue/rte": _pair("sentence1", "sentence2"),
    "glue/mrpc": _pair("sentence1", "sentence2"),
    "glue/qqp": _pair("question1", "question2"),
    "glue/qnli": _pair("question", "sentence"),
    "glue/stsb": _pair("sentence1", "sentence2", kind="regression"),
    "super_glue/boolq": _pair("question", "passage"),
    "super_glue/cb": _pair("premise", "hypothesis"),
    "imdb_reviews": TfdsTask(("text",)),
    "ag_news_subset": TfdsTask(("title", "description")),
}


@dataclasses.dataclass(frozen=True)
class Examples:
    texts: list[str]
    labels: np.ndarray  # (N,) int32 class ids in [0, num_classes); regression: (N,) float32 scores.
    texts_b: list[str] | None = None  # Sentence pairs: each example's second text (segment B); else None.

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: np.ndarray) -> "Examples":
        texts_b = None if self.texts_b is None else [self.texts_b[i] for i in indices]
        return Examples([self.texts[i] for i in indices], self.labels[indices], texts_b)


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str  # "glue/sst2", or "files" for local files.
    label_names: tuple[str, ...]  # Class id -> name; () for regression.
    train: Examples
    test: Examples
    pair_names: tuple[str, str] | None = None  # Sentence pairs: the fields of A and of B (T5's input words).
    kind: str = "classification"  # Or "regression".
    # T5's GLUE inputs name the fields in alphabetical order ("mnli hypothesis: B premise: A"): True for a
    # known TFDS pair task whose B field sorts first. Local files keep the order of text_keys, text_b_keys.
    text_to_text_b_first: bool = False
    # The fields the texts and labels were read from (a saved model's `predict` reads the same ones).
    text_keys: tuple[str, ...] = ("text",)
    text_b_keys: tuple[str, ...] = ()
    label_key: str = "label"

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def load_dataset(config) -> Dataset:
    """The train and test examples that `config` (configs/finetune/classify.py) names."""
    if not config.dataset:
        raise ValueError("dataset is empty: give a TFDS name (e.g. glue/sst2) or 'files'")
    if config.task not in ("auto", *TASK_KINDS):
        raise ValueError(f"task={config.task!r}: use 'auto' or one of {TASK_KINDS}")
    if config.dataset == "files":
        return _load_files(config)
    return _load_tfds(config)


TASK_KINDS = ("classification", "regression")


# ---------------------------------------------------------------------------------------------- TFDS


def _load_tfds(config) -> Dataset:
    name = config.dataset
    known = KNOWN_TFDS.get(name.split(":")[0])
    train_split = config.train_split or (known.train_split if known else "train")
    test_split = config.test_split or (known.test_split if known else "test")
    data_dir = os.path.expanduser(config.tfds_data_dir) if config.tfds_data_dir else None
    train_source = _open_tfds(name, train_split, data_dir)
    text_keys = _split_keys(config.text_keys) or (known.text_keys if known else ())
    text_b_keys = _split_keys(config.text_b_keys) or (known.text_b_keys if known and not config.text_keys else ())
    label_key = config.label_key or "label"
    if not text_keys:
        raise ValueError(f"dataset {name!r} is not one of {sorted(KNOWN_TFDS)}: set text_keys (and label_key)")
    kind = config.task if config.task != "auto" else (known.kind if known else "classification")
    _check_field(train_source, name, label_key)
    label_names = _class_names(train_source, name, label_key) if kind == "classification" else ()
    keys = (text_keys, text_b_keys, label_key, len(label_names))
    train = _read_source(train_source, f"{name} {train_split}", *keys)
    test = _read_source(_open_tfds(name, test_split, data_dir), f"{name} {test_split}", *keys)
    pair_names = _pair_names(text_keys, text_b_keys)
    b_first = bool(known and pair_names and not config.text_keys and pair_names[1] < pair_names[0])
    return Dataset(name, label_names, train, test, pair_names, kind, b_first, text_keys, text_b_keys, label_key)


def _pair_names(text_keys: tuple[str, ...], text_b_keys: tuple[str, ...]) -> tuple[str, str] | None:
    return (" ".join(text_keys), " ".join(text_b_keys)) if text_b_keys else None


def _open_tfds(name: str, split: str, data_dir: str | None):
    return corpus.open_tfds(name, split, data_dir, f"Unknown TFDS dataset {name!r} (dataset); known"
                            f" classification sets: {', '.join(sorted(KNOWN_TFDS))}, or 'files'")


def _check_field(source, name: str, label_key: str) -> None:
    features = source.dataset_info.features
    if label_key not in features:
        raise ValueError(f"TFDS dataset {name!r} has no field {label_key!r} (label_key); its fields are"
                         f" {sorted(features.keys())}")


def _class_names(source, name: str, label_key: str) -> tuple[str, ...]:
    """The ClassLabel names of field `label_key`, which `_check_field` found in the dataset."""
    names = getattr(source.dataset_info.features[label_key], "names", None)
    if not names:
        raise ValueError(f"field {label_key!r} of TFDS dataset {name!r} is not a ClassLabel; pick a label field")
    return tuple(names)


def _read_source(source, where: str, text_keys: tuple[str, ...], text_b_keys: tuple[str, ...], label_key: str,
                 num_classes: int) -> Examples:
    """num_classes 0: a regression task's float labels."""
    texts, texts_b = [], []
    labels = np.zeros(len(source), np.int32 if num_classes else np.float32)
    for index in range(len(source)):
        example = source[index]
        for keys, option in ((text_keys, "text_keys"), (text_b_keys, "text_b_keys")):
            missing = [k for k in keys if k not in example]
            if missing:
                raise ValueError(f"{where} has no field {missing[0]!r} ({option}); its fields are {sorted(example)}")
        texts.append(" ".join(local_text_builder.decode_text(example[k]) for k in text_keys))
        texts_b.append(" ".join(local_text_builder.decode_text(example[k]) for k in text_b_keys))
        labels[index] = example[label_key]
    if not texts:
        raise ValueError(f"{where} has no examples")
    if num_classes and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels[(labels < 0) | (labels >= num_classes)][0])
        raise ValueError(f"{where} has label {bad} outside [0, {num_classes}) (unlabelled split, e.g. GLUE's"
                         " test? use test_split=validation)")
    return Examples(texts, labels, texts_b if text_b_keys else None)


# --------------------------------------------------------------------------------------------- files


def _load_files(config) -> Dataset:
    if not config.train_file or not config.test_file:
        raise ValueError("dataset='files' needs both train_file and test_file")
    text_keys, text_b_keys = _split_keys(config.text_keys) or ("text",), _split_keys(config.text_b_keys)
    label_key = config.label_key or "label"
    train_texts, train_texts_b, train_labels = read_labelled_file(config.train_file, text_keys, label_key, text_b_keys)
    test_texts, test_texts_b, test_labels = read_labelled_file(config.test_file, text_keys, label_key, text_b_keys)
    pair_names = _pair_names(text_keys, text_b_keys)
    if config.task == "regression":
        return Dataset("files", (), Examples(train_texts, scores(config.train_file, train_labels), train_texts_b),
                       Examples(test_texts, scores(config.test_file, test_labels), test_texts_b), pair_names,
                       "regression", False, text_keys, text_b_keys, label_key)
    label_names = tuple(_split_keys(config.labels)) or label_order(train_labels)
    ids = {label: i for i, label in enumerate(label_names)}
    if len(ids) != len(label_names):
        raise ValueError(f"labels={config.labels!r} names a label twice")
    for path, labels in ((config.train_file, train_labels), (config.test_file, test_labels)):
        unknown = sorted(set(labels) - set(ids))
        if unknown:
            raise ValueError(f"{path} has label {unknown[0]!r}, not one of the labels {list(label_names)}")

    def examples(texts, texts_b, labels):
        return Examples(texts, np.asarray([ids[label] for label in labels], np.int32), texts_b)

    return Dataset("files", label_names, examples(train_texts, train_texts_b, train_labels),
                   examples(test_texts, test_texts_b, test_labels), pair_names, "classification", False, text_keys,
                   text_b_keys, label_key)


def class_id(label: str, label_names: tuple[str, ...]) -> int | None:
    """A label cell's class: its name's index, else a class index written as a number; None if neither.

    class_id("neutral", ("entailment", "neutral")) -> 1;  class_id("0", ("negative", "positive")) -> 0
    """
    if label in label_names:
        return label_names.index(label)
    if label.isdigit() and int(label) < len(label_names):
        return int(label)
    return None


def scores(path: str, labels: list[str]) -> np.ndarray:
    """Regression labels as float32; a label that is no finite number is a one-line error."""
    scores = np.zeros(len(labels), np.float32)
    for i, label in enumerate(labels):
        try:
            scores[i] = float(label)
        except ValueError:
            scores[i] = np.nan
        if not np.isfinite(scores[i]):
            raise ValueError(f"{path}: example {i + 1} has label {label!r}, not a number (task=regression)")
    return scores


def read_labelled_file(path: str, text_keys: tuple[str, ...], label_key: str, text_b_keys: tuple[str, ...] = ()
                       ) -> tuple[list[str], list[str] | None, list[str]]:
    """(texts, second texts or None, label strings) of a .csv / .tsv file with a header row, or of a .jsonl
    file (one object per line). The second texts (a sentence pair's segment B) are read from text_b_keys;
    with none, they are None.

    Several text fields are joined with a space. Labels are kept as strings (JSON numbers as written).
    """
    texts, texts_b, labels = [], [], []
    for where, row in read_rows(path):
        for key in (*text_keys, *text_b_keys, label_key):
            if key not in row:
                raise ValueError(f"{where}: no column {key!r}; its columns are {sorted(row)}")
        label = label_string(row[label_key])
        if not label or label == "None":
            raise ValueError(f"{where}: empty label in column {label_key!r}")
        texts.append(" ".join(str(row[k]) for k in text_keys))
        texts_b.append(" ".join(str(row[k]) for k in text_b_keys))
        labels.append(label)
    if not texts:
        raise ValueError(f"{path} has no examples (an empty file, or a header row only)")
    return texts, (texts_b if text_b_keys else None), labels


def label_string(value) -> str:
    """A label as read from a file: JSON true/false as written, anything else as its stripped text."""
    return json.dumps(value) if isinstance(value, bool) else str(value).strip()


def read_rows(path: str):
    """(where, row dict) of each example of a .csv / .tsv / .jsonl file; where: "path:line"."""
    kind = FILE_FORMATS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        raise ValueError(f"{path}: unknown file type; expected one of {', '.join(FILE_FORMATS)}")
    if not os.path.exists(path):
        raise ValueError(f"{path} does not exist")
    return _jsonl_rows(path) if kind == "jsonl" else _delimited_rows(path, "\t" if kind == "tsv" else ",")


def _delimited_rows(path: str, delimiter: str):
    with open(path, newline="", encoding="utf-8") as f:
        # TSV files (GLUE's among them) do not quote: a quote character is text.
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.DictReader(f, delimiter=delimiter, quoting=quoting)
        for row in reader:
            if None in row or None in row.values():
                raise ValueError(f"{path}:{reader.line_num}: {len(reader.fieldnames)} columns in the header,"
                                 " another number in this row")
            yield f"{path}:{reader.line_num}", row


def _jsonl_rows(path: str):
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{line_number}: not valid JSON") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line_number}: expected a JSON object per line")
            yield f"{path}:{line_number}", row


def label_order(labels: list[str]) -> tuple[str, ...]:
    """Distinct labels in a fixed order: numeric when every label is a number, else alphabetical.

    ["pos", "neg", "pos"] -> ("neg", "pos");  ["10", "2", "1"] -> ("1", "2", "10")
    """
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def _split_keys(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# ------------------------------------------------------------------------------------------- subsets


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n examples with every class of `labels` kept and classes in proportion.

    Each class's examples are shuffled by `seed`; the i-th of a class of size m gets priority
    (i + 0.5) / m, and the n lowest priorities are kept, after one example of every class. So class
    counts are proportional (within one of n * share), one seed gives nested subsets (the subset of
    100 holds the subset of 50: a data-efficiency curve adds examples, never swaps them), and other
    seeds give other subsets. n <= 0 or n >= len(labels): every index.

    labels [0 0 0 0 0 0 1 1], n=4 -> three 0s and one 1.
    Regression labels (floating point) have no classes: n indices of one seeded permutation (nested too).
    """
    labels = np.asarray(labels)
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    if np.issubdtype(labels.dtype, np.floating):
        return np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    classes = np.unique(labels)
    if n < len(classes):
        raise ValueError(f"max_train_examples={n} is fewer than the {len(classes)} classes; every class needs"
                         " at least one example")
    rng = np.random.default_rng(seed)
    order, rank, size = [], [], []
    for label in classes:
        members = rng.permutation(np.flatnonzero(labels == label))
        order.append(members)
        rank.append(np.arange(len(members)))
        size.append(np.full(len(members), len(members)))
    order, rank, size = np.concatenate(order), np.concatenate(rank), np.concatenate(size)
    tie_break = rng.random(len(order))  # Equal priorities (classes of equal size) in a seeded order.
    chosen = np.lexsort((tie_break, (rank + 0.5) / size, rank > 0))[:n]
    return np.sort(order[chosen])
