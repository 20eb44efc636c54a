"""Sweep expansion, results tables on fake run dirs, --print_commands, and resuming a sweep (no training)."""

import csv
import json
import math
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from pretrain_jax import config_files
from pretrain_jax.research import results, sweeps
from pretrain_jax.research.sweeps import Sweep, axis, choice

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(REPO, "configs", "bert_mlm.py") + ":tiny"
TINY = config_files.build_config(BASE, {})
LAST_STEP = TINY.train.num_steps  # A run whose last eval is at this step is finished.

OBJECTIVES = (
    choice("mlm", {"objective.name": "bert_mlm", "model.family": "encoder"}),
    choice("clm", {"objective.name": "causal_lm", "model.family": "decoder"}),
)


def make_sweep(**kwargs) -> Sweep:
    settings = dict(config=BASE, fixed={"train.eval_every": 0, "model.d_ff": 64, "model.position_encoding": "auto"},
                    axes=(OBJECTIVES, axis("model.d_model", (32, 64), label="d")), seeds=(0, 1, 2))
    settings.update(kwargs)
    return Sweep(**settings)


def write_eval(workdir: str, step: int, **metrics) -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"split": "train", "step": step, "time": 0.0, "loss": 99.0}) + "\n")
        f.write(json.dumps({"split": "eval", "step": step, "time": 0.0, "eval_batches": 2, **metrics}) + "\n")


def test_expand_is_the_product_with_seeds_fastest():
    runs = sweeps.expand(make_sweep())
    assert len(runs) == 2 * 2 * 3
    assert [r.name for r in runs[:4]] == ["mlm-d32-seed0", "mlm-d32-seed1", "mlm-d32-seed2", "mlm-d64-seed0"]
    assert runs[-1].name == "clm-d64-seed2"
    assert len({r.name for r in runs}) == len(runs)
    assert sorted({r.group for r in runs}) == ["clm-d32", "clm-d64", "mlm-d32", "mlm-d64"]
    assert [r.seed for r in runs if r.group == "clm-d32"] == [0, 1, 2]
    run = runs[-1]
    assert run.overrides == {"train.eval_every": 0, "model.d_ff": 64, "model.position_encoding": "auto",
                             "objective.name": "causal_lm",
                             "model.family": "decoder", "model.d_model": 64, "seed": 2}
    config = run.config()
    assert (config.seed, config.model.d_model, config.model.family, config.objective.name) == (2, 64, "decoder",
                                                                                              "causal_lm")
    # Untouched keys keep the tiny values.
    assert config.train.eval_every == 0 and config.model.num_layers == TINY.model.num_layers
    assert sweeps.varying_keys(runs) == ["objective.name", "model.family", "model.d_model"]


def test_later_overrides_win_and_no_axes_is_one_group():
    sweep = make_sweep(fixed={"model.d_model": 16}, axes=(axis("model.d_model", (48,)),), seeds=(5,))
    (run,) = sweeps.expand(sweep)
    assert run.name == "d_model48-seed5" and run.config().model.d_model == 48
    (base_run,) = sweeps.expand(make_sweep(axes=(), seeds=(0,)))
    assert (base_run.name, base_run.group) == ("base-seed0", "base")


def test_bad_sweeps_fail_before_training():
    with pytest.raises(ValueError, match="not unique"):
        sweeps.expand(make_sweep(axes=((choice("a", {"seed": 1}), choice("a", {"seed": 2})),)))
    with pytest.raises(ValueError, match="label"):
        sweeps.expand(make_sweep(axes=((choice("a b", {}),),)))
    with pytest.raises(ValueError, match="duplicates"):
        sweeps.expand(make_sweep(seeds=(1, 1)))
    with pytest.raises(KeyError, match="d_modle"):
        config_files.build_config(BASE, {"model.d_modle": 3})
    wrong_family = make_sweep(axes=((choice("clm", {"objective.name": "causal_lm"}),),), seeds=(0,))
    with pytest.raises(ValueError, match="clm-seed0.*model.family"):
        sweeps.validate_runs(sweeps.expand(wrong_family))


@pytest.mark.parametrize("path", ["configs/sweeps/objectives_tiny.py", "configs/sweeps/scaling_tiny.py"])
def test_shipped_sweep_files_expand_and_validate(path):
    sweep = sweeps.load_sweep(os.path.join(REPO, path))
    runs = sweeps.expand(sweep)
    sweeps.validate_runs(runs)
    assert len(runs) in (20, 9)


