"""bart: golden examples per noise, invariants over random packings, statistics over many seeds.

Every noise here runs through ONE compiled pipeline whose rates are traced arguments (a rate of 0
makes a noise the identity), so the file compiles twice in all: that pipeline and the objective.
"""

import fractions
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flat_batch import flat
from hypothesis import given, settings
from hypothesis import strategies as st

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import bart, build_objective, get_spec
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
MASK = SPECIALS.mask
B, L, EXTRA = 64, 48, 16  # rows, packed length, extra encoder slots
N = L + EXTRA


class Ratio(NamedTuple):
    """An exact rate with traced numerator / denominator (what the noises read from a Fraction)."""

    numerator: jax.Array
    denominator: jax.Array


def noise_params(permute=0.0, mask=0.0, delete=0.0, infill=0.0, lam=3.0, by_word=False, insert=0.0, rotate=0.0,
                 random_ratio=0.0):
    exact = lambda x: Ratio(*(jnp.int32(v) for v in fractions.Fraction(x).limit_denominator(10_000).as_integer_ratio()))
    return {
        "permute": exact(permute), "mask": jnp.float32(mask), "delete": jnp.float32(delete),
        "infill": exact(infill), "cdf": jnp.asarray(bart.poisson_cdf(lam)), "by_word": jnp.bool_(by_word),
        "insert": exact(insert), "rotate": jnp.float32(rotate), "random_ratio": jnp.float32(random_ratio),
    }


@functools.cache
def pipeline():
    """The noises in bart.noise's order and with its keys; (B, L) packed -> (NoiseState, InfillStats)."""

    def run(rng, packed, p):
        keys = jax.random.split(rng, 6)
        state = bart.initial_state(packed, SPECIALS, N)
        content = (state.segment_ids > 0) & ~state.fixed
        state = state._replace(word_starts=jnp.where(p["by_word"], state.word_starts, content))  # token units
        sentence_ids = jnp.pad(packed.sentence_ids, ((0, 0), (0, EXTRA)))
        state = bart.permute_sentences(keys[0], state, sentence_ids, p["permute"])
        state = bart.mask_tokens(keys[1], state, p["mask"], p["random_ratio"], SPECIALS)
        state = bart.delete_tokens(keys[2], state, p["delete"], SPECIALS)
        state, stats = bart.infill_spans(keys[3], state, p["infill"], p["cdf"], True, p["random_ratio"], SPECIALS)
        state = bart.insert_tokens(keys[4], state, p["insert"], p["random_ratio"], SPECIALS)
        state = bart.rotate_documents(keys[5], state, p["rotate"])
        return state, stats

    return jax.jit(run)


def noised(key, packed, **rates):
    state, stats = pipeline()(jax.random.key(key), packed, noise_params(**rates))
    return jax.device_get(state), jax.device_get(stats)


def bart_config(**overrides):
    cfg = get_config().objective.bart
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def objective():
    return jax.jit(bart.build(bart_config(encoder_extra_len=EXTRA), SPECIALS, L))


def random_packed(seed, word_start_prob=0.7, special_prob=0.05, max_doc=L):
    """B rows of random EOS-terminated documents with sentences, a few inner specials, padding.

    Ordinary ids are distinct within a row, so a test can tell where each token went.
    """
    rng = np.random.default_rng(seed)
    tokens, segment_ids, positions, sentence_ids = (np.zeros((B, L), np.int32) for _ in range(4))
    for b in range(B):
        tokens[b] = SPECIALS.first_normal_id + rng.permutation(SPECIALS.normal_id_end - SPECIALS.first_normal_id)[:L]
        used = int(rng.integers(0, L + 1)) if rng.random() < 0.8 else L
        start, doc = 0, 1
        while start < used:
            size = int(min(used - start, rng.integers(1, max_doc + 1)))
            tokens[b, start + size - 1] = SPECIALS.eos
            segment_ids[b, start : start + size] = doc
            positions[b, start : start + size] = np.arange(size)
            sentence_ids[b, start : start + size] = np.cumsum(rng.random(size) < 0.25) - (rng.random() < 0.5)
            start, doc = start + size, doc + 1
        tokens[b, used:] = SPECIALS.pad
    sentence_ids = np.maximum(sentence_ids, 0)
    inner = (rng.random((B, L)) < special_prob) & (segment_ids > 0)
    specials = rng.choice([SPECIALS.cls, SPECIALS.sep, MASK, SPECIALS.vocab_size - 1], (B, L))
    tokens = np.where(inner, specials, tokens).astype(np.int32)
    word_starts = ((rng.random((B, L)) < word_start_prob) | (positions == 0)) & (segment_ids > 0)
    return PackedBatch(tokens, segment_ids, positions, sentence_ids * (segment_ids > 0), word_starts)


