"""electra: the generator's masked LM (85% [MASK] / 15% unchanged, no random ids), bert_mlm's keys."""

import jax
import numpy as np
import pytest

from configs.base import get_config
from pretrain_jax.batch import PackedBatch
from pretrain_jax.objectives import get_spec
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=8192, num_sentinels=100)


def test_defaults_follow_electra():
    cfg = get_config().objective.electra
    assert (cfg.rate, cfg.mask_prob, cfg.random_prob, cfg.count) == (0.15, 0.85, 0.0, "fixed")
    assert "disc_weight" not in cfg and "generator_size_fraction" not in cfg  # model / train keys own them
    assert get_spec("electra").family == "encoder"


def test_mask_keep_split_within_three_standard_errors():
    rows, seq_len = 2000, 64
    rng = np.random.default_rng(0)
    tokens = rng.integers(SPECIALS.first_normal_id, SPECIALS.normal_id_end, (rows, seq_len)).astype(np.int32)
    tokens[:, -1] = SPECIALS.eos
    segment_ids = np.ones((rows, seq_len), np.int32)
    packed = PackedBatch(tokens, segment_ids, np.broadcast_to(np.arange(seq_len), (rows, seq_len)))
    cfg = get_config().objective.electra
    out = jax.jit(get_spec("electra").builder(cfg, SPECIALS, seq_len))(jax.random.key(0), packed)
    assert set(out) == {"inputs", "segment_ids", "positions", "token_type_ids", "mlm_positions", "targets"}
    assert set(out["targets"]) == {"mlm"}
    weights = np.asarray(out["targets"]["mlm"].weights)
    np.testing.assert_array_equal(weights.sum(1), round(63 * 0.15))  # the BERT count: 9 of 63 eligible
    chosen_inputs = np.take_along_axis(np.asarray(out["inputs"]), np.asarray(out["mlm_positions"]), 1)[weights > 0]
    targets = np.asarray(out["targets"]["mlm"].ids)[weights > 0]
    n = targets.size
    masked, kept = np.mean(chosen_inputs == SPECIALS.mask), np.mean(chosen_inputs == targets)
    assert masked + kept == 1.0  # no random replacement
    assert abs(masked - 0.85) < 3 * np.sqrt(0.85 * 0.15 / n), masked


@pytest.mark.parametrize("key, value, message", [
    ("random_prob", 0.2, "exceeds 1"), ("rate", 1.2, "electra: rate"), ("max_predictions", 500, "max_predictions"),
])
def test_invalid_settings_fail_at_build_time(key, value, message):
    cfg = get_config().objective.electra
    cfg[key] = value
    with pytest.raises(ValueError, match=message):
        get_spec("electra").builder(cfg, SPECIALS, 128)
