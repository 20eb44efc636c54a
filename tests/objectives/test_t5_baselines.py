"""t5_deshuffle, t5_mass, t5_drop_tokens: golden rows, rates, invariants over packing layouts."""

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
from pretrain_jax.objectives import build_objective, build_row_budget, t5_baselines
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)
EOS, MASK, SEP = SPECIALS.eos, SPECIALS.mask, SPECIALS.sep
BUILDERS = {
    "t5_deshuffle": t5_baselines.build_deshuffle,
    "t5_mass": t5_baselines.build_mass,
    "t5_drop_tokens": t5_baselines.build_drop_tokens,
}


def baseline_config(name, **overrides):
    cfg = get_config().objective[name]
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@functools.cache
def jitted(name, seq_len, **overrides):
    return jax.jit(BUILDERS[name](baseline_config(name, **overrides), SPECIALS, seq_len))


pack = functools.partial(pack_documents, specials=SPECIALS, distinct_ids=True)


def fit(rows, seq_len, batch):
    """Keeps the documents of each drawn row that fit in seq_len; pads the batch with empty rows."""
    fitted = []
    for lengths in rows + [[]] * (batch - len(rows)):
        ends = np.cumsum(lengths)
        fitted.append([size for size, end in zip(lengths, ends, strict=True) if end <= seq_len])
    return fitted


def documents(tokens, segment_ids):
    return {int(k): tokens[segment_ids == k] for k in np.unique(segment_ids) if k > 0}


def ordinary(tokens):
    return (tokens >= SPECIALS.first_normal_id) & (tokens < SPECIALS.normal_id_end)


def test_golden_rows():
    tokens = np.array([[20, 21, 22, 23, 1, 30, 31, 1, 0]], np.int32)
    segment_ids = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 0]], np.int32)
    packed = PackedBatch(tokens, segment_ids, np.array([[0, 1, 2, 3, 4, 0, 1, 2, 0]], np.int32))
    key = jax.random.key(6)  # noise on 21, 22, 23: MASS and drop-tokens share the mask of a key
    mass = jitted("t5_mass", 9, noise_density=0.3)(key, packed)
    np.testing.assert_array_equal(mass["encoder_inputs"], [[20, 4, 4, 4, 1, 30, 31, 1, 0]])
    np.testing.assert_array_equal(mass["targets"]["lm"].ids, tokens)
    np.testing.assert_array_equal(mass["decoder_inputs"], [[0, 20, 21, 22, 23, 0, 30, 31, 0]])
    drop = jitted("t5_drop_tokens", 9, noise="iid", noise_density=0.3, targets_length=6)(key, packed)
    np.testing.assert_array_equal(drop["encoder_inputs"], [[20, 1, 30, 31, 1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(drop["encoder_segment_ids"], [[1, 1, 2, 2, 2, 0, 0, 0, 0]])
    np.testing.assert_array_equal(drop["targets"]["lm"].ids, [[21, 22, 23, 1, 1, 0]])  # no noise in doc 2: EOS only
    np.testing.assert_array_equal(drop["decoder_segment_ids"], [[1, 1, 1, 1, 2, 0]])
    deshuffle = jitted("t5_deshuffle", 9)(key, packed)
    np.testing.assert_array_equal(deshuffle["encoder_inputs"], [[22, 23, 21, 20, 1, 30, 31, 1, 0]])
    np.testing.assert_array_equal(deshuffle["targets"]["lm"].ids, tokens)
    np.testing.assert_array_equal(deshuffle["encoder_positions"], packed.positions)


def test_deshuffle_is_a_uniform_permutation():
    """Documents of 4 ordinary tokens: each token lands on each of the 4 places a quarter of the time."""
    packed = pack([[5, 5]] * 2048, 10)
    out = jax.device_get(jitted("t5_deshuffle", 10)(jax.random.key(0), packed))
    inputs, tokens = out["encoder_inputs"].reshape(-1, 5), packed.tokens.reshape(-1, 5)
    assert np.all(inputs[:, 4] == EOS)
    place_of_first = np.argmax(inputs[:, :4] == tokens[:, :1], axis=1)
    frequency = np.bincount(place_of_first, minlength=4) / len(place_of_first)
    assert np.all(np.abs(frequency - 0.25) < 3 * np.sqrt(0.25 * 0.75 / len(place_of_first))), frequency


@pytest.mark.parametrize("name", ["t5_mass", "t5_drop_tokens"])
def test_iid_noise_rate(name):
    packed = pack([[128]] * 256, 128)
    out = jax.device_get(jitted(name, 128, noise="iid")(jax.random.key(1), packed))
    if name == "t5_mass":
        noisy = int(np.sum(out["encoder_inputs"] == MASK))
    else:
        noisy = int(np.sum(out["decoder_segment_ids"] > 0)) - 256  # minus one EOS per document
    eligible = 256 * 127
    assert abs(noisy / eligible - 0.15) < 3 * np.sqrt(0.15 * 0.85 / eligible)


def test_uniform_noise_drops_t5s_count_at_uniform_positions():
    """noise="uniform" (t5_drop_tokens' default): a document of n ordinary tokens loses exactly
    round(0.15 n) of them (T5's count; by hand: n = 20 -> 3, n = 7 -> round(1.05) = 1), and over 512
    rows each of the 20 places is dropped 3/20 of the time, within 4 standard errors."""
    packed = pack([[21, 8]] * 512, 32)
    out = jax.device_get(jitted("t5_drop_tokens", 32)(jax.random.key(4), packed))
    targets = [documents(out["targets"]["lm"].ids[b], out["decoder_segment_ids"][b]) for b in range(512)]
    assert all(len(t[1]) == 3 + 1 and len(t[2]) == 1 + 1 for t in targets)  # + EOS
    dropped = np.stack([np.isin(packed.tokens[b, :20], targets[b][1]) for b in range(512)])
    assert np.all(np.abs(dropped.mean(0) - 0.15) < 4 * np.sqrt(0.15 * 0.85 / 512)), dropped.mean(0)


def test_span_noise_counts_follow_t5():
    """noise="spans": 100 ordinary tokens -> exactly 15 noise tokens in 5 spans."""
    packed = pack([[101]] * 64, 104)
    out = jax.device_get(jitted("t5_mass", 104, noise="spans")(jax.random.key(2), packed))
    masked = out["encoder_inputs"] == MASK
    assert np.all(masked.sum(1) == 15)
    assert np.all((masked & ~np.pad(masked[:, :-1], ((0, 0), (1, 0)))).sum(1) == 5)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 24), max_size=6), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    special_prob=st.sampled_from([0.0, 0.1]),
)
def test_invariants_over_layouts(rows, seed, special_prob):
    seq_len, batch = 48, 4
    packed = pack(fit(rows, seq_len, batch), seq_len, seed, special_prob)
    key = jax.random.key(seed)
    outputs = {name: jax.device_get(jitted(name, seq_len)(key, packed)) for name in BUILDERS}
    for name, out in outputs.items():
        if name != "t5_drop_tokens":  # layout-preserving: same segments and positions on both sides
            for side in ("encoder", "decoder"):
                np.testing.assert_array_equal(out[f"{side}_segment_ids"], packed.segment_ids)
                np.testing.assert_array_equal(out[f"{side}_positions"], packed.positions)
            np.testing.assert_array_equal(out["targets"]["lm"].ids, packed.tokens)
            np.testing.assert_array_equal(out["targets"]["lm"].weights, packed.segment_ids > 0)
        changed = out["encoder_inputs"] != packed.tokens
        if name == "t5_deshuffle":
            assert not np.any(changed & ~ordinary(packed.tokens))  # specials stay in place
            for b in range(batch):
                for k, doc in documents(packed.tokens[b], packed.segment_ids[b]).items():
                    assert sorted(out["encoder_inputs"][b][packed.segment_ids[b] == k]) == sorted(doc)
        if name == "t5_mass":
            assert np.all(~changed | ((out["encoder_inputs"] == MASK) & ordinary(packed.tokens)))
    drop = outputs["t5_drop_tokens"]
    for b in range(batch):
        original = documents(packed.tokens[b], packed.segment_ids[b])
        inputs = documents(drop["encoder_inputs"][b], drop["encoder_segment_ids"][b])
        targets = documents(drop["targets"]["lm"].ids[b], drop["decoder_segment_ids"][b])
        # Documents with fewer than 2 ordinary tokens cannot lose T5's count (at least 1, leaving 1):
        # they are left out, as in span corruption; so may the last documents be, if they overflow.
        corruptible = [k for k, doc in original.items() if ordinary(doc).sum() >= 2]
        assert inputs.keys() == targets.keys() and list(inputs) == corruptible[: len(inputs)]
        for k in inputs:
            assert targets[k][-1] == EOS
            dropped = np.isin(original[k], targets[k][:-1]) & ordinary(original[k])  # ids are distinct
            assert inputs[k].tolist() == original[k][~dropped].tolist()
            assert targets[k][:-1].tolist() == original[k][dropped].tolist()


