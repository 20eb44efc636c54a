"""Extractive-QA scores on the host: exact match and token F1 under SQuAD v1.1's answer normalisation.

    normalize_answer("The  Eiffel-Tower!") -> "eiffeltower" (punctuation is deleted, not replaced by a space)
    f1("in the Eiffel Tower", ["Eiffel Tower"]) -> 0.8 (tokens in eiffel tower vs eiffel tower: p 2/3, r 1)

Written here rather than taken from a library: the official evaluation script (v1.1) is a script, not
a package, and the packages that wrap it (Hugging Face `evaluate`) pull in far more than these
twenty lines. The rules follow that script: lower-case, delete punctuation, delete the articles
a/an/the, collapse whitespace; F1 over the multiset of tokens; each score is the best over the gold
answers; the report gives both in percent, as the script and the papers do.
"""

import collections
import re
import string
from collections.abc import Sequence

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals some normalised gold answer, else 0.0."""
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def f1(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 of the prediction against each gold answer (0.0 when no token is shared)."""
    predicted = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold = normalize_answer(answer).split()
        shared = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
        if shared:
            precision, recall = shared / len(predicted), shared / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def squad_report(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict:
    """exact_match and f1 in percent, averaged over questions; answers[i] lists question i's gold answers."""
    if len(predictions) != len(answers) or not predictions:
        raise ValueError(f"need one prediction per question and some questions; got {len(predictions)} predictions"
                         f" for {len(answers)} questions")
    if any(not gold for gold in answers):
        raise ValueError("every question needs at least one gold answer (SQuAD v1.1 has no unanswerable ones)")
    count = len(predictions)
    return {"exact_match": 100 * sum(map(exact_match, predictions, answers)) / count,
            "f1": 100 * sum(map(f1, predictions, answers)) / count, "num_test_examples": count}
