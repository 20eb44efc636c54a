"""Labelled data for fine-tuning: TFDS datasets (mock_data), CSV / TSV / JSONL files, stratified subsets."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs.finetune import classify
from pretrain_jax.finetune import datasets


def data_config(**values):
    c = classify.get_config()
    for key, value in values.items():
        c[key] = value
    return c


@pytest.fixture
def requested_splits(monkeypatch):
    """The (name, split) pairs the loader asks tfds.data_source for."""
    calls = []
    real = tfds.data_source

    def recording(name, *, split, **kwargs):
        calls.append((name, split))
        return real(name, split=split, **kwargs)

    monkeypatch.setattr(tfds, "data_source", recording)
    return calls


def test_glue_sst2_reads_sentences_and_tests_on_validation(requested_splits):
    with tfds.testing.mock_data(num_examples=12):
        data = datasets.load_dataset(data_config(dataset="glue/sst2"))
    # GLUE's test labels are hidden: the validation split is the test set.
    assert requested_splits == [("glue/sst2", "train"), ("glue/sst2", "validation")]
    assert data.label_names == ("negative", "positive") and data.num_classes == 2
    assert len(data.train) == 12 and len(data.test) == 12
    assert all(isinstance(t, str) and t.strip() for t in data.train.texts)
    assert data.train.labels.dtype == np.int32 and set(data.train.labels) <= {0, 1}


def test_imdb_and_ag_news_fields(requested_splits):
    with tfds.testing.mock_data(num_examples=5):
        imdb = datasets.load_dataset(data_config(dataset="imdb_reviews"))
        news = datasets.load_dataset(data_config(dataset="ag_news_subset"))
        source = tfds.data_source("ag_news_subset", split="train", download=False)
        first = source[0]
    assert ("imdb_reviews", "test") in requested_splits
    assert imdb.label_names == ("neg", "pos")
    assert news.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert news.train.texts[0] == f"{first['title']} {first['description']}"  # Title, then description.
    assert news.train.labels[0] == int(first["label"])


def test_tfds_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="Unknown TFDS dataset 'no_such_set_xyz'") as error:
        datasets.load_dataset(data_config(dataset="no_such_set_xyz"))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="'imdb_reviews' is not prepared") as error:
        datasets.load_dataset(data_config(dataset="imdb_reviews", tfds_data_dir=str(tmp_path)))
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("*.array_record*"))  # Nothing was downloaded or prepared.
    with tfds.testing.mock_data(num_examples=3):
        with pytest.raises(ValueError, match=r"has no field 'body' \(text_keys\)"):
            datasets.load_dataset(data_config(dataset="imdb_reviews", text_keys="body"))
        with pytest.raises(ValueError, match="not one of .*set text_keys"):
            datasets.load_dataset(data_config(dataset="lm1b"))
        with pytest.raises(ValueError, match="'text' of TFDS dataset 'lm1b' is not a ClassLabel"):
            datasets.load_dataset(data_config(dataset="lm1b", text_keys="text", label_key="text"))


ROWS = [
    {"text": "Good, and cheap", "title": "A", "label": "pos"},
    {"text": 'He said "no"', "title": "B", "label": "neg"},
    {"text": "fine", "title": "C", "label": "pos"},
]


def write_all_formats(tmp_path) -> dict[str, str]:
    paths = {kind: str(tmp_path / f"data.{kind}") for kind in ("csv", "tsv", "jsonl")}
    with open(paths["csv"], "w") as f:
        f.write('title,text,label\nA,"Good, and cheap",pos\nB,"He said ""no""",neg\nC,fine,pos\n')
    with open(paths["tsv"], "w") as f:  # Unquoted, as GLUE writes them: a quote is text.
        f.write('title\ttext\tlabel\nA\tGood, and cheap\tpos\nB\tHe said "no"\tneg\nC\tfine\tpos\n')
    with open(paths["jsonl"], "w") as f:
        f.write("\n".join(json.dumps(row) for row in ROWS) + "\n\n")
    return paths


def test_csv_tsv_and_jsonl_read_the_same_examples(tmp_path):
    for path in write_all_formats(tmp_path).values():
        texts, _, labels = datasets.read_labelled_file(path, ("text",), "label")
        assert texts == [row["text"] for row in ROWS], path
        assert labels == ["pos", "neg", "pos"], path
        texts, _, _ = datasets.read_labelled_file(path, ("title", "text"), "label")
        assert texts == ["A Good, and cheap", 'B He said "no"', "C fine"], path


