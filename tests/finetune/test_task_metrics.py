"""Downstream scores against hand-computed cases: Pearson / Spearman (STS-B), SQuAD v1.1 exact match and
F1 under its normalisation, and entity-level F1 (CoNLL-2003) with partial matches."""

import math

import numpy as np
import pytest

from pretrain_jax.finetune import entity_metrics, regression_metrics, squad_metrics, tasks


def test_pearson_and_spearman_by_hand():
    # labels mean 2.5, deviations [-1.5 -.5 .5 1.5]; predictions mean 2.375, deviations
    # [-1.275 -.475 1.125 .625]. Pearson = 3.65 / sqrt(5 * 3.5075) = 0.871584.
    # Spearman: prediction ranks [1 2 4 3] against [1 2 3 4], d = [0 0 1 -1]: 1 - 6 * 2 / (4 * 15) = 0.8.
    report = regression_metrics.regression_report([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.5, 3.0])
    assert report["pearson"] == pytest.approx(3.65 / math.sqrt(5 * 3.5075))
    assert report["spearman"] == pytest.approx(0.8)
    assert report["mse"] == pytest.approx((0.01 + 0.01 + 0.25 + 1.0) / 4) and report["num_test_examples"] == 4
    # Tied labels take their mean rank: [1 2.5 2.5 4] against [1 2 3 4]: 4.5 / sqrt(4.5 * 5) = 0.948683.
    tied = regression_metrics.regression_report([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert tied["spearman"] == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    # A constant prediction has no correlation: NaN, not an error.
    assert math.isnan(regression_metrics.regression_report([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])["pearson"])
    with pytest.raises(ValueError, match="N >= 2"):
        regression_metrics.regression_report([1.0], [1.0])


def test_squad_normalisation_exact_match_and_f1_by_hand():
    # lower -> "the cat's  hat, a  big one!"; punctuation deleted -> "the cats  hat a  big one";
    # articles deleted and whitespace collapsed -> "cats hat big one".
    assert squad_metrics.normalize_answer("The Cat's  hat, a  big one!") == "cats hat big one"
    assert squad_metrics.normalize_answer("Theatre") == "theatre"  # "the" only as a whole word.
    assert squad_metrics.exact_match("the cat's hat, a big one", ["Dogs", "Cats hat big one"]) == 1.0
    # Prediction tokens [in eiffel tower]. Gold 1 [eiffel tower]: 2 shared, p 2/3, r 1, F1 0.8.
    # Gold 2 [tower]: 1 shared, p 1/3, r 1, F1 0.5. The best is 0.8.
    assert squad_metrics.f1("in the Eiffel Tower", ["Eiffel Tower", "the tower"]) == pytest.approx(0.8)
    # Tokens are a multiset: [x y y] against [y y y] share two: p 2/3, r 2/3, F1 2/3.
    assert squad_metrics.f1("x y y", ["y y y"]) == pytest.approx(2 / 3)
    assert squad_metrics.f1("nothing shared", ["other words"]) == 0.0
    # Two questions: EM [1, 0] -> 50%; F1 [1, 0.8] -> 90%.
    report = squad_metrics.squad_report(["Paris", "in the Eiffel Tower"], [["paris"], ["Eiffel Tower"]])
    assert report == pytest.approx({"exact_match": 50.0, "f1": 90.0, "num_test_examples": 2})
    with pytest.raises(ValueError, match="at least one gold answer"):
        squad_metrics.squad_report(["Paris"], [[]])


def test_entity_f1_counts_only_whole_spans_of_the_right_type():
    # True entities: PER 0-1, LOC 3-4, ORG 6. Predicted: PER 0-1 (right), LOC 3 (span cut short),
    # MISC 6 (wrong type). 1 of 3 predicted is right, 1 of 3 true is found: P = R = F1 = 1/3.
    true = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-ORG"]]
    predicted = [["B-PER", "I-PER", "O", "B-LOC", "O", "O", "B-MISC"]]
    report = entity_metrics.entity_report(true, predicted)
    assert report["precision"] == pytest.approx(1 / 3) and report["recall"] == pytest.approx(1 / 3)
    assert report["f1"] == pytest.approx(1 / 3)
    assert report["per_type_f1"] == {"LOC": 0.0, "MISC": 0.0, "ORG": 0.0, "PER": 1.0}
    # A second sentence found whole: 2 right of 4 predicted, 2 found of 4 true: F1 1/2.
    both = entity_metrics.entity_report(true + [["O", "B-LOC"]], predicted + [["O", "B-LOC"]])
    assert both["f1"] == pytest.approx(0.5) and both["num_test_examples"] == 2
    with pytest.raises(ValueError, match="one predicted tag per word"):
        entity_metrics.entity_report([["O", "O"]], [["O"]])


def test_regression_task_uses_t5s_score_strings():
    # Labels in [1.3, 4.9] with step 0.2: the grid runs from floor(1.3 / 0.2) * 0.2 = 1.2 to
    # ceil(4.9 / 0.2) * 0.2 = 5.0, 20 values, written with one decimal as T5 writes STS-B.
    task = tasks.Regression.from_labels(np.asarray([1.3, 4.9, 2.0]))
    assert task.count == 20 and task.label_names[:3] == ("1.2", "1.4", "1.6") and task.label_names[-1] == "5.0"
    # Nearest string: 1.3 -> 1.2 or 1.4 (a tie up to float rounding), 3.85 -> 3.8 or 4.0, 4.95 -> 5.0;
    # 4.51 -> 4.6 (index 17: (4.6 - 1.2) / 0.2), 9.0 -> clipped to the last, 5.0.
    np.testing.assert_array_equal(task.targets(np.asarray([4.51, 9.0, 1.2]), text_to_text=True), [17, 19, 0])
    assert task.targets(np.asarray([4.51]), text_to_text=False).dtype == np.float32
    scores = np.asarray([[0.0] * 19 + [1.0], [1.0] + [0.0] * 19])  # Best strings: "5.0", "1.2".
    np.testing.assert_allclose(task.decode(scores, text_to_text=True), [5.0, 1.2], rtol=1e-6)
    np.testing.assert_allclose(task.decode(np.asarray([[2.5], [0.5]]), text_to_text=False), [2.5, 0.5])
    assert tasks.from_json(task.to_json()) == task
    # STS-B's own range: 0.0, 0.2, ..., 5.0 is 26 strings.
    assert tasks.Regression.from_labels(np.asarray([0.0, 5.0])).count == 26
    with pytest.raises(ValueError, match="raise regression_step"):
        tasks.Regression.from_labels(np.asarray([0.0, 100.0])).check_text_to_text()


def test_task_scores_are_the_glue_scores():
    # Classification: accuracy (3 of 4). Regression: the mean of Pearson and Spearman; predictions half
    # the labels are a line through the origin and in the same order, so both are 1.
    task = tasks.Classification(("no", "yes"))
    assert task.report(np.asarray([0, 1, 1, 0]), np.asarray([0, 1, 0, 0]))["score"] == 0.75
    assert tasks.from_json(task.to_json()) == task
    report = tasks.Regression(0.0, 0.2, 26).report(np.asarray([1.0, 2.0, 4.0]), np.asarray([0.5, 1.0, 2.0]))
    assert report["score"] == pytest.approx(1.0) and report["score_name"] == "pearson_spearman"
