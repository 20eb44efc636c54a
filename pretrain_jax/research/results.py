"""Results of runs read back from their workdirs, aggregated over seeds, written as CSV and markdown.

A run's workdir holds config.json (its full config) and metrics.jsonl (train and eval records, see
pretrain_jax/metrics.py); its result is the last eval record, and it is finished when that record
is at config.train.num_steps. Alongside the eval metrics every run gets its size:

    params                all parameters of the model
    non_embedding_params  params minus the model's `embeddings` module (token, position and
                          token-type tables and their norm) and minus every parameter outside the
                          transformer blocks with a vocabulary-sized axis (output biases, untied
                          output kernels): Kaplan et al.'s N, which predicts loss across depths and
                          widths better than the total does at small sizes. Heads, final norms,
                          relative-position biases and the embed_dim -> d_model projection count.
    tokens                train.num_steps * data.batch_size * data.seq_len (D; padding included)
    compute               6 * non_embedding_params * tokens (C, in FLOPs)
"""

import csv
import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

METRICS_FILE = "metrics.jsonl"
DOWNSTREAM_DIR = "downstream"  # A sweep's fine-tuning suite of a run (research/sweeps.py Downstream).
_NOT_METRICS = ("split", "step", "time", "eval_batches")


def read_records(workdir: str, split: str) -> list[dict]:
    """The records of one split in WORKDIR/metrics.jsonl, in file order ([] if there is no file).

    A line cut short (a run killed while writing) is skipped.
    """
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("split") == split:
                records.append(record)
    return records


def final_eval(workdir: str) -> dict | None:
    """The eval record at the highest step (the latest one written, if a resumed run repeated it)."""
    records = read_records(workdir, "eval")
    if not records:
        return None
    top = max(r["step"] for r in records)
    return [r for r in records if r["step"] == top][-1]


def is_finished(workdir: str, config: ml_collections.ConfigDict) -> bool:
    record = final_eval(workdir)
    return record is not None and record["step"] >= config.train.num_steps


def tokens(config: ml_collections.ConfigDict) -> int:
    """Training tokens D = steps * batch * seq_len."""
    return int(config.train.num_steps) * int(config.data.batch_size) * int(config.data.seq_len)


def param_counts(model_config: ml_collections.ConfigDict, vocab_size: int) -> tuple[int, int]:
    """(all parameters, non-embedding parameters) of the model the config builds; allocates nothing."""
    return _param_counts(model_config.to_json(), int(vocab_size))


@functools.lru_cache(maxsize=64)
def _param_counts(model_json: str, vocab_size: int) -> tuple[int, int]:
    import jax
    from flax import nnx

    from pretrain_jax import models

    model_config = ml_collections.ConfigDict(json.loads(model_json))
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: models.build_model(model_config, vocab_size, rngs=nnx.Rngs(0)))
    total = embedding = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(abstract, nnx.Param))[0]:
        names = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        size = math.prod(leaf.shape)
        total += size
        in_blocks = any("blocks" in n for n in names)
        if names[0] == "embeddings" or (not in_blocks and vocab_size in leaf.shape):
            embedding += size
    return total, total - embedding


@dataclasses.dataclass
class RunResult:
    name: str
    group: str
    seed: int
    overrides: dict[str, Any]
    workdir: str
    finished: bool
    step: int | None  # Step of the final eval record (None before the first eval).
    params: int
    non_embedding_params: int
    tokens: int
    metrics: dict[str, float]  # Final eval metrics ({} before the first eval).

    @property
    def compute(self) -> float:
        return 6.0 * self.non_embedding_params * self.tokens

    def row(self) -> dict[str, Any]:
        """A flat CSV row: identity, overrides (dotted keys), size, then metrics."""
        return {
            "name": self.name, "group": self.group, "seed": self.seed, "finished": self.finished,
            "step": self.step, **{k: v for k, v in self.overrides.items() if k != "seed"},
            "params": self.params, "non_embedding_params": self.non_embedding_params, "tokens": self.tokens,
            "compute": self.compute, **self.metrics,
        }


