"""Fine-tuning a pre-trained workdir for sequence classification: `run(config, workdir) -> results`.

    from configs.finetune import classify
    config = classify.get_config("tiny")
    config.init_from, config.dataset = "workdirs/bert_tiny", "imdb_reviews"
    results = run(config, "/tmp/imdb")        # also written to /tmp/imdb/results.json
    results["accuracy"], results["macro_f1"]

    # A data-efficiency curve, pre-trained against from scratch (same size, same tokenizer):
    rows = data_efficiency_curve(config, "/tmp/curve", label_counts=[32, 128, 512], seeds=[0, 1, 2],
                                 inits=["pretrained", "scratch"])

The architecture and tokenizer always come from `config.init_from`; `config.init` says whether its
latest checkpoint's weights are loaded ("pretrained") or the same modules start from random weights
("scratch"), so the two arms of the comparison differ in nothing else. New weights (the head, or
all of them) are drawn from `fold_in(key(config.seed), 1)`, never the pre-training's own init.
How each family reads an example and scores the classes is in formats.py. The step is the
pre-training trainer's (`steps.make_train_step`) with the batch as its own objective: AdamW with
warm-up and decay (optim.py), dropout keys from `fold_in(seed, step)`, non-finite updates skipped.
Training is data-parallel on one process (weights replicated on every device). The test split is
scored only by the final weights (and at `eval_every` for the log): nothing is selected on it.
"""

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pretrain_jax import experiment, flops, loop, models, optim, sharding, steps
from pretrain_jax import metrics as metrics_lib
from pretrain_jax.batch import batch_shapes
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.config_validation import ConfigError
from pretrain_jax.data import tokenizer as tokenizer_lib
from pretrain_jax.finetune import datasets, formats, glue_files, saved, tasks
from pretrain_jax.models.heads import POOLINGS

INITS = ("pretrained", "scratch")
RESULTS_FILE = "results.json"
_NEW_WEIGHTS_STREAM = 1  # fold_in(key(seed), this): new weights never replay the pre-training's init.


