"""Objective throughput on the CPU: every registered objective, jitted, next to the host-side peers.

    python benchmarks/objectives.py --setup-peers        # once: creates benchmarks/.venv_peers_objectives
    python benchmarks/objectives.py --json /tmp/objectives.json

Input: realistic packed rows, B x L = 128 x 512 by default: documents of the built-in corpus
(Python's docs) in a fixed shuffled order, tokenized with a SentencePiece model trained on that
corpus at the base config's settings (cached in benchmarks/.cache), packed by pretrain_jax's own
packer (at 512: 1.4 documents and 22 sentences per row, 16% padding; sentence ids, word starts).

Ours: `jax.jit(objective)` on the rows already on the device (as in the train step), a new rng per
call, outputs ready (`block_until_ready`); also with numpy in and numpy out (device_put and
np.asarray every call). Sequences/s is the median of every timed run after warm-up: --repeats runs
per round, --rounds rounds alternating ours and the peers, so a change of load hits both sides.
Objective settings: configs/base.py, with the masked-LM cap on predictions raised to BERT's
512-token value (max_predictions 80) for bert_mlm, nsp, sop and electra.

Peers run in their own virtual environment, on the same rows (benchmarks/peers/objectives_peers.py
says how each is fed). Ratio = ours (on device) / peer, both in sequences/s.
"""

import argparse
import json
import os
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import common  # noqa: E402

from configs import base  # noqa: E402
from pretrain_jax import objectives  # noqa: E402
from pretrain_jax.batch import PackedBatch  # noqa: E402
from pretrain_jax.data import builtin_corpus, packing  # noqa: E402
from pretrain_jax.data import tokenizer as tokenizer_lib  # noqa: E402

VENV_DIR = os.path.join(common.BENCHMARKS_DIR, ".venv_peers_objectives")
CACHE_DIR = os.path.join(common.BENCHMARKS_DIR, ".cache")
MAX_PREDICTIONS_512 = 80  # BERT's max_predictions_per_seq for 512-token sequences.
# pip steps for --setup-peers (torch is held at the local CPU build by peers/torch_cpu_constraint.txt).
PEER_INSTALL_STEPS = [["-r", os.path.join(common.PEERS_DIR, "objectives_requirements.txt")]]
# fairseq 0.12.2 is imported through peers/fairseq_py311.py (a Python 3.11 dataclass shim, see there).
OPTIONAL_PEER_INSTALLS = {"fairseq": (["fairseq"], f"import sys; sys.path.insert(0, {common.PEERS_DIR!r});"
                                                   " import fairseq_py311; fairseq_py311.denoising_dataset()")}


def packed_rows(batch: int, seq_len: int) -> tuple[PackedBatch, tokenizer_lib.Tokenizer, dict]:
    """`batch` full rows of the built-in corpus, tokenized and packed as the trainer does."""
    config = base.get_config()
    documents = builtin_corpus.load_builtin_corpus()
    tokenizer = tokenizer_lib.load_or_train(config.tokenizer, CACHE_DIR, documents)
    order = np.random.default_rng(0).permutation(len(documents))
    tokenized, total = [], 0
    for index in order:
        doc = packing.tokenize_document(documents[index], tokenizer.encode_batch, tokenizer.specials.eos)
        if len(doc.tokens):
            tokenized.append(doc)
            total += len(doc.tokens)
        if total > 1.5 * batch * seq_len:
            break
    rows = packing.pack_documents(tokenized, seq_len, tokenizer.word_start_table)
    rows = PackedBatch(*(field[:batch] for field in rows))
    documents_per_row = [len(np.unique(s[s > 0])) for s in rows.segment_ids]
    stats = {"documents_per_row_mean": float(np.mean(documents_per_row)),
             "padding_fraction": float(np.mean(rows.segment_ids == 0)),
             "sentences_per_row_mean": float(np.mean([
                 len({(a, b) for a, b in zip(s, t, strict=True) if a > 0}) for s, t in
                 zip(rows.segment_ids, rows.sentence_ids, strict=True)])),
             "word_start_fraction": float(np.mean(rows.word_starts[rows.segment_ids > 0]))}
    return rows, tokenizer, stats


def objective_config(name: str):
    config = base.get_config()
    config.objective.name = name
    for section in ("bert_mlm", "electra"):
        config.objective[section].max_predictions = MAX_PREDICTIONS_512
    for section in ("nsp", "sop"):
        config.objective[section].mlm.max_predictions = MAX_PREDICTIONS_512
    return config.objective


def prepare_ours(name: str, rows: PackedBatch, specials) -> tuple:
    """(device_step, numpy_step, facts) for one objective, jitted and warmed up.

    device_step: rows already on the device, outputs left there (as inside the train step);
    numpy_step: numpy rows in, numpy outputs out. Every call draws new masks (rng folded with a count).
    """
    seq_len = rows.tokens.shape[1]
    objective_fn, family = objectives.build_objective(objective_config(name), specials, seq_len)
    key = jax.random.key(0)
    jitted = jax.jit(lambda step, packed: objective_fn(jax.random.fold_in(key, step), packed))
    on_device = jax.device_put(rows)
    calls = [0]

    def device_step():
        calls[0] += 1
        return jax.block_until_ready(jitted(np.int32(calls[0]), on_device))

    def numpy_step():
        calls[0] += 1
        out = jitted(np.int32(calls[0]), jax.device_put(rows))
        return {k: np.asarray(v) for k, v in out.items()}

    outputs = device_step()
    return device_step, numpy_step, {"family": family, "outputs": {k: list(v.shape) for k, v in outputs.items()}}