def one_row(tokens, segment_ids, sentence_ids, word_starts):
    """A batch whose row 0 holds the given (short) row and whose other rows are padding."""
    size = len(tokens)
    pad = lambda values, dtype: np.pad(np.array([values], dtype), ((0, B - 1), (0, L - size)))
    positions = [i - segment_ids.index(s) for i, s in enumerate(segment_ids)]
    return PackedBatch(pad(tokens, np.int32), pad(segment_ids, np.int32), pad(positions, np.int32),
                       pad(sentence_ids, np.int32), pad(word_starts, bool))


def documents(tokens, segment_ids, *others):
    """Per row, per document (in order): the document's slices of tokens and the other arrays."""
    out = []
    for b in range(tokens.shape[0]):
        docs = []
        for s in [s for s in dict.fromkeys(segment_ids[b].tolist()) if s > 0]:
            where = segment_ids[b] == s
            docs.append((tokens[b][where], *(o[b][where] for o in others)))
        out.append(docs)
    return out


def is_special(tokens):
    return (tokens < SPECIALS.first_normal_id) | (tokens >= SPECIALS.normal_id_end)


def is_subsequence(short, long):
    it = iter(long.tolist())
    return all(any(x == y for y in it) for x in short.tolist())


def sentences_of(tokens, sentence_ids):
    """A document's sentences: runs of ordinary tokens with one sentence id (specials split them)."""
    out, current = [], []
    for i, (token, sid) in enumerate(zip(tokens.tolist(), sentence_ids.tolist(), strict=True)):
        if is_special(np.array(token)) or (current and sid != sentence_ids[i - 1]):
            out, current = out + [current] * bool(current), []
        if not is_special(np.array(token)):
            current.append(token)
    return out + [current] * bool(current)


# ---- registry, shapes, validation ---------------------------------------------------------------


def test_registered_for_encoder_decoder_with_static_shapes():
    assert get_spec("bart").family == "encoder_decoder"
    config = get_config()
    config.objective.name = "bart"
    config.objective.bart.encoder_extra_len = 8
    fn, family = build_objective(config.objective, SPECIALS, 512)
    assert family == "encoder_decoder"
    ints, bools = jax.ShapeDtypeStruct((3, 512), jnp.int32), jax.ShapeDtypeStruct((3, 512), bool)
    shapes = jax.eval_shape(fn, jax.random.key(0), PackedBatch(ints, ints, ints, ints, bools))
    encoder, decoder = ((3, 520), jnp.int32), ((3, 512), jnp.int32)
    assert {k: (v.shape, v.dtype) for k, v in flat(shapes).items()} == {
        "encoder_inputs": encoder, "encoder_segment_ids": encoder, "encoder_positions": encoder,
        "decoder_inputs": decoder, "decoder_segment_ids": decoder, "decoder_positions": decoder,
        "targets.lm.ids": decoder, "targets.lm.weights": ((3, 512), jnp.float32),
    }
    # Sentence permutation needs sentence ids; word-level infilling needs word starts.
    with pytest.raises(ValueError, match="sentence_ids"):
        jax.eval_shape(fn, jax.random.key(0), PackedBatch(ints, ints, ints, None, bools))
    word_level = bart.build(bart_config(infill_unit="word", permute_sentence_rate=0.0), SPECIALS, 512)
    with pytest.raises(ValueError, match="word_starts"):
        jax.eval_shape(word_level, jax.random.key(0), PackedBatch(ints, ints, ints))


