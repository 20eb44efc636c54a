"""Objectives at their default configs on real rows: the built-in corpus, the base config's tokenizer,
packed by the project's packer under each objective's row budget, as the trainer packs them.

What these rows show that hand-made ones do not: the lengths T5's helper gives fill the encoder and
the decoder exactly, no document is left out of an encoder-decoder example, and XLNet's targets
do not thin out at the end of a row. benchmarks/fidelity.py prints the same figures over more rows.
"""

import jax
import numpy as np
import pytest

from configs import t5_drop_tokens, t5_span, ul2, xlnet_plm
from pretrain_jax.data import packing
from pretrain_jax.data import tokenizer as tokenizer_lib
from pretrain_jax.objectives import build_objective, build_row_budget, span_corruption

ROWS = 64


@pytest.fixture(scope="module")
def corpus(builtin_documents, tmp_path_factory):
    """(tokenizer at the base config's settings, an iterator factory of tokenized documents in a
    fixed shuffled order)."""
    config = t5_span.get_config()
    tokenizer = tokenizer_lib.load_or_train(config.tokenizer, str(tmp_path_factory.mktemp("tok")), builtin_documents)
    order = np.random.default_rng(0).permutation(len(builtin_documents))

    def documents():
        for index in order:
            yield packing.tokenize_document(builtin_documents[index], tokenizer.encode_batch, tokenizer.specials.eos,
                                            document_id=int(index))

    return tokenizer, documents


def packed_rows(corpus, budget, rows=ROWS):
    tokenizer, documents = corpus
    packer, out = packing.RowPacker(budget, tokenizer.word_start_table), []
    for doc in documents():
        if len(doc.tokens):
            for chunk in packing.split_long_document(doc, budget):
                out.extend(packer.add(chunk))
        if len(out) >= rows:
            return packing.stack_rows(out[:rows])
    raise AssertionError("the corpus is too small")


def run(config, corpus):
    specials, seq_len = corpus[0].specials, config.data.seq_len
    budget = build_row_budget(config.objective, specials, seq_len)
    rows = packed_rows(corpus, budget)
    objective, _ = build_objective(config.objective, specials, seq_len)
    return budget, rows, jax.device_get(jax.jit(objective)(jax.random.key(0), rows))


def left_out(rows, out, specials):
    """Documents with 2+ ordinary tokens that appear nowhere in the example (by segment id)."""
    missing = []
    for b in range(rows.tokens.shape[0]):
        present = set(np.unique(out["encoder_segment_ids"][b]).tolist())
        for segment in np.unique(rows.segment_ids[b][rows.segment_ids[b] > 0]):
            tokens = rows.tokens[b][rows.segment_ids[b] == segment]
            ordinary = ((tokens >= specials.first_normal_id) & (tokens < specials.normal_id_end)).sum()
            if ordinary >= 2 and segment not in present:
                missing.append((b, int(segment)))
    return missing


@pytest.mark.parametrize("module, row_length, targets_length", [(t5_span, 569, 114), (t5_drop_tokens, 602, 91)])
def test_t5_lengths_fill_the_encoder_and_decoder_of_real_rows(corpus, module, row_length, targets_length):
    """At data.seq_len 512: rows of 569 raw tokens for span corruption (T5's helper: 568 + EOS ->
    512 inputs and 114 targets) and of 602 for drop-tokens (602 - round(0.15 * 602) = 512 inputs,
    90 + EOS targets). Every row that ends inside text (its last slot holds a token) fills its
    encoder and its decoder exactly; no document is left out of any example."""
    budget, rows, out = run(module.get_config(), corpus)
    assert budget.row_length == row_length and budget.capacities == (512, targets_length)
    if module is t5_span:
        raw, targets = span_corruption.compute_input_and_target_lengths(512, 0.15, 3.0)
        assert (raw + 1, targets) == (row_length, targets_length)
    assert out["encoder_inputs"].shape == (ROWS, 512) and out["targets"]["lm"].ids.shape == (ROWS, targets_length)
    assert left_out(rows, out, corpus[0].specials) == []
    ends_in_text = rows.segment_ids[:, -1] > 0
    assert ends_in_text.sum() >= 10
    assert (out["encoder_segment_ids"][ends_in_text] > 0).all()
    assert (out["decoder_segment_ids"][ends_in_text] > 0).all()


def test_ul2_leaves_no_document_out_of_real_rows(corpus):
    """UL2 draws each document's denoiser on device, after packing: its rows are sized for the worst
    denoiser (512 raw tokens at 512), so no document overflows whichever denoiser it draws."""
    budget, rows, out = run(ul2.get_config(), corpus)
    assert budget.row_length == 512 and budget.capacities == (512, 512)
    assert left_out(rows, out, corpus[0].specials) == []


def test_xlnet_targets_do_not_thin_out_at_the_end_of_real_rows(corpus):
    """Default config (512, num_predict 85, mask_alpha 6): in the rows that end inside text, the rate
    of targets over their last 16 positions is at least 0.9 of the rate over the rest of them, over
    8 keys (XLNet's num_predict stop made it 0.56)."""
    config = xlnet_plm.get_config()
    specials = corpus[0].specials
    rows = packed_rows(corpus, 512)
    objective, _ = build_objective(config.objective, specials, 512)
    out = jax.device_get(jax.jit(jax.vmap(objective, in_axes=(0, None)))(jax.random.split(jax.random.key(1), 8), rows))
    targets = np.zeros((ROWS, 512))
    where = np.nonzero(out["targets"]["plm"].weights > 0)
    np.add.at(targets, (where[1], out["plm_positions"][where]), 1)
    ordinary = (rows.tokens >= specials.first_normal_id) & (rows.tokens < specials.normal_id_end)
    full = ordinary[:, -16:].all(1)
    assert full.sum() >= 10
    tail = targets[full, -16:].sum() / ordinary[full, -16:].sum()
    body = targets[full, :-16].sum() / ordinary[full, :-16].sum()
    assert tail / body >= 0.9, tail / body
