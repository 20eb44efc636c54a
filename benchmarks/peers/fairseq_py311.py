"""Imports fairseq 0.12.2's DenoisingDataset on Python 3.11 (peer venv only, never the package).

fairseq 0.12.2 (its last PyPI release) declares dataclass fields whose defaults are instances of
other dataclasses (`common: CommonConfig = CommonConfig()`). Python 3.10 accepted these; 3.11
rejects any default whose class is unhashable ("mutable default ... use default_factory"), and a
dataclass with eq=True and no __hash__ is unhashable. While fairseq is imported, every dataclass
that would be left unhashable gets object's identity hash, so those defaults pass the check and
behave as under 3.10 (one shared default instance). No fairseq file is changed, and nothing in
DenoisingDataset's code path reads a dataclass's hash.

    python -c "import fairseq_py311; fairseq_py311.denoising_dataset()"   # the --setup-peers check
"""

import dataclasses
import importlib


def denoising_dataset():
    """-> the module fairseq.data.denoising_dataset, imported with the Python 3.11 shim above."""
    process_class = dataclasses._process_class

    def hashable(cls, *args, **kwargs):
        cls = process_class(cls, *args, **kwargs)
        if cls.__hash__ is None:
            cls.__hash__ = object.__hash__
        return cls

    dataclasses._process_class = hashable
    try:
        return importlib.import_module("fairseq.data.denoising_dataset")
    finally:
        dataclasses._process_class = process_class
