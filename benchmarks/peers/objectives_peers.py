"""Peer side of benchmarks/objectives.py: host-side objective implementations people use instead.

Runs in the peer virtual environment (benchmarks/.venv_peers_objectives), never in the package's.
Reads the packed rows that benchmarks/objectives.py wrote (an .npz of (B, L) arrays plus the special
ids) and prints one JSON line: {peer name: {"objective", "seq_per_s", ... or "error"}}.

    python benchmarks/peers/objectives_peers.py --rows /tmp/rows.npz --repeats 5 [--only hf_mlm,t5_span]

Peers (each fed B examples built from the same rows, the way its own examples/recipes feed it):
  hf_mlm    transformers DataCollatorForLanguageModeling(mlm_probability=0.15, return_tensors="np"):
            a list of dicts with input_ids, token_type_ids, attention_mask and special_tokens_mask
            (lists of ints), as run_mlm.py's grouped, tokenized dataset yields them.
  hf_mlm_trainer  the same without special_tokens_mask: run_mlm.py hands its dataset to Trainer,
            whose remove_unused_columns (on by default) drops that column (not an argument of the
            model's forward), so the collator computes the mask itself, row by row.
  hf_clm    the same collator with mlm=False (run_clm's labels), for causal_lm.
  hf_plm    transformers DataCollatorForPermutationLanguageModeling(plm_probability=1/6,
            max_span_length=5, return_tensors="np"), as run_plm.py feeds it.
  t5_span   t5.data.preprocessors.span_corruption on a tf.data.Dataset of the B rows (padding stripped),
            then seqio's EncDecFeatureConverter (pack=False) to fixed (B, 512) / (B, 114) arrays, as a
            T5X input pipeline does; throughput of the repeated pipeline in steady state.
  fairseq_bart  fairseq DenoisingDataset (BART: text infilling, span-poisson lambda 3, mask 0.3,
            sentence permutation 1.0), B items then its collater.

A peer its package could not be imported for reports the import error (and the pip error recorded
by --setup-peers); nothing is reimplemented here.
"""

import argparse
import json
import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (benchmarks/peers/common.py; this script runs as a file, not a module)
import hf_vocab  # noqa: E402

VENV_DIR = os.path.join(common.BENCHMARKS_DIR, ".venv_peers_objectives")


def load_rows(path: str) -> dict:
    data = np.load(path)
    return {key: data[key] for key in data.files}


def documents_of_row(rows: dict, r: int) -> list[np.ndarray]:
    """The documents of packed row r (tokens per segment id, in order, padding dropped)."""
    tokens, segments = rows["tokens"][r], rows["segment_ids"][r]
    return [tokens[segments == s] for s in np.unique(segments[segments > 0])]


def hf_tokenizer(rows: dict):
    return hf_vocab.hf_tokenizer(int(rows["vocab_size"]), {name: rows[name] for name in hf_vocab.SPECIAL_PIECES})


def special_mask(rows: dict, tokens: np.ndarray) -> np.ndarray:
    return (tokens < int(rows["first_normal_id"])) | (tokens >= int(rows["normal_id_end"]))


def bench_hf_mlm(rows: dict, repeats: int, mlm: bool = True, special_tokens_mask: bool = True) -> dict:
    import transformers
    from transformers import DataCollatorForLanguageModeling

    tokens = rows["tokens"]
    examples = [{"input_ids": row.tolist(), "token_type_ids": [0] * len(row),
                 "attention_mask": (rows["segment_ids"][r] > 0).astype(int).tolist()}
                for r, row in enumerate(tokens)]
    if special_tokens_mask:
        for example, row in zip(examples, tokens, strict=True):
            example["special_tokens_mask"] = special_mask(rows, row).astype(int).tolist()
    collator = DataCollatorForLanguageModeling(hf_tokenizer(rows), mlm=mlm, mlm_probability=0.15,
                                               return_tensors="np")
    batch = collator(examples)
    assert batch["input_ids"].shape == tokens.shape, batch["input_ids"].shape
    rate = common.measure(lambda: collator(examples), len(examples), repeats=repeats)
    return {**rate, "version": f"transformers {transformers.__version__}",
            "outputs": {k: list(v.shape) for k, v in batch.items()}}