def test_results_aggregate_mean_and_std_over_seeds(tmp_path):
    root = str(tmp_path)
    sweep = make_sweep()
    runs = sweeps.expand(sweep)
    losses = {}
    for i, run in enumerate(runs):
        if run.name == "clm-d64-seed2":
            write_eval(run.workdir(root), 5, loss=1.0)  # an eval before the last step: unfinished
            continue
        if run.group == "mlm-d64":
            continue  # never started
        losses[run.name] = 2.0 + 0.1 * i
        write_eval(run.workdir(root), LAST_STEP, loss=losses[run.name], accuracy=0.5)
    with open(os.path.join(runs[0].workdir(root), "metrics.jsonl"), "a") as f:
        f.write(f'{{"split": "eval", "step": {LAST_STEP}, "lo')  # a line cut short by a kill is skipped
    rows = {row["group"]: row for row in sweeps.write_results(sweep, runs, root)}

    expected = [losses[f"mlm-d32-seed{s}"] for s in range(3)]
    assert rows["mlm-d32"]["runs"] == 3 and rows["mlm-d32"]["seeds"] == "0 1 2"
    assert rows["mlm-d32"]["loss_mean"] == pytest.approx(np.mean(expected))
    assert rows["mlm-d32"]["loss_std"] == pytest.approx(np.std(expected, ddof=1))
    assert rows["clm-d64"]["runs"] == 2 and rows["clm-d64"]["of"] == 3
    assert rows["clm-d64"]["loss_mean"] == pytest.approx(np.mean([losses["clm-d64-seed0"], losses["clm-d64-seed1"]]))
    assert rows["mlm-d64"]["runs"] == 0 and "loss_mean" not in rows["mlm-d64"]
    assert rows["mlm-d32"]["tokens"] == LAST_STEP * TINY.data.batch_size * TINY.data.seq_len
    assert 0 < rows["mlm-d32"]["non_embedding_params"] < rows["mlm-d32"]["params"]
    assert rows["mlm-d32"]["non_embedding_params"] < rows["mlm-d64"]["non_embedding_params"]
    assert "eval_batches_mean" not in rows["mlm-d32"]

    with open(tmp_path / "results.csv") as f:
        table = {row["group"]: row for row in csv.DictReader(f)}
    assert float(table["mlm-d32"]["loss_mean"]) == pytest.approx(np.mean(expected))
    assert table["mlm-d64"]["loss_mean"] == ""
    with open(tmp_path / "runs.csv") as f:
        per_run = list(csv.DictReader(f))
    assert len(per_run) == len(runs) and per_run[0]["name"] == "mlm-d32-seed0"
    markdown = (tmp_path / "results.md").read_text()
    assert "| group | objective.name | model.family | model.d_model | runs |" in markdown
    assert "| mlm-d32 | bert_mlm | encoder | 32 | 3/3 |" in markdown
    assert f"{np.mean(expected):.4f} ± {np.std(expected, ddof=1):.4f}" in markdown


def test_one_finished_seed_has_no_std():
    run = results.RunResult("a-seed0", "a", 0, {}, "", True, 10, 10, 5, 100, {"loss": 3.0})
    (row,) = results.aggregate([run])
    assert row["loss_mean"] == 3.0 and math.isnan(row["loss_std"])


def parse_train_command(command: str, monkeypatch):
    """Parses a printed command with the same flag definitions as `pretrain-jax train`."""
    argv = shlex.split(command)
    assert argv[:2] == ["pretrain-jax", "train"]
    argv = ["pretrain-jax", *argv[2:]]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True)
    flags.DEFINE_string("workdir", None, "", flag_values=flag_values)
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads its overrides from sys.argv
    flag_values(argv)
    return flag_values.config, flag_values.workdir


def test_print_commands_parse_back_to_each_runs_config(tmp_path, monkeypatch, capsys):
    sweep = make_sweep(fixed={"optim.lr": 3e-4, "objective.ul2.noise_densities": (0.1, 0.5), "model.d_ff": 64,
                              "train.loss_weights": "mlm=1, lm=1"})
    runs = sweeps.expand(sweep)
    root = str(tmp_path / "my root")
    write_eval(runs[1].workdir(root), LAST_STEP, loss=2.0)  # finished: no command
    monkeypatch.setattr(sys, "argv", ["pretrain-jax", "sweep"])
    assert sweeps.run_sweep(sweep, root, print_commands=True) == []
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(runs) - 1
    pending = [r for r in runs if r.name != runs[1].name]
    for line, run in zip(lines, pending, strict=True):
        config, workdir = parse_train_command(line, monkeypatch)
        assert workdir == run.workdir(root)
        assert config.to_dict() == run.config().to_dict()
    assert not os.path.exists(os.path.join(root, "results.csv"))