@pytest.mark.parametrize(
    "overrides",
    [{"permute_sentence_rate": 1.5}, {"token_mask_rate": -0.1}, {"token_delete_rate": 2.0}, {"infill_ratio": 1.2},
     {"insert_rate": 1.5}, {"rotate_rate": -1.0}, {"random_ratio": 1.1}, {"infill_poisson_lambda": 0.0},
     {"infill_unit": "span"}, {"encoder_extra_len": -1}],
)
def test_impossible_values_fail_at_build_time(overrides):
    with pytest.raises(ValueError, match="bart"):
        bart.build(bart_config(**overrides), SPECIALS, 64)


# ---- golden examples ----------------------------------------------------------------------------

# Document 1: sentences [40 41 42] [43 44 45] [46 47 48] + EOS, words [40] [41 42] [43] [44 45] [46]
# [47] [48]; document 2: sentences [50 51] [52 53] + EOS. Rows 1.. are padding.
GOLDEN = one_row([40, 41, 42, 43, 44, 45, 46, 47, 48, 1, 50, 51, 52, 53, 1], [1] * 10 + [2] * 5,
                 [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1], [1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])


@pytest.mark.parametrize(
    "rates, key, expected",
    [
        ({"permute": 1.0}, 1, [43, 44, 45, 40, 41, 42, 46, 47, 48, 1, 52, 53, 50, 51, 1]),
        ({"permute": 0.5}, 2, [46, 47, 48, 43, 44, 45, 40, 41, 42, 1, 50, 51, 52, 53, 1]),  # 2 of 3, 1 of 2 move
        ({"mask": 0.3}, 0, [40, 4, 4, 43, 4, 45, 46, 47, 4, 1, 50, 51, 52, 53, 1]),
        ({"delete": 0.3}, 1, [40, 42, 43, 44, 45, 47, 1, 52, 1]),
        ({"infill": 0.3}, 1, [40, 41, 4, 45, 46, 47, 48, 1, 50, 51, 4, 4, 1]),  # budgets 3, 2: spans 3 | 1, 1
        ({"infill": 0.3, "by_word": True}, 0, [40, 41, 42, 43, 4, 48, 1, 50, 51, 4, 1]),  # words [44 45] [46] [47]
        ({"infill": 0.5, "lam": 1.0}, 1, [4, 42, 4, 4, 43, 44, 4, 4, 4, 48, 1, 4, 4, 51, 4, 53, 4, 4, 1]),
        ({"insert": 0.2}, 0, [40, 4, 41, 42, 43, 44, 45, 46, 47, 4, 48, 1, 50, 4, 51, 52, 53, 1]),
        ({"rotate": 1.0}, 2, [41, 42, 43, 44, 45, 46, 47, 48, 40, 1, 52, 53, 50, 51, 1]),
        ({"permute": 1.0, "infill": 0.3}, 1, [43, 44, 4, 42, 46, 47, 48, 1, 52, 53, 4, 4, 1]),
    ],
)
def test_golden_noise(rates, key, expected):
    state, _ = noised(key, GOLDEN, **rates)
    size, first_eos = len(expected), expected.index(1)
    np.testing.assert_array_equal(state.tokens[0, :size], expected)
    np.testing.assert_array_equal(state.segment_ids[0, :size], [1] * (first_eos + 1) + [2] * (size - first_eos - 1))
    np.testing.assert_array_equal(state.fixed[0, :size], np.array(expected) == 1)
    assert (state.tokens[:, size:] == 0).all() and (state.segment_ids[:, size:] == 0).all()
    assert state.fixed[:, size:].all() and (state.tokens[1:] == 0).all()


def test_golden_objective_default_recipe():
    # Sentence permutation + text infilling (the paper's final objective), key 1 as in test_golden_noise.
    out = jax.device_get(objective()(jax.random.key(1), GOLDEN))
    encoder = [43, 44, 4, 42, 46, 47, 48, 1, 52, 53, 4, 4, 1]
    np.testing.assert_array_equal(out["encoder_inputs"][0], encoder + [0] * (N - 13))
    np.testing.assert_array_equal(out["encoder_segment_ids"][0], [1] * 8 + [2] * 5 + [0] * (N - 13))
    np.testing.assert_array_equal(out["encoder_positions"][0], list(range(8)) + list(range(5)) + [0] * (N - 13))
    np.testing.assert_array_equal(out["targets"]["lm"].ids, GOLDEN.tokens)
    shifted = [0, 40, 41, 42, 43, 44, 45, 46, 47, 48, 0, 50, 51, 52, 53]
    np.testing.assert_array_equal(out["decoder_inputs"][0, :15], shifted)
    np.testing.assert_array_equal(out["decoder_segment_ids"], GOLDEN.segment_ids)
    np.testing.assert_array_equal(out["decoder_positions"], GOLDEN.positions)
    np.testing.assert_array_equal(out["targets"]["lm"].weights[0, :15], [1] * 15)  # EOS too: the decoder learns to stop
    assert (out["targets"]["lm"].weights[1:] == 0).all() and (out["encoder_inputs"][1:] == 0).all()


