"""Golden tests of sentence splitting, tokenizing documents and packing rows: exact arrays."""

import numpy as np
import pytest

from pretrain_jax import row_budget
from pretrain_jax.data import packing

I = np.int32  # noqa: E741 -- short name keeps the golden arrays readable.
# Word-start table for ids 0..19: ids 13, 15 and 17 begin words.
TABLE = np.isin(np.arange(20), [13, 15, 17])


def doc(tokens, sentence_ids):
    return packing.TokenizedDocument(np.array(tokens, I), np.array(sentence_ids, I))


def test_split_sentences_rule():
    text = (
        "Return x. See also y!  Is it?\nNo, e.g. the value 3.14 is kept.\n\n"
        'Notes\nwrapped "quoted." Next (in brackets.) Last'
    )
    assert packing.split_sentences(text) == [
        "Return x.",
        "See also y!",
        "Is it?",
        "No, e.g. the value 3.14 is kept.",
        'Notes\nwrapped "quoted."',
        "Next (in brackets.)",
        "Last",
    ]
    assert packing.split_sentences("  \n\n ") == []


def test_tokenize_document_appends_eos_and_numbers_sentences():
    vocab = {"A b.": [7, 8], "C.": [9], "Dd e.": [10, 11, 12]}
    encode_batch = lambda sentences: [vocab[s] for s in sentences]
    result = packing.tokenize_document("A b. C.\n\nDd e.", encode_batch, eos_id=1)
    np.testing.assert_array_equal(result.tokens, np.array([7, 8, 9, 10, 11, 12, 1], I))
    np.testing.assert_array_equal(result.sentence_ids, np.array([0, 0, 1, 2, 2, 2, 2], I))
    assert result.tokens.dtype == np.int32 and result.sentence_ids.dtype == np.int32


def test_tokenize_empty_document_gives_no_tokens():
    result = packing.tokenize_document(" \n ", lambda sentences: [[] for _ in sentences], eos_id=1)
    assert result.tokens.shape == (0,) and result.sentence_ids.shape == (0,)


def test_split_long_document_restarts_sentence_ids():
    document = doc([5, 6, 7, 8, 1], [0, 0, 1, 1, 1])._replace(document_id=9)
    chunks = packing.split_long_document(document, 3)
    assert [c.tokens.tolist() for c in chunks] == [[5, 6, 7], [8, 1]]
    assert [c.sentence_ids.tolist() for c in chunks] == [[0, 0, 1], [0, 0]]
    assert [c.document_id for c in chunks] == [9, 9]


def test_pack_documents_golden():
    # seq_len 6. Doc A (3 tokens) opens row 0; doc B (9 tokens) is longer than a row, so it is cut
    # into 6 + 3: the 6-token chunk does not fit after A (row 0 is padded) and fills row 1 exactly;
    # B's 3-token tail and doc C (2 tokens) share row 2, which ends in one pad.
    documents = [
        doc([13, 14, 1], [0, 0, 0]),
        doc([15, 16, 17, 18, 19, 13, 14, 15, 1], [0, 0, 0, 1, 1, 2, 2, 3, 3]),
        doc([17, 1], [0, 0]),
    ]
    packed = packing.pack_documents(documents, 6, word_start_table=TABLE)
    expected_tokens = [
        [13, 14, 1, 0, 0, 0],
        [15, 16, 17, 18, 19, 13],
        [14, 15, 1, 17, 1, 0],
    ]
    expected_segment_ids = [
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 2, 2, 0],
    ]
    expected_positions = [
        [0, 1, 2, 0, 0, 0],
        [0, 1, 2, 3, 4, 5],
        [0, 1, 2, 0, 1, 0],
    ]
    expected_sentence_ids = [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 2],
        [0, 1, 1, 0, 0, 0],
    ]
    expected_word_starts = [
        [True, False, False, False, False, False],
        [True, False, True, False, False, True],
        [False, True, False, True, False, False],
    ]
    np.testing.assert_array_equal(packed.tokens, np.array(expected_tokens, I))
    np.testing.assert_array_equal(packed.segment_ids, np.array(expected_segment_ids, I))
    np.testing.assert_array_equal(packed.positions, np.array(expected_positions, I))
    np.testing.assert_array_equal(packed.sentence_ids, np.array(expected_sentence_ids, I))
    np.testing.assert_array_equal(packed.word_starts, np.array(expected_word_starts))
    # Documents numbered by their place in the list; B's two chunks (rows 1 and 2) share its id 1.
    expected_document_ids = [
        [0, 0, 0, -1, -1, -1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 2, 2, -1],
    ]
    np.testing.assert_array_equal(packed.document_ids, np.array(expected_document_ids, I))
    assert packed.tokens.dtype == np.int32 and packed.word_starts.dtype == np.bool_


