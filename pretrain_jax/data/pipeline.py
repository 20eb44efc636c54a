"""The host loader: documents -> this process's PackedBatches, deterministic and exactly resumable.

    train = make_loader(config.data, tok, train_docs, split_is_train=True, seed=config.seed,
                        process_index=jax.process_index(), process_count=jax.process_count())
    batch = next(train)      # PackedBatch of numpy (batch_size // process_count, seq_len)
    state = train.get_state()  # JSON-serialisable dict; save it with the checkpoint
    train.set_state(state)     # the following batches are exactly those the uninterrupted run gets

The grain pipeline, per process:

    MapDataset.source(numbered documents)[process_index::process_count]  # (index in split, text)
      .shuffle(seed).repeat()          # train: a new order every epoch, fixed by seed and epoch
      .map(tokenize)                   # lazily, in prefetch threads: start-up does no tokenizing
      [.random_map(host_transform)]    # instead, where an objective has a host step (fim's
                                       # character cuts): its randomness fixed by seed and element
      .to_iter_dataset()
      -> PackedBatchIterDataset        # greedy packing under the objective's RowBudget + batching
      [.mp_prefetch(worker_count)]     # optional worker processes

Eval loaders read their documents once, in order, and pad the last batch with all-padding rows
(segment_ids 0, so every loss weight is 0 there); `restart()` goes back to the first batch.
"""

from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np
from absl import flags, logging

from pretrain_jax import row_budget
from pretrain_jax.batch import PackedBatch
from pretrain_jax.data import packing
from pretrain_jax.data import tokenizer as tokenizer_lib

# An objective's step that must run on the host, on the text: (text, encode_batch, rng) -> the
# document's token ids without EOS, or None to tokenize it as usual (fim's character-level cuts).
HostTransform = Callable[[str, Callable[[list[str]], list[list[int]]], np.random.Generator], list[int] | None]

# Documents tokenized ahead of the packer, in threads; tokenizing is fast (~2M tokens/s), so two
# threads keep far ahead of a training step while leaving the cores to the trainer.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=256)


class _Numbered(Sequence):
    """documents[i] -> (i, documents[i]): the index in the split travels with the text (document_ids)."""

    def __init__(self, documents: Sequence[str]):
        self._documents = documents

    def __len__(self) -> int:
        return len(self._documents)

    def __getitem__(self, index):
        return index, self._documents[index]


class _Tokenize(grain.transforms.Map):
    """(index, str document) -> TokenizedDocument (sentences tokenized, EOS appended, document_id)."""

    def __init__(self, tokenizer: tokenizer_lib.Tokenizer):
        self._tokenizer = tokenizer

    def map(self, element: tuple[int, str]) -> packing.TokenizedDocument:
        index, text = element
        return packing.tokenize_document(
            text, self._tokenizer.encode_batch, self._tokenizer.specials.eos, document_id=int(index))


class _TransformThenTokenize(grain.transforms.RandomMap):
    """_Tokenize after an objective's host step, which may rewrite the document's tokens."""

    def __init__(self, tokenizer: tokenizer_lib.Tokenizer, host_transform: HostTransform):
        self._tokenize = _Tokenize(tokenizer)
        self._tokenizer = tokenizer
        self._host_transform = host_transform

    def random_map(self, element: tuple[int, str], rng: np.random.Generator) -> packing.TokenizedDocument:
        index, text = element
        ids = self._host_transform(text, self._tokenizer.encode_batch, rng)
        if ids is None:
            return self._tokenize.map(element)
        if not ids:
            empty = np.zeros((0,), np.int32)
            return packing.TokenizedDocument(empty, empty, int(index))
        tokens = np.append(np.asarray(ids, np.int32), np.int32(self._tokenizer.specials.eos))
        return packing.TokenizedDocument(tokens, np.zeros(len(tokens), np.int32), int(index))


class PackedBatchIterDataset(grain.IterDataset):
    """Packs a stream of TokenizedDocuments into PackedBatches of (batch_rows, budget.row_length).

    With pad_last_batch, a finite stream ends with a batch filled up with all-padding rows; otherwise
    the rows that do not fill a last batch are dropped.
    """

    def __init__(
        self,
        parent: grain.IterDataset,
        *,
        budget: row_budget.RowBudget,
        batch_rows: int,
        word_start_table: np.ndarray,
        pad_last_batch: bool,
    ):
        super().__init__(parent)
        self._budget = budget
        self._batch_rows = batch_rows
        self._word_start_table = word_start_table
        self._pad_last_batch = pad_last_batch

    def __iter__(self) -> "_PackedBatchIterator":
        return _PackedBatchIterator(
            self._parent.__iter__(),
            budget=self._budget,
            batch_rows=self._batch_rows,
            word_start_table=self._word_start_table,
            pad_last_batch=self._pad_last_batch,
        )


