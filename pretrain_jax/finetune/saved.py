"""A fine-tuned model saved with everything that uses it: weights, architecture, tokenizer, task, format.

    saved.save(workdir, params, model_config, tokenizer, task, format_args, inputs)   # end of a run
    finetuned = saved.load(workdir)                    # anywhere later, without the pre-trained workdir
    finetuned.task.label_names, finetuned.inputs["text_keys"]

Layout: WORKDIR/model/{params/ (orbax), model.json, tokenizer.model}. model.json holds the backbone's
model section (with fine-tuning's dropout), the task (tasks.py), the arguments of
`formats.make_format` (token ids, not text: the input layout is reproduced exactly) and the fields
the examples were read from. The weights are restored onto the shapes that model.json builds, so a
model.json that does not match the weights fails in orbax, not later.
"""

import dataclasses
import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pretrain_jax import models
from pretrain_jax.data import tokenizer as tokenizer_lib
from pretrain_jax.finetune import formats, tasks

MODEL_DIR = "model"
_MODEL_JSON = "model.json"
_PARAMS = "params"


@dataclasses.dataclass
class Finetuned:
    graphdef: nnx.GraphDef  # merge with params for the model
    params: nnx.State  # restored replicated on the mesh's devices
    fmt: object  # formats.PooledClassifier or formats.TextToText
    task: object  # tasks.Classification or tasks.Regression
    tokenizer: tokenizer_lib.Tokenizer
    inputs: dict  # text_keys, text_b_keys (lists of field names), label_key
    eval_batch_size: int


def save(workdir: str, params: nnx.State, model_config: ml_collections.ConfigDict, tokenizer: tokenizer_lib.Tokenizer,
         task, format_args: dict, inputs: dict, eval_batch_size: int) -> str:
    """Writes WORKDIR/model and returns its path; `params` is the trained model's nnx.Param state."""
    directory = os.path.join(os.path.abspath(workdir), MODEL_DIR)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, tokenizer_lib.MODEL_FILENAME), "wb") as f:
        f.write(tokenizer.serialized())
    description = {"model": json.loads(model_config.to_json()), "num_sentinels": tokenizer.specials.num_sentinels,
                   "task": task.to_json(), "format": format_args, "inputs": inputs,
                   "eval_batch_size": eval_batch_size}
    with open(os.path.join(directory, _MODEL_JSON), "w") as f:
        json.dump(description, f, indent=2)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(directory, _PARAMS), params, force=True)
    return directory


def load(workdir: str, mesh: Mesh) -> Finetuned:
    """The model `save` wrote in WORKDIR/model, its weights replicated over `mesh`."""
    directory = os.path.join(os.path.abspath(workdir), MODEL_DIR)
    path = os.path.join(directory, _MODEL_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no fine-tuned model in {directory} (model.json missing): run `pretrain-jax"
                                " finetune` with this workdir first")
    with open(path) as f:
        description = json.load(f)
    tokenizer = tokenizer_lib.Tokenizer.load(os.path.join(directory, tokenizer_lib.MODEL_FILENAME),
                                             description["num_sentinels"])
    spec = models.spec_from_config(ml_collections.ConfigDict(description["model"]), tokenizer.vocab_size)
    fmt = formats.make_format(spec, tokenizer.specials, **description["format"])
    task = tasks.from_json(description["task"])

    def build() -> nnx.Module:
        rngs = nnx.Rngs(params=0)
        return fmt.init_model(models.build_from_spec(spec, rngs=rngs), spec, task.num_outputs, rngs)

    with nnx.use_eager_sharding(False):
        graphdef, abstract = nnx.split(nnx.eval_shape(build), nnx.Param)
    replicated = NamedSharding(mesh, PartitionSpec())
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract)
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(os.path.join(directory, _PARAMS), target)
    return Finetuned(graphdef, params, fmt, task, tokenizer, description["inputs"], description["eval_batch_size"])
