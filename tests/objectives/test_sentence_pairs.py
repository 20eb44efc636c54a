"""nsp / sop: golden example, label rates, continuation and swap structure, trimming, token types."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flat_batch import flat

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.data import packing
from pretrain_jax.objectives import get_spec, sentence_pairs
from pretrain_jax.specials import SpecialIds

L = 64
ROWS = 64
# Every (row, position) gets its own id, so a pair's tokens tell where they came from.
SPECIALS = SpecialIds(vocab_size=13 + ROWS * L + 8, num_sentinels=4)
assert 32 * L <= ROWS * L  # the 4 documents of 8 rows below also fit the ordinary ids
CLS, SEP = SPECIALS.cls, SPECIALS.sep


def pair_config(name, **overrides):
    cfg = get_config().objective[name]
    cfg.mlm.mask_prob, cfg.mlm.random_prob = 0.0, 0.0  # chosen tokens stay: inputs show the pair itself
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def over_keys(name, **overrides):
    """The objective, jitted once per configuration and mapped over a vector of keys."""
    objective = get_spec(name).builder(pair_config(name, **overrides), SPECIALS, L)
    return jax.jit(jax.vmap(objective, in_axes=(0, None)))


def packed_documents(seed, rows=ROWS, max_sentence=6, main_tokens=(10, 40), min_sentences=2):
    """Per row: a main document (most tokens) + a short second document + padding.

    Returns the batch and, per row, the main document's sentence spans [(start, end), ...] (EOS
    excluded). Token ids encode (row, position): 13 + row * L + position.
    """
    rng = np.random.default_rng(seed)
    tokens = np.zeros((rows, L), np.int32)
    segment_ids = np.zeros((rows, L), np.int32)
    sentence_ids = np.zeros((rows, L), np.int32)
    sentences = []
    for b in range(rows):
        lengths = []
        target = rng.integers(*main_tokens)
        while sum(lengths) < target or len(lengths) < min_sentences:
            lengths.append(int(rng.integers(1, max_sentence + 1)))
        total = min(sum(lengths), L - 6)
        spans, start = [], 0
        for k, n in enumerate(lengths):
            end = min(start + n, total)
            if end > start:
                spans.append((start, end))
                sentence_ids[b, start:end] = k
            start = end
        sentences.append(spans)
        tokens[b, : total + 1] = 13 + b * L + np.arange(total + 1)
        tokens[b, total] = SPECIALS.eos
        sentence_ids[b, total] = sentence_ids[b, total - 1]
        segment_ids[b, : total + 1] = 1
        second = total + 1 + np.arange(min(3, L - total - 1))  # 2 tokens + EOS, fewer than the main one
        tokens[b, second] = 13 + b * L + second
        tokens[b, second[-1]] = SPECIALS.eos
        segment_ids[b, second] = 2
    positions = np.where(segment_ids > 0, np.arange(L), 0)
    document_ids = np.where(segment_ids > 0, 2 * np.arange(rows)[:, None] + segment_ids - 1, -1).astype(np.int32)
    return PackedBatch(tokens, segment_ids, positions, sentence_ids, segment_ids > 0, document_ids), sentences


def split_pair(inputs, token_types, segment_ids):
    """One output row -> (A source (row, positions), B source (row, positions)); checks the frame."""
    inputs = np.asarray(inputs)
    used = int(np.asarray(segment_ids).sum())
    seps = np.nonzero(inputs[:used] == SEP)[0]
    assert inputs[0] == CLS and len(seps) == 2 and seps[1] == used - 1, inputs
    assert (inputs[used:] == 0).all()
    expected_types = np.zeros(L, np.int32)
    expected_types[seps[0] + 1 : used] = 1
    np.testing.assert_array_equal(token_types, expected_types)
    halves = []
    for ids in (inputs[1 : seps[0]], inputs[seps[0] + 1 : seps[1]]):
        row, pos = (ids - 13) // L, (ids - 13) % L
        assert len(ids) > 0 and (row == row[0]).all() and (np.diff(pos) == 1).all(), ids
        halves.append((int(row[0]), pos))
    return halves


def test_golden_example():
    # Row 0: main document [21 22 | 23 24 | 25 26] EOS, then a 2-token document; row 1: [41 42 43 | 44 45 |
    # 46 47 48 49] EOS. L = 16: T = 13, both chunks are the whole document (6 and 9 tokens < 13).
    tokens = np.array([[21, 22, 23, 24, 25, 26, 1, 31, 32, 1, 0, 0, 0, 0, 0, 0],
                       [41, 42, 43, 44, 45, 46, 47, 48, 49, 1, 0, 0, 0, 0, 0, 0]], np.int32)
    segment_ids = np.array([[1] * 7 + [2] * 3 + [0] * 6, [1] * 10 + [0] * 6], np.int32)
    sentence_ids = np.array([[0, 0, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                             [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0]], np.int32)
    document_ids = np.where(segment_ids > 0, [[0], [2]] + segment_ids - 1, -1).astype(np.int32)
    packed = PackedBatch(tokens, segment_ids, np.zeros_like(tokens), sentence_ids, segment_ids > 0, document_ids)
    row0_a = {1: [21, 22], 2: [21, 22, 23, 24]}  # by a_end
    row1_a = {1: [41, 42, 43], 2: [41, 42, 43, 44, 45]}
    # IsNext B = the rest of the chunk; NotNext B = the other row's document from a random sentence on.
    row0_next, row1_next = {1: [23, 24, 25, 26], 2: [25, 26]}, {1: [44, 45, 46, 47, 48, 49], 2: [46, 47, 48, 49]}
    row0_other = [[41, 42, 43, 44, 45, 46, 47, 48, 49], [44, 45, 46, 47, 48, 49], [46, 47, 48, 49]]
    row1_other = [[21, 22, 23, 24, 25, 26], [23, 24, 25, 26], [25, 26]]

    def frame(a, b):
        row = [CLS, *a, SEP, *b, SEP]
        types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        return row + [0] * (16 - len(row)), types + [0] * (16 - len(types))

    def options(a_by_end, next_by_end, others, label, swap):
        if label == 0:
            return [frame(a_by_end[k], next_by_end[k]) for k in (1, 2)]
        if swap:
            return [frame(next_by_end[k], a_by_end[k]) for k in (1, 2)]
        return [frame(a_by_end[k], o) for k in (1, 2) for o in others]

    for name in ("nsp", "sop"):
        cfg = pair_config(name, short_seq_prob=0.0)
        cfg.mlm.max_predictions = 4
        objective = jax.jit(jax.vmap(get_spec(name).builder(cfg, SPECIALS, 16), in_axes=(0, None)))
        outs = jax.tree.map(np.asarray, objective(jax.random.split(jax.random.key(0), 12), packed))
        seen = set()
        for seed in range(12):
            out = jax.tree.map(lambda x, seed=seed: x[seed], outs)
            for b, (a_by_end, next_by_end, others) in enumerate(
                [(row0_a, row0_next, row0_other), (row1_a, row1_next, row1_other)]
            ):
                label = int(out["targets"]["nsp"].ids[b])
                got = (out["inputs"][b].tolist(), out["token_type_ids"][b].tolist())
                assert list(got) in [list(o) for o in options(a_by_end, next_by_end, others, label, name == "sop")]
                seen.add((b, label))
                assert out["targets"]["nsp"].weights[b] == 1
                np.testing.assert_array_equal(out["segment_ids"][b], np.array(got[0]) > 0)
                np.testing.assert_array_equal(out["positions"][b], np.where(np.array(got[0]) > 0, np.arange(16), 0))
        assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("name", ["nsp", "sop"])
def test_labels_are_balanced_and_pairs_are_continuations(name):
    packed, sentences = packed_documents(0)
    keys = jax.random.split(jax.random.key(1), 8)
    outs = jax.tree.map(np.asarray, over_keys(name, short_seq_prob=0.0)(keys, packed))
    labels = np.asarray(outs["targets"]["nsp"].ids).ravel()
    assert (np.asarray(outs["targets"]["nsp"].weights) == 1).all()
    n = labels.size  # 512 examples, every chunk has >= 2 sentences: labels are a fair coin
    assert abs(labels.mean() - 0.5) < 3 * np.sqrt(0.25 / n), labels.mean()
    for k in range(len(keys)):
        for b in range(ROWS):
            (row_a, pos_a), (row_b, pos_b) = split_pair(
                outs["inputs"][k, b], outs["token_type_ids"][k, b], outs["segment_ids"][k, b])
            starts = {s for s, _ in sentences[b]}
            ends = {e for _, e in sentences[b]}
            label = outs["targets"]["nsp"].ids[k, b]
            if label == 0 or name == "sop":
                # Same document, adjacent, cut at sentence boundaries; sop label 1 has them swapped.
                first, second = (pos_a, pos_b) if label == 0 else (pos_b, pos_a)
                assert row_a == row_b == b
                assert first[0] == 0 and first[-1] + 1 == second[0]
                assert second[0] in starts and second[-1] + 1 in ends
            else:
                # NotNext: A is this row's document start, B another row's document from a sentence start.
                assert row_a == b and row_b != b
                if len(pos_a) + len(pos_b) < L - 3:  # not trimmed: cut at sentence boundaries
                    assert pos_a[0] == 0 and pos_a[-1] + 1 in ends
                    assert pos_b[0] in {s for s, _ in sentences[row_b]}


@pytest.mark.parametrize("name", ["nsp", "sop"])
def test_single_sentence_chunks_take_b_from_another_document(name):
    packed, _ = packed_documents(2)
    packed = packed._replace(sentence_ids=np.zeros_like(packed.sentence_ids))  # one sentence per document
    out = jax.tree.map(np.asarray, over_keys(name, short_seq_prob=0.0)(jax.random.split(jax.random.key(0), 8), packed))
    assert (out["targets"]["nsp"].ids == 1).all()
    for b in range(ROWS):
        (row_a, _), (row_b, _) = split_pair(out["inputs"][0, b], out["token_type_ids"][0, b], out["segment_ids"][0, b])
        assert row_a == b and row_b != b


def one_document_per_eight_rows(seed):
    """32 rows of L tokens packed by the project's packer from 4 documents of 8 rows each, sentences
    of 3 to 9 tokens. Token ids encode the source: 13 + document * 8 * L + offset in the document."""
    rng = np.random.default_rng(seed)
    documents = []
    for d in range(4):
        size = 8 * L - 1  # + EOS: exactly 8 rows
        tokens = np.append(13 + d * 8 * L + np.arange(size), SPECIALS.eos).astype(np.int32)
        sentence_ids = np.minimum(np.cumsum(rng.random(size + 1) < 1 / 6), 10_000).astype(np.int32)
        documents.append(packing.TokenizedDocument(tokens, sentence_ids))
    return packing.pack_documents(documents, L, np.ones(13 + 32 * L + 8, bool))


@pytest.mark.parametrize("name", ["nsp", "sop"])
def test_not_next_never_comes_from_the_same_document_over_rows(name):
    """A batch of 4 documents split over 8 rows each (as the packer splits long documents): every
    NotNext B comes from another document than A, over 64 keys, whatever row it was taken from.
    The source document is read off the token ids, not off document_ids. sop takes B from another
    row only for a one-sentence chunk, so its rows hold one sentence each."""
    packed = one_document_per_eight_rows(0)
    if name == "sop":
        packed = packed._replace(sentence_ids=np.zeros_like(packed.sentence_ids))
    assert packed.tokens.shape == (32, L)
    keys = jax.random.split(jax.random.key(7), 64)
    out = jax.tree.map(np.asarray, over_keys(name, short_seq_prob=0.0)(keys, packed))
    inputs, labels = out["inputs"], out["targets"]["nsp"].ids
    document_of = lambda ids: (ids - 13) // (8 * L)  # noqa: E731
    checked = 0
    for k in range(len(keys)):
        for b in range(32):
            if out["targets"]["nsp"].weights[k, b] == 0 or labels[k, b] == 0:
                continue
            seps = np.nonzero(inputs[k, b] == SEP)[0]
            a, b_half = inputs[k, b, 1 : seps[0]], inputs[k, b, seps[0] + 1 : seps[1]]
            a_docs, b_docs = set(document_of(a).tolist()), set(document_of(b_half).tolist())
            assert len(a_docs) == len(b_docs) == 1
            assert a_docs != b_docs, (k, b)
            checked += 1
    assert checked > 500


def _truncate_seq_pair(len_a, len_b, max_tokens):
    """BERT's loop, on lengths: trim the longer side (B on ties) until the pair fits."""
    while len_a + len_b > max_tokens:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_trim_pair_matches_the_reference_loop():
    grid = [(a, b, t) for a in range(0, 30, 3) for b in range(0, 30, 2) for t in (2, 7, 13, 20)]
    len_a, len_b = (jnp.array([g[i] for g in grid]) for i in range(2))
    for t in (2, 7, 13, 20):
        front_a, kept_a, front_b, kept_b = sentence_pairs.trim_pair(jax.random.key(t), len_a, len_b, t, 30)
        for i, (a, b, tt) in enumerate(grid):
            if tt == t:
                assert (int(kept_a[i]), int(kept_b[i])) == _truncate_seq_pair(a, b, t), (a, b, t)
                assert 0 <= front_a[i] <= a - kept_a[i] and 0 <= front_b[i] <= b - kept_b[i]
    # The front cut is Binomial(cut, 1/2).
    cut = 40
    front_a, *_ = sentence_pairs.trim_pair(jax.random.key(0), jnp.full(4000, 50), jnp.full(4000, 1), 11, 64)
    assert abs(float(front_a.mean()) - cut / 2) < 3 * np.sqrt(cut / 4 / 4000)


