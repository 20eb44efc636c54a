"""Everything a run is built from: config + workdir -> tokenizer, objective, mesh, model and state.

`Experiment.create` is shared by `train`, `eval`, `fill-mask` and the notebooks, so every command
sees the same tokenizer, objective and parameter layout. The state lives on the mesh from the start:
parameters are created inside a jit with their NamedShardings, never materialised on one device.
`Experiment.for_shapes` builds the same thing without a tokenizer or data, for ahead-of-time
compilation and benchmarks.
"""

import dataclasses
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pretrain_jax import config_validation, distributed, models, objectives, optim, row_budget, sharding, steps
from pretrain_jax.batch import PackedBatch, batch_shapes
from pretrain_jax.data import corpus
from pretrain_jax.data import tokenizer as tokenizer_lib
from pretrain_jax.specials import SpecialIds

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class Experiment:
    config: ml_collections.ConfigDict
    workdir: str
    tokenizer: tokenizer_lib.Tokenizer | None  # None for `for_shapes` experiments.
    specials: SpecialIds
    objective_fn: object
    row_budget: row_budget.RowBudget  # How many raw tokens a packed row holds (its row_length is the batch's L).
    host_transform: object  # The objective's host step on each document's text, or None.
    mesh: Mesh
    graphdef: nnx.GraphDef
    tx: optax.GradientTransformation
    state_shardings: dict

    @property
    def vocab_size(self) -> int:
        return self.specials.vocab_size

    @classmethod
    def create(cls, config: ml_collections.ConfigDict, workdir: str, *, train_documents=None,
               devices: Sequence[jax.Device] | None = None, read_only: bool = False,
               objective: objectives.BuiltObjective | None = None, mesh: Mesh | None = None,
               tokenizer: tokenizer_lib.Tokenizer | None = None) -> "Experiment":
        """Validates the config, then builds the tokenizer (trained once, cached in the workdir) and the rest.

        `train_documents` (a sequence of str) is needed only when no tokenizer exists yet. `devices`:
        the mesh's devices (default: all of them, on every process). read_only: the workdir's tokenizer
        must exist; nothing is created or written. A caller that has already validated the config,
        made the mesh (and checked the batch splits over it) or loaded the tokenizer passes them
        (`objective`: what `validate` returned), so start-up does each once.
        """
        objective = objective or config_validation.validate(config)
        if read_only:
            if not tokenizer_lib.exists(config.tokenizer, workdir):
                raise FileNotFoundError(f"no tokenizer in {workdir}: is it the workdir of a training run?")
            tokenizer = tokenizer or tokenizer_lib.load_or_train(config.tokenizer, workdir, None)
        else:
            os.makedirs(workdir, exist_ok=True)
            tokenizer = _load_or_train_tokenizer(config, workdir, train_documents, tokenizer)
        return cls._build(config, workdir, tokenizer, objective, mesh or _make_mesh(config, devices))

    @classmethod
    def for_shapes(cls, config: ml_collections.ConfigDict, *,
                   devices: Sequence[jax.Device] | None = None) -> "Experiment":
        """The experiment with special ids laid out from config.tokenizer, without a tokenizer or data:
        enough to build, shard and compile the train step, not to read text."""
        objective = config_validation.validate(config)
        return cls._build(config, "", None, objective, _make_mesh(config, devices))

    @classmethod
    def _build(cls, config, workdir, tokenizer, objective: objectives.BuiltObjective, mesh: Mesh) -> "Experiment":
        specials = objective.specials if tokenizer is None else tokenizer.specials
        if specials != objective.specials:  # A tokenizer whose id layout differs from config.tokenizer's.
            objective = objectives.build(config.objective, specials, config.data.seq_len)
        abstract_model = nnx.eval_shape(lambda: _build_model(config, specials.vocab_size, 0))
        graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)
        param_shardings = sharding.param_shardings(abstract_params, mesh)
        tx = optim.make_optimizer(config.optim, config.train.num_steps)
        abstract_opt = jax.eval_shape(tx.init, abstract_params)
        opt_shardings = jax.tree.map(lambda _: NamedSharding(mesh, PartitionSpec()), abstract_opt)
        # Adam moments mirror the parameters' tree: give them the parameters' shardings.
        opt_shardings = _moments_like_params(abstract_opt, opt_shardings, param_shardings)
        state_shardings = {
            "step": NamedSharding(mesh, PartitionSpec()),
            "params": param_shardings,
            "opt_state": opt_shardings,
        }
        return cls(config, workdir, tokenizer, specials, objective.fn, objective.row_budget, objective.host_transform,
                   mesh, graphdef, tx, state_shardings)

    def init_state(self) -> steps.TrainState:
        """Fresh train state, created directly in its shardings."""
        config, vocab_size = self.config, self.vocab_size

        def init():
            params = nnx.state(_build_model(config, vocab_size, config.seed), nnx.Param)
            return {"step": jax.numpy.int32(0), "params": params, "opt_state": self.tx.init(params)}

        return jax.jit(init, out_shardings=self.state_shardings)()

    def abstract_state(self):
        """ShapeDtypeStructs with shardings: the target for restoring a checkpoint."""
        shapes = jax.eval_shape(self.init_state)
        return jax.tree.map(
            lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, self.state_shardings
        )

    def abstract_batch(self) -> PackedBatch:
        """ShapeDtypeStructs of one global train batch as `sharding.to_global_batch` places it."""
        shape = (self.config.data.batch_size, self.row_budget.row_length)

        def leaf(dtype):
            return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(self.mesh))

        return PackedBatch(*(leaf(jnp.int32) for _ in range(4)), leaf(jnp.bool_), leaf(jnp.int32))

    def model_batch_shapes(self) -> dict:
        """Shapes of the ModelBatch the objective makes from one global train batch (nothing runs):
        {input key: shape} and {"targets": {head: shape of its ids}}."""
        return batch_shapes(jax.eval_shape(self.objective_fn, jax.random.key(0), self.abstract_batch()))

    def model_spec(self) -> models.ModelSpec:
        return models.spec_from_config(self.config.model, self.vocab_size)

    def jit_train_step(self, loss_weights: dict):
        """The train step, jitted with the state's shardings, replicated metrics and a donated state."""
        step = steps.make_train_step(
            self.objective_fn, self.graphdef, self.tx, self.config.seed, loss_weights,
            microbatches=self.config.train.get("microbatches", 1), mesh=self.mesh,
            param_shardings=self.state_shardings["params"])
        replicated = NamedSharding(self.mesh, PartitionSpec())
        return jax.jit(step, in_shardings=(self.state_shardings, sharding.batch_sharding(self.mesh)),
                       out_shardings=(self.state_shardings, replicated), donate_argnums=0)

    def model(self, params) -> nnx.Module:
        return nnx.merge(self.graphdef, params)

    def save_config(self) -> None:
        if distributed.is_chief():
            # Write then rename: a kill mid-write must not leave a truncated config.json behind.
            path = os.path.join(self.workdir, CONFIG_FILE)
            with open(f"{path}.tmp", "w") as f:
                f.write(self.config.to_json(indent=2))
            os.replace(f"{path}.tmp", path)


