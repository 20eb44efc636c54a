"""Test setup: 8 fake CPU devices, so sharding code runs as it would on a real mesh; XLA's backend
optimisations off, since the tests are compile-bound; and one persistent compilation cache for the
whole session and the processes it starts (notebooks, CLI runs, multi-process runs): many tests build
the same tiny programs again, and a cache hit loads one instead of compiling it (each test still
builds its own jitted functions)."""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests are compile-bound (tiny shapes, few steps): skipping XLA's backend optimisations cuts compile time
# by about a third (configs/bart_denoise.py's train step: 22 s to 14 s on 2 cores). Every test, and every
# process it starts, compiles the same way, so runs compared with each other stay comparable.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="pretrain_jax_tests_compilation_cache_")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": _cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})

import pytest  # noqa: E402
from tiny_configs import tiny_bert_config  # noqa: E402

from pretrain_jax.data import builtin_corpus  # noqa: E402


@pytest.fixture
def make_tiny_bert_config():
    return tiny_bert_config


@pytest.fixture(scope="session")
def builtin_cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("builtin_cache"))


@pytest.fixture(scope="session")
def builtin_documents(builtin_cache_dir):
    """The whole built-in corpus, collected (~3 s) into a fresh cache, once per session."""
    return builtin_corpus.load_builtin_corpus(builtin_cache_dir)