def write_rows(path: str, rows: PackedBatch, specials) -> None:
    ids = {f: getattr(specials, f) for f in ("pad", "eos", "unk", "bos", "mask", "cls", "sep")}
    np.savez(path, **rows._asdict(), **ids, vocab_size=specials.vocab_size,
             first_normal_id=specials.first_normal_id, normal_id_end=specials.normal_id_end)


def table(results: dict, peers: dict) -> str:
    lines = ["| objective | family | ours seq/s (on device) | ours seq/s (numpy in/out) | peer | peer seq/s"
             " | ratio ours/peer |", "|---|---|---:|---:|---|---:|---:|"]
    by_objective = {}
    for name, peer in peers.items():
        by_objective.setdefault(peer["objective"], []).append((name, peer))
    for name, ours in results.items():
        cells = [f"`{name}`", ours["family"], f"{ours['seq_per_s']:,.0f}", f"{ours['numpy']['median']:,.0f}"]
        for _, peer in by_objective.get(name) or [(None, None)]:
            if peer is None:
                lines.append("| " + " | ".join(cells + ["—", "—", "—"]) + " |")
            elif "error" in peer:
                reason = "unavailable" if "install_error" in peer else "failed"
                lines.append("| " + " | ".join(cells + [f"{peer['peer']} ({reason}: see notes)", "—", "—"]) + " |")
            else:
                ratio = ours["seq_per_s"] / peer["seq_per_s"]
                lines.append("| " + " | ".join(
                    cells + [peer["peer"], f"{peer['seq_per_s']:,.1f}", f"{ratio:,.1f}x"]) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup-peers", action="store_true", help="create the peer venv and exit")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--objectives", default="", help="comma-separated names (default: every registered one)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of ours and the peers (rates pooled)")
    parser.add_argument("--peers", default="", help="comma-separated peer names (default: all); 'none' to skip")
    parser.add_argument("--json", default="", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if args.setup_peers:
        common.setup_venv(VENV_DIR, PEER_INSTALL_STEPS, OPTIONAL_PEER_INSTALLS)
        return

    rows, tokenizer, stats = packed_rows(args.batch, args.seq_len)
    print(f"rows: {rows.tokens.shape}, {stats}", flush=True)
    names = args.objectives.split(",") if args.objectives else objectives.registered_names()
    report = {"machine": {**common.machine(), "jax": jax.__version__}, "git": common.git_state(),
              "command": " ".join(["python", *sys.argv]),
              "rows": stats, "load_start": common.load_average()}
    ours = {name: prepare_ours(name, rows, tokenizer.specials) for name in names}
    ours_rounds, peer_rounds = {name: [] for name in names}, {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.npz")
        write_rows(path, rows, tokenizer.specials)
        peer_args = ["--rows", path, "--repeats", str(args.repeats)] + (["--only", args.peers] if args.peers else [])
        for round_index in range(args.rounds):  # Ours, then the peers, alternately: load drifts hit both.
            for name, (device_step, numpy_step, facts) in ours.items():
                load = common.load_average()
                device = common.measure(device_step, args.batch, repeats=args.repeats)
                numpy_rate = common.measure(numpy_step, args.batch, repeats=args.repeats)
                ours_rounds[name].append({**facts, "device": device, "numpy": numpy_rate, "load_before": load})
                print(f"round {round_index}: ours {name}: {device['median']:,.0f} seq/s", flush=True)
            if args.peers != "none":
                for name, entry in common.run_peer_script(VENV_DIR, "objectives_peers.py", peer_args).items():
                    peer_rounds.setdefault(name, []).append(entry)
                    print(f"round {round_index}: {name}: {entry.get('seq_per_s', entry.get('error'))}", flush=True)
    report["ours"] = {}
    for name, rounds in ours_rounds.items():
        device = common.pooled([r["device"] for r in rounds], "seq_per_s")
        numpy_rate = common.pooled([r["numpy"] for r in rounds], "seq_per_s")
        report["ours"][name] = {**rounds[-1], "device": device, "numpy": numpy_rate, "seq_per_s": device["median"],
                                "load_before": [r["load_before"] for r in rounds]}
    report["peers"] = {name: common.pooled(rounds, "seq_per_s") for name, rounds in peer_rounds.items()}
    report["load_end"] = common.load_average()
    print(table(report["ours"], report["peers"]))
    for name, peer in report["peers"].items():
        if "error" in peer:
            print(f"\n{name} ({peer['peer']}): {peer['error']}")
            if "install_error" in peer:
                print(f"  `{peer['install_error']['command']}` failed:\n{peer['install_error']['output_tail'][-1500:]}")
    print(f"\nload average (1, 5, 15 min): start {report['load_start']}, end {report['load_end']}")
    print(f"tree: commit {report['git']['commit']}, package/config files changed since: {report['git']['uncommitted']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
