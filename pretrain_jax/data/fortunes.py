"""A real topic-classification task from the Debian package `fortunes` (quotations filed by topic).

    task = build("/tmp/fortunes_task")   # installs the package with apt-get if it is missing
    task.train_path, task.test_path      # JSONL, one {"text": ..., "label": topic} per line
    task.label_names                     # ("computers", "science", ...): label id = index here
    python -m pretrain_jax.data.fortunes --out=/tmp/fortunes_task

The package keeps one file per topic in /usr/share/games/fortunes/<topic>; entries are separated by
lines holding only "%". Skipped: the index files (<topic>.dat), the <topic>.u8 links (the same text)
and sub-directories (the offensive collection lives in off/). Entries filed under more than one chosen
topic are dropped (their label is ambiguous), as are repeats within a topic. Each topic is split on its
own with a seeded permutation (the test set has every topic's share), so the same files, topics, seed
and fraction always give byte-identical JSONL files.

DEFAULT_TOPICS are the subject-like topics that ship at least ~150 entries in fortunes 1:1.99.1-7.3
(Debian 12); grab-bag files (cookie, miscellaneous, people, ...) are left out as they have no subject.
"""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import zlib
from collections.abc import Sequence

import numpy as np
from absl import logging

FORTUNES_DIR = "/usr/share/games/fortunes"
DEFAULT_TOPICS = ("computers", "science", "politics", "law", "education", "food", "drugs", "sports")
TRAIN_FILENAME = "train.jsonl"
TEST_FILENAME = "test.jsonl"
_SKIPPED_SUFFIXES = (".dat", ".u8")


@dataclasses.dataclass(frozen=True)
class FortunesTask:
    """Where build() wrote the task, and its labels (label id = index in label_names)."""

    train_path: str
    test_path: str
    label_names: tuple[str, ...]
    num_train: int
    num_test: int


def parse_fortunes(text: str) -> list[str]:
    """The entries of one fortune file, each stripped of surrounding blank space; empty ones dropped.

    parse_fortunes("A.\\n%\\nB\\n  b.\\n%\\n%\\n") -> ["A.", "B\\n  b."]
    """
    entries, lines = [], []
    for line in text.splitlines():
        if line.rstrip() == "%":
            entries.append("\n".join(lines))
            lines = []
        else:
            lines.append(line)
    entries.append("\n".join(lines))
    return [entry.strip() for entry in entries if entry.strip()]


def available_topics(directory: str) -> dict[str, str]:
    """topic -> path of every plain topic file directly in `directory` (no .dat/.u8, no sub-directories)."""
    topics = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES) or os.path.islink(path):
            continue
        if os.path.isfile(path):
            topics[name] = path
    return topics


def read_topics(directory: str, topics: Sequence[str]) -> dict[str, list[str]]:
    """topic -> its entries in file order, for each of `topics` (a ValueError names any missing one)."""
    files = available_topics(directory)
    missing = [topic for topic in topics if topic not in files]
    if missing:
        raise ValueError(f"No fortune file for topic(s) {missing} in {directory}; available: {sorted(files)}")
    entries = {}
    for topic in topics:
        with open(files[topic], encoding="utf-8", errors="replace") as f:
            entries[topic] = parse_fortunes(f.read())
    return entries


def unique_entries(entries_by_topic: dict[str, list[str]]) -> dict[str, list[str]]:
    """The entries filed under exactly one of the topics, each once, in file order."""
    topics_of = {}
    for topic, entries in entries_by_topic.items():
        for entry in entries:
            topics_of.setdefault(entry, set()).add(topic)
    return {
        topic: [entry for entry in dict.fromkeys(entries) if len(topics_of[entry]) == 1]
        for topic, entries in entries_by_topic.items()
    }


