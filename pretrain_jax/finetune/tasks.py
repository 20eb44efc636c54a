"""What a fine-tuning task predicts and how it is scored: one class (classification) or one number (regression).

A task turns a dataset's labels into the batch's targets, the model's scores back into predictions,
and predictions into the reported metrics, so the loop, `predict` and the saved model never branch
on the task type:

    task = Classification(("negative", "positive"))
    task.targets(labels, text_to_text=False)     # (N,) int32 class ids
    task.decode(scores, text_to_text=False)      # (N, 2) scores -> (N,) class ids
    task.report(labels, predictions)             # accuracy, macro_f1, ..., "score": accuracy

    task = Regression.from_labels(train_labels)  # STS-B: scores in [0, 5]
    task.targets(labels, text_to_text=False)     # (N,) float32: a 1-output head with squared error
    task.targets(labels, text_to_text=True)      # (N,) int32 ids of the nearest score string "0.0" .. "5.0"
    task.decode(scores, text_to_text=True)       # (N, 26) label-name scores -> (N,) float32 scores
    task.report(labels, predictions)             # pearson, spearman, mse, "score": their mean

T5 casts STS-B as text-to-text by rounding each score to the nearest 0.2 and writing it with one
decimal ("3.8"); Regression keeps that grid (`step`) and spans it over the training labels' range.
"""

import dataclasses
import math

import numpy as np

from pretrain_jax.finetune import metrics, regression_metrics

MAX_SCORE_STRINGS = 101  # Text-to-text regression scores every grid value with one decoder pass.


@dataclasses.dataclass(frozen=True)
class Classification:
    label_names: tuple[str, ...]
    kind: str = "classification"
    headline: tuple[str, ...] = ("accuracy", "macro_f1")  # What the progress log and the CLI print.

    @property
    def num_outputs(self) -> int:
        return len(self.label_names)

    def targets(self, labels: np.ndarray, text_to_text: bool) -> np.ndarray:
        del text_to_text
        return np.asarray(labels, np.int32)

    def decode(self, scores: np.ndarray, text_to_text: bool) -> np.ndarray:
        del text_to_text
        return np.argmax(scores, axis=-1).astype(np.int32)

    def report(self, labels: np.ndarray, predictions: np.ndarray) -> dict:
        """classification_report's keys, and "score" (accuracy) and "score_name"."""
        report = metrics.classification_report(labels, predictions, self.label_names)
        return {**report, "score": report["accuracy"], "score_name": "accuracy"}

    def to_json(self) -> dict:
        return {"kind": self.kind, "label_names": list(self.label_names)}


@dataclasses.dataclass(frozen=True)
class Regression:
    """One real number per example. low, step, count: the text-to-text score strings low, low + step, ...
    (count of them), e.g. STS-B's 0.0, 0.2, ..., 5.0."""

    low: float
    step: float
    count: int
    kind: str = "regression"
    headline: tuple[str, ...] = ("pearson", "spearman")

    @classmethod
    def from_labels(cls, labels: np.ndarray, step: float = 0.2) -> "Regression":
        """The grid of `step` that covers every label: [1.3, 4.9] with step 0.2 -> 1.2, 1.4, ..., 5.0."""
        labels = np.asarray(labels, np.float64)
        if step <= 0:
            raise ValueError(f"regression_step={step} must be > 0")
        low, high = math.floor(labels.min() / step + 1e-9), math.ceil(labels.max() / step - 1e-9)
        return cls(low * step, step, high - low + 1)

    @property
    def values(self) -> np.ndarray:
        """(count,) float32 grid values."""
        return (self.low + self.step * np.arange(self.count)).astype(np.float32)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The score strings text-to-text models emit: one decimal per decimal place of the step."""
        decimals = max(1, -math.floor(math.log10(self.step) + 1e-9))
        return tuple(f"{value:.{decimals}f}" for value in self.values)

    @property
    def num_outputs(self) -> int:
        return 1

    def check_text_to_text(self) -> None:
        if self.count > MAX_SCORE_STRINGS:
            raise ValueError(f"regression labels span {self.count} score strings of step {self.step}; text-to-text"
                             f" scores each with a decoder pass: raise regression_step to keep <= {MAX_SCORE_STRINGS}")

    def targets(self, labels: np.ndarray, text_to_text: bool) -> np.ndarray:
        """float32 scores, or (text_to_text) int32 ids of the nearest score strings, clipped to the grid."""
        if not text_to_text:
            return np.asarray(labels, np.float32)
        ids = np.rint((np.asarray(labels, np.float64) - self.low) / self.step)
        return np.clip(ids, 0, self.count - 1).astype(np.int32)

    def decode(self, scores: np.ndarray, text_to_text: bool) -> np.ndarray:
        """(N, 1) head outputs -> (N,); text_to_text: (N, count) score-string scores -> the best one's value."""
        if text_to_text:
            return self.values[np.argmax(scores, axis=-1)]
        return np.asarray(scores, np.float32)[:, 0]

    def report(self, labels: np.ndarray, predictions: np.ndarray) -> dict:
        """pearson, spearman, mse, and "score": GLUE's STS-B score, the mean of the two correlations."""
        report = regression_metrics.regression_report(labels, predictions)
        return {**report, "score": (report["pearson"] + report["spearman"]) / 2, "score_name": "pearson_spearman"}

    def to_json(self) -> dict:
        return {"kind": self.kind, "low": self.low, "step": self.step, "count": self.count}


def from_json(saved: dict):
    """The task that `task.to_json()` wrote."""
    if saved["kind"] == "classification":
        return Classification(tuple(saved["label_names"]))
    return Regression(saved["low"], saved["step"], saved["count"])
