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


# A ModelBatch is a flat dict of arrays whose keys depend on the model family; every shape is fixed
# by the config alone. Keys by family are documented in pretrain_jax/models/README (see
# models/__init__.py). Loss positions are float `*_weights`, never sentinel labels.
ModelBatch = dict[str, Array]
