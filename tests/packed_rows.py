"""Packed rows for objective tests, from per-row document lengths."""

import numpy as np

from pretrain_jax.batch import PackedBatch


def pack_documents(rows, seq_len, seed=0, special_prob=0.0, *, specials, eos_prob=1.0, distinct_ids=False):
    """PackedBatch (B = len(rows), L = seq_len) holding, in row b, documents of the lengths rows[b].

    Each document is random ordinary ids (`distinct_ids`: no id repeats within a row), a share
    `special_prob` of them replaced by SEP, ending in EOS (with probability `eos_prob`); padding
    follows the last document. A document that would run past `seq_len` ends the row.

        pack_documents([[3, 2], [4]], 6, specials=specials) -> segment_ids [[1 1 1 2 2 0], [1 1 1 1 0 0]]
    """
    rng = np.random.default_rng(seed)
    tokens, segment_ids, positions = (np.zeros((len(rows), seq_len), np.int32) for _ in range(3))
    for b, lengths in enumerate(rows):
        ids = rng.permutation(np.arange(specials.first_normal_id, specials.normal_id_end)) if distinct_ids else None
        at = 0
        for doc, size in enumerate(lengths, start=1):
            if at + size > seq_len:
                break
            if distinct_ids:
                body = ids[at : at + size].copy()
            else:
                body = rng.integers(specials.first_normal_id, specials.normal_id_end, size)
            body[rng.random(size) < special_prob] = specials.sep
            if eos_prob == 1.0 or rng.random() < eos_prob:
                body[-1] = specials.eos
            tokens[b, at : at + size], segment_ids[b, at : at + size] = body, doc
            positions[b, at : at + size] = np.arange(size)
            at += size
    return PackedBatch(tokens, segment_ids, positions)