@dataclasses.dataclass
class Pretrained:
    """What a pre-trained workdir gives fine-tuning."""

    config: ml_collections.ConfigDict  # The pre-training run's config (model, tokenizer, objective).
    tokenizer: tokenizer_lib.Tokenizer
    params: nnx.State | None  # The backbone's weights; None with init="scratch".
    step: int | None  # Checkpoint step the weights come from.


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks a fine-tuning config (configs/finetune/classify.py) once; raises a one-line ConfigError."""
    checks = [
        (config.init in INITS, f"init={config.init!r}: use one of {INITS}"),
        (bool(config.init_from), "init_from is empty: give the pre-trained workdir (its architecture and tokenizer"
                                 " are needed with init='scratch' too)"),
        (config.seq_len >= 3, f"seq_len={config.seq_len} must be >= 3"),
        (config.pooling in ("auto", *POOLINGS), f"pooling={config.pooling!r}: use 'auto' or one of {POOLINGS}"),
        (config.batch_size >= 1 and config.eval_batch_size >= 1, "batch_size and eval_batch_size must be >= 1"),
        (config.num_steps > 0 or config.epochs > 0, "set num_steps > 0 or epochs > 0"),
        (config.num_steps >= 0 and config.min_steps >= 0, "num_steps and min_steps must be >= 0"),
        (config.max_train_examples >= 0 and config.max_test_examples >= 0, "max_*_examples must be >= 0 (0 = all)"),
        (config.dropout == -1 or 0.0 <= config.dropout < 1.0, f"dropout={config.dropout} must be in [0, 1) or -1"),
        (config.optim.lr > 0, f"optim.lr={config.optim.lr} must be > 0"),
        (0.0 <= config.optim.warmup_fraction <= 1.0,
         f"optim.warmup_fraction={config.optim.warmup_fraction} must be in [0, 1]"),
        (config.optim.decay in optim.DECAYS, f"optim.decay={config.optim.decay!r}: use one of {optim.DECAYS}"),
        (config.eval_every >= 0 and config.log_every_steps >= 1, "eval_every must be >= 0, log_every_steps >= 1"),
        (jax.process_count() == 1, "fine-tuning runs on one process; launch it without jax.distributed"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def load_pretrained(config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None) -> Pretrained:
    """The pre-training config and tokenizer of `config.init_from`, and with init="pretrained" the
    backbone weights of its latest good checkpoint (restored data-parallel onto `devices`)."""
    workdir = config.init_from
    pretrain_config = experiment.load_saved_config(workdir)
    if config.init == "scratch":
        tokenizer = tokenizer_lib.load_or_train(pretrain_config.tokenizer, workdir, None)
        return Pretrained(pretrain_config, tokenizer, None, None)
    restore_config = pretrain_config.copy_and_resolve_references()
    restore_config.mesh.data, restore_config.mesh.fsdp, restore_config.mesh.tensor = -1, 1, 1
    exp = experiment.Experiment.create(restore_config, workdir, devices=devices)
    checkpointer = Checkpointer(workdir, keep=pretrain_config.train.keep_checkpoints)
    try:
        restored = checkpointer.restore_latest_good(exp.abstract_state())
    finally:
        checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}: pre-train first, or use init=scratch")
    step, state, _, _ = restored
    return Pretrained(pretrain_config, exp.tokenizer, state["params"], step)


def backbone_config(config: ml_collections.ConfigDict, pretrained: Pretrained) -> ml_collections.ConfigDict:
    """The pre-training's model section with fine-tuning's dropout."""
    model_config = pretrained.config.model.copy_and_resolve_references()
    if config.dropout != -1:
        model_config.dropout = model_config.attention_dropout = config.dropout
    return model_config


def backbone_spec(config: ml_collections.ConfigDict, pretrained: Pretrained) -> models.ModelSpec:
    return models.spec_from_config(backbone_config(config, pretrained), pretrained.tokenizer.vocab_size)


def build_model(config: ml_collections.ConfigDict, pretrained: Pretrained, fmt, num_classes: int) -> nnx.Module:
    """The model fine-tuning trains: the backbone (pre-trained or fresh) under the format's head."""
    spec = backbone_spec(config, pretrained)
    rngs = nnx.Rngs(params=jax.random.fold_in(jax.random.key(config.seed), _NEW_WEIGHTS_STREAM))
    with nnx.use_eager_sharding(False):
        if pretrained.params is None:
            backbone = models.build_from_spec(spec, rngs=rngs)
        else:  # Shapes only, then the checkpoint's values: no random init of weights that are replaced.
            backbone = nnx.eval_shape(lambda: models.build_from_spec(spec, rngs=nnx.Rngs(params=0)))
            nnx.update(backbone, pretrained.params)
        model = fmt.init_model(backbone, spec, num_classes, rngs)
    if pretrained.params is not None and _has_trained_pooler(model, pretrained.config):
        # BERT fine-tunes the pooler that next-sentence (or sentence-order) prediction trained.
        nnx.update(model.head.pooler, nnx.state(backbone.nsp_head.pooler))
    return model


def _has_trained_pooler(model: nnx.Module, pretrain_config: ml_collections.ConfigDict) -> bool:
    head = getattr(model, "head", None)
    return (pretrain_config.objective.name in ("nsp", "sop") and getattr(head, "pooler", None) is not None
            and hasattr(model.backbone, "nsp_head"))


def make_format(config: ml_collections.ConfigDict, pretrained: Pretrained, fmt_args: dict):
    """The family's format, from `format_args` (what the saved model stores)."""
    return formats.make_format(backbone_spec(config, pretrained), pretrained.tokenizer.specials, **fmt_args)


