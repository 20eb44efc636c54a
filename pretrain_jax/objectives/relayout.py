"""Moving, dropping and inserting tokens of packed rows (BART noises). (B, L) arrays whose documents
are runs of equal segment ids numbered upwards along the row; rows keep their static length.
"""

import jax.numpy as jnp

from pretrain_jax.objectives import prefix_sums
from pretrain_jax.objectives.documents import document_totals


def slot_of_rank(flags):
    """(B, L) int32: entry k = the index of the k-th True of `flags` in its row (0 past the last).

        flags [ F  T  F  T  T ]  ->  [ 1  3  4  0  0 ]
    """
    length = flags.shape[1]
    rows = jnp.arange(flags.shape[0])[:, None]
    rank = jnp.where(flags, prefix_sums.cumsum(flags) - 1, length)
    index = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), flags.shape)
    return jnp.zeros(flags.shape, jnp.int32).at[rows, rank].set(index, mode="drop")


def move_within_documents(fields, movable, new_rank):
    """Moves every movable entry i of each array in `fields` to the movable slot of row-wide rank
    new_rank[i] (rank = number of movable slots before it). new_rank must permute each document's
    ranks; the other slots keep their values.

        tokens [ 40  41  42   1 ]  movable [ T T T F ]  new_rank [ 2  0  1  - ]  ->  [ 41  42  40   1 ]
    """
    length = movable.shape[1]
    rows = jnp.arange(movable.shape[0])[:, None]
    target = jnp.take_along_axis(slot_of_rank(movable), jnp.clip(new_rank, 0, length - 1), axis=1)
    dest = jnp.where(movable, target, length)
    return tuple(field.at[rows, dest].set(field, mode="drop") for field in fields)


def gap_inserts(active, gap, anchors, content, start, end):
    """(before, after) (B, L) int32 counts of new slots to open before / after each slot.

    Every active entry asks for one new slot in its document (bounds `start`, `end`): before the
    document's gap-th anchor (anchors: e.g. word or token starts), or after its last `content` slot
    when gap equals its number of anchors.

        anchors [ T T T F ]  content [ T T T F ]  (one document)  active gaps 0 and 3
        before  [ 1 0 0 0 ]  after   [ 0 0 1 0 ]
    """
    batch, length = active.shape
    rows = jnp.arange(batch)[:, None]
    anchors = anchors.astype(jnp.int32)
    anchor_base = jnp.take_along_axis(prefix_sums.exclusive_cumsum(anchors), start, axis=1)
    at_end = gap >= document_totals(anchors, start, end)
    before_slot = jnp.take_along_axis(slot_of_rank(anchors > 0), jnp.clip(anchor_base + gap, 0, length - 1), axis=1)
    index = jnp.arange(length, dtype=jnp.int32)
    last_content = jnp.take_along_axis(prefix_sums.cummax(jnp.where(content, index, -1)), end, axis=1)
    zeros = jnp.zeros((batch, length), jnp.int32)
    before = zeros.at[rows, jnp.where(active & ~at_end, before_slot, length)].add(1, mode="drop")
    after = zeros.at[rows, jnp.where(active & at_end, last_content, length)].add(1, mode="drop")
    return before, after


def relayout(fields, segment_ids, keep, before, after):
    """Re-lays rows: slot i opens before[i] new slots, keeps itself if keep[i], then opens after[i].

    New slots are granted from the left while the row fits its L slots (kept slots always fit) and
    belong to the document of the slot that opened them; padding fills the end. Returns the fields
    at their new places (0 / False in new slots), the new segment ids and the new slots (B, L) bool.

        tokens [ 40  41  42   1   0 ]  keep [ T F T T F ]  before [ 0 0 0 0 0 ]  after [ 0 0 1 0 0 ]
        ->     [ 40  42   0   1   0 ]  segment_ids [ 1 1 1 1 0 ]  new [ F F T F F ]
    """
    batch, length = segment_ids.shape
    rows = jnp.arange(batch)[:, None]
    keep_i = keep.astype(jnp.int32)
    wanted = before + after
    room = length - keep_i.sum(axis=1, keepdims=True)
    granted = jnp.clip(room - prefix_sums.exclusive_cumsum(wanted), 0, wanted)
    before = jnp.minimum(before, granted)
    counts = granted + keep_i
    first = prefix_sums.exclusive_cumsum(counts)
    own = jnp.where(keep, first + before, length)
    in_row = jnp.arange(length) < counts.sum(axis=1, keepdims=True)
    place = lambda field: jnp.zeros_like(field).at[rows, own].set(field, mode="drop")
    # Segment ids increase along a row, so each new place's document is a running maximum.
    opened = jnp.where(counts > 0, first, length)
    marker = jnp.zeros_like(segment_ids).at[rows, opened].set(segment_ids, mode="drop")
    new_segment_ids = jnp.where(in_row, prefix_sums.cummax(marker), 0)
    new_slots = in_row & ~place(keep)
    return tuple(place(field) for field in fields), new_segment_ids, new_slots