class _PackedBatchIterator(grain.DatasetIterator):
    """State = where the first row not yet returned starts: the parent's state before the document
    holding that row's first chunk, and how many chunks of that document came before it.

    Packing is a deterministic function of the chunk stream, and every row starts on a chunk
    boundary, so re-reading from that point re-packs the same rows; no token buffer is saved.
    """

    def __init__(self, parent, *, budget, batch_rows, word_start_table, pad_last_batch):
        super().__init__(parent)
        self._budget = budget
        self._batch_rows = batch_rows
        self._pad_last_batch = pad_last_batch
        self._word_start_table = word_start_table
        self._reset_position(self._parent.get_state(), skip_chunks=0)

    def _reset_position(self, parent_state: dict[str, Any], skip_chunks: int) -> None:
        self._packer = packing.RowPacker(self._budget, self._word_start_table)
        self._finished: list[tuple[PackedBatch, tuple[dict[str, Any], int]]] = []
        self._doc_state = parent_state  # Parent state before the current document.
        self._chunks: list[packing.TokenizedDocument] = []
        self._next_chunk = skip_chunks
        self._open_row_start = (parent_state, skip_chunks)  # Where the row in the packer starts.
        self._exhausted = False
        if skip_chunks:  # Re-read the document the saved row starts in; its first chunks are done.
            self._read_document()

    def _read_document(self) -> bool:
        """Loads the chunks of the next non-empty document; False at the end of the parent."""
        while True:
            self._doc_state = self._parent.get_state()
            try:
                doc = next(self._parent)
            except StopIteration:
                self._exhausted = True
                return False
            if len(doc.tokens):
                self._chunks = packing.split_long_document(doc, self._budget)
                return True

    def _next_row(self) -> tuple[PackedBatch, tuple[dict[str, Any], int]] | None:
        """The next finished row and where it starts, or None when the parent is exhausted."""
        while not self._finished:
            if self._next_chunk >= len(self._chunks):
                self._next_chunk = 0
                self._chunks = []
                if self._exhausted or not self._read_document():
                    if self._packer.is_empty:
                        return None
                    self._finished.append((self._packer.flush(), self._open_row_start))
                    break
            position = (self._doc_state, self._next_chunk)
            if self._packer.is_empty:
                self._open_row_start = position
            chunk = self._chunks[self._next_chunk]
            self._next_chunk += 1
            for row in self._packer.add(chunk):
                self._finished.append((row, self._open_row_start))
                # The chunk that closed the previous row opened the current one.
                self._open_row_start = position
        return self._finished.pop(0)

    def __next__(self) -> PackedBatch:
        rows = []
        while len(rows) < self._batch_rows:
            item = self._next_row()
            if item is None:
                break
            rows.append(item[0])
        if len(rows) < self._batch_rows:
            if not rows or not self._pad_last_batch:
                raise StopIteration
            rows.extend(packing.empty_row(self._budget.row_length) for _ in range(self._batch_rows - len(rows)))
        return packing.stack_rows(rows)

    def get_state(self) -> dict[str, Any]:
        if self._finished:
            parent_state, skip_chunks = self._finished[0][1]
        elif not self._packer.is_empty:
            parent_state, skip_chunks = self._open_row_start
        elif self._next_chunk < len(self._chunks):
            parent_state, skip_chunks = self._doc_state, self._next_chunk
        else:
            parent_state, skip_chunks = self._parent.get_state(), 0
        return {"parent": parent_state, "skip_chunks": skip_chunks}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._reset_position(state["parent"], state["skip_chunks"])


class Loader:
    """An iterator of this process's PackedBatches with get_state / set_state / restart.

    `iterator` is the underlying grain DatasetIterator, for grain.checkpoint.CheckpointSave.
    """

    def __init__(self, dataset: grain.IterDataset, *, num_documents: int, batch_rows: int, seq_len: int):
        self.dataset = dataset
        self.num_documents = num_documents  # This process's share.
        self.batch_shape = (batch_rows, seq_len)
        self.iterator = iter(dataset)

    def __iter__(self) -> "Loader":
        return self

    def __next__(self) -> PackedBatch:
        return next(self.iterator)

    def get_state(self) -> dict[str, Any]:
        return self.iterator.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.iterator.set_state(state)

    def restart(self) -> None:
        """Back to the first batch (an eval loader gives the same batches after every restart)."""
        self.iterator = iter(self.dataset)


