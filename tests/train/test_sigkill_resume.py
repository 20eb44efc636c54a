"""SIGKILL at random moments, restart, and metrics.jsonl holds every step's loss exactly once, equal to
the uninterrupted run's, bit for bit.

`pretrain-jax train` runs as a subprocess on one CPU device with a checkpoint every 3 steps and no
progress line between checkpoints (log_every_secs is huge: each checkpoint closes a window). It is
killed 5 times (seeded choices: a random moment after a random step, so between two progress lines,
or while a checkpoint is being written, i.e. while orbax's temporary directory exists) and
restarted each time with the same command. Steps after the last committed checkpoint are run again;
their records replace those a killed run wrote, never add to them.
A persistent compilation cache keeps each restart to seconds.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_STEPS = 50
KILLS = 5
ARGS = ["--config=configs/bert_mlm.py:tiny", "--config.tokenizer.vocab_size=512", "--config.tokenizer.num_sentinels=4",
        "--config.data.max_documents=300", "--config.data.seq_len=32", "--config.model.max_len=32",
        "--config.model.d_model=32", "--config.model.d_ff=64", "--config.model.num_layers=1",
        "--config.data.batch_size=8", "--config.data.eval_batch_size=8", "--config.mesh.data=1",
        f"--config.train.num_steps={NUM_STEPS}", "--config.train.checkpoint_every=3", "--config.train.eval_every=0",
        "--config.train.eval_steps=1", "--config.train.log_every_secs=1e9", "--config.train.peak_flops_per_device=-1"]
TMP_MARK = ".orbax-checkpoint-tmp"


def train_command(workdir: str) -> list[str]:
    return [sys.executable, "-m", "pretrain_jax.main", "train", f"--workdir={workdir}", *ARGS]


def records(workdir: str, split: str, since: float = 0.0) -> list[dict]:
    """The complete records of `split` in metrics.jsonl written at time `since` or later (a resumed
    run rewrites the file first, without the steps it redoes)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]  # A last line without its newline is still being written.
    return [r for r in map(json.loads, lines) if r["split"] == split and r["time"] >= since]


def losses_by_step(workdir: str) -> dict[int, list[float]]:
    """Every recorded loss of every step, in order: a step run again after a kill has several."""
    losses: dict[int, list[float]] = {}
    for record in records(workdir, "train"):
        first = record["step"] - len(record["step_losses"]) + 1
        for offset, loss in enumerate(record["step_losses"]):
            losses.setdefault(first + offset, []).append(loss)
    return losses


def writing(workdir: str) -> list[str]:
    """Checkpoints being written: orbax's temporary directories (committed ones are renamed to the step)."""
    checkpoints = os.path.join(workdir, "checkpoints")
    return [n for n in os.listdir(checkpoints) if TMP_MARK in n] if os.path.isdir(checkpoints) else []


def kill_when(proc: subprocess.Popen, workdir: str, *, step: int, during_save: bool, delay: float) -> bool:
    """SIGKILLs `proc` once it has recorded `step`: `delay` seconds later, or with `during_save` while a
    checkpoint is being written. Returns whether a checkpoint write was cut short (its temporary
    directory is left)."""
    since = time.time()
    deadline = time.time() + 240
    while True:
        assert proc.poll() is None, "the run ended before it was killed"
        assert time.time() < deadline, "no progress"
        reached = max((r["step"] for r in records(workdir, "train", since)), default=0)
        if reached >= step and (not during_save or writing(workdir)):
            if not during_save:
                time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return bool(writing(workdir))
        time.sleep(0.003)


@pytest.mark.slow
def test_five_sigkills_and_restarts_reproduce_every_step_loss(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    done = subprocess.run(train_command(whole), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {step: values[0] for step, values in losses_by_step(whole).items()}
    assert sorted(expected) == list(range(1, NUM_STEPS + 1))

    os.makedirs(killed)
    shutil.copy(os.path.join(whole, "tokenizer.model"), killed)  # Same tokenizer (training it is deterministic).
    rng = np.random.default_rng(20261123)
    # One kill in each fifth of the run, so the restarts make progress; two of them mid-checkpoint.
    edges = np.linspace(3, NUM_STEPS - 3, KILLS + 1).astype(int)
    kill_steps = [int(rng.integers(low, high)) for low, high in zip(edges[:-1], edges[1:], strict=True)]
    during_save = rng.permutation([True, True, False, False, False])
    delays = rng.uniform(0.0, 1.5, KILLS)  # into the steps after a checkpoint, before the next one
    logs, interrupted_saves = [], 0
    for kill in range(KILLS + 1):
        log_path = str(tmp_path / f"run_{kill}.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(train_command(killed), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if kill < KILLS:
                interrupted_saves += kill_when(proc, killed, step=kill_steps[kill], during_save=bool(during_save[kill]),
                                               delay=float(delays[kill]))
            else:
                assert proc.wait(timeout=300) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        with open(log_path) as f:
            logs.append(f.read())

    resumed_from = [int(line.split("resuming from step ")[1].split()[0])
                    for text in logs for line in text.splitlines() if "resuming from step " in line]
    assert len({s for s in resumed_from if s > 0}) >= 3, resumed_from  # Restarts really resumed (from 3+ steps)...
    assert interrupted_saves >= 1  # ...once at least from a kill in the middle of writing a checkpoint.
    ran_twice = [step for text in logs for step in _steps_run(text)]
    assert len(ran_twice) > len(set(ran_twice))  # Some steps ran in two processes, and yet...
    got = losses_by_step(killed)
    assert sorted(got) == list(range(1, NUM_STEPS + 1))
    for step, values in got.items():
        assert values == [expected[step]], (step, values, expected[step])  # ...one loss each, bit for bit.
    assert records(killed, "eval")[-1]["loss"] == records(whole, "eval")[-1]["loss"]


def _steps_run(log: str) -> list[int]:
    """The steps a process ran: from the step it resumed after (0 for a new run) to the last one it
    reported (its progress lines, `step N/50`)."""
    start = 0
    for line in log.splitlines():
        if "resuming from step " in line:
            start = int(line.split("resuming from step ")[1].split()[0])
    reported = [int(line.split("step ")[1].split("/")[0]) for line in log.splitlines() if f"/{NUM_STEPS} (" in line]
    return list(range(start + 1, max(reported, default=start) + 1))

