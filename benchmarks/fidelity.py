"""Objective fidelity on real rows: how full each encoder-decoder objective fills its encoder and
decoder, and where XLNet's targets fall, at the default configs, on the built-in corpus.

    python benchmarks/fidelity.py                       # prints the tables of BENCHMARKS.md
    python benchmarks/fidelity.py --rows 512 --json /tmp/fidelity.json

Rows: the documents of the built-in corpus (Python's docs) in a fixed shuffled order, tokenized with
a SentencePiece model trained on that corpus at the base config's settings (cached in
benchmarks/.cache), packed by pretrain_jax's own packer under each objective's row budget, as the
trainer packs them, at the objective's configs/<file>.py default (data.seq_len 512).

Fill: the share of the encoder's (and decoder's) slots that hold a token, over --rows rows and 4
keys. Raw tokens left out: the share of the rows' ordinary tokens that appear nowhere in the
example (documents left out because they would overflow, or with fewer than 2 ordinary tokens).
UL2: the whole mixture, then each denoiser alone (its rate 1, the others 1e-9) on the mixture's rows.
Raw fill: the share of the packed rows' slots that hold a token (the packer keeps documents whole
when they fit a row, so a row ends with padding when the next document does not fit it).
XLNet: targets per position over --rows rows and 16 keys, in the rows whose last 16 positions hold
ordinary tokens: the rate over those 16 positions against the rate over the rest of those rows.
"""

import argparse
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import base  # noqa: E402
from pretrain_jax import objectives  # noqa: E402
from pretrain_jax.batch import PackedBatch  # noqa: E402
from pretrain_jax.data import builtin_corpus, packing  # noqa: E402
from pretrain_jax.data import tokenizer as tokenizer_lib  # noqa: E402

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
# Encoder-decoder objectives, by the config file that trains each at its default.
ENCODER_DECODER = {"t5_span_corruption": "t5_span", "t5_deshuffle": "t5_deshuffle", "t5_mass": "t5_mass",
                   "t5_drop_tokens": "t5_drop_tokens", "ul2": "ul2", "bart": "bart_denoise"}
KEYS = 4


def tokenized_corpus():
    """(tokenizer, documents tokenized in a fixed shuffled order)."""
    documents = builtin_corpus.load_builtin_corpus()
    tokenizer = tokenizer_lib.load_or_train(base.get_config().tokenizer, CACHE_DIR, documents)
    order = np.random.default_rng(0).permutation(len(documents))
    tokenized = [packing.tokenize_document(documents[i], tokenizer.encode_batch, tokenizer.specials.eos,
                                           document_id=int(i)) for i in order]
    return tokenizer, [doc for doc in tokenized if len(doc.tokens)]


def packed_rows(documents, budget, word_start_table, rows: int) -> PackedBatch:
    """The first `rows` rows the packer makes of `documents` under `budget`."""
    packer, out = packing.RowPacker(budget, word_start_table), []
    for doc in documents:
        for chunk in packing.split_long_document(doc, budget):
            out.extend(packer.add(chunk))
        if len(out) >= rows:
            break
    return packing.stack_rows(out[:rows])


def config_of(file: str):
    return __import__(f"configs.{file}", fromlist=["get_config"]).get_config()


def fill(objective_fn, rows: PackedBatch, specials) -> dict:
    """Encoder and decoder fill and the share of ordinary raw tokens left out, over KEYS keys."""
    jitted = jax.jit(objective_fn)
    ordinary = ((rows.tokens >= specials.first_normal_id) & (rows.tokens < specials.normal_id_end)
                & (rows.segment_ids > 0))
    encoder, decoder, left_out = [], [], []
    for key in range(KEYS):
        out = jax.device_get(jitted(jax.random.key(key), rows))
        encoder.append(np.mean(out["encoder_segment_ids"] > 0))
        decoder.append(np.mean(out["decoder_segment_ids"] > 0))
        kept = 0
        for b in range(rows.tokens.shape[0]):  # a document is kept when its segment appears in the encoder
            present = set(np.unique(out["encoder_segment_ids"][b]).tolist())
            kept += sum(int(ordinary[b][rows.segment_ids[b] == s].sum()) for s in present if s > 0)
        left_out.append(1 - kept / ordinary.sum())
    return {"encoder_fill": float(np.mean(encoder)), "decoder_fill": float(np.mean(decoder)),
            "left_out": float(np.mean(left_out))}