def format_args(config: ml_collections.ConfigDict, pretrained: Pretrained, label_names: Sequence[str],
                pair_names: tuple[str, str] | None = None, b_first: bool = False) -> dict:
    """formats.make_format's keyword arguments as JSON-ready token ids (the saved model stores them).

    pair_names (the fields of a sentence pair's A and B) make T5's pair input, e.g. `rte sentence1: A
    sentence2: B` (a task_prefix replaces `rte sentence1: `); b_first: T5 reads B first, `mnli
    hypothesis: B premise: A`, as its GLUE preprocessing orders the fields.
    """
    spec = backbone_spec(config, pretrained)
    if spec.family != "encoder_decoder" and config.seq_len > spec.max_len:
        raise ConfigError(f"seq_len={config.seq_len} exceeds the pre-trained model's max_len={spec.max_len}")
    tokenizer = pretrained.tokenizer
    if pair_names is None:
        prefix, marker = config.task_prefix or f"{task_name(config.dataset)}: ", ""
    else:
        first, second = pair_names[::-1] if b_first else pair_names
        prefix = config.task_prefix or f"{task_name(config.dataset)} {first}: "
        marker = f" {second}: "
    return {"seq_len": config.seq_len, "prefix_ids": tokenizer.encode(prefix),
            "label_ids": [tokenizer.encode(name) for name in label_names], "pooling": config.pooling,
            "pair_marker_ids": tokenizer.encode(marker) if marker else [], "b_first": b_first}


def load_data(config: ml_collections.ConfigDict) -> datasets.Dataset:
    """The dataset `config` names: GLUE's own TSV files under glue_dir, a TFDS name, or local files."""
    if config.glue_dir:
        return glue_files.load(config.dataset, config.glue_dir)
    return datasets.load_dataset(config)


def make_task(config: ml_collections.ConfigDict, data: datasets.Dataset):
    """The task the dataset's labels make: its classes, or (regression) the score grid of its train labels."""
    if data.kind == "regression":
        return tasks.Regression.from_labels(data.train.labels, config.regression_step)
    return tasks.Classification(data.label_names)


def task_name(dataset: str) -> str:
    """The default task prefix's name: "glue/sst2:1.0.0" -> "sst2"; local files -> "classify"."""
    return "classify" if dataset == "files" else dataset.split(":")[0].split("/")[-1]


def num_train_steps(config: ml_collections.ConfigDict, num_examples: int) -> int:
    if config.num_steps > 0:
        return config.num_steps
    return max(1, config.min_steps, math.ceil(config.epochs * num_examples / config.batch_size))


