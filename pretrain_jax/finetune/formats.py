"""How each model family reads a classification example and scores the classes.

A format has one signature for every family, so the fine-tuning loop never branches on it:

    model = fmt.init_model(backbone, spec, num_classes, rngs)    # what is trained
    batch = fmt.batch(token_ids, labels, weights)                  # host numpy ModelBatch, fixed shapes
    batch = fmt.batch(token_ids, labels, weights, token_ids_b)     # sentence pairs (A, B)
    scores = fmt.scores(model, batch)                              # (B, num_classes) float32, inside jit

Labels are class ids (int), or for a regression task on a pooled head real numbers (float: one
output, squared error); tasks.py says which, and what the scores predict.

- `PooledClassifier("cls")` (encoder, ELECTRA): `[CLS] text [SEP]`, or for a pair `[CLS] A [SEP] B
  [SEP]` with token types 0 up to the first [SEP] and 1 after; BERT's pooler (dense + tanh) on
  the [CLS] position, then a linear layer (`models.Classifier`, head `cls`).
- `PooledClassifier("mean")` (encoder, optional): `[CLS] text [SEP]`; the average of the hidden
  states of every real token, then a linear layer: masked-LM pre-training trains every position's
  state but never [CLS]'s.
- `PooledClassifier("last")` (decoder, two_stream): `text </s>`, or for a pair `A [SEP] B </s>` (a
  delimiter, as GPT fine-tunes entailment); a linear layer on the hidden state of the last real
  token, the only one a causal decoder lets see the whole text.
- `TextToText` (encoder_decoder), T5-style: the encoder reads `prefix text </s>` (a pair: `prefix A
  marker B </s>`, e.g. `rte sentence1: A sentence2: B </s>`), the decoder is
  trained (teacher forcing, head `lm`) to emit the label's name and `</s>`. It predicts by rank
  classification: each label name is scored as the decoder target (sum of its tokens' log-probs, EOS
  included) and the best scores wins, so every prediction is a valid class (free generation could
  emit a word that is no label).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pretrain_jax.batch import TARGETS, ModelBatch, Targets
from pretrain_jax.models.classifier import Classifier
from pretrain_jax.models.spec import ModelSpec
from pretrain_jax.specials import SpecialIds

# Per family: what pooling "auto" means, and the poolings it allows.
POOLING = {"encoder": "cls", "two_stream": "last", "decoder": "last"}
ALLOWED_POOLING = {"encoder": ("cls", "mean"), "two_stream": ("last",), "decoder": ("last",)}


def make_format(spec: ModelSpec, specials: SpecialIds, seq_len: int, *, prefix_ids: Sequence[int] = (),
                label_ids: Sequence[Sequence[int]] = (), pooling: str = "auto", pair_marker_ids: Sequence[int] = (),
                b_first: bool = False):
    """The format of `spec.family`. prefix_ids / label_ids / pair_marker_ids / b_first: encoder_decoder's
    task prefix, label names, (sentence pairs) the words between the texts and whether B is written first;
    pooling: "auto" (the family's: encoder "cls", decoder and two_stream "last") or one it allows."""
    if spec.family == "encoder_decoder":
        if pooling != "auto":
            raise ValueError(f"pooling={pooling!r}: encoder_decoder scores label names, it pools nothing; use 'auto'")
        return TextToText(specials, seq_len, prefix_ids, label_ids, pair_marker_ids, b_first)
    pooling = POOLING[spec.family] if pooling == "auto" else pooling
    if pooling not in ALLOWED_POOLING[spec.family]:
        raise ValueError(f"pooling={pooling!r} does not fit a model of family {spec.family!r}: use 'auto' or one of "
                         f"{ALLOWED_POOLING[spec.family]}")
    return PooledClassifier(pooling, specials, seq_len)


def truncate_pair(a: Sequence[int], b: Sequence[int], room: int) -> tuple[list[int], list[int]]:
    """Both texts of a pair cut to `room` tokens in all, BERT's way: a token at a time off the end of
    the longer one (of the second on a tie), so a short text keeps all of its tokens.

    truncate_pair([1 2 3 4 5], [6 7], 4) -> ([1 2], [6 7]);  ([1 2 3], [6 7 8], 4) -> ([1 2], [6 7])
    """
    keep_a, keep_b = len(a), len(b)
    while keep_a + keep_b > max(room, 0):
        if keep_a > keep_b:
            keep_a -= 1
        else:
            keep_b -= 1
    return list(a[:keep_a]), list(b[:keep_b])


def _rows(token_ids: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned rows -> (tokens (B, length) int32, segment_ids (B, length) int32: 1 on tokens)."""
    tokens = np.zeros((len(token_ids), length), np.int32)
    for row, ids in enumerate(token_ids):
        tokens[row, : len(ids)] = ids
    lengths = np.asarray([len(ids) for ids in token_ids])
    return tokens, (np.arange(length)[None] < lengths[:, None]).astype(np.int32)


def _targets(labels) -> np.ndarray:
    """Class ids as int32; regression scores (floating point) as float32, which losses.py scores by
    squared error on the head's one output."""
    labels = np.asarray(labels)
    return labels.astype(np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int32)


class PooledClassifier:
    """One pooled hidden state -> a linear layer over the classes (head `cls`).

    pooling="cls" or "mean" on an encoder, seq_len 6: text [17 52 9 33 40] -> inputs [CLS 17 52 9 33 SEP]
    (truncated)
    pooling="last", seq_len 6: text [17 52]        -> inputs [17 52 </s> 0 0 0], pooled at position 2
    """

    text_to_text = False

    def __init__(self, pooling: str, specials: SpecialIds, seq_len: int):
        if seq_len < 3:
            raise ValueError(f"seq_len={seq_len} leaves no room for text next to the special tokens")
        self.pooling, self.specials, self.seq_len = pooling, specials, seq_len

    def init_model(self, backbone: nnx.Module, spec: ModelSpec, num_classes: int, rngs: nnx.Rngs) -> nnx.Module:
        return Classifier(backbone, spec, num_classes, pooling=self.pooling, rngs=rngs)

    def inputs(self, ids: Sequence[int], ids_b: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """(tokens, token types) of one example; ids_b: a sentence pair's second text."""
        s = self.specials
        if self.pooling in ("cls", "mean"):
            if ids_b is None:
                return [s.cls, *ids[: self.seq_len - 2], s.sep], [0] * min(len(ids) + 2, self.seq_len)
            a, b = truncate_pair(ids, ids_b, self.seq_len - 3)
            return [s.cls, *a, s.sep, *b, s.sep], [0] * (len(a) + 2) + [1] * (len(b) + 1)
        if ids_b is None:
            tokens = [*ids[: self.seq_len - 1], s.eos]
        else:
            a, b = truncate_pair(ids, ids_b, self.seq_len - 2)
            tokens = [*a, s.sep, *b, s.eos]  # A delimiter between the texts, GPT's way; no token types.
        return tokens, [0] * len(tokens)

    def batch(self, token_ids: Sequence[Sequence[int]], labels: np.ndarray, weights: np.ndarray,
              token_ids_b: Sequence[Sequence[int]] | None = None) -> ModelBatch:
        pairs = [None] * len(token_ids) if token_ids_b is None else token_ids_b
        rows, types = zip(*(self.inputs(ids, ids_b) for ids, ids_b in zip(token_ids, pairs, strict=True)),
                          strict=True)
        tokens, segment_ids = _rows(rows, self.seq_len)
        return {
            "inputs": tokens,
            "segment_ids": segment_ids,
            "positions": (np.arange(self.seq_len)[None] * segment_ids).astype(np.int32),
            "token_type_ids": _rows(types, self.seq_len)[0],
            TARGETS: {"cls": Targets(_targets(labels), np.asarray(weights, np.float32))},
        }

    def scores(self, model: nnx.Module, batch: ModelBatch) -> jax.Array:
        return model(batch).logits["cls"]


class TextToText:
    """T5-style: `prefix text </s>` -> the label's name, trained with the decoder's LM loss (head `lm`).

    seq_len 6, prefix [80 81], label names [[40], [41 42]] (targets length 3):
    text [17 52 9 33] -> encoder_inputs [80 81 17 52 9 </s>];
    label 1 -> decoder_inputs [0 41 42], targets["lm"] ids [41 42 </s>], weights [1 1 1];
    label 0 -> decoder_inputs [0 40 0],  targets["lm"] ids [40 </s> 0],  weights [1 1 0].
    """

    text_to_text = True

    def __init__(self, specials: SpecialIds, seq_len: int, prefix_ids: Sequence[int],
                 label_ids: Sequence[Sequence[int]], pair_marker_ids: Sequence[int] = (), b_first: bool = False):
        if seq_len < len(prefix_ids) + len(pair_marker_ids) + 2:
            raise ValueError(f"seq_len={seq_len} leaves no room for text after the {len(prefix_ids)}-token prefix")
        if not label_ids or any(len(ids) == 0 for ids in label_ids):
            raise ValueError("every label name must encode to at least one token (text-to-text targets)")
        if len({tuple(ids) for ids in label_ids}) != len(label_ids):
            raise ValueError("two label names encode to the same tokens; text-to-text cannot tell them apart")
        self.specials, self.seq_len, self.prefix_ids = specials, seq_len, list(prefix_ids)
        self.pair_marker_ids, self.b_first = list(pair_marker_ids), b_first
        self.targets_len = max(len(ids) for ids in label_ids) + 1
        targets, target_segments = _rows([[*ids, specials.eos] for ids in label_ids], self.targets_len)
        self._targets = targets  # (K, Ld): label name + EOS, per class.
        self._target_weights = target_segments.astype(np.float32)
        # Shifted right after the start token 0; the slots past the target are padding.
        self._decoder_inputs = np.pad(targets[:, :-1], ((0, 0), (1, 0))) * target_segments
        self._decoder_segment_ids = target_segments

    def init_model(self, backbone: nnx.Module, spec: ModelSpec, num_classes: int, rngs: nnx.Rngs) -> nnx.Module:
        del spec, num_classes, rngs  # The label names are the outputs: nothing new to train.
        return backbone

    def batch(self, token_ids: Sequence[Sequence[int]], labels: np.ndarray, weights: np.ndarray,
              token_ids_b: Sequence[Sequence[int]] | None = None) -> ModelBatch:
        room = self.seq_len - len(self.prefix_ids) - 1
        if token_ids_b is None:
            rows = [[*self.prefix_ids, *ids[:room], self.specials.eos] for ids in token_ids]
        else:  # `prefix A marker B </s>`, e.g. "rte sentence1: A sentence2: B </s>"; b_first: `prefix B marker A`.
            firsts, seconds = (token_ids_b, token_ids) if self.b_first else (token_ids, token_ids_b)
            pairs = [truncate_pair(a, b, room - len(self.pair_marker_ids)) for a, b in zip(firsts, seconds,
                                                                                          strict=True)]
            rows = [[*self.prefix_ids, *a, *self.pair_marker_ids, *b, self.specials.eos] for a, b in pairs]
        encoder_inputs, encoder_segment_ids = _rows(rows, self.seq_len)
        labels = np.asarray(labels)
        return {
            "encoder_inputs": encoder_inputs,
            "encoder_segment_ids": encoder_segment_ids,
            "decoder_inputs": self._decoder_inputs[labels],
            "decoder_segment_ids": self._decoder_segment_ids[labels],
            TARGETS: {"lm": Targets(self._targets[labels],
                                    self._target_weights[labels] * np.asarray(weights, np.float32)[:, None])},
        }

    def scores(self, model: nnx.Module, batch: ModelBatch) -> jax.Array:
        """(B, K): log-likelihood of each label name (+ EOS) as the decoder's output.

        One decoder pass over K * B rows (row k * B + b: candidate k for example b) reading one encoding,
        so the compiled graph does not grow with K (STS-B's 26 score strings).
        """
        encoded = model.encode(batch)  # (B, Le, D)
        rows, num_labels = batch["encoder_inputs"].shape[0], len(self._targets)

        def tiled(per_label: np.ndarray) -> jax.Array:  # (K, Ld) -> (K * B, Ld)
            return jnp.repeat(jnp.asarray(per_label), rows, axis=0)

        candidates = {
            "decoder_inputs": tiled(self._decoder_inputs),
            "decoder_segment_ids": tiled(self._decoder_segment_ids),
            "encoder_segment_ids": jnp.tile(batch["encoder_segment_ids"], (num_labels, 1)),
        }
        log_probs = jax.nn.log_softmax(model.decode(candidates, jnp.tile(encoded, (num_labels, 1, 1))), axis=-1)
        targets = tiled(self._targets)  # (K * B, Ld)
        target_log_probs = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        sums = jnp.sum(target_log_probs * tiled(self._target_weights), axis=-1)  # (K * B,)
        return sums.reshape(num_labels, rows).T
