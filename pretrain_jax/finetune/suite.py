"""Downstream suites: every task of GLUE, SuperGLUE or a user's list fine-tuned with several seeds from one
pre-trained workdir, and scored as the benchmark scores them (`pretrain-jax evaluate`).

    pretrain-jax evaluate --suite=glue --config=configs/finetune/classify.py --config.init_from=WORKDIR \
        --workdir=OUT [--print_commands]
    pretrain-jax evaluate --suite=configs/suites/mine.py --config=configs/finetune/classify.py:tiny ...

A suite file defines `get_suite() -> Suite`:

    from pretrain_jax.finetune.suite import Suite, SuiteTask

    def get_suite():
        return Suite("mine", (
            SuiteTask("topic", {"dataset": "files", "train_file": "t.jsonl", "test_file": "v.jsonl"}, seeds=5),
            SuiteTask("sts", {"dataset": "glue/stsb"}, seeds=3),
        ))

Every run is the fine-tuning config (--config and its --config.* overrides), then the task's
overrides, then `seed`, in OUT/<task>/seed<k>. A run is finished when its results.json exists, so
the same command resumes where it stopped; --print_commands prints one `pretrain-jax finetune`
command per unfinished run instead, for a cluster (run evaluate again afterwards to collect).

Writes OUT/results.json, OUT/results.md and OUT/results.png: per task the median of its score over
seeds (the seeds' spread: min, max and standard deviation), and the suite's average of the task
medians, as the GLUE score averages its tasks. A task's score is the benchmark's: accuracy; MRPC and
QQP the mean of accuracy and the positive class's F1; STS-B the mean of Pearson and Spearman; CoLA
Matthews correlation; CB the mean of accuracy and macro-F1. Scores are reported x 100.

Seeds follow ELECTRA, which reports the median of several fine-tuning runs per task: more seeds for
the small tasks (fewer than 10k training examples: CoLA, MRPC, STS-B, RTE, CB, BoolQ), where the
seeds spread most.
"""

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np
from absl import logging

from pretrain_jax import config_files
from pretrain_jax.finetune import classification

SUITE_RESULTS = "results"


def _positive_f1(results: dict) -> float:
    return results["per_class_f1"][results["label_names"][1]] or 0.0


# How a task's score is read from its results.json (all in [0, 1] or [-1, 1]).
SCORES = {
    "score": lambda r: r["score"],  # The task type's own: accuracy, or the mean of Pearson and Spearman.
    "accuracy": lambda r: r["accuracy"],
    "mcc": lambda r: r["mcc"],
    "accuracy_f1": lambda r: (r["accuracy"] + _positive_f1(r)) / 2,
    "accuracy_macro_f1": lambda r: (r["accuracy"] + r["macro_f1"]) / 2,
}


@dataclasses.dataclass(frozen=True)
class SuiteTask:
    name: str  # The task's row, and its directory OUT/<name>.
    overrides: Mapping[str, Any]  # Fine-tuning config keys of this task, e.g. {"dataset": "glue/rte"}.
    seeds: int = 3  # Runs with seeds 0 .. seeds-1.
    score: str = "score"  # A key of SCORES.


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[SuiteTask, ...]


SMALL, LARGE = 10, 3  # Seeds per task: fewer than 10k training examples, or more.
SUITES = {
    "glue": Suite("glue", (
        SuiteTask("cola", {"dataset": "glue/cola"}, SMALL, "mcc"),
        SuiteTask("sst2", {"dataset": "glue/sst2"}, LARGE, "accuracy"),
        SuiteTask("mrpc", {"dataset": "glue/mrpc"}, SMALL, "accuracy_f1"),
        SuiteTask("stsb", {"dataset": "glue/stsb"}, SMALL, "score"),
        SuiteTask("qqp", {"dataset": "glue/qqp"}, LARGE, "accuracy_f1"),
        SuiteTask("mnli", {"dataset": "glue/mnli"}, LARGE, "accuracy"),
        SuiteTask("qnli", {"dataset": "glue/qnli"}, LARGE, "accuracy"),
        SuiteTask("rte", {"dataset": "glue/rte"}, SMALL, "accuracy"),
    )),
    "superglue": Suite("superglue", (
        SuiteTask("boolq", {"dataset": "super_glue/boolq"}, SMALL, "accuracy"),
        SuiteTask("cb", {"dataset": "super_glue/cb"}, SMALL, "accuracy_macro_f1"),
    )),
}


@dataclasses.dataclass(frozen=True)
class SuiteRun:
    task: SuiteTask
    seed: int
    config_file: str  # The fine-tuning config file[:arg].
    overrides: Mapping[str, Any]  # The command line's, the task's, then the seed.

    def workdir(self, root: str) -> str:
        return os.path.join(root, self.task.name, f"seed{self.seed}")

    def config(self):
        return config_files.build_config(self.config_file, self.overrides)

    def finished(self, root: str) -> bool:
        return os.path.exists(os.path.join(self.workdir(root), classification.RESULTS_FILE))

    def finetune_command(self, root: str) -> str:
        return config_files.command_line(["finetune"], self.config_file, self.overrides, self.workdir(root))


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name (glue, superglue), or a suite file's `get_suite()`."""
    if name_or_path in SUITES:
        return SUITES[name_or_path]
    if not name_or_path.endswith(".py"):
        raise ValueError(f"--suite={name_or_path!r}: use one of {sorted(SUITES)} or a suite file (.py)")
    suite = config_files.load_module(name_or_path, "get_suite").get_suite()
    if not isinstance(suite, Suite):
        raise TypeError(f"{name_or_path}: get_suite() returned {type(suite).__name__}, expected a"
                        " finetune.suite.Suite")
    return suite


