"""The one trainer: `run(config, workdir)` trains any registered objective on its model family.

The loop body is "next batch, step, hooks" (progress line, eval, checkpoint). A workdir that already
holds a checkpoint is resumed: same parameters, optimizer state, data position and random keys, so
the resumed run continues exactly as the uninterrupted one would have. SIGTERM and Ctrl-C save a
checkpoint at the next step boundary and return; in a multi-process run every process stops at the
same step (see StopRequest). Everything that can be checked without writing (config, resume
compatibility, an existing tokenizer) is checked before the workdir is touched.
"""

import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from pretrain_jax import (
    checkpoint,
    config_validation,
    distributed,
    evaluation,
    experiment,
    flops,
    losses,
    metrics,
    sharding,
    workdirs,
)
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.data import corpus, pipeline
from pretrain_jax.data import tokenizer as tokenizer_lib


class StopRequest:
    """Turns SIGTERM / SIGINT into a decision, taken at a step boundary, to save a checkpoint and stop.

    One process: a signal sets a flag that `should_stop(step)` returns. Several processes must stop at
    the same step (saving is a collective), whichever of them got the signal, so the decision is
    agreed: with JAX's preemption service (on by default with jax.distributed) SIGTERM is left to it;
    it tells every process, and `multihost_utils.reached_preemption_sync_point(step)` is True at the
    same step on all of them. A Ctrl-C is passed on to it as a SIGTERM. Without the service
    (jax_enable_preemption_service=False) the processes all-gather their flags at every step.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}
        self._multi_process = False
        self._preemption_service = False

    def __enter__(self):
        self._multi_process = jax.process_count() > 1
        self._preemption_service = self._multi_process and bool(jax.config.jax_enable_preemption_service)
        # JAX's preemption service catches SIGTERM itself; a Python handler would hide it from the service.
        signals = (signal.SIGINT,) if self._preemption_service else (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # A second Ctrl-C stops at once.
        self.signal_name = signal.Signals(signum).name
        logging.warning("%s received: saving a checkpoint at the next step boundary", self.signal_name)
        if self._preemption_service:
            os.kill(os.getpid(), signal.SIGTERM)  # A preemption notice the service shares with every process.

    def should_stop(self, step: int) -> bool:
        """Whether to save and stop after `step`; every process calls it at every step, and all get the same answer."""
        if not self._multi_process:
            return self.signal_name is not None
        if self._preemption_service:
            if not multihost_utils.reached_preemption_sync_point(step):
                return False
            self.signal_name = self.signal_name or "a preemption notice (SIGTERM) to one of the processes"
            return True
        flags = multihost_utils.process_allgather(np.int32(self.signal_name is not None))
        if self.signal_name is None and np.any(flags):
            self.signal_name = "a signal to another process"
        return bool(np.any(flags))

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


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
    num_steps, seq_len = config.train.num_steps, exp.row_budget.row_length  # raw tokens per packed row
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
    main_head = heads[0]
    train_step = exp.jit_train_step(loss_weights)
    flops_per_token = flops.train_flops_per_token(exp.model_spec(), exp.model_batch_shapes(), seq_len)
    peak_flops = flops.peak_flops_per_device(config.train.peak_flops_per_device, exp.mesh.devices.flat[0])
    writer = metrics.MetricsWriter(workdir, is_chief=jax.process_index() == 0)
    writer.forget_after(start_step)  # Steps after the checkpoint are run again: their records go.
    evaluator = evaluation.Evaluator(exp, lambda: _make_loader(exp, eval_docs, train=False,
                                                               batch_size=config.data.eval_batch_size))
    fingerprint = tokenizer_lib.fingerprint(exp.tokenizer)

    def save(step: int) -> None:
        meta = {"step": step, "tokenizer_vocab_size": exp.tokenizer.vocab_size, "tokenizer_sha256": fingerprint}
        checkpointer.save(step, state, distributed.gather_per_process(loader.get_state()), meta)

    last_eval: dict[str, float] = {}
    pending, window_start, window_step = [], time.time(), start_step
    step = start_step
    stop_at = num_steps if not config.train.stop_after_steps else min(num_steps, step + config.train.stop_after_steps)
    with StopRequest() as stop:
        while step < stop_at:
            packed = sharding.to_global_batch(next(loader), exp.mesh)
            state, step_metrics = train_step(state, packed)
            step += 1
            pending.append(step_metrics)
            stopping = stop.should_stop(step)
            checkpoint_due = stopping or step % config.train.checkpoint_every == 0 or step == stop_at
            # Every checkpoint closes a window, so metrics.jsonl holds each step's loss before the
            # checkpoint that covers it: a kill loses at most the steps run again after it.
            if (time.time() - window_start >= config.train.log_every_secs or checkpoint_due
                    or step == start_step + 1):
                scalars = _reduce_train_metrics(pending, main_head)  # Blocks until these steps have run.
                _check_nonfinite(pending, window_step, config.train.nonfinite, checkpointer.latest_step())
                elapsed = time.time() - window_start
                tokens_per_sec = (step - window_step) * config.data.batch_size * seq_len / max(elapsed, 1e-9)
                eta = (num_steps - step) * elapsed / max(step - window_step, 1)
                scalars["tokens_per_sec"] = tokens_per_sec
                line = metrics.progress_line(step, num_steps, scalars, tokens_per_sec, eta)
                utilisation = flops.mfu(flops_per_token, tokens_per_sec, peak_flops, exp.mesh.devices.size)
                if utilisation is not None:
                    scalars["mfu"] = utilisation
                    line += f" | MFU {100 * utilisation:.1f}%"
                logging.info(line)
                # Every step's loss is kept (exact-resume checks compare them step by step).
                scalars["step_losses"] = [float(m["loss"]) for m in jax.device_get(pending)]
                writer.write("train", step, scalars)
                pending, window_start, window_step = [], time.time(), step
            eval_due = config.train.eval_every and step % config.train.eval_every == 0
            if eval_due or step == num_steps:
                last_eval = evaluator.evaluate(state["params"], config.train.eval_steps)
                logging.info("eval at step %d: %s", step, evaluation.format_metrics(last_eval))
                writer.write("eval", step, last_eval)
            if checkpoint_due:
                save(step)
            if stopping:
                logging.info("saved step %d after %s; run the same command to continue", step, stop.signal_name)
                break
    checkpointer.wait()
    checkpointer.close()
    writer.close()
    logging.info("done: step %d, %.1f min in all", step, (time.time() - started) / 60)
    return last_eval


def _reduce_train_metrics(pending: list[dict], main_head: str) -> dict[str, float]:
    fetched = jax.device_get(pending)
    head_sums = jax.tree.map(lambda *steps: float(np.sum(steps)), *[m["heads"] for m in fetched])
    scalars = losses.summarize(head_sums)
    scalars["loss"] = float(np.mean([m["loss"] for m in fetched]))
    scalars["grad_norm"] = float(np.mean([m["grad_norm"] for m in fetched]))
    scalars["nonfinite_steps"] = int(np.sum([m["nonfinite"] for m in fetched]))
    scalars["accuracy"] = scalars[f"{main_head}/accuracy"]
    return scalars


class NonFiniteError(RuntimeError):
    """A step had a non-finite loss or gradient and train.nonfinite='stop'."""


def _check_nonfinite(pending: list[dict], first_step: int, policy: str, last_checkpoint: int | None) -> None:
    """The step already skipped the update; here the policy decides whether the run goes on."""
    bad = [first_step + 1 + i for i, m in enumerate(jax.device_get(pending)) if m["nonfinite"]]
    if not bad:
        return
    if policy == "stop":
        raise NonFiniteError(
            f"non-finite loss or gradient at step(s) {bad[:10]} (their updates were not applied); the last"
            f" checkpoint is step {last_checkpoint}. Lower optim.lr, or set --config.train.nonfinite=skip"
        )
    logging.warning("skipped the update of %d step(s) with a non-finite loss or gradient: %s", len(bad), bad[:10])


def _count(params) -> int:
    return int(sum(jnp.size(x) for x in jax.tree.leaves(params)))
