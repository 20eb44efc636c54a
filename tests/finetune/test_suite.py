"""`pretrain-jax evaluate`: the toy suite (one local-file task per task type, 3 seeds) from the tiny
pre-trained encoder, its table against the runs' own results, resume, and the commands for a cluster."""

import io
import json
import os
import shlex

import numpy as np
import pytest
from cli_in_process import run_main

from pretrain_jax.finetune import suite

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_SUITE = os.path.join(REPO, "configs", "suites", "toy.py")
GLUE_SCORE = {"keyword": "accuracy", "same_word": "accuracy"}  # distance: the mean of Pearson and Spearman.


def evaluate_args(init_from: str, root: str, *extra: str) -> list[str]:
    return ["pretrain-jax", "evaluate", f"--suite={TOY_SUITE}", f"--config={REPO}/configs/finetune/classify.py:tiny",
            f"--config.init_from={init_from}", "--config.num_steps=12", "--config.seq_len=16",
            "--config.batch_size=16", "--config.eval_batch_size=32", "--config.log_every_steps=12",
            f"--workdir={root}", *extra]


def run_score(root: str, task: str, seed: int) -> float:
    """The task's benchmark score x 100, read from the run's own results.json."""
    with open(os.path.join(root, task, f"seed{seed}", "results.json")) as f:
        results = json.load(f)
    if task == "distance":
        return 100 * (results["pearson"] + results["spearman"]) / 2
    return 100 * results[GLUE_SCORE[task]]


def test_toy_suite_runs_every_task_type_with_seeds_and_resumes(encoder_workdir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOY_TASKS_DIR", str(tmp_path / "toy_tasks"))
    root = str(tmp_path / "toy")
    run_main(evaluate_args(encoder_workdir, root), monkeypatch)
    printed = capsys.readouterr().out
    with open(os.path.join(root, "results.json")) as f:
        summary = json.load(f)
    assert summary["suite"] == "toy" and summary["complete"]
    assert [row["task"] for row in summary["tasks"]] == ["keyword", "same_word", "distance"]
    for row in summary["tasks"]:
        scores = [run_score(root, row["task"], seed) for seed in range(3)]
        assert row["finished"] == row["seeds"] == 3 and row["scores"] == pytest.approx(scores)
        assert row["median"] == pytest.approx(np.median(scores))
        assert (row["min"], row["max"]) == pytest.approx((min(scores), max(scores)))
    assert summary["average"] == pytest.approx(np.mean([row["median"] for row in summary["tasks"]]))
    with open(os.path.join(root, "results.md")) as f:
        table = f.read()
    assert table in printed and f"**{summary['average']:.1f}**" in table and "| distance | score |" in table
    with open(os.path.join(root, "results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # Every seed is its own run: another seed, another subset order and head, so other scores somewhere.
    assert any(len(set(row["scores"])) > 1 for row in summary["tasks"])

    # Resume: one run lost; --print_commands names exactly it, and its command finishes it.
    os.remove(os.path.join(root, "same_word", "seed1", "results.json"))
    kept = os.path.getmtime(os.path.join(root, "keyword", "seed0", "results.json"))
    run_main(evaluate_args(encoder_workdir, root, "--print_commands"), monkeypatch)
    commands = capsys.readouterr().out.strip().splitlines()
    assert len(commands) == 1 and commands[0].startswith("pretrain-jax finetune --config=")
    assert f"--workdir={os.path.join(root, 'same_word', 'seed1')}" in commands[0]
    assert "--config.seed=1" in commands[0] and "--config.text_b_keys=second" in commands[0]
    run_main(shlex.split(commands[0]), monkeypatch)
    capsys.readouterr()
    run_main(evaluate_args(encoder_workdir, root), monkeypatch)  # Collects; trains nothing.
    with open(os.path.join(root, "results.json")) as f:
        assert json.load(f) == summary
    assert os.path.getmtime(os.path.join(root, "keyword", "seed0", "results.json")) == kept


def test_suite_definitions_are_checked_before_any_run(tmp_path):
    assert [t.name for t in suite.load_suite("glue").tasks] == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli",
                                                                  "qnli", "rte"]
    assert {t.name: t.seeds for t in suite.load_suite("superglue").tasks} == {"boolq": 10, "cb": 10}
    with pytest.raises(ValueError, match=r"--suite='glu': use one of \['glue', 'superglue'\] or a suite file"):
        suite.load_suite("glu")
    bad = suite.Suite("bad", (suite.SuiteTask("a", {}), suite.SuiteTask("a", {})))
    with pytest.raises(ValueError, match=r"distinct names; it has \['a', 'a'\]"):
        suite.expand(bad, "x.py", {})
    bad = suite.Suite("bad", (suite.SuiteTask("a", {}, score="bleu"),))
    with pytest.raises(ValueError, match=r"score='bleu' one of"):
        suite.expand(bad, "x.py", {})
    with pytest.raises(KeyError, match="no config key 'datasett'"):
        suite.run_suite(suite.Suite("typo", (suite.SuiteTask("a", {"datasett": "x"}),)),
                        f"{REPO}/configs/finetune/classify.py", {}, str(tmp_path), out=io.StringIO())
    assert not os.listdir(tmp_path)