# ---- invariants over random packings ------------------------------------------------------------

NOISES = {
    "permute": {"permute": 1.0},
    "permute_some": {"permute": 0.4},
    "mask": {"mask": 0.3},
    "delete": {"delete": 0.3},
    "infill": {"infill": 0.3},
    "infill_word": {"infill": 0.3, "by_word": True},
    "infill_many_empty": {"infill": 0.6, "lam": 0.5},  # many 0-length spans: the row may fill up
    "insert": {"insert": 0.3},
    "rotate": {"rotate": 0.7},
    "all": {"permute": 1.0, "mask": 0.1, "delete": 0.1, "infill": 0.3, "insert": 0.1, "rotate": 0.5,
            "random_ratio": 0.3},
}


def check_document(name, original, sentence_ids, word_starts, tokens, fixed, spans, span_units):
    """One document before (original, its sentence ids, word starts) and after (tokens, fixed)."""
    special = is_special(original)
    np.testing.assert_array_equal(tokens[fixed], original[special])  # specials kept, in order
    content, source = tokens[~fixed], original[~special]
    noise = ~np.isin(content, source)
    assert ((content[noise] == MASK) | ~is_special(content[noise])).all()
    kept = content[~noise]
    if name in ("permute", "permute_some", "rotate", "mask"):  # same length, specials in place
        np.testing.assert_array_equal(fixed, special)
    if name.startswith("permute"):
        pieces = sentences_of(original, sentence_ids)
        starting = {piece[0]: piece for piece in pieces}
        out, i = [], 0
        while i < len(content):
            piece = starting.pop(content[i])
            assert content[i : i + len(piece)].tolist() == piece
            out.append(piece)
            i += len(piece)
        assert not starting  # a permutation of the document's sentences
    elif name == "rotate":
        shift = int(np.flatnonzero(source == content[0])[0]) if len(content) else 0
        np.testing.assert_array_equal(content, np.roll(source, -shift))
    elif name == "mask":
        assert (content[noise] == MASK).all() and (content[~noise] == source[~noise]).all()
    elif name == "delete":
        assert not noise.any() and is_subsequence(content, source)
    elif name.startswith("infill"):
        assert is_subsequence(kept, source) and (content[noise] == MASK).all()
        assert noise.sum() <= spans  # one [MASK] per span (0-length spans may not fit in a full row)
        masked = ~np.isin(source, kept)
        if name == "infill_word":  # units are words: a run of ordinary tokens starts one too
            word = np.cumsum(word_starts[~special] | np.r_[True, np.diff(np.flatnonzero(~special)) > 1]) - 1
            for w in np.unique(word):
                assert masked[word == w].all() or not masked[word == w].any()  # whole words
            assert len(np.unique(word[masked])) == span_units
        else:
            assert masked.sum() == span_units
    elif name == "insert":
        np.testing.assert_array_equal(kept, source)
        assert noise.sum() <= -(-3 * len(source) // 10)  # ceil(0.3 n), fewer only in a full row
    return noise.sum()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), key=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(NOISES)))
