"""SentencePiece tokenizer with pretrain_jax's special ids and T5-style sentinels on top.

    tok = load_or_train(config.tokenizer, workdir, documents)   # trains once, then reuses
    tok.encode("Return the sum.")  # -> [54, 14, 3122, 13]: ▁Return ▁the ▁sum . (no EOS: packing adds it)
    tok.decode([54, tok.specials.sentinel(0), 3122, 13])  # -> 'Return<extra_id_0> sum.'
    (ids from the built-in corpus's tokenizer at vocab_size 8192)

Layout (specials.py): ids 0..12 are pad, eos, unk, bos and the user-defined symbols, in the
SentencePiece model itself; then ordinary pieces; sentinels are the top `num_sentinels` ids and live
outside the SentencePiece model (like T5's extra ids), so `vocab_size` = pieces + sentinels.
"""

import hashlib
import io
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import sentencepiece as spm
from absl import logging

from pretrain_jax import specials as specials_lib
from pretrain_jax.data import packing

MODEL_FILENAME = "tokenizer.model"
_WORD_START = "\u2581"  # "▁": SentencePiece's marker for a piece that begins after whitespace.
# SentencePiece skips longer training lines; sentences are far shorter than this anyway.
_MAX_SENTENCE_BYTES = 1 << 14


class Tokenizer:
    """A trained SentencePiece model plus `num_sentinels` sentinel ids above its pieces."""

    def __init__(self, model_proto: bytes, num_sentinels: int):
        self._proto = bytes(model_proto)
        self._num_sentinels = num_sentinels
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        self.specials = specials_lib.SpecialIds(
            vocab_size=self._sp.get_piece_size() + num_sentinels, num_sentinels=num_sentinels
        )
        _check_special_ids(self._sp, self.specials)
        self.word_start_table = self._make_word_start_table()

    @classmethod
    def from_serialized(cls, model_proto: bytes, num_sentinels: int) -> "Tokenizer":
        """Inverse of `serialized()` (the trainer stores those bytes in checkpoints)."""
        return cls(model_proto, num_sentinels)

    @classmethod
    def load(cls, path: str, num_sentinels: int) -> "Tokenizer":
        with open(path, "rb") as f:
            proto = f.read()
        try:
            return cls(proto, num_sentinels)
        except RuntimeError as error:  # SentencePiece's parse failure of a damaged or foreign file
            raise ValueError(f"tokenizer file {path} cannot be read by SentencePiece ({str(error).strip()}): it is"
                             " damaged or not a SentencePiece model; put back the run's tokenizer.model") from None

    def serialized(self) -> bytes:
        """The SentencePiece model proto (sentinels are implied by `num_sentinels`)."""
        return self._proto

    # Pickled by value, so grain worker processes get their own SentencePiece processor.
    def __getstate__(self):
        return {"model_proto": self._proto, "num_sentinels": self._num_sentinels}

    def __setstate__(self, state):
        self.__init__(state["model_proto"], state["num_sentinels"])

    @property
    def vocab_size(self) -> int:
        """Total ids, sentinels included: the size of the model's embedding table."""
        return self.specials.vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS. "[MASK]" etc. typed in text encode to their ids."""
        return self._sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` for many texts in one call (one C++ loop instead of a Python one)."""
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids) -> str:
        """Text of `ids`: pad skipped, sentinel k shown as <extra_id_k>, control ids (eos, bos) dropped.

        decode([tok_The, tok_cat, sentinel_0, tok_sat]) -> 'The cat<extra_id_0> sat'
        """
        parts, run = [], []

        def flush_run():
            if run:
                text = self._sp.decode(run)
                # SentencePiece drops the leading space of the text it decodes; after a sentinel the
                # space is real, so it is put back.
                if parts and self._sp.id_to_piece(run[0]).startswith(_WORD_START):
                    text = " " + text
                parts.append(text)
                run.clear()

        for token in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"token id {token} outside the vocabulary [0, {self.vocab_size})")
            if token == self.specials.pad:
                continue
            if token >= self.specials.normal_id_end:
                flush_run()
                parts.append(self.id_to_piece(token))
            else:
                run.append(token)
        flush_run()
        return "".join(parts)

    def id_to_piece(self, token: int) -> str:
        """The piece string of one id; sentinels render as <extra_id_k>."""
        if token >= self.specials.normal_id_end:
            return f"<extra_id_{self.vocab_size - 1 - token}>"
        return self._sp.id_to_piece(token)

    def _make_word_start_table(self) -> np.ndarray:
        """(vocab_size,) bool: True for ordinary pieces that begin a word ("▁..."), False for specials."""
        table = np.zeros(self.vocab_size, dtype=np.bool_)
        for token in range(self.specials.first_normal_id, self.specials.normal_id_end):
            if not (self._sp.is_control(token) or self._sp.is_unknown(token)):
                table[token] = self._sp.id_to_piece(token).startswith(_WORD_START)
        return table


