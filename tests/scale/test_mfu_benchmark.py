"""benchmarks/mfu.py runs end to end on the CPU at the tiny size (the GPU figures need a lent GPU)."""

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mfu_benchmark_runs_on_cpu_at_the_tiny_size(tmp_path):
    out = tmp_path / "mfu.json"
    command = [sys.executable, os.path.join(REPO, "benchmarks", "mfu.py"), "--tiny", "--repeats", "1",
               "--min-seconds", "0.2", "--json", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["backend"] == "cpu"
    assert [r["config"] for r in report["results"]] == ["configs.gpt_clm:tiny", "configs.t5_span:tiny"]
    for r in report["results"]:
        assert r["tokens_per_sec"] > 0 and math.isfinite(r["final_loss"]) and r["params"] > 0
        assert r["model_flops_per_sec"] == pytest.approx(r["flops_per_token"] * r["tokens_per_sec"])
        assert r["peak_flops"] > 0 and r["mfu"] == pytest.approx(r["model_flops_per_sec"] / r["peak_flops"])
        assert 0 < r["mfu"] < 1  # The CPU's peak is a measured float32 matmul.
        assert 0 < r["objective_share"] < 1
    assert "| model | params |" in result.stdout and "MFU" in result.stdout