def split_examples(entries_by_topic: dict[str, list[str]], test_fraction: float,
                   seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test) lists of {"text", "label"}; floor(n * test_fraction + 0.5) of each topic's n go to test.

    Each topic is permuted by its own generator (seed and the topic's name), so adding a topic leaves
    the other topics' splits unchanged. Both lists are then shuffled (seeded), not grouped by topic.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    train, test = [], []
    for topic, entries in entries_by_topic.items():
        order = np.random.default_rng([seed, zlib.crc32(topic.encode())]).permutation(len(entries))
        num_test = math.floor(len(entries) * test_fraction + 0.5)
        test.extend({"text": entries[i], "label": topic} for i in order[:num_test])
        train.extend({"text": entries[i], "label": topic} for i in order[num_test:])
    rng = np.random.default_rng(seed)
    return [train[i] for i in rng.permutation(len(train))], [test[i] for i in rng.permutation(len(test))]


def ensure_installed(directory: str = FORTUNES_DIR) -> None:
    """Installs the Debian package `fortunes` with apt-get when `directory` is missing.

    Raises RuntimeError saying what to do when apt-get is absent or fails (e.g. not root).
    """
    if os.path.isdir(directory):
        return
    if directory != FORTUNES_DIR:
        raise RuntimeError(f"No fortune files at {directory} (apt-get installs them only in {FORTUNES_DIR})")
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{directory} is missing and apt-get is not available: install the Debian/Ubuntu package"
            " `fortunes` (or copy its files) and pass their directory"
        )
    logging.info("Installing the Debian package `fortunes` with apt-get (needs root).")
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "fortunes"]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stderr.strip()[-500:]}\n"
                "Install it yourself: sudo apt-get install fortunes"
            )
    if not os.path.isdir(directory):
        raise RuntimeError(f"apt-get installed `fortunes` but {directory} is still missing")


def write_jsonl(path: str, examples: Sequence[dict]) -> None:
    """One JSON object per line, UTF-8; written to a temporary file and renamed into place."""
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp_path, path)


def read_examples(path: str, label_names: Sequence[str]) -> list[tuple[str, int]]:
    """(text, label_id) pairs of a {"text", "label"} JSONL file; label_id indexes label_names."""
    label_ids = {name: i for i, name in enumerate(label_names)}
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("label") not in label_ids:
                raise ValueError(f"{path}:{line_number}: label {record.get('label')!r} not in {list(label_names)}")
            examples.append((record["text"], label_ids[record["label"]]))
    return examples


def build(out_dir: str, directory: str = FORTUNES_DIR, topics: Sequence[str] = DEFAULT_TOPICS,
          test_fraction: float = 0.2, seed: int = 0, min_entries: int = 100) -> FortunesTask:
    """Writes out_dir/train.jsonl and out_dir/test.jsonl for `topics`; installs the package if needed.

    min_entries: every topic needs at least this many (unique) entries, else a ValueError names it.
    """
    if len(set(topics)) < 2 or len(set(topics)) != len(topics):
        raise ValueError(f"topics={list(topics)}: need at least two distinct topics, each once")
    ensure_installed(directory)
    entries = unique_entries(read_topics(directory, topics))
    too_small = {topic: len(e) for topic, e in entries.items() if len(e) < min_entries}
    if too_small:
        raise ValueError(f"Topics with fewer than min_entries={min_entries} unique entries: {too_small}")
    train, test = split_examples(entries, test_fraction, seed)
    os.makedirs(out_dir, exist_ok=True)
    task = FortunesTask(
        train_path=os.path.join(out_dir, TRAIN_FILENAME),
        test_path=os.path.join(out_dir, TEST_FILENAME),
        label_names=tuple(topics),
        num_train=len(train),
        num_test=len(test),
    )
    write_jsonl(task.train_path, train)
    write_jsonl(task.test_path, test)
    logging.info("Fortunes task in %s: %d train / %d test examples; entries per topic %s.", out_dir, len(train),
                 len(test), {topic: len(e) for topic, e in entries.items()})
    return task


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    values = flags.FLAGS
    task = build(values.out, values.fortunes_dir, [t for t in values.topics.split(",") if t],
                 values.test_fraction, values.seed, values.min_entries)
    print(json.dumps(dataclasses.asdict(task), indent=1))


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("out", None, "Directory to write train.jsonl and test.jsonl into.", required=True)
    flags.DEFINE_string("fortunes_dir", FORTUNES_DIR, "Directory of the fortune topic files.")
    flags.DEFINE_string("topics", ",".join(DEFAULT_TOPICS), "Comma-separated topics; label id = position.")
    flags.DEFINE_float("test_fraction", 0.2, "Fraction of each topic's entries in the test split.")
    flags.DEFINE_integer("seed", 0, "Seed of the train/test split.")
    flags.DEFINE_integer("min_entries", 100, "Fail if a topic has fewer unique entries than this.")
    app.run(main)