def run_result(name: str, group: str, seed: int, overrides: Mapping[str, Any], workdir: str,
               config: ml_collections.ConfigDict) -> RunResult:
    """Reads one run's result; `config` is the run's config (what its config.json holds once it ran)."""
    record = final_eval(workdir)
    metrics = {} if record is None else {
        k: float(v) for k, v in record.items() if k not in _NOT_METRICS and isinstance(v, int | float)
    }
    metrics.update(downstream_scores(workdir))
    params, non_embedding = param_counts(config.model, config.tokenizer.vocab_size)
    return RunResult(
        name, group, seed, dict(overrides), workdir,
        finished=record is not None and record["step"] >= config.train.num_steps,
        step=None if record is None else int(record["step"]),
        params=params, non_embedding_params=non_embedding, tokens=tokens(config), metrics=metrics,
    )


def downstream_summary(workdir: str) -> dict | None:
    """The suite summary (finetune/suite.py results.json) of WORKDIR/downstream, or None."""
    path = os.path.join(workdir, DOWNSTREAM_DIR, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def downstream_finished(workdir: str) -> bool:
    summary = downstream_summary(workdir)
    return summary is not None and summary["complete"]


def downstream_scores(workdir: str) -> dict[str, float]:
    """`downstream_<task>` (median over seeds) and `downstream_average` of a complete suite, x 100; else {}."""
    summary = downstream_summary(workdir)
    if summary is None or not summary["complete"]:
        return {}
    scores = {f"downstream_{row['task']}": row["median"] for row in summary["tasks"]}
    return {**scores, "downstream_average": summary["average"]}


def read_workdir(workdir: str) -> RunResult | None:
    """The result of any trained workdir, from its saved config; None if it has no config.json."""
    from pretrain_jax import experiment

    path = os.path.join(workdir, experiment.CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    name = os.path.basename(os.path.normpath(workdir))
    return run_result(name, name, int(config.seed), {}, workdir, config)


def aggregate(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per group (in first-seen order): mean and sample standard deviation over finished seeds.

    `<metric>_std` is NaN for a group with fewer than two finished runs; every metric is averaged
    over the finished runs that report it.
    """
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    rows = []
    for group, members in groups.items():
        done = [r for r in members if r.finished]
        first = members[0]
        row = {
            "group": group, "runs": len(done), "of": len(members), "seeds": " ".join(str(r.seed) for r in done),
            **{k: v for k, v in first.overrides.items() if k != "seed"},
            "params": first.params, "non_embedding_params": first.non_embedding_params, "tokens": first.tokens,
            "compute": first.compute,
        }
        names = []
        for r in done:
            names += [m for m in r.metrics if m not in names]
        for metric in names:
            values = np.array([r.metrics[metric] for r in done if metric in r.metrics], np.float64)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    return rows


def write_csv(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """Rows (dicts) to CSV; the columns are every key in first-seen order; NaN and missing cells are empty."""
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row.get(k)) for k in columns})


def markdown_table(group_rows: Sequence[Mapping[str, Any]], key_columns: Sequence[str],
                   metrics: Sequence[str]) -> str:
    """Groups as a markdown table: keys that vary, finished runs, size, and `mean ± std` per metric."""
    shown = [m for m in metrics if any(f"{m}_mean" in r for r in group_rows)]
    header = ["group", *key_columns, "runs", "non-emb. params", "tokens", *shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in group_rows:
        cells = [row["group"], *(str(row.get(k, "")) for k in key_columns), f"{row['runs']}/{row['of']}",
                 _si(row["non_embedding_params"]), _si(row["tokens"])]
        for metric in shown:
            mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
            if mean is None:
                cells.append("-")
            elif std is None or math.isnan(std):
                cells.append(f"{mean:.4f}")
            else:
                cells.append(f"{mean:.4f} ± {std:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, tuple):
        return repr(value)
    return value


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:g}"
