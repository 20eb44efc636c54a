"""Ablation sweeps: a sweep file expands to runs, each trained in its own workdir, then tabulated.

A sweep file (configs/sweeps/*.py) defines `get_sweep() -> Sweep`:

    from pretrain_jax.research.sweeps import Sweep, axis, choice

    def get_sweep():
        return Sweep(
            config="configs/bert_mlm.py:tiny",                 # base config file[:arg], as for `train`
            fixed={"train.eval_every": 0},                     # overrides applied to every run
            axes=(                                             # the product of the axes' choices
                (choice("mlm", {"objective.name": "bert_mlm"}),
                 choice("clm", {"objective.name": "causal_lm", "model.family": "decoder"})),
                axis("train.num_steps", (100, 200), label="steps"),
            ),
            seeds=(0, 1),                                      # each run repeated per seed (config.seed)
        )

expands to 2 x 2 x 2 = 8 runs named `mlm-steps100-seed0`, ..., `clm-steps200-seed1`, each in
ROOT/<name>; the group of a run is its name without the seed (`clm-steps200`). Overrides apply in
order fixed, axes (first to last), seed; a later one wins. Every run's config is built and validated
before the first run starts. The trainer writes each run's full config to ROOT/<name>/config.json,
so each run can be repeated from it alone. `Sweep(..., scaling=True)` also fits scaling laws to the
finished runs (research/scaling_report.py); `Sweep(..., downstream=Downstream("glue"))` fine-tunes a
suite from every finished run (finetune/suite.py), and its scores join the run's metrics.

    pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=/tmp/objectives
    pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=/tmp/objectives --print_commands

The first trains every unfinished run in this process, one after another (a stopped run resumes
from its checkpoint), then writes ROOT/results.csv and ROOT/results.md (mean and standard deviation
over seeds per group) and ROOT/runs.csv (one row per run). The second prints one `pretrain-jax train`
command per unfinished run, for a cluster, to be run from the directory this command was run from;
run the sweep command again afterwards to collect the table. A run is finished when its
metrics.jsonl holds an eval record at config.train.num_steps.
"""

import dataclasses
import importlib.util
import itertools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import ml_collections
from absl import logging

from pretrain_jax import config_files
from pretrain_jax.research import results

_LABEL = re.compile(r"^[A-Za-z0-9_.+=-]+$")


@dataclasses.dataclass(frozen=True)
class Choice:
    """One value of an axis: a short label for run names and the config overrides it stands for."""

    label: str
    overrides: Mapping[str, Any]


def choice(label: str, overrides: Mapping[str, Any]) -> Choice:
    """A choice setting several keys at once, e.g. an objective and the model family it needs."""
    return Choice(label, dict(overrides))


def axis(key: str, values: Sequence[Any], *, label: str | None = None) -> tuple[Choice, ...]:
    """Choices for one config key: axis("model.d_model", (64, 128), label="d") -> d64, d128."""
    prefix = key.rsplit(".", 1)[-1] if label is None else label
    return tuple(Choice(f"{prefix}{_label_value(v)}", {key: v}) for v in values)


@dataclasses.dataclass(frozen=True)
class Downstream:
    """A fine-tuning suite run on every finished run of a sweep (finetune/suite.py), in ROOT/<run>/downstream.

    Its per-task medians and average join the run's metrics as `downstream_<task>` and
    `downstream_average` (x 100), so an ablation row carries its downstream scores; add them to
    Sweep.metrics to show them in results.md.
    """

    suite: str  # glue, superglue, or a suite file.
    config: str = "configs/finetune/classify.py"  # The fine-tuning config file[:arg].
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # init_from is set to the run.


@dataclasses.dataclass(frozen=True)
class Sweep:
    config: str  # Base config file[:arg], relative to the directory the sweep is run from.
    axes: Sequence[Sequence[Choice]] = ()  # Their product gives the runs (before seeds).
    seeds: Sequence[int] = (0,)  # Each run is repeated with config.seed set to each of these.
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # Overrides for every run.
    metrics: Sequence[str] = ("loss", "accuracy")  # Final eval metrics shown in results.md.
    scaling: bool = False  # Also fit scaling laws to the finished runs (research/scaling_report.py).
    downstream: Downstream | None = None  # Also fine-tune a suite from every finished run.


