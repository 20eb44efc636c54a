"""t5_span_corruption: T5's lengths helper, golden rows, T5's exact noise distribution and counts,
and reassembly of every document over random packing layouts."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flat_batch import flat
from hypothesis import given, settings
from hypothesis import strategies as st
from packed_rows import pack_documents

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.data import packing
from pretrain_jax.objectives import build_objective, get_spec, masks
from pretrain_jax.objectives import documents as document_noise
from pretrain_jax.objectives import span_corruption as sc
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
V, EOS, SEP = SPECIALS.vocab_size, SPECIALS.eos, SPECIALS.sep


def span_config(**overrides):
    cfg = get_config().objective.t5_span_corruption
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def jitted(seq_len, specials=SPECIALS, **overrides):
    return jax.jit(sc.build(span_config(**overrides), specials, seq_len))


def pack(rows, seq_len, seed=0, special_prob=0.0, specials=SPECIALS):
    return pack_documents(rows, seq_len, seed, special_prob, specials=specials)


def t5_counts(n, density, mean):
    """Reference (num_noise, num_spans) in float32, straight from T5's formula."""
    noise = int(np.round(np.float32(n) * np.float32(density)))
    noise = min(max(noise, 1), n - 1)
    return noise, max(1, int(np.round(np.float32(noise) / np.float32(mean))))


def documents(tokens, segment_ids):
    return {int(k): tokens[segment_ids == k] for k in np.unique(segment_ids) if k > 0}


def reassemble(encoder, targets, specials=SPECIALS):
    """Puts each target span back in place of its sentinel; checks sentinels count down on both sides."""
    assert targets[-1] == specials.eos and targets[0] >= specials.normal_id_end
    spans, order = {}, []
    for token in targets[:-1]:
        if token >= specials.normal_id_end:
            order.append(int(token))
            spans[int(token)] = []
        else:
            spans[order[-1]].append(int(token))
    assert order == [specials.vocab_size - 1 - k for k in range(len(order))]
    assert all(spans.values())
    assert [int(t) for t in encoder if t >= specials.normal_id_end] == order
    out = []
    for token in encoder:
        out.extend(spans[int(token)] if token >= specials.normal_id_end else [int(token)])
    return out, spans


def check_row(packed, out, b, seq_len, targets_length, density, mean, specials=SPECIALS):
    """Every kept document reassembles exactly; kept documents are the corruptible ones up to the
    first that overflows; counts follow T5's formula where no special sits inside the document."""
    original = documents(packed.tokens[b], packed.segment_ids[b])
    enc = documents(out["encoder_inputs"][b], out["encoder_segment_ids"][b])
    dec = documents(out["targets"]["lm"].ids[b], out["decoder_segment_ids"][b])
    assert enc.keys() == dec.keys()
    used_inputs = used_targets = 0
    overflowed = False
    for k, doc in original.items():
        eligible = int(np.sum((doc >= specials.first_normal_id) & (doc < specials.normal_id_end)))
        if eligible < 2:
            assert k not in enc
            continue
        noise, spans = t5_counts(eligible, density, mean)
        clean = doc[-1] == specials.eos and not np.any(doc[:-1] < specials.first_normal_id)
        if k not in enc:
            if not overflowed and clean:  # the first left-out document must really overflow
                inputs_end, targets_end = used_inputs + len(doc) - noise + spans, used_targets + noise + spans + 1
                assert inputs_end > seq_len or targets_end > targets_length
            overflowed = True
            continue
        assert not overflowed, "kept documents must be a prefix of the corruptible ones"
        rebuilt, parts = reassemble(enc[k], dec[k], specials)
        assert rebuilt == doc.tolist()
        if clean:
            assert (len(parts), sum(map(len, parts.values()))) == (spans, noise)
        used_inputs, used_targets = used_inputs + len(enc[k]), used_targets + len(dec[k])


