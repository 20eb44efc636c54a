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
from tiny_configs import tiny_config_names

from pretrain_jax import config_validation, experiment
from pretrain_jax.config_validation import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_MESH = (8, 1, 1)
MESHES = [DATA_MESH, (2, 2, 2), (1, 4, 2)]
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


# The pure data-parallel mesh of every config that tests/configs/test_tiny_configs_train.py trains end to end
# runs the real step there, on the same 8 devices: compiling it here again would prove nothing more.
TRAINED_ON_DATA_MESH = set(tiny_config_names())
CASES = [(name, mesh) for name in _config_files() for mesh in MESHES
         if not (mesh == DATA_MESH and name in TRAINED_ON_DATA_MESH)]


@pytest.mark.parametrize("name, mesh_shape", CASES, ids=[f"{n}-{'x'.join(map(str, m))}" for n, m in CASES])
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