def bench_hf_mlm_trainer(rows: dict, repeats: int) -> dict:
    return bench_hf_mlm(rows, repeats, special_tokens_mask=False)


def bench_hf_clm(rows: dict, repeats: int) -> dict:
    return bench_hf_mlm(rows, repeats, mlm=False)


def bench_hf_plm(rows: dict, repeats: int) -> dict:
    import transformers
    from transformers import DataCollatorForPermutationLanguageModeling

    tokens = rows["tokens"]
    examples = [{"input_ids": row.tolist(), "attention_mask": (rows["segment_ids"][r] > 0).astype(int).tolist()}
                for r, row in enumerate(tokens)]
    collator = DataCollatorForPermutationLanguageModeling(hf_tokenizer(rows), plm_probability=1 / 6,
                                                          max_span_length=5, return_tensors="np")
    batch = collator(examples)
    assert batch["input_ids"].shape == tokens.shape, batch["input_ids"].shape
    rate = common.measure(lambda: collator(examples), len(examples), repeats=repeats)
    return {**rate, "version": f"transformers {transformers.__version__}",
            "outputs": {k: list(v.shape) for k, v in batch.items()}}


def bench_t5_span(rows: dict, repeats: int) -> dict:
    import seqio
    import t5
    import tensorflow as tf
    from t5.data import preprocessors

    tf.config.set_visible_devices([], "GPU")
    batch_size, seq_len = rows["tokens"].shape
    # T5's own lengths for 512 inputs: targets 114 (t5.data.preprocessors.random_spans_helper).
    lengths = {"inputs": seq_len, "targets": 114}
    vocabulary = seqio.PassThroughVocabulary(size=int(rows["vocab_size"]), eos_id=int(rows["eos"]))
    features = {"inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
                "targets": seqio.Feature(vocabulary, add_eos=True)}
    texts = [rows["tokens"][r][rows["segment_ids"][r] > 0] for r in range(batch_size)]
    source = tf.data.Dataset.from_generator(
        lambda: ({"targets": t} for t in texts),
        output_signature={"targets": tf.TensorSpec([None], tf.int32)}).cache()
    ds = preprocessors.span_corruption(source.repeat(), sequence_length=lengths, output_features=features,
                                       merge_examples_to_reduce_padding=False)
    ds = seqio.preprocessors.append_eos_after_trim(ds, output_features=features, sequence_length=lengths)
    ds = seqio.EncDecFeatureConverter(pack=False)(ds, lengths)
    iterator = ds.batch(batch_size, drop_remainder=True).prefetch(1).as_numpy_iterator()
    batch = next(iterator)
    rate = common.measure(lambda: next(iterator), batch_size, repeats=repeats)
    return {**rate, "version": f"t5 {getattr(t5, '__version__', '?')}, seqio {seqio.__version__},"
                               f" tensorflow {tf.__version__}",
            "outputs": {k: list(v.shape) for k, v in batch.items()}}