def expand(suite: Suite, config_file: str, overrides: Mapping[str, Any]) -> list[SuiteRun]:
    """Every (task, seed) run, task by task; checks the suite's names, seeds and scores first."""
    names = [task.name for task in suite.tasks]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"suite {suite.name!r} needs tasks with distinct names; it has {names}")
    for task in suite.tasks:
        if task.seeds < 1 or task.score not in SCORES:
            raise ValueError(f"suite task {task.name!r}: seeds={task.seeds} must be >= 1 and score={task.score!r}"
                             f" one of {sorted(SCORES)}")
    return [SuiteRun(task, seed, config_file, {**overrides, **task.overrides, "seed": seed})
            for task in suite.tasks for seed in range(task.seeds)]


def run_suite(suite: Suite, config_file: str, overrides: Mapping[str, Any], root: str, *,
              print_commands: bool = False, out: TextIO | None = None) -> dict:
    """Fine-tunes (or prints the commands of) every unfinished run, then writes and returns the summary."""
    out = sys.stdout if out is None else out
    runs = expand(suite, config_file, overrides)
    configs = [run.config() for run in runs]  # Every run's config is built before the first run starts.
    for config in configs:
        classification.validate(config)
    pending = [(run, config) for run, config in zip(runs, configs, strict=True) if not run.finished(root)]
    if print_commands:
        for run, _ in pending:
            out.write(run.finetune_command(root) + "\n")
        return summarize(suite, runs, root)
    logging.info("suite %s: %d runs in %s, %d finished, %d to fine-tune", suite.name, len(runs), root,
                 len(runs) - len(pending), len(pending))
    for index, (run, config) in enumerate(pending):
        logging.info("suite run %d/%d: %s seed %d", index + 1, len(pending), run.task.name, run.seed)
        classification.run(config, run.workdir(root))
        summarize(suite, runs, root, chart=False)  # The table so far, after every run.
    return summarize(suite, runs, root)


def summarize(suite: Suite, runs: list[SuiteRun], root: str, *, chart: bool = True) -> dict:
    """Reads the finished runs; writes ROOT/results.{json,md} (and with chart, .png); returns the results.json
    contents."""
    rows = []
    for task in suite.tasks:
        scores = []
        for run in (r for r in runs if r.task is task and r.finished(root)):
            with open(os.path.join(run.workdir(root), classification.RESULTS_FILE)) as f:
                scores.append(100 * SCORES[task.score](json.load(f)))
        row = {"task": task.name, "score": task.score, "seeds": task.seeds, "finished": len(scores),
               "scores": scores}
        if scores:
            row.update(median=float(np.median(scores)), min=float(np.min(scores)), max=float(np.max(scores)),
                       std=float(np.std(scores)))
        rows.append(row)
    complete = all(row["finished"] == row["seeds"] for row in rows)
    medians = [row["median"] for row in rows if "median" in row]
    summary = {"suite": suite.name, "tasks": rows, "complete": complete,
               "average": float(np.mean(medians)) if len(medians) == len(rows) else None}
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, f"{SUITE_RESULTS}.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(root, f"{SUITE_RESULTS}.md"), "w") as f:
        f.write(markdown(summary))
    if medians and chart:
        _bar_chart(summary, os.path.join(root, f"{SUITE_RESULTS}.png"))
    return summary


def markdown(summary: dict) -> str:
    """The suite's table: one row per task (median, spread, seeds), then the average."""
    lines = [f"# {summary['suite']}", "", "| task | score | median | min | max | std | seeds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in summary["tasks"]:
        cells = [f"{row[k]:.1f}" for k in ("median", "min", "max", "std")] if "median" in row else ["-"] * 4
        lines.append(f"| {row['task']} | {row['score']} | {' | '.join(cells)} | {row['finished']}/{row['seeds']} |")
    average = "-" if summary["average"] is None else f"{summary['average']:.1f}"
    lines += ["", f"Average of the task medians (x 100): **{average}**"
              + ("" if summary["complete"] else " (some runs unfinished)"), ""]
    return "\n".join(lines)


def _bar_chart(summary: dict, path: str) -> None:
    """Median per task with the seeds' range as an error bar, and the average as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in summary["tasks"] if "median" in row]
    medians = np.asarray([row["median"] for row in rows])
    spread = np.asarray([[row["median"] - row["min"] for row in rows], [row["max"] - row["median"] for row in rows]])
    figure, axes = plt.subplots(figsize=(1.2 * len(rows) + 2, 3.5))
    axes.bar([row["task"] for row in rows], medians, yerr=spread, capsize=4, color="C0")
    title = summary["suite"]
    if summary["average"] is not None:
        axes.axhline(summary["average"], color="C3", lw=1, ls="--")
        title += f": average {summary['average']:.1f} (dashed)"
    axes.set_ylabel("score x 100\n(median over seeds; bars: min-max)")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(suite_name: str, config_file: str, overrides: Mapping[str, Any], root: str, *,
         print_commands: bool = False) -> dict:
    """The `pretrain-jax evaluate` command: runs the suite, prints its table (not with print_commands)."""
    summary = run_suite(load_suite(suite_name), config_file, overrides, root, print_commands=print_commands)
    if not print_commands:
        print(markdown(summary))
    return summary
