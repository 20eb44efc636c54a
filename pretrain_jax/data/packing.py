"""Documents -> sentences -> token ids -> fixed-length packed rows (PackedBatch). Pure numpy.

Sentence rule (simple on purpose, and the same for every source):
- a blank line ends a paragraph, and so a sentence;
- inside a paragraph, a sentence ends at ".", "!" or "?" (plus any closing quotes or brackets)
  followed by whitespace and a character that is not a lowercase letter, so "e.g. the" and "3.14"
  do not split. Single newlines are line wraps, not boundaries.

Packing policy (greedy, sequential, nothing dropped), under a `RowBudget` (row_budget.py; an int L
means rows of L tokens and nothing else to fit):
- each document gets EOS (id 1) after its last token;
- a document that does not fit a row is cut into the longest pieces that fit alone (row-sized for a
  plain budget), each its own document in the packed rows (positions and sentence_ids restart at 0)
  with the document's id; only the last chunk ends with EOS, because only there does the text end;
- documents fill the current row in order; the first one that does not fit (the row's length, or an
  output the budget counts) closes the row (the rest is padding) and starts the next. Order is
  kept, so a resumed stream packs exactly as before.
"""

import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

from pretrain_jax import row_budget
from pretrain_jax.batch import PackedBatch

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE_END = re.compile(r"""([.!?]["'\)\]\u201d\u2019]*)\s+(?=[^\sa-z])""")


class TokenizedDocument(NamedTuple):
    """One document as token ids. tokens (n,) int32; sentence_ids (n,) int32, 0-based, non-decreasing;
    document_id: the document's index in its split (-1: not known), shared by all its chunks."""

    tokens: np.ndarray
    sentence_ids: np.ndarray
    document_id: int = -1


def as_budget(budget: "row_budget.RowBudget | int") -> row_budget.RowBudget:
    """A RowBudget as given, or the plain budget of rows of `budget` tokens."""
    return budget if isinstance(budget, row_budget.RowBudget) else row_budget.plain(budget)


def split_sentences(text: str) -> list[str]:
    """Sentences of a document, by the rule in the module docstring.

    'Return x. See also y.\\n\\nNotes\\nwrapped line' -> ['Return x.', 'See also y.', 'Notes\\nwrapped line']
    """
    sentences = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            sentences.append(paragraph[start : match.end(1)].strip())
            start = match.end()
        sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def tokenize_document(
    text: str, encode_batch: Callable[[list[str]], list[list[int]]], eos_id: int, document_id: int = -1
) -> TokenizedDocument:
    """Token ids of each sentence, concatenated, then EOS; sentence_ids number the sentences.

    'A b. C.' with encode 'A b.'->[7, 8], 'C.'->[9]  ->  tokens [7 8 9 1], sentence_ids [0 0 1 1]
    A document with no tokens at all gives empty arrays (no lone EOS); packing skips it.
    """
    encoded = [ids for ids in encode_batch(split_sentences(text)) if ids]
    if not encoded:
        empty = np.zeros((0,), np.int32)
        return TokenizedDocument(empty, empty, document_id)
    lengths = [len(ids) for ids in encoded]
    tokens = np.fromiter((t for ids in encoded for t in ids), np.int32, sum(lengths))
    sentence_ids = np.repeat(np.arange(len(encoded), dtype=np.int32), lengths)
    return TokenizedDocument(
        np.append(tokens, np.int32(eos_id)), np.append(sentence_ids, sentence_ids[-1]), document_id)


def split_long_document(doc: TokenizedDocument, budget: "row_budget.RowBudget | int") -> list[TokenizedDocument]:
    """The document in pieces that each fit a row alone (row-sized for an int budget); sentence_ids
    renumbered from 0 in each chunk, the document_id kept.

    budget 3, tokens [5 6 7 8 1], sentence_ids [0 0 1 1 1]
      -> tokens [5 6 7], sentence_ids [0 0 1];  tokens [8 1], sentence_ids [0 0]
    """
    budget = as_budget(budget)
    chunks, start = [], 0
    while start < len(doc.tokens):
        end = start + budget.longest_piece(doc.tokens[start:])
        sentence_ids = doc.sentence_ids[start:end]
        chunks.append(TokenizedDocument(doc.tokens[start:end], sentence_ids - sentence_ids[0], doc.document_id))
        start = end
    return chunks