def bench_fairseq_bart(rows: dict, repeats: int) -> dict:
    import argparse as argparse_lib

    import fairseq_py311
    import torch

    denoising_dataset = fairseq_py311.denoising_dataset()
    import fairseq
    from fairseq.data import Dictionary

    batch_size = rows["tokens"].shape[0]
    vocab = Dictionary()  # fairseq's own specials: bos 0, pad 1, eos 2, unk 3; then our pieces.
    for i in range(int(rows["vocab_size"])):
        vocab.add_symbol(f"piece{i}")
    mask_idx = vocab.add_symbol("<mask>")
    offset = vocab.nspecial
    # One item per row: <s> sentence </s> sentence </s> ... as fairseq's BART data has it (EOS is the
    # sentence separator that permute_sentences looks for); sentences of all the row's documents.
    items = []
    for r in range(batch_size):
        seg, sent = rows["segment_ids"][r], rows["sentence_ids"][r]
        keep = (seg > 0) & (rows["tokens"][r] != int(rows["eos"]))
        pieces = [vocab.bos()]
        for s in np.unique(seg[seg > 0]):
            for k in np.unique(sent[keep & (seg == s)]):
                pieces.extend((rows["tokens"][r][keep & (seg == s) & (sent == k)] + offset).tolist())
                pieces.append(vocab.eos())
        items.append(torch.tensor(pieces, dtype=torch.long))

    class Rows(torch.utils.data.Dataset):
        def __getitem__(self, i):
            return items[i]

        def __len__(self):
            return len(items)

    args = argparse_lib.Namespace(mask=0.3, mask_random=0.0, insert=0.0, rotate=0.0, permute_sentences=1.0,
                                  replace_length=1, mask_length="span-poisson", poisson_lambda=3.0, bpe=None)
    dataset = denoising_dataset.DenoisingDataset(
        Rows(), np.array([len(t) for t in items]), vocab, mask_idx, mask_whole_words=None, shuffle=False,
        seed=0, args=args)
    epoch = [0]

    def step():
        epoch[0] += 1
        dataset.set_epoch(epoch[0])  # New masks every call (its numpy seed is (seed, epoch, index)).
        return dataset.collater([dataset[i] for i in range(batch_size)])

    batch = step()
    rate = common.measure(step, batch_size, repeats=repeats)
    return {**rate, "version": f"fairseq {fairseq.__version__}, torch {torch.__version__}",
            "outputs": {"net_input.src_tokens": list(batch["net_input"]["src_tokens"].shape),
                        "target": list(batch["target"].shape)}}


PEERS = {
    "hf_mlm": ("bert_mlm", "transformers DataCollatorForLanguageModeling", bench_hf_mlm, "transformers"),
    "hf_mlm_trainer": ("bert_mlm", "transformers DataCollatorForLanguageModeling, as Trainer passes it"
                       " (special_tokens_mask dropped)", bench_hf_mlm_trainer, "transformers"),
    "hf_clm": ("causal_lm", "transformers DataCollatorForLanguageModeling(mlm=False)", bench_hf_clm,
               "transformers"),
    "hf_plm": ("xlnet_plm", "transformers DataCollatorForPermutationLanguageModeling", bench_hf_plm,
               "transformers"),
    "t5_span": ("t5_span_corruption", "t5 span_corruption on tf.data (+ seqio EncDecFeatureConverter)",
                bench_t5_span, "t5"),
    "fairseq_bart": ("bart", "fairseq DenoisingDataset (BART infilling + sentence permutation)",
                     bench_fairseq_bart, "fairseq"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help=".npz written by benchmarks/objectives.py")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated peer names (default: all)")
    args = parser.parse_args()
    rows = load_rows(args.rows)
    installs = common.install_record(VENV_DIR)
    results = {}
    for name in (args.only.split(",") if args.only else PEERS):
        objective, title, bench, package = PEERS[name]
        entry = {"objective": objective, "peer": title, "load_before": common.load_average()}
        try:
            result = bench(rows, args.repeats)
            entry.update(result, seq_per_s=result["median"])
        except Exception as error:  # noqa: BLE001  (reported in the table, never hidden)
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()[-3000:]
            if package in installs and not installs[package]["ok"]:
                entry["install_error"] = installs[package]
        print(f"{name}: {entry.get('seq_per_s', entry.get('error'))}", file=sys.stderr, flush=True)
        results[name] = entry
    print(json.dumps(results))


if __name__ == "__main__":
    main()
