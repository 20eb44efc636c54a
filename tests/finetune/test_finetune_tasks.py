"""Sentence-pair classification and regression end to end: tasks only the relation between the two texts
solves, learnt by the encoder; both task types through the CLI on GLUE names (mock_data) and local files
for every family."""

import json
import math
import os

import pytest
import tensorflow_datasets as tfds
from cli_in_process import run_main
from finetune_fixtures import PAIR_LABELS, finetune_config, pair_examples, score_examples, write_jsonl

from pretrain_jax.finetune import classification, predict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pair_files(directory, make_rows, num_train=256, num_test=64):
    return (write_jsonl(os.path.join(directory, "train.jsonl"), make_rows(num_train, seed=0)),
            write_jsonl(os.path.join(directory, "test.jsonl"), make_rows(num_test, seed=1)))


def check_predict_round_trip(workdir: str, test_file: str, results: dict, monkeypatch, capsys) -> list[dict]:
    """`pretrain-jax predict` on the test file with the saved model: the same score as results.json."""
    output = os.path.join(workdir, "predictions.jsonl")
    run_main(["pretrain-jax", "predict", f"--workdir={workdir}", f"--input={test_file}", f"--output={output}"],
             monkeypatch)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(output) as f:
        predicted = [json.loads(line) for line in f]
    with open(test_file) as f:
        inputs = [json.loads(line) for line in f]
    assert summary["num_examples"] == len(predicted) == len(inputs) == results["num_test_examples"]
    assert [{k: v for k, v in row.items() if k != "prediction"} for row in predicted] == inputs
    assert summary["score"] == results["score"] or (math.isnan(summary["score"]) and math.isnan(results["score"]))
    return predicted


def test_encoder_learns_a_relation_between_the_pair(encoder_workdir, tmp_path, monkeypatch, capsys):
    files = pair_files(str(tmp_path), pair_examples)
    config = finetune_config(encoder_workdir, *files, text_keys="first", text_b_keys="second", num_steps=300,
                             log_every_steps=100)
    workdir = str(tmp_path / "run")
    results = classification.run(config, workdir)
    # Either word alone is uniform under both labels: 0.5 is all a head that misses the pair can reach.
    assert results["task"] == "classification" and results["label_names"] == list(PAIR_LABELS)
    assert results["accuracy"] >= 0.9, results["history"]
    predicted = check_predict_round_trip(workdir, files[1], results, monkeypatch, capsys)
    assert {row["prediction"] for row in predicted} == set(PAIR_LABELS)


def test_encoder_learns_a_pair_score_by_regression(encoder_workdir, tmp_path, monkeypatch, capsys):
    files = pair_files(str(tmp_path), score_examples)
    config = finetune_config(encoder_workdir, *files, text_keys="first", text_b_keys="second", task="regression",
                             num_steps=300, log_every_steps=100)
    workdir = str(tmp_path / "run")
    results = classification.run(config, workdir)
    # One word alone reaches Pearson 0.28, both words' separate predictors 0.39 (finetune_fixtures.score_examples).
    assert results["task"] == "regression" and results["label_names"] == []
    assert results["pearson"] >= 0.9 and results["spearman"] >= 0.85, results["history"]
    assert results["score"] == pytest.approx((results["pearson"] + results["spearman"]) / 2)
    assert results["num_test_examples"] == 64 and "train_class_counts" not in results
    predicted = check_predict_round_trip(workdir, files[1], results, monkeypatch, capsys)
    assert all(isinstance(row["prediction"], float) for row in predicted)


WORKDIR_FIXTURE = {"encoder": "encoder_workdir", "decoder": "decoder_workdir",
                   "encoder_decoder": "encoder_decoder_workdir"}


def short_run_args(init_from: str, workdir: str, *settings: str) -> list[str]:
    """`pretrain-jax finetune` for 2 steps of 8 examples: what each family makes of the task, not learning."""
    return ["pretrain-jax", "finetune", f"--config={REPO}/configs/finetune/classify.py:tiny",
            f"--config.init_from={init_from}", "--config.seq_len=24", "--config.batch_size=8",
            "--config.eval_batch_size=8", "--config.num_steps=2", "--config.log_every_steps=1",
            "--config.init=pretrained" if "bert" in init_from else "--config.init=scratch", f"--workdir={workdir}",
            *settings]