def example_order(num_examples: int, length: int, seed: int) -> np.ndarray:
    """`length` example indices: a fresh seeded permutation per epoch, epochs back to back.

    example_order(3, 7, seed) -> e.g. [2 0 1 | 1 2 0 | 0]
    """
    epochs = -(-length // num_examples)
    return np.concatenate([np.random.default_rng([seed, e]).permutation(num_examples) for e in range(epochs)])[:length]


def _optim_config(config: ml_collections.ConfigDict, num_steps: int) -> ml_collections.ConfigDict:
    """Fine-tuning's optim section in the form optim.make_optimizer reads (warm-up as a step count)."""
    optim_config = config.optim.copy_and_resolve_references()
    with optim_config.unlocked():
        optim_config.warmup_steps = round(config.optim.warmup_fraction * num_steps)
    return optim_config


def run(config: ml_collections.ConfigDict, workdir: str, *, devices: Sequence[jax.Device] | None = None) -> dict:
    """Fine-tunes `config.init_from` on `config.dataset`; writes and returns the test results.

    Writes WORKDIR/config.json, metrics.jsonl (progress and eval records), the fine-tuned model
    (WORKDIR/model: saved.py; `pretrain-jax predict` reads it) and results.json: the task's scores
    (classification: accuracy, macro_f1, per_class_f1, confusion_matrix, majority_baseline_accuracy;
    regression: pearson, spearman, mse; both: "score", the GLUE score of the task), the number of
    train / test examples, steps, the init and where it came from. devices: default all.
    """
    metrics_lib.quiet_library_logs()
    validate(config)
    started = time.time()
    mesh = _data_parallel_mesh(config, devices)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, experiment.CONFIG_FILE), "w") as f:
        f.write(config.to_json(indent=2))
    data = load_data(config)  # Before the weights: a data error shows in a second.
    train = data.train.take(datasets.stratified_subset(data.train.labels, config.max_train_examples, config.seed))
    test = data.test.take(datasets.stratified_subset(data.test.labels, config.max_test_examples, 0))
    task = make_task(config, data)
    pretrained = load_pretrained(config, devices)
    fmt_args = format_args(config, pretrained, task.label_names, data.pair_names, data.text_to_text_b_first)
    fmt = make_format(config, pretrained, fmt_args)
    if fmt.text_to_text and task.kind == "regression":
        task.check_text_to_text()
    model = build_model(config, pretrained, fmt, task.num_outputs)
    num_steps = num_train_steps(config, len(train))
    state, train_step, scores_step = _compiled_steps(config, model, fmt, num_steps, mesh)
    (train_ids, train_ids_b), test_ids = _encode(pretrained.tokenizer, train), _encode(pretrained.tokenizer, test)
    order = example_order(len(train), num_steps * config.batch_size, config.seed)
    ones = np.ones(config.batch_size, np.float32)

    def host_batch(step: int):
        rows = order[(step - 1) * config.batch_size: step * config.batch_size]
        pairs = None if train_ids_b is None else [train_ids_b[i] for i in rows]
        return fmt.batch([train_ids[i] for i in rows], task.targets(train.labels[rows], fmt.text_to_text), ones, pairs)

    logging.info("fine-tuning %s (%s, %s, step %s) on %s (%s): %d train / %d test examples, %d outputs, %d steps;"
                 " set-up %.1fs", config.init_from, pretrained.config.model.family, config.init, pretrained.step,
                 data.name, task.kind, len(train), len(test), task.num_outputs, num_steps, time.time() - started)
    writer = metrics_lib.MetricsWriter(workdir)
    history, final, train_started = [], {}, time.time()

    def evaluate(info: loop.StepInfo) -> None:
        """The test split scored by the step's weights; the last step's scores are the results."""
        if info.end:
            final["train_seconds"] = time.time() - train_started  # Before the final scoring.
        predictions = predict(fmt, task, scores_step, info.state["params"], *test_ids, config.eval_batch_size, mesh)
        final["report"] = task.report(test.labels, predictions)
        history.append({"step": info.step, **{k: final["report"][k] for k in ("score", *task.headline)}})
        logging.info("finetune eval at step %d: %s", info.step,
                     ", ".join(f"{k} {history[-1][k]:.4f}" for k in task.headline))
        writer.write("eval", info.step, history[-1])

    progress = _progress(config, writer, backbone_spec(config, pretrained), batch_shapes(host_batch(1)), num_steps,
                         mesh)
    hooks = [progress, loop.Callback(loop.Period(steps=config.eval_every, end=True), evaluate)]
    ending = loop.run(state, train_step, lambda step: sharding.to_global_batch(host_batch(step), mesh), hooks,
                      start_step=0, num_steps=num_steps)
    writer.close()
    inputs = {"text_keys": list(data.text_keys), "text_b_keys": list(data.text_b_keys), "label_key": data.label_key}
    saved.save(workdir, ending.state["params"], backbone_config(config, pretrained), pretrained.tokenizer, task,
               fmt_args, inputs, config.eval_batch_size)
    results = {
        **final["report"],
        "task": task.kind,
        "label_names": list(data.label_names),
        "dataset": data.name,
        "num_train_examples": len(train),
        **({"train_class_counts": np.bincount(train.labels, minlength=data.num_classes).tolist()}
           if task.kind == "classification" else {}),
        "max_train_examples": config.max_train_examples,
        "steps": num_steps,
        "epochs": num_steps * config.batch_size / len(train),
        "init": config.init,
        "init_from": config.init_from,
        "pretrain_step": pretrained.step,
        "family": pretrained.config.model.family,
        "pretrain_objective": pretrained.config.objective.name,
        "num_params": models.param_count(model),
        "seed": config.seed,
        "history": history,
        "train_seconds": final["train_seconds"],
    }
    with open(os.path.join(workdir, RESULTS_FILE), "w") as f:
        json.dump(results, f, indent=2)
    logging.info("finetune done: %s on %d test examples; %s",
                 ", ".join(f"{k} {results[k]:.4f}" for k in task.headline), len(test),
                 os.path.join(workdir, RESULTS_FILE))
    return results


def _data_parallel_mesh(config: ml_collections.ConfigDict, devices) -> Mesh:
    """Every device on the data axis; both batch sizes must split over them."""
    mesh = sharding.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1}), devices)
    shards = sharding.data_parallel_size(mesh)
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % shards:
            raise ConfigError(f"{key}={config[key]} does not split over the {shards} devices; use a multiple of it")
    return mesh


