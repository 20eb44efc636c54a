"""Document sources: every source gives, per split, a random-access sequence of str documents.

    documents = load_documents(config.data, config.data.train_split, workdir)
    len(documents), documents[0]   # -> 1156, 'The "assert" statement\\n***...'   (Python 3.11.7)

Sources (`data.source`):
- "builtin": Python's own documentation (builtin_corpus.py), cached under `data.cache_dir`.
- "files":   local .txt / .jsonl files, prepared once as array_record under `workdir/local_text_tfds`
             by a TFDS builder (local_text_builder.py), then read through `as_data_source()`.
- "tfds":    any prepared TFDS dataset by name, read with `tfds.data_source`; its examples' field
             `data.text_key` is the document.

For "builtin" and "files" the eval split is the documents whose text hashes below
`data.eval_fraction` (splits.py); TFDS datasets bring their own splits. Errors are one clear
ValueError naming what is wrong; nothing falls back to other data.
"""

import glob
import importlib.util
import os
from collections.abc import Sequence

import tensorflow_datasets as tfds
from absl import logging

from pretrain_jax.data import builtin_corpus, local_text_builder, splits

SOURCES = ("builtin", "files", "tfds")


class TextColumn(Sequence):
    """A read-only view of one text field of a random-access source, as str, first `limit` rows.

    TextColumn(source, "text")[i] == source[i]["text"].decode()   # bytes or str in the source
    """

    def __init__(self, source, text_key: str, limit: int = 0):
        self._source = source
        self._text_key = text_key
        self._len = len(source) if limit <= 0 else min(limit, len(source))

    def __len__(self) -> int:
        return self._len

    def head(self, n: int) -> "TextColumn":
        """The first n documents, still read lazily."""
        return TextColumn(self._source, self._text_key, limit=min(n, self._len))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if not -self._len <= index < self._len:
            raise IndexError(f"document {index} out of range ({self._len} documents)")
        return local_text_builder.decode_text(self._source[index % self._len][self._text_key])


def load_documents(data_config, split: str, workdir: str | None = None) -> Sequence[str]:
    """The documents of one split of `data_config.source`, at most `data_config.max_documents` of them.

    split:   a split name; for "builtin"/"files" one of data.train_split / data.eval_split, for "tfds"
             anything `tfds.data_source` accepts ("validation", "train[:1%]").
    workdir: where "files" prepares its array_record copy (unused by the other sources).
    """
    source = data_config.source
    if source == "builtin":
        documents = _builtin_split(data_config, split)
    elif source == "files":
        if not workdir:
            raise ValueError("data.source='files' needs a workdir to prepare the array_record copy in")
        documents = _files_split(data_config, split, os.path.join(workdir, "local_text_tfds"))
    elif source == "tfds":
        documents = _tfds_split(data_config, split)
    else:
        raise ValueError(f"Unknown data.source {source!r}; expected one of {SOURCES}")
    if data_config.max_documents > 0 and len(documents) > data_config.max_documents:
        n = data_config.max_documents
        documents = documents.head(n) if isinstance(documents, TextColumn) else documents[:n]
    if len(documents) == 0:
        raise ValueError(f"Split {split!r} of data.source={source!r} has no documents")
    return documents


def _check_split_name(data_config, split: str) -> None:
    names = (data_config.train_split, data_config.eval_split)
    if split not in names:
        raise ValueError(f"Unknown split {split!r} for data.source={data_config.source!r}; expected one of {names}")


def _builtin_split(data_config, split: str) -> list[str]:
    _check_split_name(data_config, split)
    cache_dir = os.path.expanduser(data_config.cache_dir) if data_config.cache_dir else None
    documents = builtin_corpus.load_builtin_corpus(cache_dir)
    held_out = split == data_config.eval_split
    chosen = [d for d in documents if splits.is_held_out(d, data_config.eval_fraction) == held_out]
    logging.info(
        "Built-in corpus (Python's documentation): %d documents, %.2f MB in all; split %r: %d documents, %.2f MB.",
        len(documents),
        sum(map(len, documents)) / 1e6,
        split,
        len(chosen),
        sum(map(len, chosen)) / 1e6,
    )
    return chosen


def prepare_local_text(data_config, data_dir: str) -> local_text_builder.LocalText:
    """Prepares (once) the array_record copy of `data.files` under `data_dir` and returns its builder.

    The files are read before anything is written, so files with no usable text leave `data_dir` untouched.
    """
    builder = local_text_builder.LocalText(
        files=local_text_builder.expand_paths(data_config.files),
        text_key=data_config.text_key,
        eval_fraction=data_config.eval_fraction,
        train_split=data_config.train_split,
        eval_split=data_config.eval_split,
        data_dir=data_dir,
    )
    if not builder.is_prepared():
        _, counts = builder.scan()
        wanted = (data_config.train_split,) + ((data_config.eval_split,) if data_config.eval_fraction > 0 else ())
        empty = [name for name in wanted if not counts.get(name)]
        if empty:  # Said before anything is written: a run asking for both splits cannot go without one.
            raise ValueError(
                f"Split {empty[0]!r} of data.files would be empty: no document hashed into it with"
                f" data.eval_fraction={data_config.eval_fraction} ({counts}); add documents or change"
                " data.eval_fraction")
    builder.download_and_prepare()
    return builder


