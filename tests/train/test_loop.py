"""The one loop (pretrain_jax.loop) with a host-only step: hooks fire at their periods, the progress
record covers every step once, a stop ends the loop after its step's hooks, non-finite steps follow
the policy, and every hook is closed however the loop ends. No jit: each test runs in milliseconds."""

import json
import os

import numpy as np
import pytest

from pretrain_jax import loop, metrics
from pretrain_jax.losses import HeadSums


def fake_step(losses: dict[int, float]):
    """A step whose state is the step count; step s has loss losses.get(s, s) and head "h" sums
    (loss 2 * loss, correct 1, weight 2): accuracy 0.5 a step."""

    def step_fn(state, batch):
        assert batch == state + 1  # next_batch(step) is asked for the step about to run.
        step = state + 1
        loss = losses.get(step, float(step))
        return step, {"loss": np.float32(loss), "grad_norm": np.float32(1.0), "nonfinite": int(not np.isfinite(loss)),
                      "heads": {"h": HeadSums(np.float32(2 * loss), np.float32(1.0), np.float32(2.0))}}

    return step_fn


class Recorder(loop.Hook):
    def __init__(self, period):
        super().__init__(period)
        self.fired, self.closed = [], 0

    def fire(self, info):
        self.fired.append(info.step)

    def close(self):
        self.closed += 1


class StopAt:
    def __init__(self, step):
        self.step, self.signal_name = step, "SIGTERM"

    def should_stop(self, step):
        return step >= self.step


def run(hooks, *, start_step=0, num_steps=10, losses=None, **kwargs):
    return loop.run(start_step, fake_step(losses or {}), lambda step: step, hooks, start_step=start_step,
                    num_steps=num_steps, **kwargs)


def test_hooks_fire_at_their_periods():
    every3, end, first, exit_ = (Recorder(loop.Period(steps=3)), Recorder(loop.Period(end=True)),
                                 Recorder(loop.Period(first=True)), Recorder(loop.Period(exit=True)))
    ending = run([every3, end, first, exit_])
    assert (ending.state, ending.step, ending.stopped_by) == (10, 10, None)
    assert every3.fired == [3, 6, 9] and end.fired == [10] and first.fired == [1] and exit_.fired == [10]
    every_step, never = Recorder(loop.Period(secs=0)), Recorder(loop.Period())  # secs=0: after every step.
    run([every_step, never], num_steps=3)
    assert every_step.fired == [1, 2, 3] and never.fired == []
    # Resumed at step 4, at most 4 steps this invocation: steps 5-8 run; the run's end (10) is not reached.
    every3, end, first, exit_ = (Recorder(loop.Period(steps=3)), Recorder(loop.Period(end=True)),
                                 Recorder(loop.Period(first=True)), Recorder(loop.Period(exit=True)))
    ending = run([every3, end, first, exit_], start_step=4, stop_after=4)
    assert ending.step == 8 and every3.fired == [6] and end.fired == [] and first.fired == [5] and exit_.fired == [8]
    assert all(h.closed == 1 for h in (every3, end, first, exit_))


def test_a_stop_request_ends_the_loop_after_its_steps_hooks():
    checkpoint_steps = []
    checkpoint = loop.Checkpoint(loop.Period(steps=5, exit=True), lambda step, state: checkpoint_steps.append(step))
    ending = run([checkpoint], stop=StopAt(3))
    assert (ending.step, ending.stopped_by) == (3, "SIGTERM") and checkpoint_steps == [3]


def test_progress_records_every_step_once_and_fires_with_each_checkpoint(tmp_path):
    writer = metrics.MetricsWriter(str(tmp_path))
    checkpoint = loop.Checkpoint(loop.Period(steps=4, exit=True), lambda step, state: None)
    progress = loop.Progress(loop.Period(first=True), writer, num_steps=10, tokens_per_step=64, rows_per_step=8,
                             with_hooks=[checkpoint])
    run([progress, checkpoint], losses={2: 3.0})
    writer.close()
    with open(os.path.join(tmp_path, metrics.METRICS_FILE)) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [1, 4, 8, 10]  # First step, then every checkpoint (4, 8, exit 10).
    # Step s's loss is s, except step 2's (3.0): the window 2-4 has losses [3, 3, 4], mean 10/3.
    assert [loss for r in records for loss in r["step_losses"]] == [1, 3, 3, 4, 5, 6, 7, 8, 9, 10]
    window = records[1]
    assert window["loss"] == pytest.approx(10 / 3) and window["h/loss"] == pytest.approx(2 * 10 / 6)
    assert window["accuracy"] == window["h/accuracy"] == pytest.approx(0.5)  # 3 correct of weight 6.
    assert window["nonfinite_steps"] == 0 and window["tokens_per_sec"] == pytest.approx(8 * window["examples_per_sec"])
    assert os.listdir(os.path.join(tmp_path, "tensorboard", "train"))


def test_nonfinite_steps_stop_the_run_or_are_counted(tmp_path):
    progress = loop.Progress(loop.Period(steps=5), None, num_steps=10, tokens_per_step=1, rows_per_step=1,
                             last_checkpoint=lambda: 0)
    closed = Recorder(loop.Period())
    with pytest.raises(loop.NonFiniteError, match=r"step\(s\) \[3\].*the last checkpoint is step 0"):
        run([progress, closed], losses={3: float("nan")})
    assert closed.closed == 1  # Hooks are closed when a hook raises too.
    writer = metrics.MetricsWriter(str(tmp_path))
    progress = loop.Progress(loop.Period(steps=5), writer, num_steps=10, tokens_per_step=1, rows_per_step=1,
                             nonfinite="skip")
    ending = run([progress], losses={3: float("nan")})
    writer.close()
    with open(os.path.join(tmp_path, metrics.METRICS_FILE)) as f:
        records = [json.loads(line) for line in f]
    assert ending.step == 10 and [r["nonfinite_steps"] for r in records] == [1, 0]


def test_profile_traces_the_steps_it_names(monkeypatch):
    calls = []
    monkeypatch.setattr(loop.jax.profiler, "start_trace", lambda directory: calls.append(("start", directory)))
    monkeypatch.setattr(loop.jax.profiler, "stop_trace", lambda: calls.append(("stop",)))
    steps_seen = Recorder(loop.Period(steps=1))
    profile = loop.Profile("/tmp/trace", first=2, count=3)
    run([steps_seen, profile])
    assert calls == [("start", "/tmp/trace"), ("stop",)]
    # Stopped early by a stop request while tracing: the trace still ends.
    calls.clear()
    run([loop.Profile("/tmp/trace", first=2, count=30)], stop=StopAt(4))
    assert calls == [("start", "/tmp/trace"), ("stop",)]
