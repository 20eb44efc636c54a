"""The fortunes topic task, built from fake topic files (no apt-get, no network)."""

import json
import os

import pytest

from pretrain_jax.data import fortunes


def _write_topic(directory, name, entries, trailing_percent=True):
    text = "\n%\n".join(entries) + ("\n%\n" if trailing_percent else "\n")
    (directory / name).write_text(text, encoding="utf-8")


@pytest.fixture
def fortunes_dir(tmp_path):
    directory = tmp_path / "fortunes"
    directory.mkdir()
    _write_topic(directory, "computers", [f"Computer saying {i}.\n\t\t-- Hacker {i}" for i in range(30)])
    _write_topic(directory, "science", [f"Science fact {i}." for i in range(20)], trailing_percent=False)
    _write_topic(directory, "food", [f"Food joke {i}." for i in range(10)] + ["Shared line."])
    _write_topic(directory, "politics", [f"Politics {i}." for i in range(12)] + ["Shared line."])
    (directory / "computers.dat").write_bytes(b"\x00\x02binary index")
    os.symlink("computers", directory / "computers.u8")
    (directory / "off").mkdir()
    _write_topic(directory / "off", "rude", ["Not to be read."])
    return str(directory)


def test_parse_fortunes_golden():
    assert fortunes.parse_fortunes("A.\n%\nB\n  b.\n%\n%\n") == ["A.", "B\n  b."]
    assert fortunes.parse_fortunes("Only one, no separator.\n") == ["Only one, no separator."]
    # "%" inside a line is text; only a line holding just "%" separates.
    assert fortunes.parse_fortunes("100% sure\n%\n  \n%\nx % y") == ["100% sure", "x % y"]
    assert fortunes.parse_fortunes("") == []


def test_available_topics_skips_index_files_links_and_directories(fortunes_dir):
    assert sorted(fortunes.available_topics(fortunes_dir)) == ["computers", "food", "politics", "science"]


def test_read_topics_and_unknown_topic(fortunes_dir):
    entries = fortunes.read_topics(fortunes_dir, ["science", "computers"])
    assert list(entries) == ["science", "computers"]
    assert len(entries["science"]) == 20 and len(entries["computers"]) == 30
    assert entries["computers"][2] == "Computer saying 2.\n\t\t-- Hacker 2"
    with pytest.raises(ValueError, match="rude"):
        fortunes.read_topics(fortunes_dir, ["rude"])


def test_entries_in_two_topics_and_repeats_are_dropped():
    unique = fortunes.unique_entries({"a": ["x", "y", "x", "z"], "b": ["y", "w"]})
    assert unique == {"a": ["x", "z"], "b": ["w"]}


def test_split_is_stratified_disjoint_complete_and_seeded():
    entries = {"a": [f"a{i}" for i in range(50)], "b": [f"b{i}" for i in range(20)], "c": [f"c{i}" for i in range(7)]}
    train, test = fortunes.split_examples(entries, test_fraction=0.2, seed=0)
    for topic, expected_test in (("a", 10), ("b", 4), ("c", 1)):
        assert sum(e["label"] == topic for e in test) == expected_test
        assert sum(e["label"] == topic for e in train) == len(entries[topic]) - expected_test
    train_texts, test_texts = {e["text"] for e in train}, {e["text"] for e in test}
    assert not train_texts & test_texts
    assert train_texts | test_texts == {text for texts in entries.values() for text in texts}
    assert all(e["text"][0] == e["label"] for e in train + test)
    assert fortunes.split_examples(entries, 0.2, seed=0) == (train, test)
    assert fortunes.split_examples(entries, 0.2, seed=1)[1] != test
    # Adding a topic leaves the other topics' test sets as they were.
    more = fortunes.split_examples({**entries, "d": [f"d{i}" for i in range(9)]}, 0.2, seed=0)[1]
    assert {e["text"] for e in more if e["label"] != "d"} == test_texts
    # Not grouped by topic.
    assert [e["label"] for e in train] != sorted(e["label"] for e in train)
    with pytest.raises(ValueError, match="test_fraction"):
        fortunes.split_examples(entries, 1.0, seed=0)


def test_build_writes_deterministic_jsonl(fortunes_dir, tmp_path):
    topics = ("computers", "science", "food", "politics")
    task = fortunes.build(str(tmp_path / "out1"), fortunes_dir, topics, test_fraction=0.25, seed=3, min_entries=5)
    assert task.label_names == topics
    assert (task.num_train, task.num_test) == (53, 19)  # Test 8 + 5 + 3 + 3 (n / 4 rounded half up).
    with open(task.train_path, encoding="utf-8") as f:
        train = [json.loads(line) for line in f]
    assert len(train) == task.num_train and set(train[0]) == {"text", "label"}
    assert not any(e["text"] == "Shared line." for e in train)
    again = fortunes.build(str(tmp_path / "out2"), fortunes_dir, topics, test_fraction=0.25, seed=3, min_entries=5)
    for first, second in ((task.train_path, again.train_path), (task.test_path, again.test_path)):
        with open(first, "rb") as a, open(second, "rb") as b:
            assert a.read() == b.read()
    examples = fortunes.read_examples(task.test_path, task.label_names)
    assert len(examples) == 19 and {label for _, label in examples} == {0, 1, 2, 3}
    assert all(text.startswith(("Computer", "Science", "Food", "Politics")[label]) for text, label in examples)


def test_build_errors(fortunes_dir, tmp_path):
    with pytest.raises(ValueError, match="food"):
        fortunes.build(str(tmp_path / "o"), fortunes_dir, ("computers", "food"), min_entries=15)
    with pytest.raises(ValueError, match="two distinct topics"):
        fortunes.build(str(tmp_path / "o"), fortunes_dir, ("computers",))
    with pytest.raises(RuntimeError, match="No fortune files"):
        fortunes.build(str(tmp_path / "o"), str(tmp_path / "missing"), ("computers", "science"))


def test_read_examples_rejects_unknown_labels(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "hi", "label": "a"}\n\n{"text": "yo", "label": "q"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="x.jsonl:3"):
        fortunes.read_examples(str(path), ["a", "b"])
