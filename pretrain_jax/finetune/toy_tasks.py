"""Small synthetic downstream tasks that only a working head solves, one per task type, as local files.

    paths = write("/tmp/toy_tasks")   # {"keyword": (train.jsonl, test.jsonl), "same_word": ..., "distance": ...}

- keyword (classification): six common words; "present" iff KEYWORD is one of them.
- same_word (sentence pairs, fields "first" and "second"): one word of SCALE each; "same" iff they are
  equal. Each word alone is uniform under both labels: a head that misses the pair stays at 0.5.
- distance (regression, pairs): one word of SCALE each, scored |i - j| by their positions in SCALE.
  A word alone tells little: the best predictor from one word (its mean distance to the others) has
  Pearson 0.28 with the score, and the sum of both words' such predictors 0.39 (over the 25 equally
  likely pairs); a head must compare the two words to pass 0.9.

They check that fine-tuning works end to end (tests, the toy suite of configs/suites/toy.py), not
what pre-training taught: an encoder pre-trained for 2 steps learns them too.
"""

import json
import os

import numpy as np

KEYWORD = "function"
FILLERS = ("the", "list", "value", "object", "string", "file", "module", "returns", "number", "method", "class",
           "data", "type", "name", "error", "module", "line", "default")
KEYWORD_LABELS = ("absent", "present")
SCALE = ("list", "value", "object", "string", "file")
PAIR_LABELS = ("different", "same")


def keyword_examples(n: int, seed: int, words: int = 6) -> list[dict]:
    """n texts of `words` common words; label "present" iff KEYWORD is one of them (every other text)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = list(rng.choice(FILLERS, words))
        present = i % 2 == 1
        if present:
            text[rng.integers(words)] = KEYWORD
        rows.append({"text": " ".join(text), "label": KEYWORD_LABELS[present]})
    return rows


def same_word_examples(n: int, seed: int) -> list[dict]:
    """n pairs {"first", "second", "label"}: "same" for every other pair, else two different words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a = rng.integers(len(SCALE))
        b = a if i % 2 else (a + rng.integers(1, len(SCALE))) % len(SCALE)
        rows.append({"first": SCALE[a], "second": SCALE[b], "label": PAIR_LABELS[i % 2]})
    return rows


def distance_examples(n: int, seed: int) -> list[dict]:
    """n pairs {"first", "second", "label"} of independent uniform words; label |i - j| as a float."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        a, b = rng.integers(len(SCALE), size=2)
        rows.append({"first": SCALE[a], "second": SCALE[b], "label": float(abs(int(a) - int(b)))})
    return rows


TASKS = {"keyword": keyword_examples, "same_word": same_word_examples, "distance": distance_examples}


def write_jsonl(path: str, rows: list[dict]) -> str:
    with open(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def write(directory: str, num_train: int = 256, num_test: int = 64) -> dict[str, tuple[str, str]]:
    """Each task's (train.jsonl, test.jsonl) under directory/<task>/ (train seed 0, test seed 1)."""
    paths = {}
    for name, make_rows in TASKS.items():
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        paths[name] = tuple(write_jsonl(os.path.join(directory, name, f"{split}.jsonl"), make_rows(n, seed))
                            for split, n, seed in (("train", num_train, 0), ("test", num_test, 1)))
    return paths