def test_long_documents_are_trimmed_and_short_targets_drawn():
    packed, _ = packed_documents(3, rows=ROWS, main_tokens=(55, 58))
    keys = jax.random.split(jax.random.key(2), 8)
    outs = jax.tree.map(np.asarray, over_keys("nsp", short_seq_prob=1.0)(keys, packed))
    lengths = np.asarray(outs["segment_ids"]).sum(-1)
    assert lengths.max() <= L and len(set(lengths.ravel().tolist())) > 20  # random targets give varied lengths
    for k in range(len(keys)):
        for b in range(ROWS):
            split_pair(outs["inputs"][k, b], outs["token_type_ids"][k, b], outs["segment_ids"][k, b])


def test_mlm_on_the_pair_never_touches_cls_sep_or_padding():
    packed, _ = packed_documents(4)
    objective = jax.jit(get_spec("nsp").builder(get_config().objective.nsp, SPECIALS, L))
    out = jax.tree.map(np.asarray, objective(jax.random.key(3), packed))
    positions, weights = np.asarray(out["mlm_positions"]), np.asarray(out["targets"]["mlm"].weights)
    assert weights.sum() > 0
    for b in range(ROWS):
        hit = positions[b][weights[b] > 0]
        assert (out["segment_ids"][b, hit] == 1).all()
        assert not np.isin(np.asarray(out["targets"]["mlm"].ids[b])[weights[b] > 0], [CLS, SEP, 0]).any()
    assert (np.asarray(out["inputs"]) == SPECIALS.mask).sum() > 0


