"""The one trainer: `run(config, workdir)` trains any registered objective on its model family.

It sets up, then runs loop.run with its hooks (progress line, eval, checkpoint). A workdir that already
holds a checkpoint is resumed: same parameters, optimizer state, data position and random keys, so
the resumed run continues exactly as the uninterrupted one would have. SIGTERM and Ctrl-C save a
checkpoint at the next step boundary and return; in a multi-process run every process stops at the
same step (see loop.StopRequest). Everything that can be checked without writing (config, resume
compatibility, an existing tokenizer) is checked before the workdir is touched.
"""

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from pretrain_jax import (
    checkpoint,
    config_validation,
    distributed,
    evaluation,
    experiment,
    flops,
    loop,
    metrics,
    sharding,
    workdirs,
)
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.data import corpus, pipeline
from pretrain_jax.data import tokenizer as tokenizer_lib


def _make_loader(exp: experiment.Experiment, documents, *, train: bool, batch_size: int):
    data_config = exp.config.data.copy_and_resolve_references()
    with data_config.unlocked():
        data_config.batch_size = batch_size
    return pipeline.make_loader(
        data_config,
        exp.tokenizer,
        documents,
        split_is_train=train,
        seed=exp.config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        budget=exp.row_budget,
        host_transform=exp.host_transform,
    )


def _check_before_writing(config: ml_collections.ConfigDict, workdir: str, devices):
    """The checks that need nothing written: a config, workdir or tokenizer that cannot work leaves the
    workdir as it was. Returns what they built, for the run to reuse: (objective, mesh, the workdir's
    tokenizer or None when it is still to be trained)."""
    objective = config_validation.validate(config)
    workdirs.check_writable(workdir)
    mesh = sharding.make_mesh(config.mesh, devices)
    experiment.check_batch_split(config, mesh)
    if os.path.exists(os.path.join(workdir, experiment.CONFIG_FILE)):
        config_validation.check_resume_compatible(experiment.load_saved_config(workdir), config)
    latest = checkpoint.latest_committed_step(workdir)
    if latest is not None and config.train.num_steps < latest:
        raise config_validation.ConfigError(
            f"train.num_steps={config.train.num_steps} is below step {latest} of the workdir's latest checkpoint;"
            f" set --config.train.num_steps={latest} or more to go on, or use a new --workdir")
    tokenizer = None
    if tokenizer_lib.exists(config.tokenizer, workdir):  # tokenizer.path or the workdir's: is it the run's?
        if latest is not None:
            tokenizer_lib.check_fingerprint(config.tokenizer, workdir, checkpoint.read_meta(workdir, latest))
        tokenizer = tokenizer_lib.load_or_train(config.tokenizer, workdir, None)
    return objective, mesh, tokenizer


def _restore_or_start(exp: experiment.Experiment, checkpointer: Checkpointer, loader, workdir: str):
    """(state, checkpointer): the newest restorable checkpoint's, else a fresh state. With existing
    checkpoints none of which restores, only train.restart=True starts over (the old checkpoints and
    metrics.jsonl are moved aside, never deleted); otherwise CheckpointError stops the run."""
    try:
        restored = checkpointer.restore_latest_good(exp.abstract_state())
    except checkpoint.CheckpointError as error:
        if not exp.config.train.restart:
            raise
        checkpointer.close()
        moved = workdirs.move_aside(workdir, ("checkpoints", metrics.METRICS_FILE))
        logging.warning("train.restart=True: %s; starting a new run (moved aside: %s)", error, ", ".join(moved))
        checkpointer = Checkpointer(workdir, keep=exp.config.train.keep_checkpoints,
                                    keep_every=exp.config.train.keep_every)
        restored = None
    if restored is None:
        logging.info("starting a new run in %s", workdir)
        return exp.init_state(), checkpointer
    latest, state, loader_state, _ = restored
    loader.set_state(distributed.this_process_part(loader_state))
    logging.info("resuming from step %d", latest)
    return state, checkpointer