# Rows and targets by hand: drop-tokens with T5's count drops round(0.15 n) of n tokens, so 602 raw
# tokens (601 + EOS, or 602 without) keep 602 - 90 = 512 inputs (603 would keep 603 - 90 = 513; 0.15 *
# 603 = 90.45 rounds to 90), and their targets are 90 + EOS = 91. With "iid" the count varies: rows
# of 512 and T5's span-corruption targets length, 114.
@pytest.mark.parametrize("name, noise, row_length, decoder_length", [
    ("t5_deshuffle", None, 512, 512), ("t5_mass", "iid", 512, 512), ("t5_drop_tokens", "uniform", 602, 91),
    ("t5_drop_tokens", "iid", 512, 114)])
def test_shapes_and_row_lengths_follow_config_alone(name, noise, row_length, decoder_length):
    cfg = get_config()
    cfg.objective.name = name
    if noise:
        cfg.objective[name].noise = noise
    objective, family = build_objective(cfg.objective, SPECIALS, 512)
    assert family == "encoder_decoder"
    assert build_row_budget(cfg.objective, SPECIALS, 512).row_length == row_length
    packed = jax.ShapeDtypeStruct((4, row_length), jnp.int32)
    shapes = jax.eval_shape(objective, jax.random.key(0), PackedBatch(packed, packed, packed))
    assert shapes["encoder_inputs"].shape == (4, 512)
    assert shapes["targets"]["lm"].ids.shape == shapes["decoder_inputs"].shape == (4, decoder_length)


@pytest.mark.parametrize(
    "name, overrides, seq_len, message",
    [
        ("t5_mass", {"noise": "gaussian"}, 64, "noise"),
        ("t5_mass", {"noise_density": 0.0}, 64, "noise_density"),
        ("t5_drop_tokens", {"noise_density": 1.0}, 64, "noise_density"),
        ("t5_drop_tokens", {"noise": "spans", "mean_noise_span_length": 0.5}, 64, "mean_noise_span_length"),
        ("t5_drop_tokens", {"targets_length": 2}, 64, "targets_length"),
        ("t5_mass", {}, 1, "too short"),
        ("t5_deshuffle", {}, 1, "too short"),
    ],
)
def test_invalid_settings_fail_at_build(name, overrides, seq_len, message):
    with pytest.raises(ValueError, match=message):
        BUILDERS[name](baseline_config(name, **overrides), SPECIALS, seq_len)
