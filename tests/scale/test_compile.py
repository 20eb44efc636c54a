"""Ahead-of-time compilation of the real train step for every experiment config, on three meshes.

Each configs/*.py is compiled at its `tiny` variant (or `small` where there is no tiny one) with one
block per stack (blocks are sharded alike; compile time grows with depth), and with no tokenizer,
data or parameters: the step is lowered on ShapeDtypeStructs carrying the trainer's shardings. A
sharding rule that cannot place a parameter, a batch that does not split, or a config that fails
to build fails here, on 8 fake CPU devices, before it reaches a TPU slice.
"""

import glob
import os

import jax
import pytest

from pretrain_jax import config_validation, experiment
from pretrain_jax.config_validation import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESHES = [(8, 1, 1), (2, 2, 2), (1, 4, 2)]
VARIANTS = ("tiny", "small")


def _config_files() -> list[str]:
    """Every configs/*.py that defines get_config, except base.py (helpers such as common.py define none)."""
    names = []
    for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))):
        with open(path) as f:
            if "\ndef get_config(" in f.read() and not path.endswith("base.py"):
                names.append(os.path.basename(path)[:-3])
    return names


def _load(name: str):
    """(variant, config) of configs/<name>.py at its first accepted variant, or (None, None)."""
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    for variant in VARIANTS:
        try:
            return variant, module.get_config(variant)
        except (ValueError, KeyError):
            continue
    return None, None


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda m: "x".join(map(str, m)))
@pytest.mark.parametrize("name", _config_files())
def test_train_step_compiles_ahead_of_time(name, mesh_shape):
    variant, config = _load(name)
    assert config is not None, f"configs/{name}.py has no {' or '.join(VARIANTS)} variant (DESIGN.md: each has one)"
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = mesh_shape
    config.model.num_layers = 1  # Every block is sharded alike; one per stack compiles 2-4x faster.
    exp = _experiment(config, name, variant)
    state, batch = exp.abstract_state(), exp.abstract_batch()
    lowered = exp.jit_train_step(config_validation.loss_weights(config)).lower(state, batch)
    # Sharding is decided before the backend optimises; skipping its optimisations halves compile time.
    compiled = lowered.compile(compiler_options={"xla_backend_optimization_level": 0})
    assert compiled.cost_analysis()["flops"] > 0
    if mesh_shape[1] > 1:  # FSDP really shards: some parameter is split over the fsdp axis.
        specs = [s.sharding.spec for s in jax.tree.leaves(state["params"])]
        assert any("fsdp" in tuple(spec) for spec in specs)


def _experiment(config, name: str, variant: str) -> experiment.Experiment:
    """The config's experiment; a batch that does not split over the mesh fails with a clear error."""
    try:
        return experiment.Experiment.for_shapes(config)
    except ConfigError as error:
        if "split" not in str(error):
            raise
        pytest.fail(f"configs/{name}.py:{variant}: {error}")
