"""A ModelBatch (or its shapes) as one flat dict, for comparing whole batches in tests
(import as `from flat_batch import flat`)."""

from pretrain_jax.batch import TARGETS


def flat(batch: dict) -> dict:
    """{input key: array} plus {"targets.<head>.ids" / "targets.<head>.weights": array}."""
    out = {k: v for k, v in batch.items() if k != TARGETS}
    for head, target in batch.get(TARGETS, {}).items():
        out[f"targets.{head}.ids"], out[f"targets.{head}.weights"] = target.ids, target.weights
    return out
