"""Accuracy, per-class F1 and macro-F1 against hand-computed (golden) values."""

import numpy as np
import pytest

from pretrain_jax.finetune import metrics


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    matrix = metrics.confusion_matrix([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])


@pytest.mark.parametrize("labels,predictions,num_classes,expected", [
    # class 0: TP 1 FP 1 FN 1 -> 1/2; class 1: TP 2 FP 1 -> 4/5; class 2: TP 1 FN 1 -> 2/3.
    ([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3, (0.5 + 0.8 + 2 / 3) / 3),
    # scikit-learn's f1_score documentation example: macro 0.2666...
    ([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], 3, 0.8 / 3),
    ([1, 1, 0, 0], [1, 1, 0, 0], 2, 1.0),
    ([1, 1, 0, 0], [0, 0, 1, 1], 2, 0.0),
    # Always predicting the majority: class 0 F1 = 2*3/(2*3+1) = 6/7, class 1 never predicted: 0.
    ([0, 0, 0, 1], [0, 0, 0, 0], 2, (6 / 7) / 2),
    # Class 2 is neither true nor predicted anywhere: left out of the mean, not counted as 0 or 1.
    ([0, 1, 1, 0], [0, 1, 0, 0], 3, (0.8 + 2 / 3) / 2),
])
def test_macro_f1_golden_values(labels, predictions, num_classes, expected):
    assert metrics.macro_f1(np.asarray(labels), np.asarray(predictions), num_classes) == pytest.approx(expected)


def test_report_has_accuracy_per_class_f1_and_the_majority_baseline():
    report = metrics.classification_report(np.asarray([0, 0, 1, 1, 1, 2]), np.asarray([0, 1, 1, 1, 2, 2]),
                                           ("a", "b", "c"))
    assert report["accuracy"] == pytest.approx(4 / 6)
    # a: TP 1 FN 1; b: TP 2 FP 1 FN 1; c: TP 1 FP 1 -> 2/3 each.
    assert report["per_class_f1"] == pytest.approx({"a": 2 / 3, "b": 2 / 3, "c": 2 / 3})
    assert report["macro_f1"] == pytest.approx(2 / 3)
    assert report["majority_baseline_accuracy"] == pytest.approx(3 / 6)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert report["num_test_examples"] == 6
    absent = metrics.classification_report(np.asarray([0, 1]), np.asarray([0, 1]), ("a", "b", "c"))
    assert absent["per_class_f1"]["c"] is None and absent["macro_f1"] == 1.0


def test_matthews_correlation_by_hand():
    # Binary, labels [1 1 0 0], predictions [1 0 0 0]: TP 1, FN 1, TN 2, FP 0, so
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 2 / sqrt(1 * 2 * 2 * 3) = 0.57735.
    matrix = metrics.confusion_matrix(np.asarray([1, 1, 0, 0]), np.asarray([1, 0, 0, 0]), 2)
    assert metrics.matthews_correlation(matrix) == pytest.approx(2 / np.sqrt(12))
    # Perfect three-class predictions: 1; every prediction one class: 0 (no correlation defined).
    assert metrics.matthews_correlation(np.diag([3, 1, 2])) == pytest.approx(1.0)
    assert metrics.matthews_correlation(np.asarray([[2, 0], [3, 0]])) == 0.0
