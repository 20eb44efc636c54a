"""The grain loader: exact resume, per-epoch shuffling, process sharding, finite padded eval."""

import itertools
import json

import numpy as np
import pytest
from data_fixtures import data_config

from pretrain_jax.batch import PackedBatch
from pretrain_jax.data import packing, pipeline

SEQ_LEN = 32


def loader_config(**overrides):
    return data_config(**{"seq_len": SEQ_LEN, "batch_size": 4, "eval_batch_size": 4, **overrides})


def assert_batches_equal(actual: list[PackedBatch], expected: list[PackedBatch]):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        for field in PackedBatch._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(e, field), err_msg=field)


def tokens_of(documents, tokenizer) -> np.ndarray:
    """Every document tokenized (EOS included), concatenated in order."""
    encoded = [packing.tokenize_document(d, tokenizer.encode_batch, tokenizer.specials.eos) for d in documents]
    return np.concatenate([doc.tokens for doc in encoded])


def stream_tokens(loader) -> np.ndarray:
    """The non-pad tokens of every batch, in order."""
    return np.concatenate([b.tokens[b.segment_ids > 0] for b in loader])


@pytest.fixture(scope="module")
def documents(sample_documents):
    return list(sample_documents[:40])


def test_batches_have_the_contract_shapes(documents, small_tokenizer):
    loader = pipeline.make_loader(loader_config(), small_tokenizer, documents, split_is_train=True, seed=0)
    batch = next(loader)
    assert isinstance(batch, PackedBatch)
    for field in ("tokens", "segment_ids", "positions", "sentence_ids"):
        assert getattr(batch, field).shape == (4, SEQ_LEN) and getattr(batch, field).dtype == np.int32
    assert batch.word_starts.shape == (4, SEQ_LEN) and batch.word_starts.dtype == np.bool_
    np.testing.assert_array_equal(batch.word_starts, small_tokenizer.word_start_table[batch.tokens])
    assert (batch.segment_ids > 0).mean() > 0.5


def test_document_ids_name_each_pieces_source_document(documents, short_documents, small_tokenizer):
    """Shuffled and split over rows, every document's pieces carry its index in the split: each
    (row, segment)'s tokens are a run of the tokens of documents[id], and the pieces of one id
    reassemble it in order."""
    documents = documents[:4] + short_documents
    loader = pipeline.make_loader(loader_config(), small_tokenizer, documents, split_is_train=True, seed=0)
    pieces = {}
    for batch in itertools.islice(loader, 40):
        for row in range(batch.tokens.shape[0]):
            for segment in np.unique(batch.segment_ids[row][batch.segment_ids[row] > 0]):
                where = batch.segment_ids[row] == segment
                ids = np.unique(batch.document_ids[row][where])
                assert len(ids) == 1
                pieces.setdefault(int(ids[0]), []).append(batch.tokens[row][where])
    assert (batch.document_ids[batch.segment_ids == 0] == -1).all()
    assert len(pieces) > 5 and any(len(p) > 1 for p in pieces.values())
    for index, parts in pieces.items():
        whole = packing.tokenize_document(documents[index], small_tokenizer.encode_batch, small_tokenizer.specials.eos)
        joined = np.concatenate(parts)
        # The pieces seen are a prefix of the document (the stream may stop inside it), or, when the
        # stream met the document in two epochs, the whole document and then a prefix again.
        np.testing.assert_array_equal(joined[: min(len(joined), len(whole.tokens))],
                                      whole.tokens[: min(len(joined), len(whole.tokens))])


@pytest.fixture(scope="module")
def short_documents():
    """Documents of 2 to 40 tokens, so rows hold several documents and batches end mid-row."""
    rng = np.random.default_rng(0)
    words = ["the", "value", "of", "a", "list", "is", "returned", "when", "it", "found", "in", "file"]
    return [" ".join(rng.choice(words, rng.integers(1, 40))) + "." for _ in range(60)]


@pytest.mark.parametrize("split_is_train", [True, False])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("kind", ["long", "short"])
def test_set_state_resumes_exactly_at_every_batch(
    documents, short_documents, small_tokenizer, split_is_train, batch_size, kind
):
    # Long documents: saved positions fall inside a document (skip_chunks > 0). Short ones: inside a
    # half-filled row, or between two rows finished by the same chunk.
    docs = documents if kind == "long" else short_documents
    config = loader_config(batch_size=batch_size, eval_batch_size=batch_size)
    make = lambda: pipeline.make_loader(config, small_tokenizer, docs, split_is_train=split_is_train, seed=3)
    reference = make()
    states, batches = [], []
    for batch in itertools.islice(reference, 41):
        batches.append(batch)
        states.append(json.loads(json.dumps(reference.get_state())))  # States survive JSON (checkpoints).
    assert kind == "short" or any(state["skip_chunks"] > 0 for state in states)
    # A short eval split runs out: then its final state (past the last batch) must resume to nothing.
    exhausted = next(reference, None) is None
    for k in range(len(states) if exhausted else len(states) - 2):
        resumed = make()
        resumed.set_state(states[k])
        assert_batches_equal(list(itertools.islice(resumed, 2)), batches[k + 1 : k + 3])


