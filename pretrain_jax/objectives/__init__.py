"""Pre-training objectives: pure, jittable (rng, PackedBatch) -> ModelBatch functions.

Importing this package registers every objective module with the registry.
"""

from pretrain_jax.objectives import (
    bart,  # noqa: F401  (registers bart)
    bert_mlm,  # noqa: F401  (registers bert_mlm)
    causal_lm,  # noqa: F401  (registers causal_lm)
    electra,  # noqa: F401  (registers electra)
    fim,  # noqa: F401  (registers fim)
    prefix_lm,  # noqa: F401  (registers prefix_lm)
    sentence_pairs,  # noqa: F401  (registers nsp, sop)
    span_corruption,  # noqa: F401  (registers t5_span_corruption)
    t5_baselines,  # noqa: F401  (registers t5_deshuffle, t5_mass, t5_drop_tokens)
    ul2,  # noqa: F401  (registers ul2)
    xlnet_plm,  # noqa: F401  (registers xlnet_plm)
)
from pretrain_jax.objectives.registry import (
    FAMILIES,
    build_host_transform,
    build_objective,
    build_row_budget,
    get_spec,
    registered_names,
)

__all__ = ["FAMILIES", "build_host_transform", "build_objective", "build_row_budget", "get_spec", "registered_names"]
