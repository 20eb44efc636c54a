"""How many raw tokens one packed row holds: the contract between the packer and the objectives whose
outputs are not the row itself. Pure numpy, so the data side can use it without jax.

By default a row holds data.seq_len tokens and the objective's outputs have the row's length. An
objective that changes a document's length registers a budget instead (registry.register(...,
row_budget=...)): how many raw tokens a row may hold, the lengths of its outputs (the capacities),
and what one document costs in each output. The packer closes a row when the next document would
overflow the row or any capacity, and cuts a long document into the longest pieces that fit alone,
so the outputs are filled and no token is dropped. T5 span corruption at data.seq_len=512:

    budget.row_length    569           raw tokens: 568 + EOS corrupt to exactly 512 inputs
    budget.capacities    (512, 114)    encoder and decoder lengths
    budget.cost(np.array([569, 10]), np.array([568, 9]), np.array([0, 0]))  ->  [[512, 114], [9, 4]]
"""

import dataclasses
from collections.abc import Callable

import numpy as np

# (num_tokens, num_eligible, num_interior), each (N,) int -> (N, len(capacities)) int: the output
# tokens of a document of num_tokens raw tokens, num_eligible of them ordinary ids (the ones noise
# may hit) and num_interior special ids with ordinary ones on both sides (each may split a noise span).
CostFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class RowBudget:
    """row_length: raw tokens per packed row (the L of PackedBatch). capacities: the output lengths a
    row's documents must fit together; cost: their cost per document (see CostFn); ordinary_ids:
    [first, end) of the ids counted as eligible. No capacities: a row is limited by its length only."""

    row_length: int
    capacities: tuple[int, ...] = ()
    cost: CostFn | None = None
    ordinary_ids: tuple[int, int] = (0, 0)

    def document_cost(self, tokens: np.ndarray) -> np.ndarray:
        """(len(capacities),) int64: what one document (tokens (n,) int32) costs in each output."""
        if self.cost is None:
            return np.zeros(0, np.int64)
        return self._prefix_costs(tokens)[-1]

    def fits(self, used: np.ndarray, cost: np.ndarray) -> bool:
        """Whether a document of `cost` fits a row whose documents already cost `used`."""
        return bool(np.all(used + cost <= np.asarray(self.capacities, np.int64)))

    def longest_piece(self, tokens: np.ndarray) -> int:
        """The most leading tokens of `tokens` (n,) that fit an empty row on their own (>= 1)."""
        limit = min(len(tokens), self.row_length)
        if self.cost is None:
            return limit
        costs = self._prefix_costs(tokens[:limit])
        fitting = np.nonzero(np.all(costs <= np.asarray(self.capacities, np.int64), axis=1))[0]
        if len(fitting) == 0:
            raise ValueError(f"a single token costs {costs[0].tolist()}, over the capacities {self.capacities}")
        return int(fitting[-1]) + 1

    def _prefix_costs(self, tokens: np.ndarray) -> np.ndarray:
        """(n, len(capacities)) int64: the cost of each prefix tokens[:k + 1] as a document.

            ordinary [ T  F  T  F  F ]  ->  eligible [ 1 1 2 2 2 ], interior [ 0 0 1 1 1 ]
        """
        first, end = self.ordinary_ids
        ordinary = (tokens >= first) & (tokens < end)
        eligible = np.cumsum(ordinary)
        after_ordinary = np.cumsum(~ordinary & (eligible > 0))  # specials with an ordinary one before
        last_ordinary = np.maximum.accumulate(np.where(ordinary, np.arange(len(tokens)), -1))
        interior = np.where(last_ordinary >= 0, after_ordinary[np.maximum(last_ordinary, 0)], 0)
        return np.asarray(self.cost(np.arange(1, len(tokens) + 1), eligible, interior), np.int64)


def plain(row_length: int) -> RowBudget:
    """The default budget: rows of `row_length` tokens, outputs as long as the row."""
    return RowBudget(row_length=int(row_length))


def sized_by_cost(capacities: tuple[int, ...], cost: CostFn, ordinary_ids: tuple[int, int]) -> RowBudget:
    """The budget whose rows hold as many raw tokens as one document can have within `capacities`:
    the largest n for which a document of n ordinary tokens, and one of n - 1 and an EOS, fit. For
    T5 span corruption this is T5's compute_input_and_target_lengths plus the EOS: 569 for 512.
    """
    limit = 4 * max(capacities) + 8
    lengths, none = np.arange(1, limit + 1), np.zeros(limit, np.int64)
    caps = np.asarray(capacities, np.int64)
    fits = (np.all(cost(lengths, lengths, none) <= caps, axis=1)
            & np.all(cost(lengths, lengths - 1, none) <= caps, axis=1))
    if not fits[0]:
        raise ValueError(f"a one-token document does not fit the capacities {capacities}")
    longest = int(np.argmin(fits)) if not fits.all() else limit  # fits[:longest] all hold
    return RowBudget(row_length=longest, capacities=tuple(int(c) for c in capacities), cost=cost,
                     ordinary_ids=ordinary_ids)
