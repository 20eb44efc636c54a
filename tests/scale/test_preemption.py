"""Stopping on a signal: one process on its own flag; several processes at one agreed step.

The decision logic is tested with the multi-host calls replaced; then two real processes (jax.distributed
on this machine, one CPU device each) are trained and only one of them gets SIGTERM: both must save
the same step and exit cleanly.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tiny_configs import tiny_bert_config

from pretrain_jax import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiprocess_worker.py")


@pytest.fixture
def preemption_service():
    """Sets jax_enable_preemption_service for one test (the value a multi-process run starts with)."""
    before = jax.config.jax_enable_preemption_service

    def set_to(value: bool) -> None:
        jax.config.update("jax_enable_preemption_service", value)

    yield set_to
    jax.config.update("jax_enable_preemption_service", before)


def test_one_process_stops_at_the_next_boundary_after_its_own_signal():
    before = signal.getsignal(signal.SIGTERM)
    with loop.StopRequest() as stop:
        assert not stop.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.should_stop(2) and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_processes_stop_only_at_the_preemption_sync_point(monkeypatch, preemption_service):
    """With JAX's preemption service, SIGTERM is left to it, a Ctrl-C is passed on to it, and only the
    sync point (the same step on every process) stops the run, never this process's flag alone."""
    preemption_service(True)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    asked, forwarded = [], []
    sync_step = 7

    def reached(step):
        asked.append(step)
        return step == sync_step

    monkeypatch.setattr(loop.multihost_utils, "reached_preemption_sync_point", reached)
    monkeypatch.setattr(loop.os, "kill", lambda pid, sig: forwarded.append((pid, sig)))
    sigterm_before = signal.getsignal(signal.SIGTERM)
    with loop.StopRequest() as stop:
        assert signal.getsignal(signal.SIGTERM) is sigterm_before  # Not taken from the service.
        assert signal.getsignal(signal.SIGINT) == stop._handle
        assert not stop.should_stop(1)
        stop._handle(signal.SIGINT, None)  # Ctrl-C on this process only...
        assert forwarded == [(os.getpid(), signal.SIGTERM)]  # ...becomes a notice to every process...
        assert [stop.should_stop(step) for step in range(2, 9)] == [False] * 5 + [True, False]
    assert asked == list(range(1, 9))  # ...and the run stops where they all agree.


def test_processes_without_the_service_stop_when_any_flag_is_set(monkeypatch, preemption_service):
    preemption_service(False)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    others = {"flag": 0}
    gathered = []

    def allgather(local_flag):
        gathered.append(int(local_flag))
        return np.array([int(local_flag), others["flag"]])

    monkeypatch.setattr(loop.multihost_utils, "process_allgather", allgather)
    with loop.StopRequest() as stop:
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert not stop.should_stop(1)
        others["flag"] = 1  # Another process got SIGTERM.
        assert stop.should_stop(2) and stop.signal_name == "a signal to another process"
    with loop.StopRequest() as stop:
        stop._handle(signal.SIGTERM, None)
        others["flag"] = 0
        assert stop.should_stop(3) and stop.signal_name == "SIGTERM"
    assert gathered == [0, 0, 1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step(tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    config = tiny_bert_config(**{
        "train.num_steps": 100_000, "train.checkpoint_every": 100_000, "train.peak_flops_per_device": -1.0,
        "model.num_layers": 1, "mesh.data": 2, "mesh.coordinator_address": f"127.0.0.1:{_free_port()}",
        "mesh.num_processes": 2})
    config_path = str(tmp_path / "launch_config.json")
    with open(config_path, "w") as f:
        f.write(config.to_json())
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}
    logs = [str(tmp_path / f"process_{index}.log") for index in range(2)]
    procs = []
    for index, log in enumerate(logs):
        with open(log, "w") as out:
            procs.append(subprocess.Popen([sys.executable, WORKER, config_path, workdir], cwd=REPO,
                                          env={**env, "JAX_PROCESS_ID": str(index)}, stdout=out,
                                          stderr=subprocess.STDOUT))

    def output(index: int) -> str:
        with open(logs[index]) as f:
            return f.read()

    try:
        deadline = time.time() + 240
        while "step 3/" not in output(1):  # Training is under way on both (every step is collective).
            assert time.time() < deadline and all(p.poll() is None for p in procs), output(0)[-3000:] + output(1)
            time.sleep(0.1)
        procs[1].send_signal(signal.SIGTERM)  # The preemption notice reaches one host only.
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    texts = [output(0), output(1)]
    assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    saved = [[line.split("saved step ")[1].split()[0] for line in t.splitlines() if "saved step " in line]
             for t in texts]
    assert saved[0] == saved[1] and len(saved[0]) == 1, saved  # Both stopped, at one step.
    step = int(saved[0][0])
    assert step > 3
    checkpoints = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
    assert checkpoints == [step]
