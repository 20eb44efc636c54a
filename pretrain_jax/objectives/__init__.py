"""Pre-training objectives: pure, jittable (rng, PackedBatch) -> ModelBatch functions.

Importing this package imports every module in it, so each objective module registers itself with
the registry: a new objective is one module here (plus a config file), with no list to extend.
"""

import importlib
import pkgutil

from pretrain_jax.objectives.registry import (
    FAMILIES,
    BuiltObjective,
    build,
    build_host_transform,
    build_objective,
    build_row_budget,
    get_spec,
    register,
    registered_names,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAMILIES", "BuiltObjective", "build", "build_host_transform", "build_objective", "build_row_budget",
           "get_spec", "register", "registered_names"]