def test_pack_documents_docstring_example():
    documents = [doc([5, 1], [0, 0]), doc([6, 7, 8, 9, 1], [0, 0, 0, 0, 0]), doc([2, 1], [0, 0])]
    packed = packing.pack_documents(documents, 4, word_start_table=TABLE)
    np.testing.assert_array_equal(packed.tokens, np.array([[5, 1, 0, 0], [6, 7, 8, 9], [1, 2, 1, 0]], I))
    np.testing.assert_array_equal(packed.segment_ids, np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 2, 2, 0]], I))
    np.testing.assert_array_equal(packed.positions, np.array([[0, 1, 0, 0], [0, 1, 2, 3], [0, 0, 1, 0]], I))


def test_packing_keeps_every_token_in_order():
    rng = np.random.default_rng(0)
    documents = [doc(rng.integers(13, 20, n).tolist() + [1], [0] * (n + 1)) for n in rng.integers(0, 25, 40)]
    packed = packing.pack_documents(documents, 8, word_start_table=TABLE)
    np.testing.assert_array_equal(packed.tokens[packed.segment_ids > 0], np.concatenate([d.tokens for d in documents]))
    assert np.all(packed.tokens[packed.segment_ids == 0] == 0)


def test_row_packer_finishes_exactly_full_rows_at_once():
    packer = packing.RowPacker(4, TABLE)
    assert packer.add(doc([13, 1], [0, 0])) == []
    (row,) = packer.add(doc([15, 1], [0, 0]))
    np.testing.assert_array_equal(row.segment_ids, np.array([1, 1, 2, 2], I))
    assert packer.is_empty
    with pytest.raises(ValueError, match="cannot be packed"):
        packer.add(doc([13, 14, 15, 16, 1], [0] * 5))


def test_a_budget_closes_rows_on_its_outputs_and_cuts_documents_to_fit():
    # A toy budget: rows of 8 raw tokens whose documents' outputs, each document's ordinary tokens
    # plus 2, must fit 7 slots together (ordinary ids are 13..19; EOS = 1 is not). By hand:
    # A = [13 14 1] costs 2 + 2 = 4; B = [15 16 1] costs 4 too: 4 + 4 > 7, so B opens row 1 though
    # 3 raw tokens would fit row 0. C = 7 ordinary tokens + EOS: alone it would cost 9 > 7, so it is
    # cut at the longest prefix that fits alone, 5 tokens (cost 7), and the rest [18 19 1] (cost 4).
    # The 5-token piece does not fit row 1 after B (4 + 7 > 7): row 1 closes; the piece fills row 2
    # (cost 7), and the rest opens row 3.
    budget = row_budget.RowBudget(row_length=8, capacities=(7,), cost=lambda n, e, i: (e + 2)[:, None],
                                  ordinary_ids=(13, 20))
    documents = [doc([13, 14, 1], [0] * 3), doc([15, 16, 1], [0] * 3), doc([13, 14, 15, 16, 17, 18, 19, 1], [0] * 8)]
    assert budget.longest_piece(documents[2].tokens) == 5
    packed = packing.pack_documents(documents, budget, word_start_table=TABLE)
    np.testing.assert_array_equal(packed.tokens, np.array([
        [13, 14, 1, 0, 0, 0, 0, 0],
        [15, 16, 1, 0, 0, 0, 0, 0],
        [13, 14, 15, 16, 17, 0, 0, 0],
        [18, 19, 1, 0, 0, 0, 0, 0],
    ], I))
    np.testing.assert_array_equal(packed.document_ids[:, 0], [0, 1, 2, 2])


def test_sized_by_cost_is_t5s_length_helper_plus_the_eos():
    # T5's helper: 568 raw tokens -> 568 - 85 noise + 28 sentinels + EOS = 512 inputs and 85 + 28 + EOS =
    # 114 targets. Counted as this project's rows count them (the EOS inside the row), 569 tokens.
    def span_cost(n, e, i):
        noise = np.round(e.astype(np.float32) * np.float32(0.15)).astype(np.int64)
        spans = np.round(noise.astype(np.float32) / np.float32(3.0)).astype(np.int64)
        return np.stack([n - noise + spans, noise + spans + 1], -1)

    budget = row_budget.sized_by_cost((512, 114), span_cost, (13, 20))
    assert budget.row_length == 569


def test_budget_counts_special_ids_between_ordinary_ones():
    # Ordinary ids 13..19. Prefixes of [13, 2, 14, 2, 1]: the first 2 (unk) lies between ordinary ids
    # from the prefix of 3 on; the second never does (nothing ordinary after it), nor does the EOS.
    seen = []
    budget = row_budget.RowBudget(row_length=8, capacities=(99,), ordinary_ids=(13, 20),
                                  cost=lambda n, e, i: seen.append((n.tolist(), e.tolist(), i.tolist())) or n[:, None])
    budget.longest_piece(np.array([13, 2, 14, 2, 1], I))
    assert seen == [([1, 2, 3, 4, 5], [1, 1, 2, 2, 2], [0, 0, 1, 1, 1])]
