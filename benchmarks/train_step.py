"""Train-step throughput on the CPU: our masked-LM and causal-LM steps next to transformers' models.

    python benchmarks/train_step.py --setup-peers        # once: creates benchmarks/.venv_peers_train_step
    python benchmarks/train_step.py --json /tmp/train_step.json

Model: 4 layers, width 256, 4 heads, MLP 1024, vocabulary 8192, rows of 128 tokens, batch 32,
float32, dropout 0.1 (configs/base.py's rate) in every model. Ours is the trainer's own step,
built the way `pretrain-jax train` builds it (`Experiment.for_shapes` + `jit_train_step`:
objective inside the step, clipped AdamW from configs/base.py, donated state) for
  masked_lm: objective bert_mlm (15%, 80/10/10, 20 predictions per row) on the encoder (BERT);
  causal_lm: objective causal_lm on the decoder (GPT-2: pre-LN, gelu_tanh, tied head).
Input: synthetic packed rows (random ordinary ids, 1-4 documents per row, cycled over 4 batches).
Peers run afterwards in their own virtual environment (benchmarks/peers/train_step_peers.py).

tokens/s: median of every timed run (each at least --min-seconds, after warm-up): --repeats runs per
round, --rounds rounds alternating ours and the peers, so a change of load hits both sides. GFLOP/s:
model FLOPs per token (pretrain_jax/flops.py: 6 x matmul parameters + attention + output layer,
the masked-LM head and the encoder's last block counted at the predicted slots only) x tokens/s,
the same count for a peer as for our step of the same task; next to it, a jitted 2048 x 2048
float32 matmul measured in the same run.
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import common  # noqa: E402

from configs import base  # noqa: E402
from pretrain_jax import flops  # noqa: E402
from pretrain_jax.batch import PackedBatch  # noqa: E402
from pretrain_jax.experiment import Experiment  # noqa: E402

VENV_DIR = os.path.join(common.BENCHMARKS_DIR, ".venv_peers_train_step")
PEER_INSTALL_STEPS = [["-r", os.path.join(common.PEERS_DIR, "train_step_requirements.txt")]]
TASKS = {"masked_lm": ("bert_mlm", "encoder"), "causal_lm": ("causal_lm", "decoder")}
NUM_BATCHES = 4
MATMUL_SIZE = 2048


def step_config(objective: str, family: str, args):
    c = base.get_config()
    c.objective.name, c.model.family = objective, family
    c.model.num_layers, c.model.d_model, c.model.num_heads, c.model.d_ff = args.layers, args.width, args.heads, args.mlp
    c.model.max_len = args.seq_len
    c.data.seq_len, c.data.batch_size, c.data.eval_batch_size = args.seq_len, args.batch, args.batch
    c.tokenizer.vocab_size = args.vocab
    return c


def synthetic_rows(specials, batch: int, seq_len: int, seed: int) -> PackedBatch:
    """Random ordinary ids packed as 1-4 documents per row, each ending with EOS; no padding."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(specials.first_normal_id, specials.normal_id_end, (batch, seq_len), dtype=np.int32)
    segment_ids = np.zeros((batch, seq_len), np.int32)
    positions = np.zeros((batch, seq_len), np.int32)
    sentence_ids = np.zeros((batch, seq_len), np.int32)
    for r in range(batch):
        cuts = np.sort(rng.choice(np.arange(8, seq_len - 8), rng.integers(0, 4), replace=False))
        for s, (start, end) in enumerate(zip([0, *cuts], [*cuts, seq_len], strict=True), start=1):
            segment_ids[r, start:end] = s
            positions[r, start:end] = np.arange(end - start)
            sentence_ids[r, start:end] = np.arange(end - start) // 24
            tokens[r, end - 1] = specials.eos
    word_starts = rng.random((batch, seq_len)) < 0.7
    return PackedBatch(tokens, segment_ids, positions, sentence_ids, word_starts)


def prepare_ours(task: str, args) -> tuple:
    """(step, facts): step() runs one jitted train step of `task` on the next of NUM_BATCHES batches."""
    objective, family = TASKS[task]
    config = step_config(objective, family, args)
    experiment = Experiment.for_shapes(config, devices=jax.devices()[:1])
    step_fn = experiment.jit_train_step(loss_weights={})
    batches = [jax.device_put(synthetic_rows(experiment.specials, args.batch, args.seq_len, seed))
               for seed in range(NUM_BATCHES)]
    holder = {"state": experiment.init_state(), "i": 0}

    def step():
        holder["state"], metrics = step_fn(holder["state"], batches[holder["i"] % NUM_BATCHES])
        holder["i"] += 1
        return jax.block_until_ready(metrics["loss"])

    facts = {"objective": objective, "family": family,
             "params": int(sum(np.prod(p.shape) for p in jax.tree.leaves(holder["state"]["params"]))),
             "flops_per_token": flops.train_flops_per_token(
                 experiment.model_spec(), experiment.model_batch_shapes(), args.seq_len)}
    return step, facts