@pytest.mark.parametrize("name", ["nsp", "sop"])
def test_eval_shape(name):
    objective = get_spec(name).builder(get_config().objective[name], SPECIALS, 128)
    spec = jax.ShapeDtypeStruct((8, 128), jnp.int32)
    packed = PackedBatch(spec, spec, spec, spec, jax.ShapeDtypeStruct((8, 128), bool), spec)
    shapes = {k: (v.shape, v.dtype) for k, v in flat(jax.eval_shape(objective, jax.random.key(0), packed)).items()}
    P = get_config().objective[name].mlm.max_predictions
    assert shapes == {
        "inputs": ((8, 128), jnp.int32), "segment_ids": ((8, 128), jnp.int32), "positions": ((8, 128), jnp.int32),
        "token_type_ids": ((8, 128), jnp.int32), "mlm_positions": ((8, P), jnp.int32),
        "targets.mlm.ids": ((8, P), jnp.int32), "targets.mlm.weights": ((8, P), jnp.float32),
        "targets.nsp.ids": ((8,), jnp.int32), "targets.nsp.weights": ((8,), jnp.float32)}


@pytest.mark.parametrize("name, key, value, message", [
    ("nsp", "not_next_prob", 1.0, "not_next_prob"), ("sop", "swap_prob", 0.0, "swap_prob"),
    ("nsp", "short_seq_prob", 1.5, "short_seq_prob"), ("sop", "mlm.rate", 0.0, "sop.mlm: rate"),
])
def test_invalid_settings_fail_at_build_time(name, key, value, message):
    cfg = get_config().objective[name]
    section, _, leaf = key.rpartition(".")
    (cfg[section] if section else cfg)[leaf] = value
    with pytest.raises(ValueError, match=message):
        get_spec(name).builder(cfg, SPECIALS, 128)


def test_missing_sentence_ids_or_single_row_is_an_error():
    packed, _ = packed_documents(5, rows=2)
    objective = get_spec("nsp").builder(get_config().objective.nsp, SPECIALS, L)
    with pytest.raises(ValueError, match="sentence_ids"):
        objective(jax.random.key(0), packed._replace(sentence_ids=None))
    with pytest.raises(ValueError, match="document_ids"):
        objective(jax.random.key(0), packed._replace(document_ids=None))
    with pytest.raises(ValueError, match="batch size 1"):
        objective(jax.random.key(0), PackedBatch(*(x[:1] for x in packed)))


def test_registered_as_encoder_objectives():
    assert get_spec("nsp").family == get_spec("sop").family == "encoder"
