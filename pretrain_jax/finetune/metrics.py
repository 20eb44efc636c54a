"""Classification metrics on the host: accuracy, per-class F1, macro-F1, Matthews correlation, confusion matrix.

    labels      [0 0 1 1 2 2]
    predictions [0 1 1 1 2 0]
    per-class F1 [0.5, 0.8, 0.667] -> macro-F1 0.656; accuracy 4/6
"""

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def per_class_f1(matrix: np.ndarray) -> np.ndarray:
    """(C,) F1 = 2 TP / (2 TP + FP + FN) per class; NaN for a class neither true nor predicted anywhere."""
    true_positives = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # (TP + FP) + (TP + FN)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * true_positives / denominator, np.nan)


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in `labels` or `predictions`.

    A class that is true somewhere but never predicted correctly scores 0; a class absent from
    both is left out of the mean (as scikit-learn does when it is not asked for explicit labels).
    """
    scores = per_class_f1(confusion_matrix(labels, predictions, num_classes))
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else 0.0


def matthews_correlation(matrix: np.ndarray) -> float:
    """Matthews correlation of a confusion matrix (CoLA's GLUE score), in its multi-class form:

        (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2))

    with c correct, s examples, p_k predicted and t_k true counts of class k; 0 when either factor of
    the denominator is (every prediction, or every label, is one class). Written out: numpy has no MCC
    and scikit-learn would be a dependency for five lines.
    """
    matrix = matrix.astype(np.float64)
    correct, total = np.trace(matrix), matrix.sum()
    predicted, true = matrix.sum(axis=0), matrix.sum(axis=1)
    denominator = np.sqrt((total**2 - predicted @ predicted) * (total**2 - true @ true))
    return float((correct * total - predicted @ true) / denominator) if denominator > 0 else 0.0


def classification_report(labels: np.ndarray, predictions: np.ndarray, label_names) -> dict:
    """accuracy, macro_f1, mcc, per-class F1 by name, confusion matrix, and the majority-class baseline."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    num_classes = len(label_names)
    matrix = confusion_matrix(labels, predictions, num_classes)
    scores = per_class_f1(matrix)
    counts = np.bincount(labels, minlength=num_classes)
    return {
        "accuracy": float(np.mean(labels == predictions)),
        "macro_f1": macro_f1(labels, predictions, num_classes),
        "mcc": matthews_correlation(matrix),
        "per_class_f1": {name: (None if np.isnan(s) else float(s)) for name, s in zip(label_names, scores,
                                                                                   strict=True)},
        "confusion_matrix": matrix.tolist(),
        "majority_baseline_accuracy": float(counts.max() / max(counts.sum(), 1)),
        "num_test_examples": int(len(labels)),
    }