def encoder_decoder_fill(tokenizer, documents, rows: int) -> dict:
    results = {}
    specials = tokenizer.specials
    for name, file in ENCODER_DECODER.items():
        config = config_of(file)
        seq_len = config.data.seq_len
        budget = objectives.build_row_budget(config.objective, specials, seq_len)
        packed = packed_rows(documents, budget, tokenizer.word_start_table, rows)
        objective_fn, _ = objectives.build_objective(config.objective, specials, seq_len)
        result = fill(objective_fn, packed, specials)
        result.update(row_length=budget.row_length, capacities=list(budget.capacities), config=f"configs/{file}.py",
                      raw_fill=float(np.mean(packed.segment_ids > 0)))
        results[name] = result
        print(f"{name:20s} rows of {budget.row_length} ({result['raw_fill']:.3f} full): encoder"
              f" {result['encoder_fill']:.3f}, decoder {result['decoder_fill']:.3f}, left out"
              f" {result['left_out']:.4f}", flush=True)
        if name == "ul2":
            results["ul2_denoisers"] = ul2_denoisers(config, packed, specials)
    return results


def ul2_denoisers(config, packed: PackedBatch, specials) -> dict:
    """Each UL2 denoiser alone on the mixture's rows: its rate 1, the others 1e-9 (so the objective is
    built for the mixture's lengths and row budget, and draws another denoiser once in 10^8)."""
    section = config.objective.ul2
    names = [f"({m:g}, {d:g})" for m, d in zip(section.mean_noise_span_lengths, section.noise_densities, strict=True)]
    results = {}
    for index, name in enumerate([*names, "S (prefix LM)"]):
        single = config.objective.copy_and_resolve_references()
        rates = [1.0 if i == index else 1e-9 for i in range(len(names) + 1)]
        single.ul2.span_denoiser_rates = tuple(rates[:-1])
        single.ul2.prefix_lm_rate = rates[-1]
        objective_fn, _ = objectives.build_objective(single, specials, config.data.seq_len)
        results[name] = fill(objective_fn, packed, specials)
        print(f"  ul2 {name:16s} encoder {results[name]['encoder_fill']:.3f}, decoder"
              f" {results[name]['decoder_fill']:.3f}", flush=True)
    return results


def xlnet_positions(tokenizer, documents, rows: int) -> dict:
    config = config_of("xlnet_plm")
    specials, seq_len = tokenizer.specials, config.data.seq_len
    packed = packed_rows(documents, seq_len, tokenizer.word_start_table, rows)
    objective_fn, _ = objectives.build_objective(config.objective, specials, seq_len)
    out = jax.device_get(jax.jit(jax.vmap(objective_fn, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), 16), packed))
    targets = np.zeros((16, rows, seq_len))
    keys, slots = np.nonzero(out["targets"]["plm"].weights > 0)[0], np.nonzero(out["targets"]["plm"].weights > 0)
    np.add.at(targets, (slots[0], slots[1], out["plm_positions"][slots]), 1)
    del keys
    targets = targets.sum(0)  # (rows, L): times each position was a target over the 16 keys
    ordinary = ((packed.tokens >= specials.first_normal_id) & (packed.tokens < specials.normal_id_end)
                & (packed.segment_ids > 0))
    # Rows that end inside text (their last 16 positions all ordinary tokens): the tail and the rest
    # of the same rows. (Over all rows, the tail would come from the fullest rows, whose rate is
    # lowest anyway: num_predict targets over more tokens.)
    full = ordinary[:, -16:].all(1)
    tail = targets[full, -16:].sum() / (16 * ordinary[full, -16:].sum())
    body = targets[full, :-16].sum() / (16 * ordinary[full, :-16].sum())
    result = {"rows_ending_in_text": int(full.sum()), "tail_rate": float(tail), "body_rate": float(body),
              "tail_to_body": float(tail / body),
              "targets_per_row": float((out["targets"]["plm"].weights > 0).sum() / (16 * rows)),
              "word_start_fraction": float(packed.word_starts[packed.segment_ids > 0].mean())}
    print(f"xlnet_plm: targets per row {result['targets_per_row']:.1f}; in the {int(full.sum())} rows that end in"
          f" text, rate over the last 16 positions {tail:.4f} vs {body:.4f} elsewhere: {tail / body:.3f}", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="packed rows per objective")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    tokenizer, documents = tokenized_corpus()
    results = {"encoder_decoder": encoder_decoder_fill(tokenizer, documents, args.rows),
               "xlnet_plm": xlnet_positions(tokenizer, documents, args.rows), "rows": args.rows,
               "jax": jax.__version__}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
