"""The two batch types that cross module boundaries.

`PackedBatch` is what the data pipeline produces and every objective consumes. `ModelBatch` is what
an objective produces and one model family consumes. Neither imports jax: a NamedTuple of arrays is
a pytree, so the same class holds numpy arrays on the host and jax.Arrays inside `jit`.
"""

from typing import Any, NamedTuple

Array = Any  # numpy.ndarray on the host, jax.Array on device.


class PackedBatch(NamedTuple):
    """Fixed-length rows of packed documents. Every field is (B, L).

    tokens:       int32 token ids; 0 (pad) where segment_ids == 0.
    segment_ids:  int32, 0 = padding, 1, 2, ... = document index within the row.
    positions:    int32, position of the token within its document (restarts at 0 per document).
    sentence_ids: int32, sentence index within the document (0-based; 0 on padding), or None.
    word_starts:  bool, True where the token starts a word (SentencePiece "▁"), or None.
    document_ids: int32, the index of the source document in its split, the same in every row that
                  holds a piece of it (the packer splits long documents over rows); -1 on padding;
                  or None. Objectives that pair documents (nsp, sop) tell documents apart by it.

    Example (L = 8, two documents and padding):
        tokens       [ 17  52  9  1 | 33  8  1 |  0 ]
        segment_ids  [  1   1  1  1 |  2  2  2 |  0 ]
        positions    [  0   1  2  3 |  0  1  2 |  0 ]
        document_ids [ 40  40 40 40 |  7  7  7 | -1 ]
    """

    tokens: Array
    segment_ids: Array
    positions: Array
    sentence_ids: Array | None = None
    word_starts: Array | None = None
    document_ids: Array | None = None


class Targets(NamedTuple):
    """What one loss head is scored against. Both fields have the head's logits' shape without the
    class axis: (B, P) for masked-LM slots, (B, L) for a language model, (B,) for a classifier.

    ids:     int32 class ids (token ids for the LM heads).
    weights: float32 weight of each position in the head's weighted-mean loss; 0 = not scored.
             Loss positions are always weights, never sentinel labels.
    """

    ids: Array
    weights: Array


class ModelOutput(NamedTuple):
    """What a model returns: logits per loss head, and the targets of the heads whose targets only the
    model knows (ELECTRA's replaced-token detection: which tokens its generator replaced).

    logits:  {head: (..., C) float} e.g. {"mlm": (B, P, V), "nsp": (B, 2)}.
    targets: {head: Targets} for heads not scored against the batch's `targets`; usually empty.
    """

    logits: dict[str, Array]
    targets: dict[str, Targets]


# A ModelBatch is a dict whose keys depend on the model family; every shape is fixed by the config
# alone. Model inputs are arrays at the top level (keys by family: docs/contracts.md). The loss
# heads' targets are typed data under "targets": {head: Targets}, e.g. {"mlm": Targets(ids, weights)}.
ModelBatch = dict[str, Any]
TARGETS = "targets"  # The ModelBatch key of {head: Targets}.


def batch_shapes(batch: ModelBatch) -> dict:
    """A ModelBatch's (or its eval_shape's) shapes: {input key: shape} and {"targets": {head: shape of its ids}}."""
    shapes = {k: tuple(v.shape) for k, v in batch.items() if k != TARGETS}
    shapes[TARGETS] = {h: tuple(t.ids.shape) for h, t in batch.get(TARGETS, {}).items()}
    return shapes