def make_loader(
    data_config,
    tokenizer: tokenizer_lib.Tokenizer,
    documents: Sequence[str],
    *,
    split_is_train: bool,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    budget: row_budget.RowBudget | None = None,
    host_transform: HostTransform | None = None,
) -> Loader:
    """This process's loader over `documents`: batches of (batch_size // process_count, L), L the
    budget's row length (default: rows of data.seq_len tokens, the plain budget).

    Train: infinite; shuffled anew every epoch if data.shuffle. Eval (split_is_train=False): one pass
    in document order, batch size data.eval_batch_size, last batch padded with all-padding rows.
    Each process reads documents process_index, process_index + process_count, ...
    host_transform: the objective's host step, if it has one (see HostTransform).
    """
    budget = budget or row_budget.plain(data_config.seq_len)
    global_batch = data_config.batch_size if split_is_train else data_config.eval_batch_size
    if global_batch % process_count:
        raise ValueError(f"batch size {global_batch} is not divisible by {process_count} processes")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    batch_rows = global_batch // process_count
    shard = grain.MapDataset.source(_Numbered(documents))[process_index::process_count]
    num_documents = len(shard)
    if num_documents == 0:
        raise ValueError(f"process {process_index} of {process_count} has no documents ({len(documents)} in all)")
    if split_is_train:
        if data_config.shuffle:
            shard = shard.shuffle(seed=_shuffle_seed(seed))
        shard = shard.repeat()
    if host_transform is None:
        shard = shard.map(_Tokenize(tokenizer))
    else:
        shard = shard.random_map(_TransformThenTokenize(tokenizer, host_transform), seed=_host_step_seed(seed))
    dataset = PackedBatchIterDataset(
        shard.to_iter_dataset(_READ_OPTIONS),
        budget=budget,
        batch_rows=batch_rows,
        word_start_table=tokenizer.word_start_table,
        pad_last_batch=not split_is_train,
    )
    if data_config.worker_count > 0:
        if not flags.FLAGS.is_parsed():
            # grain's workers read absl flags; outside an absl app (notebooks, tests) nothing parsed
            # them, and reading would raise UnparsedFlagAccessError. Their defaults are what we want.
            flags.FLAGS.mark_as_parsed()
        # Each worker packs its own slice of the documents: batches differ from worker_count=0, but
        # are still fixed by the config, and grain saves and restores every worker's position.
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_config.worker_count))
    logging.info(
        "%s loader, process %d/%d: %d documents, batches of %d x %d.",
        "Train" if split_is_train else "Eval",
        process_index,
        process_count,
        num_documents,
        batch_rows,
        budget.row_length,
    )
    return Loader(dataset, num_documents=num_documents, batch_rows=batch_rows, seq_len=budget.row_length)


def _shuffle_seed(seed: int) -> int:
    """A 32-bit shuffle seed scrambled from the run's seed.

    grain shuffles epoch e with seed + e, so with the raw seed, run seed=1's first epoch would be run
    seed=0's second epoch: a seed sweep would share document orders.
    """
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


def _host_step_seed(seed: int) -> int:
    """A 32-bit seed for objectives' host steps, independent of the shuffle seed."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def split_stats(
    documents: Sequence[str], tokenizer: tokenizer_lib.Tokenizer, *, max_scan_documents: int = 20_000
) -> dict[str, Any]:
    """Documents and tokens (EOS included) of one split, for logging and for epoch arithmetic.

    Tokens are counted exactly when the split has at most `max_scan_documents` documents (the
    built-in corpus: ~0.5 s); larger splits are estimated from that many documents spread evenly
    over the split, and `tokens_exact` says which.
    -> {"documents": 2230, "tokens": 601234, "tokens_exact": True}
    """
    n = len(documents)
    scanned = range(n) if n <= max_scan_documents else np.linspace(0, n - 1, max_scan_documents).astype(int)
    tokens = 0
    for index in scanned:
        doc = packing.tokenize_document(documents[int(index)], tokenizer.encode_batch, tokenizer.specials.eos)
        tokens += len(doc.tokens)
    exact = len(scanned) == n
    return {"documents": n, "tokens": tokens if exact else round(tokens * n / len(scanned)), "tokens_exact": exact}