def test_files_dataset_maps_label_names_to_ids(tmp_path):
    paths = write_all_formats(tmp_path)
    data = datasets.load_dataset(data_config(dataset="files", train_file=paths["csv"], test_file=paths["jsonl"]))
    assert data.name == "files" and data.label_names == ("neg", "pos")  # Sorted.
    np.testing.assert_array_equal(data.train.labels, [1, 0, 1])
    np.testing.assert_array_equal(data.test.labels, [1, 0, 1])
    ordered = datasets.load_dataset(data_config(dataset="files", train_file=paths["tsv"], test_file=paths["csv"],
                                                labels="pos,neg"))
    assert ordered.label_names == ("pos", "neg")
    np.testing.assert_array_equal(ordered.train.labels, [0, 1, 0])


def test_numeric_labels_sort_as_numbers(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{v}", "label": v}) + "\n" for v in (10, 2, 1, 2)))
    data = datasets.load_dataset(data_config(dataset="files", train_file=str(path), test_file=str(path)))
    assert data.label_names == ("1", "2", "10")
    np.testing.assert_array_equal(data.train.labels, [2, 1, 0, 1])
    assert datasets.label_order(["pos", "neg", "pos"]) == ("neg", "pos")


def test_file_errors_are_one_line_and_name_the_problem(tmp_path):
    paths = write_all_formats(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.tsv"
    header_only.write_text("text\tlabel\n")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a", "label": "x"}\n{"text": \n')
    short_row = tmp_path / "short.csv"
    short_row.write_text("text,label\nonly text\n")
    unknown_test_label = tmp_path / "other.jsonl"
    unknown_test_label.write_text('{"text": "a", "label": "maybe"}\n')
    cases = [
        (dict(train_file=paths["csv"], test_file=paths["csv"], label_key="stars"),
         r"data.csv:2: no column 'stars'; its columns are \['label', 'text', 'title'\]"),
        (dict(train_file=paths["jsonl"], test_file=paths["jsonl"], text_keys="body"),
         r"data.jsonl:1: no column 'body'"),
        (dict(train_file=str(empty), test_file=paths["csv"]), "empty.csv has no examples"),
        (dict(train_file=str(header_only), test_file=paths["csv"]), "header.tsv has no examples"),
        (dict(train_file=str(bad_json), test_file=paths["csv"]), "bad.jsonl:2: not valid JSON"),
        (dict(train_file=str(short_row), test_file=paths["csv"]), "short.csv:2: 2 columns in the header"),
        (dict(train_file=paths["csv"], test_file=str(unknown_test_label)), "other.jsonl has label 'maybe'"),
        (dict(train_file=str(tmp_path / "x.parquet"), test_file=paths["csv"]), "unknown file type"),
        (dict(train_file=str(tmp_path / "missing.csv"), test_file=paths["csv"]), "missing.csv does not exist"),
        (dict(train_file=paths["csv"], test_file=""), "needs both train_file and test_file"),
    ]
    for values, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            datasets.load_dataset(data_config(dataset="files", **values))
        assert "\n" not in str(error.value), message
    with pytest.raises(ValueError, match="dataset is empty"):
        datasets.load_dataset(data_config(dataset=""))


def test_stratified_subset_keeps_every_class_in_proportion():
    rng = np.random.default_rng(0)
    for trial in range(30):
        num_classes = int(rng.integers(2, 6))
        shares = rng.dirichlet(np.ones(num_classes))
        labels = rng.choice(num_classes, size=int(rng.integers(50, 400)), p=shares)
        present = np.unique(labels)
        n = int(rng.integers(len(present), len(labels)))
        chosen = datasets.stratified_subset(labels, n, seed=trial)
        assert len(chosen) == n and len(set(chosen.tolist())) == n
        assert np.all(np.diff(chosen) > 0)  # Sorted indices.
        counts = np.bincount(labels[chosen], minlength=num_classes)
        assert np.all(counts[present] >= 1)  # Every class kept.
        expected = n * np.bincount(labels, minlength=num_classes) / len(labels)
        assert np.all(np.abs(counts - expected)[present] <= 1.0 + 1e-9), (counts, expected)


def test_stratified_subset_is_seeded_and_nested():
    labels = np.asarray([0] * 60 + [1] * 30 + [2] * 10)
    a = datasets.stratified_subset(labels, 20, seed=3)
    np.testing.assert_array_equal(a, datasets.stratified_subset(labels, 20, seed=3))
    assert not np.array_equal(a, datasets.stratified_subset(labels, 20, seed=4))
    np.testing.assert_array_equal(np.bincount(labels[a]), [12, 6, 2])
    for small, large in ((3, 10), (10, 20), (20, 50)):  # A curve adds examples, never swaps them.
        assert set(datasets.stratified_subset(labels, small, 3)) <= set(datasets.stratified_subset(labels, large, 3))
    np.testing.assert_array_equal(datasets.stratified_subset(labels, 0, 3), np.arange(100))
    np.testing.assert_array_equal(datasets.stratified_subset(labels, 500, 3), np.arange(100))
    np.testing.assert_array_equal(np.bincount(labels[datasets.stratified_subset(labels, 3, 3)]), [1, 1, 1])
    with pytest.raises(ValueError, match="max_train_examples=2 is fewer than the 3 classes"):
        datasets.stratified_subset(labels, 2, 0)


def test_local_files_read_sentence_pairs(tmp_path):
    path = str(tmp_path / "pairs.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps({"premise": "a cat sat", "hypothesis": "a cat", "label": "entailment"}) + "\n")
        f.write(json.dumps({"premise": "it rains", "hypothesis": "dry", "label": "contradiction"}) + "\n")
    config = classify.get_config()
    config.dataset, config.train_file, config.test_file = "files", path, path
    config.text_keys, config.text_b_keys = "premise", "hypothesis"
    data = datasets.load_dataset(config)
    assert data.train.texts == ["a cat sat", "it rains"] and data.train.texts_b == ["a cat", "dry"]
    assert data.pair_names == ("premise", "hypothesis") and data.label_names == ("contradiction", "entailment")
    assert data.train.take(np.asarray([1])).texts_b == ["dry"]
    config.text_b_keys = "claim"
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: no column 'claim'"):
        datasets.load_dataset(config)
    config.text_keys, config.text_b_keys = "premise", ""  # Single text: no second texts.
    assert datasets.load_dataset(config).train.texts_b is None


@pytest.mark.parametrize("name, split, fields, b_first", [
    ("glue/rte", "validation", ("sentence1", "sentence2"), False),
    # T5 writes GLUE's fields in alphabetical order: "mnli hypothesis: ... premise: ...".
    ("glue/mnli", "validation_matched", ("premise", "hypothesis"), True),
    ("glue/stsb", "validation", ("sentence1", "sentence2"), False),
])
def test_glue_pairs_read_both_texts(requested_splits, name, split, fields, b_first):
    with tfds.testing.mock_data(num_examples=6):
        data = datasets.load_dataset(data_config(dataset=name))
    assert requested_splits == [(name, "train"), (name, split)]
    assert data.pair_names == fields and len(data.train.texts_b) == len(data.train.texts) == 6
    assert data.text_to_text_b_first == b_first
    if name == "glue/stsb":  # A score per pair, no classes.
        assert data.kind == "regression" and data.label_names == () and data.train.labels.dtype == np.float32
    else:
        assert data.kind == "classification" and data.train.labels.dtype == np.int32
    assert all(isinstance(t, str) and t.strip() for t in data.train.texts_b)


def test_regression_files_read_scores_and_reject_words(tmp_path):
    path = str(tmp_path / "scores.csv")
    with open(path, "w") as f:
        f.write("a,b,score\nx,y,3.8\nz,w,0\n")
    config = data_config(dataset="files", train_file=path, test_file=path, text_keys="a", text_b_keys="b",
                         label_key="score", task="regression")
    data = datasets.load_dataset(config)
    assert data.kind == "regression" and data.label_names == ()
    np.testing.assert_array_equal(data.train.labels, np.asarray([3.8, 0.0], np.float32))
    # A regression subset has no classes to keep: a seeded, nested prefix of one permutation.
    small, large = (datasets.stratified_subset(np.arange(10.0), n, seed=3) for n in (3, 6))
    assert len(small) == 3 and set(small) <= set(large)
    with open(path, "a") as f:
        f.write("u,v,high\n")
    with pytest.raises(ValueError, match=r"scores.csv: example 3 has label 'high', not a number"):
        datasets.load_dataset(config)
    with pytest.raises(ValueError, match=r"task='ranking': use 'auto' or one of"):
        datasets.load_dataset(data_config(dataset="files", task="ranking"))
