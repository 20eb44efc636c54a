"""Data efficiency (issue 7): test accuracy against the number of labelled examples, for three models.

    pretrain-jax train --config=configs/bert_mlm.py:tiny --workdir=workdirs/bert_tiny
    python benchmarks/data_efficiency.py --pretrained=workdirs/bert_tiny --out=workdirs/data_efficiency
    python benchmarks/data_efficiency.py --pretrained=workdirs/bert_tiny --out=/tmp/de_quick --quick  # smoke run

Task: the `fortunes` topic task (pretrain_jax/data/fortunes.py: quotations filed under 8 topics, about
2670 train / 670 test; the Debian package `fortunes` is installed with apt-get if missing), built in
OUT/fortunes_task. For each label count N (labelled training examples in all, a stratified subset
drawn by the seed: `finetune.datasets.stratified_subset`, the same N examples for the three models)
and each seed, three models:

    pretrained       the encoder of --pretrained, fine-tuned (configs/finetune/classify.py, init="pretrained")
    scratch          the same architecture and tokenizer from random weights (init="scratch"), same recipe
    skipgram_bilstm  skip-gram vectors trained ONCE on the pre-training corpus with the pre-training tokenizer
                     (configs/skipgram_bilstm.py), frozen, under a BiLSTM trained from scratch

Every model takes the same number of optimizer steps on its N examples, max(--min-steps, --epochs x
N / --batch-size) (default max(400, 20 N / 16)): with a few dozen labels a fixed number of epochs
would be a few steps, too few for any model to fit them (few-sample BERT fine-tuning also needs many
more steps than the usual 3 epochs: Mosbach et al. 2021, Zhang et al. 2021). Fine-tuning: AdamW at
--lr (1e-3, configs/finetune/classify.py:tiny's rate) with 10% warm-up and linear decay, --pooling
(default: BERT's pooler on [CLS]), dropout 0.1, weight decay 0.01, batch 16, rows of min(128, the
model's max_len) tokens. The rate and step counts were chosen on a 2-layer tiny encoder at N=640,
one seed: at 1e-4 both transformer arms stayed at the majority class for 400 steps, at 5e-4 they
still under-fitted the 640 examples after 400 steps (train accuracy 0.57-0.67). The BiLSTM keeps
configs/skipgram_bilstm.py's settings (Adam at 2e-3, 128 units, dropout 0.3) with the same batch
size, and enough epochs for the same steps.
Scores: accuracy and macro-F1 on the whole test split, by the final weights (nothing is selected on
it). About 14k fine-tuning steps, 7k BiLSTM steps and one skip-gram run in all.

OUT holds
    results.json        the settings and one row per (model, N, seed); a rerun skips the rows already in it,
                        so an interrupted run continues where it stopped (other settings: an error)
    results.md          mean ± std over seeds per model and N (accuracy, then macro-F1)
    data_efficiency.png accuracy against N (log scale), error bars one std over seeds
    runs/<model>_n<N>_seed<S>/  fine-tuning workdirs (config.json, metrics.jsonl, results.json)
    skipgram/           the skip-gram embeddings and their settings (trained once, reused)
    compilation_cache/  compiled programs, reused across runs
--quick: N in {40, 160}, seed 0, a few dozen steps, the `tiny` skip-gram: minutes on a CPU, a check that
everything runs, not a measurement.
"""

import argparse
import json
import math
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # The repository root.
from configs import skipgram_bilstm  # noqa: E402
from configs.finetune import classify  # noqa: E402
from pretrain_jax import experiment, finetune  # noqa: E402
from pretrain_jax.baselines import bilstm, pipeline  # noqa: E402
from pretrain_jax.data import corpus, fortunes  # noqa: E402
from pretrain_jax.data import tokenizer as tokenizer_lib  # noqa: E402
from pretrain_jax.finetune import classification, datasets  # noqa: E402

