"""Regression scores on the host (STS-B): Pearson and Spearman correlation, as GLUE reports them.

    labels      [1.0 2.0 3.0 4.0]
    predictions [1.1 1.9 3.5 3.0]
    -> pearson 0.872, spearman 0.8 (ranks [1 2 4 3] against [1 2 3 4]), mse 0.3175
"""

import warnings

import numpy as np
from scipy import stats


def regression_report(labels, predictions) -> dict:
    """pearson, spearman (NaN where either side is constant: no correlation is defined), mse, and the
    number of test examples. labels, predictions: (N,) floats."""
    labels, predictions = np.asarray(labels, np.float64), np.asarray(predictions, np.float64)
    if labels.shape != predictions.shape or labels.ndim != 1 or len(labels) < 2:
        raise ValueError(f"regression scores need two (N,) arrays with N >= 2; got {labels.shape} and"
                         f" {predictions.shape}")
    with warnings.catch_warnings():  # scipy warns on a constant input, and returns NaN: the NaN is the answer.
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pearson = float(stats.pearsonr(labels, predictions).statistic)
        spearman = float(stats.spearmanr(labels, predictions).statistic)
    return {"pearson": pearson, "spearman": spearman, "mse": float(np.mean((labels - predictions) ** 2)),
            "num_test_examples": int(len(labels))}