def _files_split(data_config, split: str, data_dir: str) -> TextColumn:
    _check_split_name(data_config, split)
    builder = prepare_local_text(data_config, data_dir)
    if split not in builder.info.splits:
        raise ValueError(
            f"Split {split!r} of data.files is empty: no document hashed into it with"
            f" data.eval_fraction={data_config.eval_fraction}; add documents or change the fraction"
        )
    columns = TextColumn(builder.as_data_source(split=split), "text")
    logging.info("Local files %s: split %r has %d documents.", data_config.files, split, len(columns))
    return columns


def _tfds_split(data_config, split: str) -> TextColumn:
    name = data_config.tfds_name
    if not name:
        raise ValueError("data.source='tfds' needs data.tfds_name, e.g. 'lm1b'")
    data_dir = os.path.expanduser(data_config.tfds_data_dir) if data_config.tfds_data_dir else None
    source = open_tfds(name, split, data_dir, f"Unknown TFDS dataset {name!r} (data.tfds_name); check the name")
    if len(source) > 0:
        example = source[0]
        if data_config.text_key not in example:
            raise ValueError(
                f"TFDS dataset {name!r} has no field {data_config.text_key!r} (data.text_key);"
                f" its fields are {sorted(example)}"
            )
    columns = TextColumn(source, data_config.text_key)
    logging.info("TFDS %s: split %r has %d documents.", name, split, len(columns))
    return columns


def open_tfds(name: str, split: str, data_dir: str | None, unknown: str):
    """`tfds.data_source` of a prepared split (download=False: reading never starts a download and
    prepare as a side effect), or a one-line ValueError saying why not; `unknown` is the message for
    a name TFDS has no builder for.

    TFDS imports its older builders (glue, c4, squad, ...) lazily, on first use of
    `tensorflow_datasets.text`; they are imported first, so a name resolves the same in every process,
    whatever ran before.
    """
    import tensorflow_datasets.text  # noqa: F401

    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(_unregistered_dataset(name, data_dir, unknown)) from None
    except ModuleNotFoundError as error:  # TFDS re-raises the builder's import error with its own message.
        if error.name != "tensorflow" and "No module named 'tensorflow'" not in str(error):
            raise
        raise ValueError(_needs_tensorflow(name, data_dir)) from None
    except Exception as e:  # noqa: BLE001 -- TFDS raises many types; each is diagnosed below.
        raise ValueError(_diagnose_tfds_failure(name, split, data_dir, e)) from None


def _unregistered_dataset(name: str, data_dir: str | None, unknown: str) -> str:
    """Why TFDS does not know `name`: a misspelling, or a builder whose module needs TensorFlow.

    Without TensorFlow, TFDS registers only the builders that import without it, yet a copy prepared
    elsewhere as array_record reads fine.
    """
    base = name.split("/")[0].split(":")[0]
    package = os.path.dirname(tfds.__file__)
    has_module = bool(glob.glob(os.path.join(package, "**", f"{base}.py"), recursive=True)
                      or glob.glob(os.path.join(package, "**", base, f"{base}*.py"), recursive=True))
    if not has_module:
        return unknown
    if importlib.util.find_spec("tensorflow") is None:
        return _needs_tensorflow(name, data_dir)
    return f"TFDS dataset {name!r} is known to TFDS but did not register here; check the name and its version"


def _needs_tensorflow(name: str, data_dir: str | None) -> str:
    where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets)"
    return (f"TFDS dataset {name!r} exists, but its builder needs TensorFlow, which is not installed, and no"
            f" prepared copy is in {where}: prepare one where TensorFlow is (`tfds build {name.split('/')[0]}"
            f" --file_format=array_record --data_dir=DIR`) and set data.tfds_data_dir=DIR, or install"
            " tensorflow-cpu")


def _diagnose_tfds_failure(name: str, split: str, data_dir: str | None, error: Exception) -> str:
    """One line saying why `tfds.data_source` failed, in terms of what the user can change."""
    where = data_dir or "the default TFDS data_dir"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared, file_format, known = builder.is_prepared(), builder.info.file_format, list(builder.info.splits)
    except Exception:  # noqa: BLE001 -- the diagnosis must not hide the original error.
        return f"Could not open TFDS dataset {name!r} split {split!r}: {type(error).__name__}: {error}"
    if not prepared:
        return (
            f"TFDS dataset {name!r} is not prepared in {where}; prepare it first, e.g."
            f" `tfds build {name} --file_format=array_record --data_dir=...`"
        )
    if file_format is not None and "array_record" not in str(file_format):
        return (
            f"TFDS dataset {name!r} in {where} is stored as {file_format}; random access needs"
            f" array_record: `tfds build {name} --file_format=array_record` into another data_dir"
        )
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"TFDS dataset {name!r}: cannot read split {split!r} (splits: {known}): {first_line}"