MODELS = {"pretrained": "pre-trained encoder", "scratch": "encoder from scratch",
          "skipgram_bilstm": "skip-gram + BiLSTM"}
RESULTS_JSON, RESULTS_MD, PLOT_PNG = "results.json", "results.md", "data_efficiency.png"
DEFAULTS = {"counts": "40,80,160,320,640", "seeds": "0,1,2", "epochs": 20.0, "min_steps": 400}
QUICK = {"counts": "40,160", "seeds": "0", "epochs": 1.0, "min_steps": 20}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", required=True, help="pre-trained workdir (config.json, tokenizer.model, "
                        "checkpoints/), e.g. from `pretrain-jax train --config=configs/bert_mlm.py:tiny`")
    parser.add_argument("--out", default="workdirs/data_efficiency", help="output directory (resumable)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 counts, 1 seed, few steps, tiny skip-gram")
    parser.add_argument("--counts", help=f"comma-separated label counts N (default {DEFAULTS['counts']})")
    parser.add_argument("--seeds", help=f"comma-separated seeds (default {DEFAULTS['seeds']})")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--epochs", type=float, help=f"passes over the N examples (default {DEFAULTS['epochs']})")
    parser.add_argument("--min-steps", type=int, help=f"fewest optimizer steps per run (default "
                        f"{DEFAULTS['min_steps']})")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per step (a multiple of the devices)")
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning peak learning rate (AdamW)")
    parser.add_argument("--pooling", default="auto", help="the transformers' pooling (configs/finetune/classify.py): "
                        "auto (an encoder's [CLS] + pooler) or mean (the average of every token's state)")
    parser.add_argument("--fortunes-dir", default=fortunes.FORTUNES_DIR, help="directory of the fortune files")
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)  # Paths in the saved settings must not depend on the working directory.
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.counts = [int(n) for n in str(args.counts).split(",") if n]
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s]
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    return args


def finetune_config(args, task: fortunes.FortunesTask, pretrain_config):
    c = classify.get_config()
    c.init_from = os.path.abspath(args.pretrained)
    c.dataset, c.train_file, c.test_file = "files", task.train_path, task.test_path
    c.labels = ",".join(task.label_names)
    c.seq_len = min(128, pretrain_config.model.max_len)
    c.batch_size, c.eval_batch_size = args.batch_size, 64
    c.epochs, c.min_steps = args.epochs, args.min_steps
    c.dropout = 0.1
    c.optim.lr = args.lr
    c.pooling = args.pooling
    c.log_every_steps = 100
    return c


def baseline_config(args, pretrain_config):
    """configs/skipgram_bilstm.py (`tiny` with --quick) on the pre-training corpus and tokenizer."""
    c = skipgram_bilstm.get_config("tiny" if args.quick else None)
    pretrain_config = pretrain_config.copy_and_resolve_references()
    c.data, c.tokenizer = pretrain_config.data, pretrain_config.tokenizer
    c.tokenizer.path = os.path.join(os.path.abspath(args.pretrained), tokenizer_lib.MODEL_FILENAME)
    c.baseline.bilstm.batch_size = args.batch_size
    return c


def settings(args, pretrain_config, finetune_cfg, baseline_cfg) -> dict:
    """Everything a row's result depends on besides (model, N, seed): rows of other settings never mix."""
    return {"pretrained": os.path.abspath(args.pretrained), "pretrain_step": latest_step(args.pretrained),
            "pretrain_objective": pretrain_config.objective.name,
            "quick": args.quick, "fortunes_dir": args.fortunes_dir, "epochs": args.epochs,
            "min_steps": args.min_steps, "batch_size": args.batch_size,
            "finetune": json.loads(finetune_cfg.to_json()), "baseline": json.loads(baseline_cfg.baseline.to_json())}


def latest_step(workdir: str) -> int | None:
    """The newest checkpoint step of a pre-training workdir (None: no checkpoint)."""
    directory = os.path.join(workdir, "checkpoints")
    steps = [int(name) for name in os.listdir(directory) if name.isdigit()] if os.path.isdir(directory) else []
    return max(steps, default=None)


