"""Shared, session-scoped data fixtures: a tokenizer trained once (the built-in corpus is collected
once, by tests/conftest.py)."""

import pytest
from data_fixtures import tokenizer_config

from pretrain_jax.data import tokenizer


@pytest.fixture(scope="session")
def sample_documents(builtin_documents):
    """~150 real documents from across the built-in corpus."""
    return builtin_documents[::8]


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory, sample_documents):
    workdir = str(tmp_path_factory.mktemp("tokenizer_workdir"))
    return tokenizer.load_or_train(tokenizer_config(), workdir, sample_documents)
