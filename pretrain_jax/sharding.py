"""Device mesh, logical-axis rules, and the NamedShardings of train state and batches.

Parameters carry logical axis names (`embed`, `mlp`, `vocab`, ...) set by the models. `LOGICAL_RULES`
maps each name to a mesh axis; a dimension that the mesh axis does not divide stays replicated.
Batches are split over the `data` and `fsdp` axes together.
"""

from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Logical parameter axis -> mesh axis (None = replicated).
LOGICAL_RULES = {
    "vocab": "tensor",
    "embed": "fsdp",
    "embed_in": None,
    "mlp": "tensor",
    "heads": "tensor",
    "kv": None,
    "pos": None,
    "type": None,
    "norm": None,
    "classes": None,
    "relpos": None,
}


def make_mesh(mesh_config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the (data, fsdp, tensor) mesh; `data = -1` takes every device left over."""
    devices = list(jax.devices() if devices is None else devices)
    fsdp, tensor, data = mesh_config.fsdp, mesh_config.tensor, mesh_config.data
    if fsdp < 1 or tensor < 1:
        raise ValueError(f"mesh.fsdp={fsdp} and mesh.tensor={tensor} must be >= 1")
    if data == -1:
        if len(devices) % (fsdp * tensor):
            raise ValueError(f"{len(devices)} devices are not divisible by mesh.fsdp*mesh.tensor={fsdp * tensor}")
        data = len(devices) // (fsdp * tensor)
    if data * fsdp * tensor != len(devices):
        raise ValueError(
            f"mesh {data}x{fsdp}x{tensor} (data x fsdp x tensor) needs {data * fsdp * tensor} devices,"
            f" but {len(devices)} are available"
        )
    return Mesh(np.asarray(devices).reshape(data, fsdp, tensor), MESH_AXES)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Sharding of a batch array: leading (batch) axis over data x fsdp, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def data_parallel_size(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def _mesh_spec(logical: PartitionSpec, shape: tuple[int, ...], mesh: Mesh) -> PartitionSpec:
    used, axes = set(), []
    for name, dim in zip(tuple(logical) + (None,) * (len(shape) - len(logical)), shape, strict=True):
        axis = LOGICAL_RULES.get(name) if name is not None else None
        if name is not None and name not in LOGICAL_RULES:
            raise ValueError(f"logical axis {name!r} has no rule in sharding.LOGICAL_RULES")
        if axis is None or axis in used or dim % mesh.shape[axis]:
            axes.append(None)
        else:
            used.add(axis)
            axes.append(axis)
    return PartitionSpec(*axes)


def param_shardings(abstract_params: nnx.State, mesh: Mesh) -> nnx.State:
    """NamedShardings for a (possibly abstract) parameter state, from its logical axis names."""
    logical = nnx.get_partition_spec(abstract_params)
    return jax.tree.map(
        lambda spec, leaf: NamedSharding(mesh, _mesh_spec(spec, leaf.shape, mesh)),
        logical,
        abstract_params,
        is_leaf=lambda x: isinstance(x, PartitionSpec),
    )


def to_global_batch(local_batch, mesh: Mesh):
    """Process-local numpy arrays (leading axis = this process's rows) -> global sharded jax.Arrays."""

    def place(x):
        if x is None:
            return None
        return jax.make_array_from_process_local_data(batch_sharding(mesh, np.ndim(x)), np.asarray(x))

    return jax.tree.map(place, local_batch)