def _compiled_steps(config: ml_collections.ConfigDict, model: nnx.Module, fmt, num_steps: int, mesh: Mesh):
    """(initial state, jitted train step, jitted scores step), weights replicated on every device."""
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optim.make_optimizer(_optim_config(config, num_steps), num_steps)
    replicated = NamedSharding(mesh, PartitionSpec())
    params = jax.device_put(params, replicated)
    state = jax.jit(lambda p: {"step": jnp.int32(0), "params": p, "opt_state": tx.init(p)},
                    out_shardings=replicated)(params)
    train_step = jax.jit(steps.make_train_step(lambda _, batch: batch, graphdef, tx, config.seed, {}),
                         out_shardings=(replicated, replicated), donate_argnums=0)
    scores_step = jax.jit(lambda p, batch: fmt.scores(nnx.merge(graphdef, p), batch))
    return state, train_step, scores_step


def _progress(config: ml_collections.ConfigDict, writer, spec: models.ModelSpec, shapes: dict, num_steps: int,
              mesh: Mesh) -> loop.Progress:
    """Fine-tuning's progress line: every log_every_steps steps and at the end; non-finite steps are skipped."""
    return loop.Progress(
        loop.Period(steps=config.log_every_steps, end=True), writer, num_steps=num_steps, label="finetune ",
        tokens_per_step=config.batch_size * config.seq_len, rows_per_step=config.batch_size,
        flops_per_token=flops.train_flops_per_token(spec, shapes, config.seq_len),
        peak_flops=flops.peak_flops_per_device(config.peak_flops_per_device, mesh.devices.flat[0]),
        num_devices=mesh.devices.size, nonfinite="skip")


def _encode(tokenizer, examples: datasets.Examples) -> tuple[list[list[int]], list[list[int]] | None]:
    """(token ids of each text, of each second text or None)."""
    texts_b = examples.texts_b
    return tokenizer.encode_batch(examples.texts), None if texts_b is None else tokenizer.encode_batch(texts_b)


def predict(fmt, task, scores_step, params, token_ids: Sequence[Sequence[int]],
            token_ids_b: Sequence[Sequence[int]] | None, batch_size: int, mesh) -> np.ndarray:
    """(N,) predictions (class ids, or regression scores) as `task` decodes the model's scores,
    `batch_size` examples per jitted call; the last batch is filled with copies of its first example
    (every call has one shape) whose predictions are dropped. token_ids_b: sentence pairs' second
    texts, or None."""
    predictions = []
    for start in range(0, len(token_ids), batch_size):
        chunk = list(token_ids[start: start + batch_size])
        real = len(chunk)
        chunk += [chunk[0]] * (batch_size - real)
        pairs = None
        if token_ids_b is not None:
            pairs = list(token_ids_b[start: start + batch_size])
            pairs += [pairs[0]] * (batch_size - real)
        batch = fmt.batch(chunk, np.zeros(batch_size, np.int32), np.ones(batch_size, np.float32), pairs)
        scores = jax.device_get(scores_step(params, sharding.to_global_batch(batch, mesh)))
        predictions.append(task.decode(scores[:real], fmt.text_to_text))
    return np.concatenate(predictions)


def data_efficiency_curve(config: ml_collections.ConfigDict, workdir: str, label_counts: Sequence[int],
                          seeds: Sequence[int] = (0,), inits: Sequence[str] = ("pretrained",)) -> list[dict]:
    """`run` for every (init, label count, seed), each in WORKDIR/<init>_n<count>_seed<seed>; returns
    one row per run: init, max_train_examples, seed, accuracy, macro_f1, num_train_examples, steps."""
    rows = []
    for init in inits:
        for count in label_counts:
            for seed in seeds:
                run_config = config.copy_and_resolve_references()
                run_config.init, run_config.max_train_examples, run_config.seed = init, count, seed
                results = run(run_config, os.path.join(workdir, f"{init}_n{count}_seed{seed}"))
                rows.append({"init": init, "max_train_examples": count, "seed": seed,
                             **{k: results[k] for k in ("accuracy", "macro_f1", "num_train_examples", "steps")}})
    return rows
