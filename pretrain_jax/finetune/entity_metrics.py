"""Named-entity scores on the host: entity-level precision, recall and F1, as seqeval (and CoNLL's
conlleval) computes them: an entity counts only if its type and its whole span match.

    true      [["B-PER", "I-PER", "O", "B-LOC"]]
    predicted [["B-PER", "O",     "O", "B-LOC"]]
    -> entities true {PER 0-1, LOC 3}, predicted {PER 0, LOC 3}: precision 1/2, recall 1/2, f1 0.5
"""

from collections.abc import Sequence

from seqeval import metrics as seqeval_metrics


def entity_report(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]) -> dict:
    """precision, recall, f1 over all entities, per-type f1 by type name, and the number of sentences.
    Tags are IOB2 strings ("B-PER", "I-PER", "O"), one list per sentence, one tag per word."""
    if len(true_tags) != len(predicted_tags) or any(
            len(t) != len(p) for t, p in zip(true_tags, predicted_tags, strict=True)):
        raise ValueError("need one predicted tag per word of every sentence")
    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    per_type = seqeval_metrics.classification_report(true_tags, predicted_tags, output_dict=True, zero_division=0)
    return {
        "precision": float(seqeval_metrics.precision_score(true_tags, predicted_tags, zero_division=0)),
        "recall": float(seqeval_metrics.recall_score(true_tags, predicted_tags, zero_division=0)),
        "f1": float(seqeval_metrics.f1_score(true_tags, predicted_tags, zero_division=0)),
        "per_type_f1": {name: float(scores["f1-score"]) for name, scores in per_type.items()
                        if name not in ("micro avg", "macro avg", "weighted avg")},
        "num_test_examples": len(true_tags),
    }
