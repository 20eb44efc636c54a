"""The one training loop: pre-training, fine-tuning and the BiLSTM baseline all run through `run`.

    progress = loop.Progress(loop.Period(secs=15, first=True, exit=True), writer, num_steps=1000,
                             tokens_per_step=8 * 512)
    checkpoint = loop.Checkpoint(loop.Period(steps=1000, exit=True), save)
    ending = loop.run(state, train_step, next_batch, [progress, checkpoint], start_step=0, num_steps=1000)
    ending.state, ending.step, ending.stopped_by

Each step is: the next batch, the step function, then every hook in order. A step function is
`(state, batch) -> (state, metrics)`, metrics as `steps.make_train_step` returns them:
{"loss", "grad_norm", "nonfinite", "heads": {head: losses.HeadSums}}. Each hook fires at its own
Period (every n steps, every n seconds, after the first step, at the run's end, at this invocation's
exit). The hooks here are the progress line (with metrics.jsonl and TensorBoard, ETA and MFU), a
callback (eval, or anything else), checkpoints and a profiler trace. A StopRequest (SIGTERM,
Ctrl-C, a preemption notice) ends the loop after the step it arrives at, after that step's hooks.

The hooks are the loop's own rather than clu's periodic actions: the progress line must fire at
every checkpoint too (each checkpoint closes a metrics window, so metrics.jsonl holds every step a
checkpoint covers), and a multi-process stop must be agreed at a step boundary; clu's actions have
neither.
"""

import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from pretrain_jax import flops, losses, metrics


@dataclasses.dataclass(frozen=True)
class Period:
    """When a hook fires, after a step. Any of: every `steps` steps (0: never by count), once `secs`
    seconds have passed since it last fired (None: never by time; 0: after every step), after this
    invocation's first step, at the run's end (step == num_steps), at this invocation's exit (its last
    step: the run's end, `stop_after`, or a stop request)."""

    steps: int = 0
    secs: float | None = None
    first: bool = False
    end: bool = False
    exit: bool = False


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What hooks see after a step."""

    step: int  # Steps done, counted from the run's start (a resumed run starts at its checkpoint's step).
    state: Any  # The state after the step (on device).
    metrics: dict  # The step's metrics (on device, not yet fetched).
    first: bool  # This invocation's first step.
    end: bool  # The run's last step (step == num_steps).
    exit: bool  # This invocation's last step: the run's end, stop_after, or a stop request.
    stopping: bool  # A stop was requested at this step.


class Hook:
    """Fires `fire(info)` after each step its Period names; `close()` runs when the loop ends."""

    def __init__(self, period: Period):
        self.period = period
        self._fired_at = time.time()

    def due(self, info: StepInfo) -> bool:
        p = self.period
        return bool((p.steps and info.step % p.steps == 0)
                    or (p.secs is not None and time.time() - self._fired_at >= p.secs)
                    or (p.first and info.first) or (p.end and info.end) or (p.exit and info.exit))

    def start(self) -> None:
        """Runs once when the loop starts: time periods count from here."""
        self._fired_at = time.time()

    def after_step(self, info: StepInfo) -> None:
        if self.due(info):
            self.fire(info)
            self._fired_at = time.time()

    def fire(self, info: StepInfo) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Runs once when the loop ends, however it ends."""


class Callback(Hook):
    """Calls `fn(info)` at its period: eval, or anything else a run does now and then."""

    def __init__(self, period: Period, fn: Callable[[StepInfo], None]):
        super().__init__(period)
        self._fn = fn

    def fire(self, info: StepInfo) -> None:
        self._fn(info)


class Checkpoint(Callback):
    """Calls `save(step, state)` at its period; the progress line fires with it (see Progress)."""

    def __init__(self, period: Period, save: Callable[[int, Any], None]):
        super().__init__(period, lambda info: save(info.step, info.state))


class NonFiniteError(RuntimeError):
    """A step had a non-finite loss or gradient and the policy was 'stop'."""