def test_noise_invariants(seed, key, name):
    packed = random_packed(seed)
    state, stats = noised(key, packed, **NOISES[name])
    seg_before = np.pad(packed.segment_ids, ((0, 0), (0, EXTRA)))
    for b in range(B):
        doc_ids = [s for s in dict.fromkeys(packed.segment_ids[b].tolist()) if s > 0]
        used = state.segment_ids[b] > 0
        assert used.sum() == 0 or used[: np.flatnonzero(used)[-1] + 1].all()  # documents, then padding
        assert list(dict.fromkeys(state.segment_ids[b][used].tolist())) == doc_ids
        assert (state.tokens[b][~used] == 0).all() and state.fixed[b][~used].all()
        noise_total = 0
        for s in doc_ids:
            before, after = packed.segment_ids[b] == s, state.segment_ids[b] == s
            spans = stats.used[b][seg_before[b] == s].sum()
            span_units = stats.span_length[b][seg_before[b] == s].sum()
            noise_total += check_document(name, packed.tokens[b][before], packed.sentence_ids[b][before],
                                          packed.word_starts[b][before], state.tokens[b][after],
                                          state.fixed[b][after], spans, span_units)
        if name.startswith("infill") and used.sum() < N:  # the row had room: every span has its [MASK]
            assert noise_total == stats.used[b].sum()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), key=st.integers(0, 2**31 - 1))
def test_objective_reconstructs_the_original_documents(seed, key):
    packed = random_packed(seed)
    out = jax.device_get(objective()(jax.random.key(key), packed))
    state, _ = noised(key, packed, permute=1.0, infill=0.3)  # the same noises, through the pipeline
    np.testing.assert_array_equal(out["encoder_inputs"], state.tokens)
    np.testing.assert_array_equal(out["encoder_segment_ids"], state.segment_ids)
    np.testing.assert_array_equal(out["targets"]["lm"].ids, packed.tokens)
    np.testing.assert_array_equal(out["decoder_segment_ids"], packed.segment_ids)
    np.testing.assert_array_equal(out["decoder_positions"], packed.positions)
    np.testing.assert_array_equal(out["targets"]["lm"].weights, (packed.segment_ids > 0).astype(np.float32))
    for b in range(B):
        for s in set(packed.segment_ids[b].tolist()) - {0}:
            doc = packed.segment_ids[b] == s
            np.testing.assert_array_equal(out["decoder_inputs"][b][doc], np.r_[0, packed.tokens[b][doc][:-1]])
            enc = out["encoder_segment_ids"][b] == s
            np.testing.assert_array_equal(out["encoder_positions"][b][enc], np.arange(enc.sum()))
    assert (out["decoder_inputs"][packed.segment_ids == 0] == 0).all()
    assert (out["encoder_positions"][out["encoder_segment_ids"] == 0] == 0).all()


# ---- statistics over many seeds -----------------------------------------------------------------

KEYS = 30


def per_document(packed, state, stats):
    """(n ordinary tokens, [MASK]s, kept ordinary tokens, spans, masked units) for every document."""
    seg_before = np.pad(packed.segment_ids, ((0, 0), (0, EXTRA)))
    rows = []
    for b in range(B):
        for s in set(packed.segment_ids[b].tolist()) - {0}:
            source = packed.tokens[b][packed.segment_ids[b] == s]
            out = state.tokens[b][state.segment_ids[b] == s]
            n = (~is_special(source)).sum()
            rows.append((n, (out == MASK).sum(), np.isin(out, source[~is_special(source)]).sum(),
                         stats.used[b][seg_before[b] == s].sum(), stats.span_length[b][seg_before[b] == s].sum()))
    return np.array(rows)


