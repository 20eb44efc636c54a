"""How each family reads an example: hand-written expected arrays, and text-to-text rank scores."""

import jax
import numpy as np
import pytest
from flax import nnx

from configs.base import get_config
from pretrain_jax.finetune import formats
from pretrain_jax.models import build_model, spec_from_config
from pretrain_jax.models.heads import ClassificationHead
from pretrain_jax.specials import SpecialIds

SPECIALS = SpecialIds(vocab_size=100, num_sentinels=4)  # pad 0, eos 1, cls 5, sep 6.
TEXTS = [[17, 52, 9, 33, 40], [21]]


def test_cls_layout_truncates_between_cls_and_sep():
    batch = formats.PooledClassifier("cls", SPECIALS, 6).batch(TEXTS, np.asarray([1, 0]), np.asarray([1.0, 0.0]))
    np.testing.assert_array_equal(batch["inputs"], [[5, 17, 52, 9, 33, 6], [5, 21, 6, 0, 0, 0]])
    np.testing.assert_array_equal(batch["segment_ids"], [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(batch["positions"], [[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 0, 0]])
    np.testing.assert_array_equal(batch["token_type_ids"], np.zeros((2, 6)))
    np.testing.assert_array_equal(batch["targets"]["cls"].ids, [1, 0])
    np.testing.assert_array_equal(batch["targets"]["cls"].weights, [1.0, 0.0])
    assert batch["inputs"].dtype == np.int32 and batch["targets"]["cls"].weights.dtype == np.float32


def test_last_token_layout_ends_with_eos():
    batch = formats.PooledClassifier("last", SPECIALS, 4).batch(TEXTS, np.asarray([0, 1]), np.ones(2))
    np.testing.assert_array_equal(batch["inputs"], [[17, 52, 9, 1], [21, 1, 0, 0]])
    np.testing.assert_array_equal(batch["segment_ids"], [[1, 1, 1, 1], [1, 1, 0, 0]])


def test_truncate_pair_cuts_the_longer_text_first():
    # Room 4: [1..5] and [6 7] -> the longer loses 3 tokens; [1 2 3], [6 7 8] -> a tie cuts B, then A.
    assert formats.truncate_pair([1, 2, 3, 4, 5], [6, 7], 4) == ([1, 2], [6, 7])
    assert formats.truncate_pair([1, 2, 3], [6, 7, 8], 4) == ([1, 2], [6, 7])
    assert formats.truncate_pair([1], [6, 7], 9) == ([1], [6, 7])  # Room to spare: nothing cut.


def test_sentence_pair_layouts():
    a, b = [[17, 52, 9], [21]], [[60, 61], [62, 63, 64, 65]]
    labels, weights = np.asarray([1, 0]), np.ones(2)
    # Encoder, seq_len 8 (room 5 for the texts): row 1 [CLS] 17 52 9 [SEP] 60 61 [SEP];
    # row 2: B (4) is cut to 4 = 5 - 1: [CLS] 21 [SEP] 62 63 64 65 [SEP]. Types 1 from B to its [SEP].
    batch = formats.PooledClassifier("cls", SPECIALS, 8).batch(a, labels, weights, b)
    np.testing.assert_array_equal(batch["inputs"], [[5, 17, 52, 9, 6, 60, 61, 6], [5, 21, 6, 62, 63, 64, 65, 6]])
    np.testing.assert_array_equal(batch["token_type_ids"], [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(batch["segment_ids"], np.ones((2, 8)))
    # Decoder, seq_len 7 (room 5): A [SEP] B </s>, no token types; row 2 cuts B to 4.
    batch = formats.PooledClassifier("last", SPECIALS, 7).batch(a, labels, weights, b)
    np.testing.assert_array_equal(batch["inputs"], [[17, 52, 9, 6, 60, 61, 1], [21, 6, 62, 63, 64, 65, 1]])
    np.testing.assert_array_equal(batch["token_type_ids"], np.zeros((2, 7)))
    # Text to text, seq_len 9: prefix [80 81], marker [90], </s>: room 5; row 2: B cut to 4.
    fmt = formats.TextToText(SPECIALS, 9, prefix_ids=[80, 81], label_ids=[[40], [41]], pair_marker_ids=[90])
    batch = fmt.batch(a, labels, weights, b)
    np.testing.assert_array_equal(batch["encoder_inputs"], [[80, 81, 17, 52, 9, 90, 60, 61, 1],
                                                            [80, 81, 21, 90, 62, 63, 64, 65, 1]])
    # b_first (T5's "mnli hypothesis: B premise: A"): B, the marker, then A (each row's 5 tokens fit).
    fmt = formats.TextToText(SPECIALS, 9, prefix_ids=[80, 81], label_ids=[[40], [41]], pair_marker_ids=[90],
                             b_first=True)
    np.testing.assert_array_equal(fmt.batch(a, labels, weights, b)["encoder_inputs"],
                                  [[80, 81, 60, 61, 90, 17, 52, 9, 1], [80, 81, 62, 63, 64, 65, 90, 21, 1]])


def test_regression_targets_are_float_scores_on_a_pooled_head():
    batch = formats.PooledClassifier("cls", SPECIALS, 4).batch([[17], [21]], np.asarray([3.8, 0.25], np.float32),
                                                               np.ones(2))
    assert batch["targets"]["cls"].ids.dtype == np.float32
    np.testing.assert_array_equal(batch["targets"]["cls"].ids, np.asarray([3.8, 0.25], np.float32))


def text_to_text(seq_len=6):
    return formats.TextToText(SPECIALS, seq_len, prefix_ids=[80, 81], label_ids=[[40], [41, 42]])


def test_text_to_text_layout():
    fmt = text_to_text()
    batch = fmt.batch([[17, 52, 9, 33], [21]], np.asarray([1, 0]), np.asarray([1.0, 0.5]))
    np.testing.assert_array_equal(batch["encoder_inputs"], [[80, 81, 17, 52, 9, 1], [80, 81, 21, 1, 0, 0]])
    np.testing.assert_array_equal(batch["encoder_segment_ids"], [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(batch["decoder_inputs"], [[0, 41, 42], [0, 40, 0]])
    np.testing.assert_array_equal(batch["decoder_segment_ids"], [[1, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(batch["targets"]["lm"].ids, [[41, 42, 1], [40, 1, 0]])
    np.testing.assert_array_equal(batch["targets"]["lm"].weights, [[1, 1, 1], [0.5, 0.5, 0]])


def test_text_to_text_scores_are_label_log_likelihoods():
    """Rank scores (one encoding, one decoder pass over the K candidates) equal each label's summed
    log-probs from a full forward."""
    c = get_config().model
    c.family, c.num_layers, c.d_model, c.num_heads, c.d_ff = "encoder_decoder", 2, 32, 4, 64
    with nnx.use_eager_sharding(False):  # Shapes only, then random values (no op-by-op init: seconds).
        model = nnx.eval_shape(lambda: build_model(c, SPECIALS.vocab_size, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    nnx.update(model, jax.tree.map(lambda s: (0.2 * rng.standard_normal(s.shape)).astype(s.dtype), nnx.state(model)))
    fmt = formats.make_format(spec_from_config(c, SPECIALS.vocab_size), SPECIALS, 8, prefix_ids=[80, 81],
                              label_ids=[[40], [41, 42], [43]])
    texts = [[17, 52, 9], [21, 22, 23, 24, 25]]
    scores = np.asarray(nnx.jit(fmt.scores)(model, fmt.batch(texts, np.zeros(2, np.int32), np.ones(2))))
    assert scores.shape == (2, 3)
    forward = nnx.jit(lambda m, batch: jax.nn.log_softmax(m(batch).logits["lm"], axis=-1))
    for k in range(3):
        batch = fmt.batch(texts, np.full(2, k), np.ones(2))
        log_probs = forward(model, batch)
        picked = np.take_along_axis(np.asarray(log_probs), batch["targets"]["lm"].ids[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(scores[:, k], (picked * batch["targets"]["lm"].weights).sum(-1), rtol=1e-5,
                                   atol=1e-5)
    assert len(set(np.argmax(scores, axis=-1).tolist()) - {0, 1, 2}) == 0


def test_mean_pooling_averages_the_real_tokens_only():
    c = get_config().model
    c.family, c.num_layers, c.d_model, c.num_heads, c.d_ff, c.dropout = "encoder", 1, 8, 2, 16, 0.0
    spec = spec_from_config(c, SPECIALS.vocab_size)
    with nnx.use_eager_sharding(False):
        head = ClassificationHead(spec, 3, pooling="mean", rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((2, 5, 8)).astype(np.float32)
    segment_ids = np.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    expected = np.stack([hidden[0, :3].mean(0), hidden[1].mean(0)]) @ np.asarray(head.classifier.kernel[...])
    expected += np.asarray(head.classifier.bias[...])
    np.testing.assert_allclose(head(hidden, segment_ids), expected, rtol=1e-5, atol=1e-5)
    hidden[0, 3:] = 100.0  # Padding states never reach the logits.
    np.testing.assert_allclose(head(hidden, segment_ids), expected, rtol=1e-5, atol=1e-5)


def test_pooling_choice_per_family():
    c = get_config().model
    c.family = "encoder"
    encoder = spec_from_config(c, SPECIALS.vocab_size)
    assert formats.make_format(encoder, SPECIALS, 8).pooling == "cls"
    mean = formats.make_format(encoder, SPECIALS, 8, pooling="mean")
    assert mean.pooling == "mean" and mean.inputs([17, 52]) == ([5, 17, 52, 6], [0, 0, 0, 0])  # [CLS] text [SEP].
    with pytest.raises(ValueError, match="pooling='last' does not fit a model of family 'encoder'"):
        formats.make_format(encoder, SPECIALS, 8, pooling="last")
    c.family = "decoder"
    with pytest.raises(ValueError, match="pooling='mean' does not fit a model of family 'decoder'"):
        formats.make_format(spec_from_config(c, SPECIALS.vocab_size), SPECIALS, 8, pooling="mean")