def load_rows(path: str, expected_settings: dict) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if saved["settings"] != expected_settings:
        changed = sorted(k for k in expected_settings if saved["settings"].get(k) != expected_settings[k])
        raise SystemExit(f"{path} holds rows of other settings ({', '.join(changed)}); use another --out")
    return saved["rows"]


def save_rows(path: str, run_settings: dict, rows: list[dict]) -> None:
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump({"settings": run_settings, "rows": rows}, f, indent=1)
    os.replace(tmp_path, path)  # A crash mid-write never loses the rows already saved.


class SkipgramBaseline:
    """Skip-gram vectors, trained on first use and then reused; a BiLSTM per (N, seed)."""

    def __init__(self, config, pretrained_workdir: str, out_dir: str):
        self.config, self.pretrained_workdir, self.out_dir = config, pretrained_workdir, out_dir
        self.tokenizer = self.embeddings = None

    def load(self):
        if self.embeddings is None:
            print(f"skip-gram embeddings: loading them from {self.out_dir}, or training them there (once)", flush=True)
            start = time.time()
            os.makedirs(self.out_dir, exist_ok=True)
            self.tokenizer = tokenizer_lib.load_or_train(self.config.tokenizer, self.out_dir, None)
            documents = corpus.load_documents(self.config.data, self.config.data.train_split, self.pretrained_workdir)
            self.embeddings = pipeline.load_or_train_embeddings(documents, self.tokenizer,
                                                                self.config.baseline.skipgram, self.out_dir)
            print(f"skip-gram embeddings {self.embeddings.shape} ready in {time.time() - start:.0f} s "
                  f"({os.path.join(self.out_dir, pipeline.EMBEDDINGS_FILENAME)})", flush=True)

    def run(self, data: datasets.Dataset, count: int, seed: int, steps: int) -> dict:
        self.load()
        indices = datasets.stratified_subset(data.train.labels, count, seed)  # What finetune.run draws.
        train = [(data.train.texts[i], int(data.train.labels[i])) for i in indices]
        test = list(zip(data.test.texts, data.test.labels.tolist(), strict=True))
        config = self.config.baseline.bilstm.copy_and_resolve_references()
        config.seed = seed
        steps_per_epoch = math.ceil(len(train) / config.batch_size)
        config.num_epochs = math.ceil(steps / steps_per_epoch)
        results = bilstm.train_and_evaluate(train, test, self.tokenizer, self.embeddings, config, data.label_names)
        results["steps"] = config.num_epochs * steps_per_epoch
        return results