def test_infilling_masks_thirty_percent_with_poisson_spans():
    packed = random_packed(11, special_prob=0.0)
    docs, drawn = [], []
    for key in range(KEYS):
        state, stats = noised(key, packed, infill=0.3)
        docs.append(per_document(packed, state, stats))
        drawn.append(stats.drawn_length[stats.used])
    docs, drawn = np.concatenate(docs), np.concatenate(drawn)
    n, masks_, kept, spans, units = docs.T
    np.testing.assert_array_equal(masks_, spans)  # each span (0-length ones too) is ONE [MASK]
    np.testing.assert_array_equal(n - kept, units)
    budget = -(-3 * n // 10)  # ceil(0.3 n)
    assert (units <= budget).all() and (units == budget).mean() > 0.97  # short of it only if draws run out
    assert 0.3 - 0.005 < units.sum() / n.sum() < 0.3 + len(n) / n.sum()
    # Spans are Poisson(3) draws until the budget is met (the last one trimmed): by Wald's identity
    # the untrimmed lengths average lambda; the trimmed ones average less.
    assert abs(drawn.mean() - 3.0) < 4 * np.sqrt(3.0 / drawn.size)
    assert units.sum() / spans.sum() < 3.0
    assert abs((drawn == 0).mean() - np.exp(-3.0)) < 4 * np.sqrt(np.exp(-3.0) / drawn.size)


def fairseq_span_lengths(num_tokens, rng, ratio=0.3, lam=3.0):
    """fairseq denoising_dataset.py add_whole_word_mask, the span lengths only, transcribed: budget
    ceil(ratio * n); Poisson(lam) lengths drawn until they reach it, the last one cut to fit; zero
    lengths kept (fairseq turns them into inserted masks, one [MASK] each, like a span of 0)."""
    budget = int(np.ceil(num_tokens * ratio))
    lengths = list(rng.poisson(lam, size=budget))
    while np.sum(lengths) < budget:
        lengths.extend(rng.poisson(lam, size=budget))
    cumulative = np.cumsum(lengths)
    last = int(np.argmax(cumulative >= budget))
    lengths[last] = budget - (cumulative[last - 1] if last else 0)
    return lengths[: last + 1]


def test_infilling_span_lengths_read_off_the_output_match_fairseqs_draws():
    """Rows of one document, token ids 100, 101, ... in order, text infilling only. Each [MASK] between
    two kept tokens stands for the ids missing between them: its span's length (0 for an inserted
    [MASK]), read off the output alone. Spans sit at random gaps independent of their lengths, so
    the masks with kept tokens on both sides are a fair sample of all spans; their lengths match
    fairseq's draws for the same documents (chi-square homogeneity, 0.999 quantile)."""
    n = L - 1
    tokens = np.tile(np.append(100 + np.arange(n), SPECIALS.eos), (B, 1)).astype(np.int32)
    ones = np.ones((B, L), np.int32)
    packed = PackedBatch(tokens, ones, np.tile(np.arange(L, dtype=np.int32), (B, 1)), 0 * ones, ones.astype(bool))
    ours = []
    for key in range(KEYS):
        state, _ = noised(key, packed, infill=0.3)
        for row in state.tokens:
            row = row[: np.argmax(row == SPECIALS.eos) + 1].tolist()
            ids = [99] + [t if t != MASK else None for t in row[:-1]] + [100 + n]  # virtual ends
            for i in range(1, len(ids) - 1):
                if ids[i] is None and ids[i - 1] is not None and ids[i + 1] is not None:
                    ours.append(ids[i + 1] - ids[i - 1] - 1)
    rng = np.random.default_rng(0)
    reference = [length for _ in range(KEYS * B) for length in fairseq_span_lengths(n, rng)]
    bins = np.arange(8)  # 0, 1, ..., 6, 7+
    table = np.stack([np.bincount(np.minimum(x, 7), minlength=8) for x in (ours, reference)]).astype(float)
    fitted = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    assert len(ours) > 3000 and len(bins) == 8
    assert ((table - fitted) ** 2 / fitted).sum() < 24.32  # chi-square 0.999 quantile, 7 dof


def test_word_infilling_counts_words():
    # fairseq counts word starts: ceil(0.3 * words) whole words per document (whole words: see
    # test_noise_invariants).
    packed = random_packed(12, special_prob=0.0)
    units, budgets = [], []
    for key in range(5):
        _, stats = noised(key, packed, infill=0.3, by_word=True)
        for b in range(B):
            for s in set(packed.segment_ids[b].tolist()) - {0}:
                doc = packed.segment_ids[b] == s
                words = (packed.word_starts[b][doc] & ~is_special(packed.tokens[b][doc])).sum()
                units.append(stats.span_length[b][np.pad(doc, (0, EXTRA))].sum())
                budgets.append(-(-3 * words // 10))
    units, budgets = np.array(units), np.array(budgets)
    assert (units <= budgets).all() and (units == budgets).mean() > 0.97


def test_infilling_masks_every_interior_position_equally_often():
    packed = repeated_document(range(40, 80), [0] * 40)
    masked = np.zeros(40)
    for key in range(KEYS):
        state, _ = noised(key, packed, infill=0.3)
        present = (state.tokens[:, None, :] == np.arange(40, 80)[None, :, None]).any(-1)  # (B, 40)
        masked += (~present).sum(0)
    share = masked / (KEYS * B)
    assert abs(share.mean() - 12 / 40) < 1e-3  # ceil(0.3 * 40) = 12 tokens every time
    # Spans never overlap and sit at uniform gaps between the free tokens, so the first and last
    # few tokens (fewer ways to be covered) are masked less often, symmetrically; the interior is flat.
    interior = share[5:-5]
    assert (np.abs(interior - interior.mean()) < 5 * np.sqrt(0.3 * 0.7 / (KEYS * B))).all()
    assert share[0] < 0.2 and share[-1] < 0.2 and abs(share[0] - share[-1]) < 0.05


@pytest.mark.parametrize("name, rate", [("delete", 0.2), ("mask", 0.35)])
def test_token_deletion_and_masking_rates_within_three_standard_errors(name, rate):
    packed = random_packed(13, special_prob=0.1)
    hit = total = 0
    for key in range(KEYS):
        state, _ = noised(key, packed, **{name: rate})
        for b in range(B):
            source = packed.tokens[b][(packed.segment_ids[b] > 0) & ~is_special(packed.tokens[b])]
            out = state.tokens[b][~state.fixed[b]]
            hit += len(source) - np.isin(out, source).sum()
            total += len(source)
    assert abs(hit / total - rate) < 3 * np.sqrt(rate * (1 - rate) / total)


def test_random_ratio_share_of_noise_tokens():
    packed = random_packed(14, special_prob=0.0)
    random_ids = noise = 0
    for key in range(10):
        state, _ = noised(key, packed, mask=0.5, random_ratio=0.25)
        changed = (state.tokens[:, :L] != packed.tokens) & (packed.segment_ids > 0)
        random_ids += (changed & (state.tokens[:, :L] != MASK)).sum()
        noise += changed.sum()
    # A random id equal to the original is invisible: negligible with 8000 ids.
    assert abs(random_ids / noise - 0.25) < 3 * np.sqrt(0.25 * 0.75 / noise) + 1e-3


def repeated_document(content, sentence_ids):
    """Every row: one document of `content` + EOS, then padding."""
    size = len(content) + 1
    row = one_row(list(content) + [1], [1] * size, list(sentence_ids) + [sentence_ids[-1]], [1] * size)
    return PackedBatch(*(None if field is None else np.repeat(field[:1], B, 0) for field in row))


def test_rotation_starts_at_a_uniform_token():
    packed = repeated_document(range(40, 48), [0] * 8)
    counts = np.zeros(8)
    for key in range(KEYS):
        state, _ = noised(key, packed, rotate=1.0)
        assert (state.tokens[:, 8] == 1).all()  # EOS stays last
        counts += np.bincount(state.tokens[:, 0] - 40, minlength=8)
    expected = counts.sum() / 8
    assert ((counts - expected) ** 2 / expected).sum() < 24.32  # chi-square 0.999 quantile, 7 dof


def test_sentence_permutation_orders_are_uniform():
    packed = repeated_document([40, 41, 42, 43, 44, 45], [0, 0, 1, 1, 2, 2])
    orders = {}
    for key in range(KEYS):
        state, _ = noised(key, packed, permute=1.0)
        for row in state.tokens[:, :6:2].tolist():
            orders[tuple(row)] = orders.get(tuple(row), 0) + 1
    assert len(orders) == 6
    counts = np.array(list(orders.values()))
    expected = counts.sum() / 6
    assert ((counts - expected) ** 2 / expected).sum() < 20.52  # chi-square 0.999 quantile, 5 dof

    # rate 0.5 of 4 sentences: ceil(2) are drawn and shuffled among their places, so either they
    # swap or (half the time) they stay.
    packed = repeated_document([40, 41, 42, 43, 44, 45, 46, 47], [0, 0, 1, 1, 2, 2, 3, 3])
    moved = []
    for key in range(KEYS):
        state, _ = noised(key, packed, permute=0.5)
        moved.extend((state.tokens[:, :8:2] != np.array([40, 42, 44, 46])).sum(1).tolist())
    moved = np.array(moved)
    assert set(moved.tolist()) == {0, 2}
    assert abs((moved == 0).mean() - 0.5) < 3 * np.sqrt(0.25 / moved.size)