def test_run_sweep_trains_only_unfinished_runs_and_resumes(tmp_path, monkeypatch):
    from pretrain_jax import train

    sweep = make_sweep(axes=(OBJECTIVES,), seeds=(0, 1))
    runs = sweeps.expand(sweep)
    root = str(tmp_path)
    write_eval(runs[0].workdir(root), LAST_STEP, loss=2.0)
    trained, stops = [], ["clm-seed0"]

    def fake_run(config, workdir):
        trained.append(os.path.basename(workdir))
        if trained[-1] in stops:  # as after SIGTERM: a checkpoint, no final eval
            stops.remove(trained[-1])
            write_eval(workdir, 7, loss=9.0)
            return {}
        write_eval(workdir, config.train.num_steps, loss=1.0 + config.seed)
        return {"loss": 1.0 + config.seed}

    monkeypatch.setattr(train, "run", fake_run)
    sweeps.run_sweep(sweep, root)
    assert trained == ["mlm-seed1", "clm-seed0"]  # stopped run: the sweep stops too
    trained.clear()
    rows = {row["group"]: row for row in sweeps.run_sweep(sweep, root)}
    assert trained == ["clm-seed0", "clm-seed1"]
    assert rows["clm"]["loss_mean"] == pytest.approx(1.5) and rows["mlm"]["runs"] == 2
    trained.clear()
    sweeps.run_sweep(sweep, root)
    assert trained == []


def test_sweep_command_prints_commands(tmp_path):
    sweep_file = tmp_path / "one.py"
    sweep_file.write_text(
        "from pretrain_jax.research.sweeps import Sweep, axis\n"
        f"def get_sweep():\n    return Sweep(config={BASE!r}, axes=(axis('model.d_model', (32, 64)),))\n")
    root = str(tmp_path / "root")
    command = [sys.executable, "-m", "pretrain_jax.main", "sweep", f"--sweep={sweep_file}", f"--workdir={root}",
               "--print_commands"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("pretrain-jax train --config=")
    assert lines[1].endswith(shlex.quote("--workdir=" + os.path.join(root, "d_model64-seed0")))


def test_scaling_sweep_with_too_few_runs_warns_instead_of_failing(tmp_path, monkeypatch):
    from pretrain_jax import train

    def fake_run(config, workdir):
        write_eval(workdir, config.train.num_steps, loss=3.0)

    monkeypatch.setattr(train, "run", fake_run)
    sweep = make_sweep(axes=(axis("model.d_model", (32, 64)),), seeds=(0,), scaling=True)
    rows = sweeps.run_sweep(sweep, str(tmp_path))
    assert [row["runs"] for row in rows] == [1, 1]
    assert (tmp_path / "results.md").exists() and not (tmp_path / "scaling.json").exists()


def test_downstream_suite_scores_join_each_runs_row(tmp_path, monkeypatch, capsys):
    """Each finished pre-training run is fine-tuned on the suite from its own workdir; the medians over
    fine-tuning seeds become the run's downstream_* metrics, averaged over pre-training seeds per group."""
    from pretrain_jax import train
    from pretrain_jax.finetune import classification

    def fake_train(config, workdir):
        write_eval(workdir, config.train.num_steps, loss=1.0)

    fine_tuned = []

    def fake_finetune(config, workdir):  # accuracy 0.6 from pre-training seed 0, 0.8 from seed 1, + 0.01 * ft seed
        fine_tuned.append((os.path.basename(config.init_from), config.dataset, config.seed))
        accuracy = (0.6 if config.init_from.endswith("seed0") else 0.8) + 0.01 * config.seed
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump({"accuracy": accuracy, "macro_f1": accuracy, "score": accuracy}, f)
        return {}

    monkeypatch.setattr(train, "run", fake_train)
    monkeypatch.setattr(classification, "run", fake_finetune)
    downstream = sweeps.Downstream("superglue", os.path.join(REPO, "configs", "finetune", "classify.py"),
                                   {"num_steps": 5})
    sweep = make_sweep(axes=(OBJECTIVES[:1],), seeds=(0, 1), downstream=downstream,
                       metrics=("loss", "downstream_average"))
    root = str(tmp_path)
    sweeps.run_sweep(sweep, root, print_commands=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].startswith("pretrain-jax evaluate --suite=superglue --config=")
    assert f"--config.init_from={os.path.join(root, 'mlm-seed0')}" in lines[2]
    (row,) = sweeps.run_sweep(sweep, root)
    # superglue: boolq and cb, 10 fine-tuning seeds each, from both pre-training runs.
    assert len(fine_tuned) == 2 * 2 * 10 and ("mlm-seed1", "super_glue/cb", 9) in fine_tuned
    # Median over fine-tuning seeds 0..9 of acc + 0.01 seed: acc + 0.045, x 100; then the mean over runs.
    assert row["downstream_boolq_mean"] == pytest.approx(100 * (0.7 + 0.045))
    assert row["downstream_average_mean"] == pytest.approx(100 * (0.7 + 0.045))
    assert row["downstream_average_std"] == pytest.approx(100 * np.std([0.6, 0.8], ddof=1))
    with open(os.path.join(root, "results.md")) as f:
        assert "downstream_average" in f.read()
    fine_tuned.clear()
    sweeps.run_sweep(sweep, root)
    assert fine_tuned == []  # Every suite finished: nothing runs again.
