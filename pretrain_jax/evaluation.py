"""Held-out evaluation: loss, accuracy and perplexity per head, and a majority-class baseline.

`baseline_accuracy` is the accuracy of always predicting the most frequent target of the same
evaluated positions: a model that learned nothing but the unigram distribution scores it.
"""

import jax
import numpy as np

from pretrain_jax import losses, objectives, sharding, steps


class Evaluator:
    """Runs `num_batches` of the held-out split through the objective and model; deterministic."""

    def __init__(self, exp, make_loader):
        self._exp = exp
        self._make_loader = make_loader
        self._step = jax.jit(steps.make_eval_step(exp.objective_fn, exp.graphdef, exp.config.seed))
        self._main_head = objectives.get_spec(exp.config.objective.name).heads[0]

    def evaluate(self, params, num_batches: int) -> dict[str, float]:
        loader = self._make_loader()
        totals = None
        batches = 0
        for index in range(num_batches):
            try:
                packed = next(loader)
            except StopIteration:
                break
            result = jax.device_get(self._step(params, sharding.to_global_batch(packed, self._exp.mesh), index))
            result = jax.tree.map(lambda x: np.asarray(x, np.float64), result)
            totals = result if totals is None else jax.tree.map(np.add, totals, result)
            batches += 1
        if not batches:
            raise ValueError("the eval split produced no batch: is it empty?")
        return summarize_eval(*totals, batches, self._main_head)


def summarize_eval(sums: dict[str, losses.HeadSums], histograms: dict[str, np.ndarray], batches: int,
                   main_head: str) -> dict[str, float]:
    """Per-head loss, accuracy, perplexity and majority-class accuracy, and the main head's at the top level."""
    scalars = losses.summarize(sums)
    for h, hist in histograms.items():
        scalars[f"{h}/baseline_accuracy"] = float(hist.max() / max(hist.sum(), 1.0))
    for name in ("loss", "accuracy", "perplexity", "baseline_accuracy"):
        scalars[name] = scalars[f"{main_head}/{name}"]
    scalars["eval_batches"] = batches
    return scalars


def format_metrics(scalars: dict) -> str:
    keys = [k for k in ("loss", "accuracy", "baseline_accuracy", "perplexity") if k in scalars]
    return ", ".join(f"{k} {scalars[k]:.4f}" for k in keys)