def _check_special_ids(sp: spm.SentencePieceProcessor, ids: specials_lib.SpecialIds) -> None:
    """Every special piece must sit at the id specials.py gives it; objectives rely on those ids."""
    for field, piece in specials_lib.SPECIAL_PIECES:
        expected, actual = getattr(ids, field), sp.piece_to_id(piece)
        if sp.id_to_piece(expected) != piece:
            raise ValueError(
                f"Tokenizer has {piece!r} at id {actual}, but pretrain_jax.specials needs it at"
                f" {expected}; train it with load_or_train (or the same special-piece settings)"
            )


def model_path(tokenizer_config, workdir: str) -> str:
    """Where a run's SentencePiece model is: `tokenizer.path` if set, else `workdir/tokenizer.model`."""
    if tokenizer_config.path:
        return os.path.expanduser(tokenizer_config.path)
    return os.path.join(workdir, MODEL_FILENAME)


def exists(tokenizer_config, workdir: str) -> bool:
    """True if `load_or_train` would load a model rather than train one (so needs no documents)."""
    return bool(tokenizer_config.path) or os.path.exists(model_path(tokenizer_config, workdir))


def load_or_train(tokenizer_config, workdir: str, documents: Sequence[str] | None) -> Tokenizer:
    """The tokenizer for a run: `tokenizer.path` if set, else `workdir/tokenizer.model`, else trained.

    Training uses up to `max_train_chars` characters of `documents`, visited in a fixed order spread
    over the whole corpus, so the same documents and config give the same model on every run.
    """
    num_sentinels = tokenizer_config.num_sentinels
    if tokenizer_config.path:
        tokenizer = Tokenizer.load(os.path.expanduser(tokenizer_config.path), num_sentinels)
        logging.info("Loaded tokenizer %s (vocab_size %d).", tokenizer_config.path, tokenizer.vocab_size)
        _check_vocab_size(tokenizer, tokenizer_config, tokenizer_config.path)
        return tokenizer
    path = os.path.join(workdir, MODEL_FILENAME)
    if os.path.exists(path):
        tokenizer = Tokenizer.load(path, num_sentinels)
        logging.info("Reusing tokenizer %s (vocab_size %d).", path, tokenizer.vocab_size)
        _check_vocab_size(tokenizer, tokenizer_config, path)
        return tokenizer
    if documents is None:
        raise ValueError(f"No tokenizer at {path} and no documents given to train one on")
    proto = train_sentencepiece(tokenizer_config, documents)
    os.makedirs(workdir, exist_ok=True)
    tmp_path = f"{path}.tmp-{os.getpid()}"  # Rename into place: readers never see half a model.
    with open(tmp_path, "wb") as f:
        f.write(proto)
    os.replace(tmp_path, path)
    logging.info("Saved tokenizer to %s.", path)
    return Tokenizer(proto, num_sentinels)


def _check_vocab_size(tokenizer: Tokenizer, tokenizer_config, path: str) -> None:
    if tokenizer.vocab_size != tokenizer_config.vocab_size:
        raise ValueError(
            f"Tokenizer {path} has {tokenizer.vocab_size} ids ({tokenizer.vocab_size - tokenizer_config.num_sentinels}"
            f" pieces + {tokenizer_config.num_sentinels} sentinels) but tokenizer.vocab_size is"
            f" {tokenizer_config.vocab_size}; if the file was changed or cut short, put back the original;"
            " otherwise use a fresh workdir or set tokenizer.vocab_size to match"
        )