def run(config: ml_collections.ConfigDict, workdir: str, *, devices=None) -> dict[str, float]:
    """Trains until config.train.num_steps (or a stop signal); returns the last eval metrics.

    devices: the mesh's devices (default: all, on every process), e.g. jax.devices()[:1].
    """
    metrics.quiet_library_logs()
    distributed.initialize(config.mesh)  # Before anything touches a device.
    objective, mesh, tokenizer = _check_before_writing(config, workdir, devices)
    started = time.time()
    train_docs = corpus.load_documents(config.data, config.data.train_split, workdir)
    eval_docs = corpus.load_documents(config.data, config.data.eval_split, workdir)
    exp = experiment.Experiment.create(config, workdir, train_documents=train_docs, objective=objective, mesh=mesh,
                                       tokenizer=tokenizer)
    num_steps = config.train.num_steps
    loader = _make_loader(exp, train_docs, train=True, batch_size=config.data.batch_size)

    checkpointer = Checkpointer(workdir, keep=config.train.keep_checkpoints, keep_every=config.train.keep_every)
    state, checkpointer = _restore_or_start(exp, checkpointer, loader, workdir)
    start_step = int(jax.device_get(state["step"]))
    if start_step >= num_steps:
        checkpointer.close()
        logging.info("nothing to do: the workdir's checkpoint is at step %d, train.num_steps=%d", start_step,
                     num_steps)
        return {}
    exp.save_config()
    logging.info("set-up took %.1fs; mesh %s; %d parameters",
                 time.time() - started, dict(exp.mesh.shape), _count(state["params"]))

    loss_weights = config_validation.loss_weights(config)
    heads = objective.spec.heads
    if set(loss_weights) - set(heads):
        logging.warning("train.loss_weights names %s, which objective %r has no head of (its heads: %s)",
                        sorted(set(loss_weights) - set(heads)), config.objective.name, ", ".join(heads))
    writer = metrics.MetricsWriter(workdir, is_chief=jax.process_index() == 0)
    writer.forget_after(start_step)  # Steps after the checkpoint are run again: their records go.
    evaluator = evaluation.Evaluator(exp, lambda: _make_loader(exp, eval_docs, train=False,
                                                               batch_size=config.data.eval_batch_size))
    fingerprint = tokenizer_lib.fingerprint(exp.tokenizer)
    last_eval: dict[str, float] = {}

    def save(step: int, state) -> None:
        meta = {"step": step, "tokenizer_vocab_size": exp.tokenizer.vocab_size, "tokenizer_sha256": fingerprint}
        checkpointer.save(step, state, distributed.gather_per_process(loader.get_state()), meta)

    def evaluate(info: loop.StepInfo) -> None:
        nonlocal last_eval
        last_eval = evaluator.evaluate(info.state["params"], config.train.eval_steps)
        logging.info("eval at step %d: %s", info.step, evaluation.format_metrics(last_eval))
        writer.write("eval", info.step, last_eval)

    hooks = _hooks(exp, writer, checkpointer, save, evaluate, workdir, start_step)
    with loop.StopRequest() as stop:
        ending = loop.run(state, exp.jit_train_step(loss_weights),
                          lambda _: sharding.to_global_batch(next(loader), exp.mesh), hooks,
                          start_step=start_step, num_steps=num_steps, stop_after=config.train.stop_after_steps,
                          stop=stop)
    if ending.stopped_by is not None:
        logging.info("saved step %d after %s; run the same command to continue", ending.step, ending.stopped_by)
    checkpointer.wait()
    checkpointer.close()
    writer.close()
    logging.info("done: step %d, %.1f min in all", ending.step, (time.time() - started) / 60)
    return last_eval


def _hooks(exp: experiment.Experiment, writer, checkpointer: Checkpointer, save, evaluate, workdir: str,
           start_step: int):
    """Pre-training's hooks, in firing order: progress line, eval, checkpoint, and a profile if asked."""
    train_config, seq_len = exp.config.train, exp.row_budget.row_length  # raw tokens per packed row
    checkpoint_hook = loop.Checkpoint(loop.Period(steps=train_config.checkpoint_every, exit=True), save)
    progress = loop.Progress(
        loop.Period(secs=train_config.log_every_secs, first=True), writer, num_steps=train_config.num_steps,
        tokens_per_step=exp.config.data.batch_size * seq_len, rows_per_step=exp.config.data.batch_size,
        flops_per_token=flops.train_flops_per_token(exp.model_spec(), exp.model_batch_shapes(), seq_len),
        peak_flops=flops.peak_flops_per_device(train_config.peak_flops_per_device, exp.mesh.devices.flat[0]),
        num_devices=exp.mesh.devices.size, nonfinite=train_config.nonfinite,
        last_checkpoint=checkpointer.latest_step, with_hooks=[checkpoint_hook])
    evaluation_hook = loop.Callback(loop.Period(steps=train_config.eval_every, end=True), evaluate)
    hooks = [progress, evaluation_hook, checkpoint_hook]
    if train_config.profile_steps:
        hooks.append(loop.Profile(os.path.join(workdir, "profile"), start_step + train_config.profile_after,
                                  train_config.profile_steps))
    return hooks


def _count(params) -> int:
    return int(sum(jnp.size(x) for x in jax.tree.leaves(params)))