def matmul_gflops(repeats: int) -> dict:
    """GFLOP/s of a jitted float32 (2048 x 2048) @ (2048 x 2048), median of `repeats` runs."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((MATMUL_SIZE, MATMUL_SIZE)), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    rate = common.measure(lambda: matmul(x).block_until_ready(), 2 * MATMUL_SIZE**3 / 1e9, repeats=repeats)
    return {"gflops": rate["median"], **rate}


def peer_config(args, specials, optim) -> dict:
    return {"layers": args.layers, "d_model": args.width, "heads": args.heads, "d_ff": args.mlp,
            "seq_len": args.seq_len, "batch": args.batch, "vocab_size": args.vocab, "dropout": 0.1,
            "lr": optim.lr, "b1": optim.b1, "b2": optim.b2, "eps": optim.eps, "weight_decay": optim.weight_decay,
            "first_normal_id": specials.first_normal_id, "normal_id_end": specials.normal_id_end,
            "specials": {name: getattr(specials, name) for name in ("pad", "eos", "unk", "bos", "mask", "cls", "sep")},
            "min_seconds": args.min_seconds}


def table(report: dict) -> str:
    matmul = report["matmul"]["gflops"]
    lines = [f"jitted {MATMUL_SIZE}x{MATMUL_SIZE} float32 matmul: {matmul:,.1f} GFLOP/s (median)", "",
             "| task | implementation | tokens/s (median) | runs min–max | ours / this | model GFLOP/s | % of matmul |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for task, ours in report["ours"].items():
        per_token = ours["flops_per_token"]
        rows = [(f"pretrain_jax `{ours['objective']}` step ({ours['family']})", ours)]
        rows += [(peer["peer"], peer) for peer in report["peers"].values() if peer["task"] == task]
        for title, entry in rows:
            if "error" in entry:
                lines.append(f"| {task} | {title} | failed: {entry['error'][:120]} | — | — | — | — |")
                continue
            rate = entry["tokens_per_s"]
            gflops = per_token * rate / 1e9
            lines.append(f"| {task} | {title} | {rate:,.0f} | {entry['min']:,.0f}–{entry['max']:,.0f} |"
                         f" {ours['tokens_per_s'] / rate:.2f}x |"
                         f" {gflops:,.1f} | {100 * gflops / matmul:.0f}% |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup-peers", action="store_true", help="create the peer venv and exit")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--mlp", type=int, default=1024)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="shortest timed run")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of ours and the peers (rates pooled)")
    parser.add_argument("--peers", default="", help="comma-separated peer names (default: all); 'none' to skip")
    parser.add_argument("--json", default="", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if args.setup_peers:
        common.setup_venv(VENV_DIR, PEER_INSTALL_STEPS, {})
        return

    report = {"machine": {**common.machine(), "jax": jax.__version__}, "git": common.git_state(),
              "command": " ".join(["python", *sys.argv]),
              "load_start": common.load_average(), "matmul": matmul_gflops(args.repeats)}
    print(f"matmul: {report['matmul']['gflops']:,.1f} GFLOP/s", flush=True)
    ours = {task: prepare_ours(task, args) for task in TASKS}
    peer_args = []
    if args.peers != "none":
        config = step_config(*TASKS["masked_lm"], args)
        specials = Experiment.for_shapes(config, devices=jax.devices()[:1]).specials
        peer_args = ["--config", json.dumps(peer_config(args, specials, config.optim)), "--repeats", str(args.repeats)]
        peer_args += ["--only", args.peers] if args.peers else []
    ours_rounds, peer_rounds = {task: [] for task in TASKS}, {}
    for round_index in range(args.rounds):  # Ours, then the peers, alternately: load drifts hit both.
        for task, (step, facts) in ours.items():
            load = common.load_average()
            rate = common.measure(step, args.batch * args.seq_len, repeats=args.repeats, min_seconds=args.min_seconds)
            ours_rounds[task].append({**facts, **rate, "load_before": load})
            print(f"round {round_index}: ours {task}: {rate['median']:,.0f} tokens/s", flush=True)
        if peer_args:
            for name, entry in common.run_peer_script(VENV_DIR, "train_step_peers.py", peer_args).items():
                peer_rounds.setdefault(name, []).append(entry)
                print(f"round {round_index}: {name}: {entry.get('tokens_per_s', entry.get('error'))}", flush=True)
    report["ours"] = {task: common.pooled(rounds, "tokens_per_s") for task, rounds in ours_rounds.items()}
    report["peers"] = {name: common.pooled(rounds, "tokens_per_s") for name, rounds in peer_rounds.items()}
    report["matmul_end"] = matmul_gflops(args.repeats)
    report["load_end"] = common.load_average()
    print(table(report))
    print(f"\nmatmul at the end: {report['matmul_end']['gflops']:,.1f} GFLOP/s;"
          f" load average (1, 5, 15 min): start {report['load_start']}, end {report['load_end']}")
    print(f"tree: commit {report['git']['commit']}, package/config files changed since: {report['git']['uncommitted']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