class RowPacker:
    """Greedy sequential packer: `add` chunks (each fitting a row alone) in order, get finished rows.

    A row is finished when it is exactly full or when the next chunk does not fit in what is left of
    the row or of the budget's capacities. Rows are PackedBatch of (budget.row_length,) arrays.
    """

    def __init__(self, budget: "row_budget.RowBudget | int", word_start_table: np.ndarray):
        self.budget = as_budget(budget)
        self.seq_len = self.budget.row_length
        self.word_start_table = np.asarray(word_start_table, dtype=np.bool_)
        self._chunks: list[TokenizedDocument] = []
        self._used = 0
        self._cost = np.zeros(len(self.budget.capacities), np.int64)

    @property
    def is_empty(self) -> bool:
        """True if no chunk is waiting in an unfinished row."""
        return not self._chunks

    def add(self, chunk: TokenizedDocument) -> list[PackedBatch]:
        """Adds one chunk; returns the rows this finished (0, 1 or 2 of them)."""
        n = len(chunk.tokens)
        cost = self.budget.document_cost(chunk.tokens)
        if not 0 < n <= self.seq_len or not self.budget.fits(np.zeros_like(cost), cost):
            raise ValueError(f"chunk of {n} tokens cannot be packed into rows of {self.seq_len}"
                             f" (capacities {self.budget.capacities}, cost {cost.tolist()})")
        finished = []
        if self._used + n > self.seq_len or not self.budget.fits(self._cost, cost):
            finished.append(self.flush())
        self._chunks.append(chunk)
        self._used += n
        self._cost += cost
        if self._used == self.seq_len:
            finished.append(self.flush())
        return finished

    def flush(self) -> PackedBatch:
        """Finishes the current row (padding the rest) and returns it."""
        row = make_row(self._chunks, self.seq_len, self.word_start_table)
        self._chunks, self._used = [], 0
        self._cost = np.zeros_like(self._cost)
        return row


def make_row(chunks: Sequence[TokenizedDocument], seq_len: int, word_start_table: np.ndarray) -> PackedBatch:
    """Lays chunks side by side in one row of seq_len, then padding. Fields are (seq_len,).

    chunks [5 6 1], [7 1] (sentence_ids [0 1 1], [0 0]), seq_len 7 ->
        tokens       [5 6 1 7 1 0 0]
        segment_ids  [1 1 1 2 2 0 0]
        positions    [0 1 2 0 1 0 0]
        sentence_ids [0 1 1 0 0 0 0]
        word_starts  word_start_table[tokens], False on padding
        document_ids each chunk's document_id, -1 on padding
    """
    tokens = np.zeros(seq_len, np.int32)
    segment_ids = np.zeros(seq_len, np.int32)
    positions = np.zeros(seq_len, np.int32)
    sentence_ids = np.zeros(seq_len, np.int32)
    document_ids = np.full(seq_len, -1, np.int32)
    start = 0
    for segment, chunk in enumerate(chunks, start=1):
        end = start + len(chunk.tokens)
        tokens[start:end] = chunk.tokens
        segment_ids[start:end] = segment
        positions[start:end] = np.arange(end - start)
        sentence_ids[start:end] = chunk.sentence_ids
        document_ids[start:end] = chunk.document_id
        start = end
    word_starts = word_start_table[tokens] & (segment_ids > 0)
    return PackedBatch(tokens, segment_ids, positions, sentence_ids, word_starts, document_ids)


def stack_rows(rows: Sequence[PackedBatch]) -> PackedBatch:
    """Rows of (L,) arrays -> one PackedBatch of (len(rows), L) arrays."""
    return PackedBatch(*(np.stack(field) for field in zip(*rows, strict=True)))


def empty_row(seq_len: int) -> PackedBatch:
    """An all-padding row (segment_ids 0 everywhere), to fill the last eval batch."""
    zeros = np.zeros(seq_len, np.int32)
    return PackedBatch(zeros, zeros, zeros, zeros, np.zeros(seq_len, np.bool_), np.full(seq_len, -1, np.int32))


def pack_documents(documents: Iterable[TokenizedDocument], budget: "row_budget.RowBudget | int",
                   word_start_table: np.ndarray) -> PackedBatch:
    """Packs a whole list of tokenized documents into (R, L) rows; the last row is padded. A document
    without a document_id gets its index in the list.

    budget 4; documents [5 1], [6 7 8 9 1], [2 1] ->
        tokens      [[5 1 0 0]   segment_ids [[1 1 0 0]   positions [[0 1 0 0]   document_ids [[0  0 -1 -1]
                     [6 7 8 9]                [1 1 1 1]              [0 1 2 3]                 [1  1  1  1]
                     [1 2 1 0]]               [1 2 2 0]]             [0 0 1 0]]                [1  2  2 -1]]
    """
    packer = RowPacker(budget, word_start_table)
    rows = []
    for index, doc in enumerate(documents):
        if doc.document_id < 0:
            doc = doc._replace(document_id=index)
        for chunk in split_long_document(doc, packer.budget):
            rows.extend(packer.add(chunk))
    if not packer.is_empty:
        rows.append(packer.flush())
    if not rows:
        raise ValueError("no tokens to pack")
    return stack_rows(rows)