def check_layout(out, b):
    """Positions restart per segment, decoder inputs are targets shifted right per segment, weights on targets."""
    for prefix in ("encoder", "decoder"):
        seg, pos = out[f"{prefix}_segment_ids"][b], out[f"{prefix}_positions"][b]
        for k in np.unique(seg[seg > 0]):
            assert np.array_equal(pos[seg == k], np.arange(np.sum(seg == k)))
            assert np.all(np.diff(np.flatnonzero(seg == k)) == 1)
        assert np.all(pos[seg == 0] == 0)
    seg, targets = out["decoder_segment_ids"][b], out["targets"]["lm"].ids[b]
    expected = np.where((np.roll(seg, 1) == seg) & (np.arange(len(seg)) > 0), np.roll(targets, 1), 0)
    assert np.array_equal(out["decoder_inputs"][b], np.where(seg > 0, expected, 0))
    assert np.array_equal(out["targets"]["lm"].weights[b], (seg > 0).astype(np.float32))


def test_lengths_helper_matches_t5():
    assert sc.compute_input_and_target_lengths(512, 0.15, 3.0) == (568, 114)
    assert sc.default_targets_length(512, 0.15, 3.0) == 114
    for inputs_length, density, mean in itertools.product((64, 512, 1024), (0.15, 0.3, 0.5), (3.0, 8.0)):
        raw, targets = sc.compute_input_and_target_lengths(inputs_length, density, mean)
        noise = round(raw * density)
        spans = round(noise / mean)
        assert raw - noise + spans + 1 <= inputs_length
        if density == 0.5:
            assert targets <= inputs_length
        else:
            assert targets == noise + spans + 1
            bigger = round((raw + 1) * density)
            assert raw + 1 - bigger + round(bigger / mean) + 1 > inputs_length


def test_span_counts_formula():
    noise, spans = document_noise.t5_span_counts(np.array([2, 10, 511]), 0.15, 3.0)
    assert noise.tolist() == [1, 2, 77] and spans.tolist() == [1, 1, 26]
    for n in range(2, 600):
        assert tuple(int(x) for x in document_noise.t5_span_counts(n, 0.15, 3.0)) == t5_counts(n, 0.15, 3.0)


