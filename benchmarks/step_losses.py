"""Per-step train losses of tiny runs, one per model family, one fine-tuning run and the BiLSTM baseline:
a refactor's check.

    python benchmarks/step_losses.py --out /tmp/before.json          # on the old code
    python benchmarks/step_losses.py --compare /tmp/before.json      # on the new code: prints the differences

Each run is configs/<name>.py:tiny shrunk to 2 layers of width 32, rows of 64 tokens, batch 8, on the
built-in corpus with one shared 512-id tokenizer, for --steps steps (the losses come from the run's
metrics.jsonl, the same numbers its progress line prints). The fine-tuning run classifies whether a text
holds a keyword, starting from the bert_mlm run's checkpoint; the BiLSTM baseline learns the same task.
`--microbatches 2` runs every pre-training config with gradient accumulation.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs.finetune import classify  # noqa: E402
from pretrain_jax import train  # noqa: E402
from pretrain_jax.baselines import bilstm  # noqa: E402
from pretrain_jax.data import corpus  # noqa: E402
from pretrain_jax.data import tokenizer as tokenizer_lib  # noqa: E402
from pretrain_jax.finetune import classification  # noqa: E402

# One config per family: encoder (+ NSP), decoder, encoder_decoder, two_stream, ELECTRA.
CONFIGS = ("bert_mlm", "bert_wwm_nsp", "gpt_clm", "t5_span", "xlnet_plm", "electra")
VOCAB_SIZE, NUM_SENTINELS, SEQ_LEN = 512, 16, 64


def tiny(name: str, tokenizer_path: str, steps: int, microbatches: int):
    c = importlib.import_module(f"configs.{name}").get_config("tiny")
    c.tokenizer.path, c.tokenizer.vocab_size, c.tokenizer.num_sentinels = tokenizer_path, VOCAB_SIZE, NUM_SENTINELS
    c.data.max_documents, c.data.seq_len, c.data.batch_size, c.data.eval_batch_size = 300, SEQ_LEN, 8, 8
    c.model.max_len = SEQ_LEN
    c.model.num_layers, c.model.d_model, c.model.num_heads, c.model.d_ff = 2, 32, 4, 64
    if c.model.embed_dim:
        c.model.embed_dim = 16
    section = c.objective[c.objective.name]
    for masking in (section, section.get("mlm")):
        if masking is not None and "max_predictions" in masking:
            masking.max_predictions = 10
    if "targets_length" in section:
        section.targets_length = 0
    if "num_predict" in section:
        section.num_predict = 10
    c.train.num_steps, c.train.eval_every, c.train.eval_steps, c.train.checkpoint_every = steps, 0, 1, steps
    c.train.log_every_secs, c.train.microbatches = 0.0, microbatches
    return c


def step_losses(workdir: str) -> list[float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [loss for r in records if r["split"] == "train" for loss in r.get("step_losses", [r["loss"]])]


def keyword_task(directory: str) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    words = ("the", "list", "value", "object", "string", "file", "returns", "number", "method", "class")
    paths = []
    for split, n in (("train", 64), ("test", 32)):
        path = os.path.join(directory, f"{split}.jsonl")
        with open(path, "w") as f:
            for i in range(n):
                text = list(rng.choice(words, 6))
                if i % 2:
                    text[rng.integers(6)] = "function"
                f.write(json.dumps({"text": " ".join(text), "label": ["absent", "present"][i % 2]}) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def run_all(steps: int, microbatches: int) -> dict[str, list[float]]:
    root = tempfile.mkdtemp(prefix="step_losses_")
    base = tiny("bert_mlm", "", steps, 1)  # Trains the shared tokenizer into root once.
    tokenizer_lib.load_or_train(base.tokenizer, root, corpus.load_documents(base.data, base.data.train_split, root))
    tokenizer_path = os.path.join(root, tokenizer_lib.MODEL_FILENAME)
    results = {}
    for name in CONFIGS:
        workdir = os.path.join(root, name)
        train.run(tiny(name, tokenizer_path, steps, microbatches), workdir)
        results[name] = step_losses(workdir)
        print(name, results[name], flush=True)
    c = classify.get_config("tiny")
    c.init_from, c.dataset = os.path.join(root, "bert_mlm"), "files"
    c.train_file, c.test_file = keyword_task(root)
    c.seq_len, c.batch_size, c.eval_batch_size, c.num_steps, c.dropout, c.log_every_steps = 16, 16, 32, steps, 0.0, 1
    workdir = os.path.join(root, "finetune")
    classification.run(c, workdir)
    results["finetune"] = step_losses(workdir)
    print("finetune", results["finetune"], flush=True)
    workdir = os.path.join(root, "bilstm")
    train_bilstm(tokenizer_lib.load_or_train(base.tokenizer, root, None), c.train_file, workdir)
    results["bilstm"] = step_losses(workdir)
    print("bilstm", results["bilstm"], flush=True)
    return results


def train_bilstm(tokenizer, train_file: str, workdir: str) -> None:
    """The BiLSTM baseline on the keyword task: random 16-wide embeddings, one epoch of 4 batches of 16."""
    with open(train_file) as f:
        examples = [(r["text"], ["absent", "present"].index(r["label"])) for r in map(json.loads, f)]
    config = bilstm.default_config()
    config.hidden_size, config.max_length, config.num_epochs, config.batch_size = 16, 16, 1, 16
    embeddings = np.random.default_rng(0).standard_normal((tokenizer.vocab_size, 16)).astype(np.float32)
    bilstm.train(examples, tokenizer, embeddings, config, 2, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--microbatches", type=int, default=1)
    parser.add_argument("--out", help="write the losses here (JSON)")
    parser.add_argument("--compare", help="a JSON file from --out: print each run's largest relative difference")
    args = parser.parse_args()
    results = run_all(args.steps, args.microbatches)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            before = json.load(f)
        for name, losses in results.items():
            old, new = np.asarray(before[name], np.float64), np.asarray(losses, np.float64)
            same = old.shape == new.shape and np.array_equal(old, new)
            worst = float(np.max(np.abs(new - old) / np.abs(old))) if old.shape == new.shape else float("nan")
            print(f"{name:14s} {'bit-identical' if same else 'differs'}  max relative difference {worst:.3g}")


if __name__ == "__main__":
    main()