def summary(rows: list[dict], metric: str) -> dict:
    """(model, N) -> (mean, std, number of seeds) of `metric`; std is the sample std (0 with one seed)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["model"], row["label_count"]), []).append(row[metric])
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for key, v in groups.items()}


def markdown(rows: list[dict], run_settings: dict, task: fortunes.FortunesTask, majority: float) -> str:
    models = [m for m in MODELS if any(row["model"] == m for row in rows)]
    counts = sorted({row["label_count"] for row in rows})
    lines = [f"Pre-trained workdir `{run_settings['pretrained']}` ({run_settings['pretrain_objective']}); fortunes "
             f"task: {len(task.label_names)} topics, {task.num_train} train / {task.num_test} test examples; "
             f"majority-class accuracy {majority:.3f}. Mean ± std over seeds (number of seeds in brackets)."]
    for metric in ("accuracy", "macro_f1"):
        stats = summary(rows, metric)
        lines += ["", f"| {metric} by labelled examples | " + " | ".join(MODELS[m] for m in models) + " |",
                  "|---" * (len(models) + 1) + "|"]
        for count in counts:
            cells = [f"{stats[m, count][0]:.3f} ± {stats[m, count][1]:.3f} ({stats[m, count][2]})"
                     if (m, count) in stats else "" for m in models]
            lines.append(f"| {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], majority: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summary(rows, "accuracy")
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for model, name in MODELS.items():
        counts = sorted(n for m, n in stats if m == model)
        if counts:
            axes.errorbar(counts, [stats[model, n][0] for n in counts], yerr=[stats[model, n][1] for n in counts],
                          marker="o", capsize=4, label=name)
    axes.axhline(majority, color="gray", linestyle="--", linewidth=1, label="majority class")
    counts = sorted({row["label_count"] for row in rows})
    axes.set_xscale("log")
    axes.set_xticks(counts, [str(n) for n in counts])
    axes.minorticks_off()
    axes.set_ylim(0, 1)
    axes.set_xlabel("labelled training examples")
    axes.set_ylabel("test accuracy")
    axes.set_title("fortunes topic classification: data efficiency")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    # The pre-trained and from-scratch runs of one N compile the same programs: a persistent compilation cache,
    # switched on before the first compile, loads them the second time (and on a rerun).
    jax.config.update("jax_compilation_cache_dir", os.path.join(args.out, "compilation_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    pretrain_config = experiment.load_saved_config(args.pretrained)
    task = fortunes.build(os.path.join(args.out, "fortunes_task"), directory=args.fortunes_dir)
    finetune_cfg = finetune_config(args, task, pretrain_config)
    baseline_cfg = baseline_config(args, pretrain_config)
    run_settings = settings(args, pretrain_config, finetune_cfg, baseline_cfg)
    results_path = os.path.join(args.out, RESULTS_JSON)
    rows = load_rows(results_path, run_settings)
    data = datasets.load_dataset(finetune_cfg)
    majority = float(np.bincount(data.test.labels).max() / len(data.test))
    baseline = SkipgramBaseline(baseline_cfg, os.path.abspath(args.pretrained), os.path.join(args.out, "skipgram"))

    done = {(row["model"], row["label_count"], row["seed"]) for row in rows}
    todo = [(count, seed, model) for count in args.counts for seed in args.seeds for model in args.models
            if (model, count, seed) not in done]
    print(f"fortunes task: {len(data.train)} train / {len(data.test)} test, {data.num_classes} topics; "
          f"{len(todo)} runs to do, {len(done)} already in {results_path}", flush=True)
    for index, (count, seed, model) in enumerate(todo, 1):
        start = time.time()
        steps = classification.num_train_steps(finetune_cfg, min(count, len(data.train)))  # As finetune.run's.
        if model == "skipgram_bilstm":
            results = baseline.run(data, count, seed, steps)
        else:
            config = finetune_cfg.copy_and_resolve_references()
            config.init, config.max_train_examples, config.seed = model, count, seed
            results = finetune.run(config, os.path.join(args.out, "runs", f"{model}_n{count}_seed{seed}"))
        row = {"model": model, "label_count": count, "seed": seed, "seconds": time.time() - start,
               **{k: results[k] for k in ("accuracy", "macro_f1", "num_train_examples", "steps", "train_seconds",
                                          "majority_baseline_accuracy")}}
        rows.append(row)
        save_rows(results_path, run_settings, rows)
        print(f"[{index}/{len(todo)}] {MODELS[model]:22s} N={count:<5d} seed={seed}: accuracy {row['accuracy']:.4f}, "
              f"macro-F1 {row['macro_f1']:.4f} ({row['steps']} steps, {row['seconds']:.0f} s)", flush=True)

    table = markdown(rows, run_settings, task, majority)
    with open(os.path.join(args.out, RESULTS_MD), "w", encoding="utf-8") as f:
        f.write(table)
    plot(rows, majority, os.path.join(args.out, PLOT_PNG))
    print(table)
    print(f"wrote {results_path}, {os.path.join(args.out, RESULTS_MD)}, {os.path.join(args.out, PLOT_PNG)}")


if __name__ == "__main__":
    main()