def test_golden_row():
    # Density 0.4, mean 2 leaves one noise span per document of 3 or 6 tokens, at its end: the row
    # is key-independent.
    tokens = np.array([[20, 21, 22, 23, 24, 25, 1, 30, 31, 32, 1, 0]], np.int32)
    segment_ids = np.array([[1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0]], np.int32)
    packed = PackedBatch(tokens, segment_ids, np.zeros_like(tokens))
    out = jitted(12, noise_density=0.4, mean_noise_span_length=2.0, targets_length=8)(jax.random.key(3), packed)
    s = V - 1
    np.testing.assert_array_equal(out["encoder_inputs"], [[20, 21, 22, 23, s, 1, 30, 31, s, 1, 0, 0]])
    np.testing.assert_array_equal(out["encoder_segment_ids"], [[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0]])
    np.testing.assert_array_equal(out["encoder_positions"], [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].ids, [[s, 24, 25, 1, s, 32, 1, 0]])
    np.testing.assert_array_equal(out["decoder_inputs"], [[0, s, 24, 25, 0, s, 32, 0]])
    np.testing.assert_array_equal(out["decoder_segment_ids"], [[1, 1, 1, 1, 2, 2, 2, 0]])
    np.testing.assert_array_equal(out["decoder_positions"], [[0, 1, 2, 3, 0, 1, 2, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].weights, [[1, 1, 1, 1, 1, 1, 1, 0]])


def test_golden_row_fixed_key():
    tokens = np.array([[20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 1, 0]], np.int32)
    segment_ids = np.array([[1] * 11 + [0]], np.int32)
    packed = PackedBatch(tokens, segment_ids, np.zeros_like(tokens))
    out = jitted(12, noise_density=0.4, mean_noise_span_length=2.0, targets_length=8)(jax.random.key(0), packed)
    # 10 tokens: 4 noise tokens in 2 spans, non-noise first, noise last.
    np.testing.assert_array_equal(out["encoder_inputs"], [[20, 21, 22, 23, 24, V - 1, 27, V - 2, 1, 0, 0, 0]])
    np.testing.assert_array_equal(out["targets"]["lm"].ids, [[V - 1, 25, 26, V - 2, 28, 29, 1, 0]])


def t5_reference_mask(n, density, mean, rng):
    """T5's random_spans_noise_mask in numpy (shuffled segmentation, interleave, cumsum)."""
    noise, spans = t5_counts(n, density, mean)

    def segmentation(items, segments):
        first = np.concatenate([[0], rng.permutation(np.arange(items - 1) < segments - 1)])
        return np.bincount(np.cumsum(first), minlength=segments)

    lengths = np.stack([segmentation(n - noise, spans), segmentation(noise, spans)], 1).reshape(-1)
    indicator = np.zeros(n, int)
    indicator[np.cumsum(lengths)[:-1]] = 1
    return tuple(np.cumsum(indicator) % 2 == 1)


def test_noise_distribution_is_t5s():
    """All masks T5 can draw for n = 12 (4 noise tokens in 2 spans: 3 * 7 = 21), equally often."""
    n, density, mean, rows = 12, 0.3, 2.0, 4096
    rng = np.random.default_rng(0)
    reference = {t5_reference_mask(n, density, mean, rng) for _ in range(2000)}
    assert len(reference) == 21
    packed = pack([[n + 1]] * rows, 16)
    eligible = masks.eligible_tokens(packed.tokens, packed.segment_ids, SPECIALS)
    noise, _ = jax.jit(document_noise.random_spans_noise_mask, static_argnums=(3, 4))(
        jax.random.key(1), eligible, packed.segment_ids, density, mean
    )
    counts = {}
    for row in np.asarray(noise)[:, :n]:
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert set(counts) == reference
    expected = rows / len(reference)
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 55, chi2  # 20 degrees of freedom: P(chi2 > 55) < 1e-4


def test_counts_per_document_follow_t5():
    """Every document length 2..200 in one batch: exact noise-token and span counts, defaults."""
    seq_len = 256
    rows = [[n + 1, seq_len - n - 1] if seq_len - n - 1 >= 3 else [n + 1] for n in range(2, 201)]
    packed = pack(rows, seq_len, seed=1)
    out = jax.device_get(jitted(seq_len, targets_length=seq_len)(jax.random.key(2), packed))
    for b in range(len(rows)):
        check_row(packed, out, b, seq_len, seq_len, 0.15, 3.0)
        assert len(documents(out["targets"]["lm"].ids[b], out["decoder_segment_ids"][b])) == len(rows[b])


def test_documents_that_overflow_are_left_out():
    """16 documents of 3 tokens + EOS, each needing 3 target slots: 6 fit in 20 decoder slots."""
    packed = pack([[4] * 16], 64, seed=3)
    out = jax.device_get(jitted(64, targets_length=20)(jax.random.key(0), packed))
    assert sorted(documents(out["targets"]["lm"].ids[0], out["decoder_segment_ids"][0])) == [1, 2, 3, 4, 5, 6]
    assert sorted(documents(out["encoder_inputs"][0], out["encoder_segment_ids"][0])) == [1, 2, 3, 4, 5, 6]
    check_row(packed, out, 0, 64, 20, 0.15, 3.0)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 24), max_size=6), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    special_prob=st.sampled_from([0.0, 0.1]),
    config=st.sampled_from([(0.15, 3.0, 20), (0.5, 2.0, 48), (0.3, 1.0, 14)]),
)
def test_documents_reassemble_over_layouts(rows, seed, special_prob, config):
    seq_len, batch = 48, 4
    fitted = []
    for lengths in rows + [[]] * (batch - len(rows)):
        kept, used = [], 0
        for size in lengths:
            if used + size <= seq_len:
                kept.append(size)
                used += size
        fitted.append(kept)
    density, mean, targets_length = config
    packed = pack(fitted, seq_len, seed, special_prob)
    objective = jitted(seq_len, noise_density=density, mean_noise_span_length=mean, targets_length=targets_length)
    out = jax.device_get(objective(jax.random.key(seed), packed))
    for b in range(batch):
        check_row(packed, out, b, seq_len, targets_length, density, mean)
        check_layout(out, b)


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(1, 120), min_size=1, max_size=12), seed=st.integers(0, 2**16),
       special_prob=st.sampled_from([0.0, 0.05, 0.2]))
