"""A TFDS builder that turns local text files into array_record train/eval splits.

Accepted files:
- JSONL (`.jsonl`, `.json`): one JSON object per line; the document is the field `text_key`.
- anything else: plain UTF-8 text, documents separated by blank lines.

Files that are empty, binary (a NUL byte in the first 8 KiB) or not valid UTF-8 are skipped with a
warning naming them (`builder.skipped_files` maps each to the reason); if no file is left, `scan()`
fails with an error naming the files, before anything is written. A malformed JSONL line is an error
(file and line given), not a skip: half-read data would silently change the corpus.

Each document goes to the eval split iff the hash of its text falls below `eval_fraction`
(pretrain_jax.data.splits), the same rule as the built-in corpus. A split with no documents is not
written at all (TFDS cannot write empty splits), so asking for it later gives a clear error.

The prepared data lives under `data_dir/local_text/files_<fingerprint>/1.0.0`; the fingerprint covers
the file paths, sizes and modification times and the split settings, so editing a file or a setting
prepares a fresh copy instead of reusing a stale one.
"""

import glob
import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from pretrain_jax.data import splits

_JSONL_SUFFIXES = (".jsonl", ".json")
_BINARY_SNIFF_BYTES = 8192


def expand_paths(spec: str) -> list[str]:
    """Comma-separated paths, globs (`**` recurses) or directories (every file below) -> sorted paths."""
    paths = []
    for pattern in (part.strip() for part in spec.split(",")):
        if not pattern:
            continue
        pattern = os.path.expanduser(pattern)
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**", "*")
        matches = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
        if not matches:
            raise ValueError(f"data.files: {pattern!r} matches no file")
        paths.extend(matches)
    if not paths:
        raise ValueError("data.source='files' needs data.files (comma-separated paths or globs)")
    return sorted(set(paths))


def read_documents(path: str, text_key: str) -> list[str] | str:
    """The documents in one file, or a string saying why the file is skipped.

    Plain text: 'First doc,\\nline two.\\n\\n\\nSecond doc.' -> ['First doc,\\nline two.', 'Second doc.']
    JSONL:      '{"text": "a"}\\n{"text": "b"}'               -> ['a', 'b']
    """
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        return "empty"
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        return "binary"
    try:
        text = data.decode("utf-8-sig")  # -sig: drop a byte-order mark that editors on Windows add.
    except UnicodeDecodeError as e:
        return f"not UTF-8 (byte {e.start})"
    if path.endswith(_JSONL_SUFFIXES):
        documents = _jsonl_documents(path, text, text_key)
    else:
        documents = [block.strip() for block in _split_blank_lines(text)]
    documents = [doc for doc in documents if doc]
    return documents or "no documents"


def _split_blank_lines(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


def _jsonl_documents(path: str, text: str, text_key: str) -> list[str]:
    documents = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{line_number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(text_key), str):
            raise ValueError(f"{path}:{line_number}: no string field {text_key!r} (data.text_key)")
        documents.append(record[text_key].strip())
    return documents


def _fingerprint(paths: Sequence[str], text_key: str, eval_fraction: float, split_names) -> str:
    h = hashlib.sha1()
    for path in paths:
        stat = os.stat(path)
        h.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    h.update(f"{text_key}\0{eval_fraction!r}\0{split_names}".encode())
    return h.hexdigest()[:16]


class LocalText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Local text / JSONL files as a TFDS dataset with one `text` feature (bytes when read back)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Blank-line separated text and JSONL, hash-based eval split."}

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS looks for checksum files next to the builder's code; its own lookup of that path needs
        # the `importlib_resources` backport when pretrain_jax is installed editable. This builder
        # downloads nothing, so its plain file path is all TFDS needs.
        return epath.Path(__file__)

    def __init__(
        self,
        *,
        files: Sequence[str],
        text_key: str,
        eval_fraction: float,
        train_split: str,
        eval_split: str,
        data_dir: str,
    ):
        if not 0.0 <= eval_fraction < 1.0:
            raise ValueError(f"data.eval_fraction must be in [0, 1), got {eval_fraction}")
        if train_split == eval_split:
            raise ValueError(f"data.train_split and data.eval_split are both {train_split!r}")
        self._files = list(files)
        self._text_key = text_key
        self._eval_fraction = eval_fraction
        self._split_names = (train_split, eval_split)
        self.skipped_files: dict[str, str] = {}
        self._scanned: tuple[list[str], dict[str, int]] | None = None
        fingerprint = _fingerprint(self._files, text_key, eval_fraction, self._split_names)
        config = tfds.core.BuilderConfig(name=f"files_{fingerprint}", description=f"{len(self._files)} files")
        super().__init__(data_dir=data_dir, config=config, file_format="array_record")

    def _info(self) -> tfds.core.DatasetInfo:
        # Outside a package TFDS cannot find metadata files, so the info is spelled out here.
        return tfds.core.DatasetInfo(
            builder=self,
            description="Local text files prepared by pretrain_jax.",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            # File order is kept (no shuffling by key): max_documents then takes the first files.
            disable_shuffling=True,
        )

    def scan(self) -> tuple[list[str], dict[str, int]]:
        """Reads every file once (writing nothing): (usable paths, documents per split).

        Skipped files are logged and kept in `skipped_files`; if none is usable, a ValueError names them.
        """
        if self._scanned is not None:
            return self._scanned
        usable, counts = [], dict.fromkeys(self._split_names, 0)
        for path in self._files:
            documents = read_documents(path, self._text_key)
            if isinstance(documents, str):
                self.skipped_files[path] = documents
                continue
            usable.append(path)
            for doc in documents:
                counts[self._split(doc)] += 1
        skipped = "; ".join(f"{p} ({why})" for p, why in self.skipped_files.items())
        if self.skipped_files:
            logging.warning("Skipped %d of %d data.files: %s", len(self.skipped_files), len(self._files), skipped)
        if not usable:
            raise ValueError(f"No usable text in data.files: all {len(self._files)} file(s) skipped: {skipped}")
        self._scanned = usable, counts
        return self._scanned

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        usable, counts = self.scan()
        logging.info("Preparing local text: %s documents per split from %d files.", counts, len(usable))
        # An empty split cannot be written; it is left out, and reading it says so (corpus.py).
        return {name: self._generate_examples(usable, name) for name, n in counts.items() if n > 0}

    def _split(self, document: str) -> str:
        return splits.split_of(document, self._eval_fraction, *self._split_names)

    def _generate_examples(self, paths: Sequence[str], split: str):
        for file_index, path in enumerate(paths):
            for doc_index, doc in enumerate(read_documents(path, self._text_key)):
                if self._split(doc) == split:
                    yield f"{file_index}-{doc_index}", {"text": doc}


def decode_text(value) -> str:
    """TFDS text comes back as bytes from array_record (str under tfds.testing.mock_data)."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return decode_text(value.item())
    return str(value)