def _load_or_train_tokenizer(config, workdir: str, train_documents,
                             loaded: tokenizer_lib.Tokenizer | None) -> tokenizer_lib.Tokenizer:
    """Process 0 loads the workdir's tokenizer or trains it; the others wait for it, then load its file.
    `loaded`: the tokenizer, if this process has loaded it already (every process still meets at the barrier).

    (So a multi-process run needs its workdir on storage that every host sees.)
    """
    if not distributed.is_chief():
        distributed.barrier("tokenizer")
        return loaded or tokenizer_lib.load_or_train(config.tokenizer, workdir, None)
    if loaded is None:
        if train_documents is None and not tokenizer_lib.exists(config.tokenizer, workdir):
            train_documents = corpus.load_documents(config.data, config.data.train_split, workdir)
        loaded = tokenizer_lib.load_or_train(config.tokenizer, workdir, train_documents)
    distributed.barrier("tokenizer")
    return loaded


def _make_mesh(config, devices) -> Mesh:
    mesh = sharding.make_mesh(config.mesh, devices)
    check_batch_split(config, mesh)
    return mesh


def check_batch_split(config, mesh: Mesh) -> None:
    """Every (micro)batch must split evenly over the data-parallel devices (mesh data x fsdp)."""
    shards = sharding.data_parallel_size(mesh)
    microbatches = config.train.get("microbatches", 1)  # Configs saved before the key existed: 1.
    for key, parts in (("batch_size", microbatches), ("eval_batch_size", 1)):
        rows = config.data[key]
        if rows % (parts * shards):
            split = f" in train.microbatches={parts}" if parts > 1 else ""
            raise config_validation.ConfigError(
                f"data.{key}={rows}{split} does not split evenly over the {shards} data-parallel devices"
                f" (mesh data x fsdp); use a multiple of {parts * shards}")


def _build_model(config, vocab_size: int, seed: int) -> nnx.Module:
    with nnx.use_eager_sharding(False):
        return models.build_model(config.model, vocab_size, rngs=nnx.Rngs(params=seed))


def _moments_like_params(abstract_opt, opt_shardings, param_shardings):
    """Replaces the sharding of every optimizer sub-tree shaped like the parameters with theirs."""
    params_structure = jax.tree.structure(param_shardings)

    def is_params_like(node) -> bool:
        try:
            return jax.tree.structure(node) == params_structure
        except TypeError:
            return False

    def replace(abstract_node, sharding_node):
        return param_shardings if is_params_like(abstract_node) else sharding_node

    return jax.tree.map(replace, abstract_opt, opt_shardings, is_leaf=is_params_like)


def load_saved_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a workdir was trained with (written at the start of `train`)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a pretrain_jax workdir? Run `train` first.")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    logging.info("loaded config of %s", workdir)
    return config