def fingerprint(tokenizer: Tokenizer) -> str:
    """sha256 (hex) of the SentencePiece model: what a checkpoint records, so a resumed run can
    tell that its tokenizer.model is the one the checkpoint was trained with."""
    return hashlib.sha256(tokenizer.serialized()).hexdigest()


def check_fingerprint(tokenizer_config, workdir: str, meta: dict) -> None:
    """The run's tokenizer file has the sha256 recorded in a checkpoint's `meta` (checkpoints without
    one, from before fingerprints, are not checked); else a one-line ValueError naming both."""
    recorded = meta.get("tokenizer_sha256")
    path = model_path(tokenizer_config, workdir)
    if not recorded or not os.path.exists(path):
        return
    with open(path, "rb") as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    if actual != recorded:
        raise ValueError(
            f"tokenizer {path} is not the one the checkpoints were trained with: its sha256 is {actual[:16]}...,"
            f" the checkpoint step {meta.get('step')} records {recorded[:16]}...; put back the original file"
            " (or start a new --workdir)")


def train_sentencepiece(tokenizer_config, documents: Sequence[str]) -> bytes:
    """Trains a SentencePiece model; returns its serialized proto."""
    num_pieces = tokenizer_config.vocab_size - tokenizer_config.num_sentinels
    logging.info(
        "Training a %s SentencePiece model with %d pieces (+%d sentinels) on up to %d characters of %d"
        " documents; this takes a few seconds per MB.",
        tokenizer_config.model_type,
        num_pieces,
        tokenizer_config.num_sentinels,
        tokenizer_config.max_train_chars,
        len(documents),
    )
    sentences = list(training_sentences(documents, tokenizer_config.max_train_chars))
    num_chars = sum(map(len, sentences))
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=writer,
            vocab_size=num_pieces,
            model_type=tokenizer_config.model_type,
            character_coverage=tokenizer_config.character_coverage,
            pad_id=specials_lib.SpecialIds.pad,
            eos_id=specials_lib.SpecialIds.eos,
            unk_id=specials_lib.SpecialIds.unk,
            bos_id=specials_lib.SpecialIds.bos,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
            bos_piece="<s>",
            user_defined_symbols=list(specials_lib.USER_DEFINED_PIECES),
            # Determinism: every sentence in the given order, no sampling, a fixed thread count (the
            # unigram EM sums per thread, so the model changes with the number of threads).
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=tokenizer_config.num_threads,
            max_sentence_length=_MAX_SENTENCE_BYTES,
            minloglevel=2,  # SentencePiece's own log is hundreds of lines.
        )
    except RuntimeError as e:
        raise ValueError(
            f"SentencePiece training failed ({e}); with {num_chars} characters of text, try a smaller"
            " tokenizer.vocab_size or more data"
        ) from None
    logging.info("Trained the tokenizer on %d sentences, %.2f MB of text.", len(sentences), num_chars / 1e6)
    return writer.getvalue()


def training_sentences(documents: Sequence[str], max_chars: int) -> Iterator[str]:
    """Sentences of the documents in `spread_order`, until `max_chars` characters have been given."""
    remaining = max_chars
    for index in spread_order(len(documents)):
        for sentence in packing.split_sentences(documents[index]):
            if remaining <= 0:
                return
            yield sentence
            remaining -= len(sentence)


def spread_order(n: int) -> Iterator[int]:
    """Every index in range(n) once, in a fixed order that jumps across the whole range.

    Taking a prefix of it samples the corpus evenly (not just its first files), without random numbers:
    index k is (k * step) % n with step ≈ 0.618 n coprime to n. spread_order(5) -> 0, 3, 1, 4, 2
    """
    step = max(1, round(n * 0.6180339887))
    while math.gcd(step, n) != 1 and n > 1:
        step += 1
    for k in range(n):
        yield (k * step) % n
