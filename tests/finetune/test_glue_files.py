"""GLUE's own TSV files (the GLUE download's layout and headers), read without TFDS into the same
label names, field names and test split as the TFDS names."""

import numpy as np
import pytest

from pretrain_jax.finetune import glue_files


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(cells) for cells in [header, *rows]) + "\n")


@pytest.fixture
def glue_dir(tmp_path):
    """Two rows per file, with the real files' headers (and MRPC's quote characters, which are text)."""
    mnli = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
            "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
    for file in ("train.tsv", "dev_matched.tsv"):
        write_tsv(tmp_path / "MNLI" / file, mnli, [
            ["0", "1", "1e", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "A man sleeps.", "A man rests.",
             "entailment", "entailment"],
            ["1", "2", "2n", "slate", "( c )", "( d )", "(ROOT c)", "(ROOT d)", "It rains.", "It is dry.",
             "contradiction", "contradiction"]])
    for file in ("train.tsv", "dev.tsv"):
        write_tsv(tmp_path / "RTE" / file, ["index", "sentence1", "sentence2", "label"],
                  [["0", "Paris is in France.", "Paris is French.", "entailment"],
                   ["1", "Cats purr.", "Dogs fly.", "not_entailment"]])
        write_tsv(tmp_path / "MRPC" / file, ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                  [["1", "11", "12", 'He said "yes".', 'He agreed.'], ["0", "13", "14", "Up.", "Down."]])
        write_tsv(tmp_path / "STS-B" / file, ["index", "genre", "filename", "year", "old_index", "source1",
                                              "source2", "sentence1", "sentence2", "score"],
                  [["0", "main", "f", "2012", "1", "none", "none", "A plane takes off.", "A plane flies.", "3.800"],
                   ["1", "main", "f", "2012", "4", "none", "none", "A cat.", "A car.", "0.500"]])
        write_tsv(tmp_path / "SST-2" / file, ["sentence", "label"], [["a gem", "1"], ["dull", "0"]])
    return str(tmp_path)


def test_pair_tasks_read_as_their_tfds_names(glue_dir):
    mnli = glue_files.load("glue/mnli", glue_dir)
    assert mnli.label_names == ("entailment", "neutral", "contradiction")
    assert mnli.train.texts == ["A man sleeps.", "It rains."] and mnli.train.texts_b == ["A man rests.", "It is dry."]
    np.testing.assert_array_equal(mnli.train.labels, [0, 2])  # gold_label by name, in TFDS's order.
    assert mnli.pair_names == ("premise", "hypothesis") and mnli.text_to_text_b_first  # T5: hypothesis first.
    rte = glue_files.load("glue/rte", glue_dir)
    np.testing.assert_array_equal(rte.test.labels, [0, 1])
    assert rte.pair_names == ("sentence1", "sentence2") and not rte.text_to_text_b_first
    mrpc = glue_files.load("glue/mrpc", glue_dir)  # Quality 1 = equivalent: a class index, not a name.
    assert mrpc.label_names == ("not_equivalent", "equivalent") and mrpc.train.labels.tolist() == [1, 0]
    assert mrpc.train.texts[0] == 'He said "yes".' and mrpc.text_b_keys == ("#2 String",)


def test_sts_b_scores_and_sst2_single_texts(glue_dir):
    stsb = glue_files.load("glue/stsb", glue_dir)
    assert stsb.kind == "regression" and stsb.label_names == ()
    np.testing.assert_array_equal(stsb.test.labels, np.asarray([3.8, 0.5], np.float32))
    sst2 = glue_files.load("glue/sst2", glue_dir)
    assert sst2.pair_names is None and sst2.train.texts_b is None and sst2.train.labels.tolist() == [1, 0]


def test_glue_file_errors_are_one_line(glue_dir, tmp_path):
    with pytest.raises(ValueError, match=r"glue_dir reads the GLUE tasks .*; 'glue/cola' is not one of them"):
        glue_files.load("glue/cola", glue_dir)
    with pytest.raises(ValueError, match=r"QNLI/train.tsv does not exist"):
        glue_files.load("glue/qnli", glue_dir)
    write_tsv(tmp_path / "RTE" / "dev.tsv", ["index", "sentence1", "sentence2", "label"],
              [["0", "a", "b", "maybe"]])
    with pytest.raises(ValueError, match=r"dev.tsv: example 1 has label 'maybe', neither one of"):
        glue_files.load("glue/rte", glue_dir)