def check_short_run(workdir: str, printed_line: str, kind: str, num_test: int) -> dict:
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    printed = json.loads(printed_line)
    headline = ("accuracy", "macro_f1") if kind == "classification" else ("pearson", "spearman")
    assert sorted(printed) == sorted(("score", *headline, "num_train_examples", "steps"))
    assert results["task"] == kind and results["steps"] == 2 and results["num_test_examples"] == num_test
    for key in ("score", *headline):  # Two steps may leave a constant prediction: a NaN correlation.
        assert printed[key] == results[key] or (math.isnan(printed[key]) and math.isnan(results[key]))
    return results


@pytest.mark.parametrize("family", sorted(WORKDIR_FIXTURE))
def test_glue_pairs_and_stsb_through_the_cli(family, request, tmp_path, capsys, monkeypatch):
    init_from = request.getfixturevalue(WORKDIR_FIXTURE[family])
    for dataset, kind in (("glue/rte", "classification"), ("glue/stsb", "regression")):
        workdir = str(tmp_path / dataset.replace("/", "_"))
        with tfds.testing.mock_data(num_examples=16):
            run_main(short_run_args(init_from, workdir, f"--config.dataset={dataset}"), monkeypatch)
        results = check_short_run(workdir, capsys.readouterr().out.strip().splitlines()[-1], kind, 16)
        assert results["dataset"] == dataset and results["family"] == family
        if kind == "classification":
            assert results["label_names"] == ["entailment", "not_entailment"]


@pytest.mark.parametrize("family", ["decoder", "encoder_decoder"])
def test_pairs_and_scores_from_local_files(family, request, tmp_path, capsys, monkeypatch):
    """The encoder learns both from files above; the other families read them too."""
    init_from = request.getfixturevalue(WORKDIR_FIXTURE[family])
    for make_rows, kind in ((pair_examples, "classification"), (score_examples, "regression")):
        os.makedirs(tmp_path / kind)
        train_file, test_file = pair_files(str(tmp_path / kind), make_rows, num_train=32, num_test=16)
        workdir = str(tmp_path / kind / "run")
        run_main(short_run_args(init_from, workdir, "--config.dataset=files", f"--config.train_file={train_file}",
                                f"--config.test_file={test_file}", "--config.text_keys=first",
                                "--config.text_b_keys=second", f"--config.task={kind}"), monkeypatch)
        results = check_short_run(workdir, capsys.readouterr().out.strip().splitlines()[-1], kind, 16)
        assert results["family"] == family and results["num_train_examples"] == 32
        predicted = check_predict_round_trip(workdir, test_file, results, monkeypatch, capsys)
        if kind == "regression" and family == "encoder_decoder":  # A score string's value: 0.0, 0.2, ..., 4.0.
            assert all(round(row["prediction"] * 5) == pytest.approx(row["prediction"] * 5) for row in predicted)
    # Inputs that lack the model's fields or labels are one-line errors, before anything is written.
    output = str(tmp_path / "predictions.jsonl")
    unlabelled = write_jsonl(str(tmp_path / "one.jsonl"), [{"first": "list", "label": "maybe"}])
    with pytest.raises(ValueError, match=r"one.jsonl:1: no field 'second' \(the model reads \['first'\] and"):
        predict.predict_file(str(tmp_path / "classification" / "run"), unlabelled, output)
    unknown = write_jsonl(str(tmp_path / "two.jsonl"), [{"first": "list", "second": "file", "label": "maybe"}])
    with pytest.raises(ValueError, match=r"two.jsonl has label 'maybe', not one of the model's labels"):
        predict.predict_file(str(tmp_path / "classification" / "run"), unknown, output)
    with pytest.raises(FileNotFoundError, match=r"no fine-tuned model in .*: run `pretrain-jax finetune`"):
        predict.predict_file(str(tmp_path), unknown, output)
    assert not os.path.exists(output)