@dataclasses.dataclass(frozen=True)
class Run:
    name: str  # Unique; its workdir is ROOT/<name>.
    group: str  # The name without the seed: runs of one group differ only in config.seed.
    seed: int
    config_file: str  # The sweep's base config file[:arg].
    overrides: dict[str, Any]  # Dotted config key -> value, in the order they apply; includes "seed".

    def config(self) -> ml_collections.ConfigDict:
        """The run's full config: the base config file with the overrides, locked as `train` gets it."""
        return config_files.build_config(self.config_file, self.overrides)

    def workdir(self, root: str) -> str:
        return os.path.join(root, self.name)

    def train_command(self, root: str) -> str:
        """The equivalent `pretrain-jax train` command line (shell-quoted)."""
        return config_files.command_line(["train"], self.config_file, self.overrides, self.workdir(root))


def load_sweep(path: str) -> Sweep:
    """Imports a sweep file and returns its `get_sweep()`."""
    sweep = config_files.load_module(path, "get_sweep").get_sweep()
    if not isinstance(sweep, Sweep):
        raise TypeError(f"{path}: get_sweep() returned {type(sweep).__name__}, expected a research.sweeps.Sweep")
    return sweep


def expand(sweep: Sweep) -> list[Run]:
    """All runs of a sweep, in product order with the seed varying fastest."""
    if not sweep.seeds:
        raise ValueError("Sweep.seeds is empty: give at least one seed")
    if len(set(sweep.seeds)) != len(sweep.seeds):
        raise ValueError(f"Sweep.seeds={tuple(sweep.seeds)} has duplicates")
    for axis_choices in sweep.axes:
        if not axis_choices:
            raise ValueError("a sweep axis has no choices")
        for c in axis_choices:
            if not isinstance(c, Choice):
                raise TypeError(f"axis entries must be Choice (use choice() or axis()), got {c!r}")
            if not _LABEL.match(c.label):
                raise ValueError(f"choice label {c.label!r} may only hold letters, digits and _ . + = -")
    runs = []
    for combination in itertools.product(*sweep.axes):
        group = "-".join(c.label for c in combination) or "base"
        overrides: dict[str, Any] = dict(sweep.fixed)
        for c in combination:
            overrides.update(c.overrides)
        for seed in sweep.seeds:
            run_overrides = {**overrides, "seed": int(seed)}
            runs.append(Run(f"{group}-seed{seed}", group, int(seed), sweep.config, run_overrides))
    names = [r.name for r in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"sweep run names are not unique: {duplicates[:3]}; give the choices distinct labels")
    return runs


def validate_runs(runs: Sequence[Run]) -> None:
    """Builds and validates every run's config, so a bad run fails before any training starts."""
    from pretrain_jax import config_validation

    for run in runs:
        try:
            config_validation.validate(run.config())
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"sweep run {run.name}: {e}") from e


def run_sweep(sweep: Sweep, root: str, *, print_commands: bool = False, out: TextIO | None = None) -> list[dict]:
    """Trains (or, with print_commands, prints commands for) the unfinished runs; returns the group rows.

    Training stops early, without starting the next run, when a run is stopped by a signal; the
    same call continues it. The results table is rewritten after every run.
    """
    out = sys.stdout if out is None else out
    runs = expand(sweep)
    validate_runs(runs)
    pending = [r for r in runs if not results.is_finished(r.workdir(root), r.config())]
    downstream_pending = [r for r in runs if sweep.downstream and not results.downstream_finished(r.workdir(root))]
    if print_commands:
        for run in pending:
            out.write(run.train_command(root) + "\n")
        for run in downstream_pending:  # After the run's training: evaluate reads its checkpoint.
            out.write(_evaluate_command(sweep.downstream, run.workdir(root)) + "\n")
        logging.info("%d of %d runs finished; printed %d commands", len(runs) - len(pending), len(runs),
                     len(pending) + len(downstream_pending))
        return []
    logging.info("sweep of %d runs in %s: %d finished, %d to train", len(runs), root, len(runs) - len(pending),
                 len(pending))
    from pretrain_jax import train

    stopped = False
    for index, run in enumerate(pending):
        logging.info("sweep run %d/%d: %s", index + 1, len(pending), run.name)
        config = run.config()
        train.run(config, run.workdir(root))
        if not results.is_finished(run.workdir(root), config):
            logging.warning("run %s stopped before its last step; run the sweep command again to continue", run.name)
            stopped = True
            break
        if index + 1 < len(pending):  # The table after the last run is written below.
            write_results(sweep, runs, root)
    for run in [] if stopped else downstream_pending:  # A stopped sweep starts nothing new.
        if results.is_finished(run.workdir(root), run.config()):
            _run_downstream(sweep.downstream, run.workdir(root))
    group_rows = write_results(sweep, runs, root)
    if sweep.scaling:
        _scaling_report(root)
    return group_rows