def test_rows_packed_under_the_budget_leave_no_document_out(lengths, seed, special_prob):
    """Documents of random lengths with special ids inside (each may split a noise span and cost a
    sentinel more), packed by the project's packer under the objective's row budget: every document
    with 2+ ordinary tokens is in the example, whole (its inputs and targets reassemble it)."""
    seq_len = 48
    settings_ = sc.SpanCorruptionSettings.from_config(span_config(), SPECIALS, seq_len)
    budget = settings_.budget
    rng = np.random.default_rng(seed)
    documents = []
    for size in lengths:
        body = rng.integers(SPECIALS.first_normal_id, SPECIALS.normal_id_end, size).astype(np.int32)
        body[rng.random(size) < special_prob] = SPECIALS.unk
        documents.append(packing.TokenizedDocument(np.append(body, SPECIALS.eos), np.zeros(size + 1, np.int32)))
    rows = packing.pack_documents(documents, budget, np.ones(SPECIALS.vocab_size, bool))
    rows = packing.stack_rows([PackedBatch(*(f[r] for f in rows)) for r in range(min(4, len(rows.tokens)))]
                              + [packing.empty_row(budget.row_length)] * max(0, 4 - len(rows.tokens)))
    out = jax.device_get(jitted(seq_len)(jax.random.key(seed), rows))
    for b in range(4):
        for segment in np.unique(rows.segment_ids[b][rows.segment_ids[b] > 0]):
            tokens = rows.tokens[b][rows.segment_ids[b] == segment]
            if ((tokens >= SPECIALS.first_normal_id) & (tokens < SPECIALS.normal_id_end)).sum() >= 2:
                assert segment in out["encoder_segment_ids"][b], (b, segment)
        check_row(rows, out, b, seq_len, settings_.targets_length, 0.15, 3.0)


def test_shapes_follow_config_alone():
    cfg = get_config()
    cfg.objective.name = "t5_span_corruption"
    objective, family = build_objective(cfg.objective, SPECIALS, 512)
    assert family == get_spec("t5_span_corruption").family == "encoder_decoder"
    packed = jax.ShapeDtypeStruct((8, 512), jnp.int32)
    shapes = jax.eval_shape(objective, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert {k: v.shape for k, v in shapes.items() if k.startswith("encoder")} == {
        "encoder_inputs": (8, 512),
        "encoder_segment_ids": (8, 512),
        "encoder_positions": (8, 512),
    }
    for key in ("decoder_inputs", "decoder_segment_ids", "decoder_positions", "targets.lm.ids", "targets.lm.weights"):
        assert flat(shapes)[key].shape == (8, 114)
    assert shapes["targets"]["lm"].weights.dtype == jnp.float32


@pytest.mark.parametrize(
    "overrides, seq_len, specials, message",
    [
        ({"noise_density": 0.0}, 64, SPECIALS, "noise_density"),
        ({"noise_density": 1.0}, 64, SPECIALS, "noise_density"),
        ({"mean_noise_span_length": 0.5}, 64, SPECIALS, "mean_noise_span_length"),
        ({"targets_length": 2}, 64, SPECIALS, "targets_length"),
        ({"targets_length": -1}, 64, SPECIALS, "targets_length"),
        ({}, 2, SPECIALS, "too short"),
        ({}, 512, SpecialIds(vocab_size=8192, num_sentinels=10), "num_sentinels"),
    ],
)
def test_invalid_settings_fail_at_build(overrides, seq_len, specials, message):
    with pytest.raises(ValueError, match=message):
        sc.build(span_config(**overrides), specials, seq_len)