class Progress(Hook):
    """The progress line, and the same figures in metrics.jsonl and TensorBoard ("train" records).

    `step 120/2000 (6%) | loss 5.8120 | acc 0.143 | 21.3k tok/s | ETA 4m10s | MFU 31.2%`, prefixed
    with `label`. It keeps every step's metrics until it fires, then reduces them: the mean loss and
    gradient norm, each head's summed loss / accuracy / perplexity (`{head}/loss`, ...), `accuracy`
    (the first head's), tokens and examples per second, MFU where the FLOPs and the peak are known,
    and each step's loss (`step_losses`: exact-resume checks compare them step by step). It also fires
    with every hook in `with_hooks`, so a checkpoint always closes a window. A step with a non-finite
    loss or gradient (its update already skipped by the step) raises NonFiniteError under
    nonfinite="stop", and is counted and warned about under "skip".
    """

    def __init__(self, period: Period, writer: metrics.MetricsWriter | None, *, num_steps: int,
                 tokens_per_step: int, rows_per_step: int, label: str = "", flops_per_token: float | None = None,
                 peak_flops: float = 0.0, num_devices: int = 1, nonfinite: str = "stop",
                 last_checkpoint: Callable[[], int | None] = lambda: None, with_hooks: Sequence[Hook] = ()):
        super().__init__(period)
        self._writer, self._num_steps, self._label = writer, num_steps, label
        self._tokens_per_step, self._rows_per_step = tokens_per_step, rows_per_step
        self._flops_per_token, self._peak_flops, self._num_devices = flops_per_token, peak_flops, num_devices
        self._nonfinite, self._last_checkpoint, self._with = nonfinite, last_checkpoint, tuple(with_hooks)
        self._pending: list[dict] = []
        self._window_step: int | None = None

    def due(self, info: StepInfo) -> bool:
        return super().due(info) or any(hook.due(info) for hook in self._with)

    def after_step(self, info: StepInfo) -> None:
        if self._window_step is None:
            self._window_step = info.step - 1
        self._pending.append(info.metrics)
        super().after_step(info)

    def fire(self, info: StepInfo) -> None:
        fetched = jax.device_get(self._pending)  # Blocks until these steps have run.
        elapsed = time.time() - self._fired_at
        steps = info.step - self._window_step
        scalars = reduce_step_metrics(fetched)
        self._check_nonfinite(fetched)
        scalars["tokens_per_sec"] = steps * self._tokens_per_step / max(elapsed, 1e-9)
        scalars["examples_per_sec"] = steps * self._rows_per_step / max(elapsed, 1e-9)
        eta = (self._num_steps - info.step) * elapsed / max(steps, 1)
        line = self._label + metrics.progress_line(info.step, self._num_steps, scalars, scalars["tokens_per_sec"], eta)
        if self._flops_per_token is not None:
            utilisation = flops.mfu(self._flops_per_token, scalars["tokens_per_sec"], self._peak_flops,
                                    self._num_devices)
            if utilisation is not None:
                scalars["mfu"] = utilisation
                line += f" | MFU {100 * utilisation:.1f}%"
        logging.info(line)
        scalars["step_losses"] = [float(m["loss"]) for m in fetched]
        if self._writer is not None:
            self._writer.write("train", info.step, scalars)
        self._pending, self._window_step = [], info.step

    def _check_nonfinite(self, fetched: list[dict]) -> None:
        bad = [self._window_step + 1 + i for i, m in enumerate(fetched) if m["nonfinite"]]
        if not bad:
            return
        if self._nonfinite == "stop":
            raise NonFiniteError(
                f"non-finite loss or gradient at step(s) {bad[:10]} (their updates were not applied); the last"
                f" checkpoint is step {self._last_checkpoint()}. Lower optim.lr, or set --config.train.nonfinite=skip"
            )
        logging.warning("skipped the update of %d step(s) with a non-finite loss or gradient: %s", len(bad), bad[:10])


def reduce_step_metrics(fetched: Sequence[dict]) -> dict[str, float]:
    """Host copies of several steps' metrics -> the window's figures (see Progress)."""
    head_sums = jax.tree.map(lambda *steps: float(np.sum(steps)), *[m["heads"] for m in fetched])
    scalars = losses.summarize(head_sums)
    scalars["loss"] = float(np.mean([m["loss"] for m in fetched]))
    scalars["grad_norm"] = float(np.mean([m["grad_norm"] for m in fetched]))
    scalars["nonfinite_steps"] = int(np.sum([m["nonfinite"] for m in fetched]))
    scalars["accuracy"] = scalars[f"{next(iter(fetched[0]['heads']))}/accuracy"]
    return scalars


class Profile(Hook):
    """A jax.profiler trace of steps first+1 .. first+count (TensorBoard's profile plugin reads it from
    `directory`). Tracing starts after step `first` (so compilation stays out of it) and stops after
    step first+count, or when the loop ends."""

    def __init__(self, directory: str, first: int, count: int):
        super().__init__(Period())
        self._directory, self._first, self._last = directory, first, first + count
        self._tracing = False

    def due(self, info: StepInfo) -> bool:
        return info.step == self._first or (self._tracing and (info.step >= self._last or info.exit))

    def fire(self, info: StepInfo) -> None:
        jax.block_until_ready(info.state)
        if self._tracing:
            self.close()
            logging.info("profile of steps %d-%d written to %s", self._first + 1, info.step, self._directory)
        elif not info.exit:
            jax.profiler.start_trace(self._directory)
            self._tracing = True

    def close(self) -> None:
        if self._tracing:
            jax.profiler.stop_trace()
            self._tracing = False


class StopRequest:
    """Turns SIGTERM / SIGINT into a decision, taken at a step boundary, to stop after that step.

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


@dataclasses.dataclass(frozen=True)
class Ending:
    """How the loop ended: the last state, its step, and what stopped it early (None: it ran out)."""

    state: Any
    step: int
    stopped_by: str | None


def run(state, step_fn: Callable, next_batch: Callable[[int], Any], hooks: Iterable[Hook], *, start_step: int,
        num_steps: int, stop_after: int = 0, stop: StopRequest | None = None) -> Ending:
    """Runs steps start_step+1 .. num_steps (at most `stop_after` of them when > 0), or until `stop`
    says so; `next_batch(step)` gives the batch of step `step` (1-based), on device.

    Every hook's close() runs when the loop ends, also when a hook or a step raises.
    """
    hooks = tuple(hooks)
    stop_at = num_steps if not stop_after else min(num_steps, start_step + stop_after)
    step, stopping = start_step, False
    for hook in hooks:
        hook.start()
    try:
        while step < stop_at and not stopping:
            state, step_metrics = step_fn(state, next_batch(step + 1))
            step += 1
            stopping = stop is not None and stop.should_stop(step)
            info = StepInfo(step=step, state=state, metrics=step_metrics, first=step == start_step + 1,
                            end=step == num_steps, exit=stopping or step == stop_at, stopping=stopping)
            for hook in hooks:
                hook.after_step(info)
    finally:
        for hook in hooks:
            hook.close()
    return Ending(state, step, stop.signal_name if stopping else None)