def _downstream_overrides(downstream: Downstream, workdir: str) -> dict[str, Any]:
    return {**downstream.overrides, "init_from": workdir}


def _run_downstream(downstream: Downstream, workdir: str) -> None:
    from pretrain_jax.finetune import suite

    logging.info("downstream suite %s from %s", downstream.suite, workdir)
    suite.run_suite(suite.load_suite(downstream.suite), downstream.config, _downstream_overrides(downstream, workdir),
                    os.path.join(workdir, results.DOWNSTREAM_DIR))


def _evaluate_command(downstream: Downstream, workdir: str) -> str:
    return config_files.command_line(["evaluate", f"--suite={downstream.suite}"], downstream.config,
                                     _downstream_overrides(downstream, workdir),
                                     os.path.join(workdir, results.DOWNSTREAM_DIR))


def write_results(sweep: Sweep, runs: Sequence[Run], root: str) -> list[dict]:
    """Collects the finished runs of `runs` under root into ROOT/results.{csv,md} and ROOT/runs.csv."""
    run_results = [
        results.run_result(r.name, r.group, r.seed, r.overrides, r.workdir(root), r.config()) for r in runs
    ]
    group_rows = results.aggregate(run_results)
    os.makedirs(root, exist_ok=True)
    results.write_csv([r.row() for r in run_results], os.path.join(root, "runs.csv"))
    results.write_csv(group_rows, os.path.join(root, "results.csv"))
    with open(os.path.join(root, "results.md"), "w") as f:
        f.write(results.markdown_table(group_rows, varying_keys(runs), sweep.metrics))
    logging.info("results of %d finished runs in %s", sum(r.finished for r in run_results),
                 os.path.join(root, "results.md"))
    return group_rows


def varying_keys(runs: Sequence[Run]) -> list[str]:
    """Override keys (besides the seed) whose value differs between runs: the table's key columns."""
    keys = []
    for run in runs:
        keys += [k for k in run.overrides if k != "seed" and k not in keys]
    return [k for k in keys if len({repr(r.overrides.get(k)) for r in runs}) > 1]


def _scaling_report(root: str) -> None:
    from pretrain_jax.research import scaling_report

    plots = importlib.util.find_spec("matplotlib") is not None
    if not plots:
        logging.warning("matplotlib is not installed: the scaling report has no plots (pip install matplotlib)")
    try:
        scaling_report.report(root, plots=plots)
    except ValueError as e:  # Too few finished runs to fit, so far.
        logging.warning("no scaling fit yet: %s", e)
        return
    logging.info("scaling fits in %s", os.path.join(root, "scaling.md"))


def main(sweep_path: str, root: str, *, print_commands: bool = False) -> None:
    """The `pretrain-jax sweep` command."""
    group_rows = run_sweep(load_sweep(sweep_path), root, print_commands=print_commands)
    if group_rows:
        with open(os.path.join(root, "results.md")) as f:
            print(f.read())


def _label_value(value: Any) -> str:
    """0.001 -> "0.001", 1e-05 -> "1e-05", (3.0, 8.0) -> "3.0_8.0", "a b" -> "ab"."""
    if isinstance(value, tuple):
        return "_".join(_label_value(v) for v in value)
    text = repr(value) if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9_.+=-]", "", text)