def test_resume_across_epochs_of_a_tiny_corpus(documents, small_tokenizer):
    # 3 short documents: every batch spans several epochs, and rows span epoch boundaries.
    config, tiny = loader_config(), [d[:200] for d in documents[:3]]
    reference = pipeline.make_loader(config, small_tokenizer, tiny, split_is_train=True, seed=1)
    next(reference)
    state = reference.get_state()
    expected = list(itertools.islice(reference, 5))
    resumed = pipeline.make_loader(config, small_tokenizer, tiny, split_is_train=True, seed=1)
    resumed.set_state(state)
    assert_batches_equal(list(itertools.islice(resumed, 5)), expected)


def test_each_epoch_is_reshuffled_by_seed(documents, small_tokenizer):
    def first_rows(seed, shuffle=True, n=3):
        config = loader_config(shuffle=shuffle)
        loader = pipeline.make_loader(config, small_tokenizer, documents, split_is_train=True, seed=seed)
        return np.concatenate([b.tokens for b in itertools.islice(loader, n)])

    np.testing.assert_array_equal(first_rows(5), first_rows(5))
    assert not np.array_equal(first_rows(5), first_rows(6))
    unshuffled = first_rows(0, shuffle=False, n=1)
    np.testing.assert_array_equal(unshuffled.reshape(-1)[:10], tokens_of(documents[:1], small_tokenizer)[:10])


def test_epochs_cover_all_documents_in_new_orders(documents, small_tokenizer):
    # Epoch order is grain's shuffle of the document indices, per epoch (seed + epoch).
    shard = pipeline.grain.MapDataset.source(list(range(len(documents)))).shuffle(seed=7).repeat()
    epoch0, epoch1 = list(shard[: len(documents)]), list(shard[len(documents) : 2 * len(documents)])
    assert sorted(epoch0) == sorted(epoch1) == list(range(len(documents)))
    assert epoch0 != epoch1


def test_eval_loader_is_finite_padded_and_restartable(documents, small_tokenizer):
    few = documents[:6]
    loader = pipeline.make_loader(loader_config(), small_tokenizer, few, split_is_train=False, seed=0)
    batches = list(loader)
    assert batches and all(b.tokens.shape == (4, SEQ_LEN) for b in batches)
    assert list(loader) == []  # Exhausted.
    np.testing.assert_array_equal(stream_tokens(batches), tokens_of(few, small_tokenizer))  # Nothing dropped.
    last = batches[-1]
    assert np.all(last.tokens[last.segment_ids == 0] == 0)
    loader.restart()
    assert_batches_equal(list(loader), batches)


def test_processes_read_disjoint_shares_that_cover_the_data(documents, small_tokenizer):
    config, few = loader_config(), documents[:9]

    def share(process_index, split_is_train):
        return pipeline.make_loader(
            config,
            small_tokenizer,
            few,
            split_is_train=split_is_train,
            seed=0,
            process_index=process_index,
            process_count=2,
        )

    shares = [share(p, split_is_train=False) for p in range(2)]
    assert [s.num_documents for s in shares] == [5, 4]
    assert all(s.batch_shape == (2, SEQ_LEN) for s in shares)
    np.testing.assert_array_equal(stream_tokens(shares[0]), tokens_of(few[0::2], small_tokenizer))
    np.testing.assert_array_equal(stream_tokens(shares[1]), tokens_of(few[1::2], small_tokenizer))
    train_shares = [share(p, split_is_train=True) for p in range(2)]
    assert all(next(s).tokens.shape == (2, SEQ_LEN) for s in train_shares)
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        pipeline.make_loader(config, small_tokenizer, few, split_is_train=True, seed=0, process_count=3)


def test_split_stats(documents, small_tokenizer):
    exact = pipeline.split_stats(documents, small_tokenizer)
    assert exact == {"documents": 40, "tokens": len(tokens_of(documents, small_tokenizer)), "tokens_exact": True}
    estimate = pipeline.split_stats(documents, small_tokenizer, max_scan_documents=10)
    assert not estimate["tokens_exact"] and 0.5 < estimate["tokens"] / exact["tokens"] < 2.0


@pytest.mark.slow  # ~5 s: starting a worker process and importing into it.
def test_worker_processes_resume_exactly(documents, small_tokenizer):
    config = loader_config(worker_count=1)
    loader = pipeline.make_loader(config, small_tokenizer, documents, split_is_train=True, seed=0)
    next(loader)
    state = json.loads(json.dumps(loader.get_state()))
    expected = list(itertools.islice(loader, 4))
    resumed = pipeline.make_loader(config, small_tokenizer, documents, split_is_train=True, seed=0)
    resumed.set_state(state)
    assert_batches_equal(list(itertools.islice(resumed, 4)), expected)
    for finished in (loader, resumed):
        finished.iterator.close()  # Stops the worker processes now rather than at garbage collection.
