"""ul2: mixture proportions, mode tokens, the S-denoiser's split, reassembly over packing layouts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packed_rows import pack_documents

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import build_objective, ul2
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
EOS, SEP, NLU, NLG, S2S = SPECIALS.eos, SPECIALS.sep, SPECIALS.nlu, SPECIALS.nlg, SPECIALS.s2s
SPAN_DENOISERS = ((3.0, 0.15), (8.0, 0.15), (3.0, 0.5), (8.0, 0.5), (64.0, 0.15), (64.0, 0.5))


def ul2_config(**overrides):
    cfg = get_config().objective.ul2
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def jitted(seq_len, **overrides):
    return jax.jit(ul2.build(ul2_config(**overrides), SPECIALS, seq_len))


pack = functools.partial(pack_documents, specials=SPECIALS)


def documents(tokens, segment_ids):
    return {int(k): tokens[segment_ids == k] for k in np.unique(segment_ids) if k > 0}


def t5_counts(n, density, mean):
    noise = min(max(int(np.round(np.float32(n) * np.float32(density))), 1), n - 1)
    return noise, max(1, int(np.round(np.float32(noise) / np.float32(mean))))


def is_sentinel(token):
    return token >= SPECIALS.normal_id_end


def parse_spans(targets):
    """Sentinel -> its span, from decoder targets; checks sentinels count down and spans are non-empty."""
    spans, order = {}, []
    for token in targets[:-1]:
        if is_sentinel(token):
            order.append(int(token))
            spans[int(token)] = []
        else:
            spans[order[-1]].append(int(token))
    assert order == [SPECIALS.vocab_size - 1 - k for k in range(len(order))] and all(spans.values())
    return spans


def identify(original, encoder, targets, exact_counts=True):
    """Which denoiser made this document (index; 6 = S), checking its output on the way. With a
    special inside the document a span may split in two, so counts are exact only without one."""
    ordinary = (original >= SPECIALS.first_normal_id) & (original < SPECIALS.normal_id_end)
    mode, inputs = int(encoder[0]), encoder[1:]
    assert targets[-1] == EOS
    if mode == S2S:
        assert not any(is_sentinel(t) for t in np.concatenate([inputs, targets]))
        split = int(np.sum((inputs >= SPECIALS.first_normal_id) & (inputs < SPECIALS.normal_id_end)))
        assert 1 <= split < ordinary.sum()
        rank = np.cumsum(ordinary) - ordinary
        continuation = ordinary & (rank >= split)
        assert inputs.tolist() == original[~continuation].tolist()
        assert targets[:-1].tolist() == original[continuation].tolist()
        return 6
    assert mode in (NLU, NLG)
    spans = parse_spans(targets)
    rebuilt = [x for t in inputs for x in (spans[int(t)] if is_sentinel(t) else [int(t)])]
    assert rebuilt == original.tolist()
    if not exact_counts:
        return None
    counts = (sum(map(len, spans.values())), len(spans))
    matches = [i for i, (mean, dens) in enumerate(SPAN_DENOISERS) if t5_counts(ordinary.sum(), dens, mean) == counts]
    assert matches, counts
    assert mode in {NLG if i >= 2 else NLU for i in matches}  # tiny documents can match several
    return matches[0]


def test_golden_row():
    tokens = np.zeros((4, 48), np.int32)  # the layout test's shapes, so it reuses that compilation
    segment_ids = np.zeros((4, 48), np.int32)
    tokens[0, :10] = [20, 21, 22, 23, 1, 30, 31, 32, 33, 1]
    segment_ids[0, :10] = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    out = jax.device_get(jitted(48)(jax.random.key(2), PackedBatch(tokens, segment_ids, np.zeros_like(tokens))))
    s = SPECIALS.vocab_size - 1
    # Document 1 drew S (a prefix of 2), document 2 an R denoiser (4 tokens: 1 noise token, 1 span).
    np.testing.assert_array_equal(out["encoder_inputs"][0, :11], [S2S, 20, 21, 1, NLU, 30, 31, 32, s, 1, 0])
    np.testing.assert_array_equal(out["encoder_segment_ids"][0, :11], [1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0])
    np.testing.assert_array_equal(out["targets"]["lm"].ids[0, :7], [22, 23, 1, s, 33, 1, 0])
    np.testing.assert_array_equal(out["decoder_inputs"][0, :7], [0, 22, 23, 0, s, 33, 0])
    np.testing.assert_array_equal(out["decoder_segment_ids"][0, :7], [1, 1, 1, 2, 2, 2, 0])
    assert out["targets"]["lm"].ids.shape == (4, 48) and not np.any(out["encoder_segment_ids"][1:])


def test_mixture_rates_and_mode_tokens():
    """2048 documents of 100 tokens (each denoiser leaves a different count signature)."""
    rates = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0])
    rows = [[101, 101]] * 1024
    packed = pack(rows, 256)
    objective = jitted(256, span_denoiser_rates=tuple(rates[:6]), prefix_lm_rate=rates[6], targets_length=256)
    out = jax.device_get(objective(jax.random.key(0), packed))
    chosen = []
    for b in range(len(rows)):
        original = documents(packed.tokens[b], packed.segment_ids[b])
        encoder = documents(out["encoder_inputs"][b], out["encoder_segment_ids"][b])
        targets = documents(out["targets"]["lm"].ids[b], out["decoder_segment_ids"][b])
        assert encoder.keys() == targets.keys() == original.keys()
        chosen += [identify(original[k], encoder[k], targets[k]) for k in original]
    frequency = np.bincount(chosen, minlength=7) / len(chosen)
    expected = rates / rates.sum()
    standard_error = np.sqrt(expected * (1 - expected) / len(chosen))
    assert np.all(np.abs(frequency - expected) < 3 * standard_error), (frequency, expected)


def test_s_denoiser_split_is_uniform_and_mode_tokens_can_be_off():
    """Documents of 5 ordinary tokens: the prefix length is uniform on 1..4."""
    objective = jitted(8, span_denoiser_rates=(0.0,) * 6, prefix_lm_rate=1.0, mode_tokens=False)
    packed = pack([[6]] * 4096, 8)
    out = jax.device_get(objective(jax.random.key(1), packed))
    assert np.all(out["encoder_inputs"][:, 0] == packed.tokens[:, 0])  # no mode token
    prefix = (out["encoder_segment_ids"] > 0).sum(1) - 1  # minus EOS
    frequency = np.bincount(prefix, minlength=5)[1:] / len(prefix)
    assert np.all(np.abs(frequency - 0.25) < 3 * np.sqrt(0.25 * 0.75 / len(prefix))), frequency


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 24), max_size=6), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    special_prob=st.sampled_from([0.0, 0.1]),
)
def test_documents_reassemble_over_layouts(rows, seed, special_prob):
    seq_len, batch = 48, 4
    fitted = []
    for lengths in rows + [[]] * (batch - len(rows)):
        sizes = list(np.cumsum(lengths))
        fitted.append([size for size, end in zip(lengths, sizes, strict=True) if end <= seq_len])
    packed = pack(fitted, seq_len, seed, special_prob)
    out = jax.device_get(jitted(seq_len)(jax.random.key(seed), packed))
    for b in range(batch):
        original = documents(packed.tokens[b], packed.segment_ids[b])
        encoder = documents(out["encoder_inputs"][b], out["encoder_segment_ids"][b])
        targets = documents(out["targets"]["lm"].ids[b], out["decoder_segment_ids"][b])
        assert encoder.keys() == targets.keys()
        corruptible = [k for k, doc in original.items() if np.sum((doc > SEP) & (doc < SPECIALS.normal_id_end)) >= 2]
        assert list(encoder) == corruptible[: len(encoder)]  # whole documents, up to the first that overflows
        for k in encoder:
            identify(original[k], encoder[k], targets[k], exact_counts=special_prob == 0.0)


def test_shapes_follow_config_alone():
    cfg = get_config()
    cfg.objective.name = "ul2"
    objective, family = build_objective(cfg.objective, SPECIALS, 512)
    assert family == "encoder_decoder"
    packed = jax.ShapeDtypeStruct((4, 512), jnp.int32)
    shapes = jax.eval_shape(objective, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert shapes["encoder_inputs"].shape == (4, 512) and shapes["targets"]["lm"].ids.shape == (4, 512)
    r_only = ul2_config(mean_noise_span_lengths=(3.0,), noise_densities=(0.15,), span_denoiser_rates=(1.0,))
    r_only.prefix_lm_rate = 0.0
    settings_r_only = ul2.Ul2Settings.from_config(r_only, SPECIALS, 512)
    assert settings_r_only.targets_length == 114 and settings_r_only.mode_ids == (NLU, S2S)


@pytest.mark.parametrize(
    "overrides, seq_len, message",
    [
        ({"noise_densities": (0.15, 0.5)}, 64, "one entry per span denoiser"),
        ({"span_denoiser_rates": (1.0, -1.0, 1.0, 1.0, 1.0, 1.0)}, 64, "rates"),
        ({"span_denoiser_rates": (0.0,) * 6, "prefix_lm_rate": 0.0}, 64, "rates"),
        ({"noise_densities": (0.15, 0.15, 0.5, 0.5, 0.15, 1.0)}, 64, "noise_density"),
        ({"mean_noise_span_lengths": (3.0, 8.0, 3.0, 8.0, 64.0, 0.0)}, 64, "mean_noise_span_length"),
        ({"targets_length": 1}, 64, "targets_length"),
        ({}, 1024, "num_sentinels"),  # (3, 0.5) needs 171 sentinels at 1024
    ],
)
def test_invalid_settings_fail_at_build(overrides, seq_len, message):
    with pytest.raises(ValueError, match=message):
        ul2.build(ul2_config(**overrides), SPECIALS, seq_len)
