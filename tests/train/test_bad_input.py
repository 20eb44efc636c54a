"""Bad input to `pretrain-jax train`: one clear line naming the key, file or value, exit status 1, and
nothing in the workdir created, lost or overwritten.

Most cases run `main.main` in this process on a config built here (the checks fail before anything
is compiled); unknown keys (flag parsing) and an incompatible resume (the exit status of the real
process) run `python -m pretrain_jax.main` as a subprocess.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from tiny_configs import project_config, tiny_bert_config

from pretrain_jax import experiment, loop, main
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.data import corpus
from pretrain_jax.data import tokenizer as tokenizer_lib
from pretrain_jax.metrics import MetricsWriter

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(name: str, **overrides) -> ml_collections.ConfigDict:
    """configs/<name>.py:tiny with the tiny tokenizer and {dotted key: value} overrides."""
    tiny_tokenizer = {"tokenizer.vocab_size": 512, "tokenizer.num_sentinels": 4, "data.max_documents": 300}
    return project_config(name, "tiny", **{**tiny_tokenizer, **overrides})


def run_train(monkeypatch, capsys, config, workdir) -> tuple[int, list[str]]:
    """`pretrain-jax train` of `config` in this process: (exit status, its stderr lines naming the command)."""
    monkeypatch.setattr(main, "FLAGS", SimpleNamespace(config=config.lock(), workdir=str(workdir), debug=False))
    with pytest.raises(SystemExit) as exit_info:
        main.main(["pretrain-jax", "train"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, [line for line in err.splitlines() if line.startswith("pretrain-jax")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "pretrain_jax.main", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=300)


def snapshot(directory: str) -> dict[str, str]:
    """{relative path: sha256} of every file under `directory`."""
    digests = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return digests


@pytest.mark.parametrize("typo, named, hint", [
    ("--config.train.bogus_key=1", "--config.train.bogus_key", None),
    ("--config.trian.num_steps=1", "--config.trian.num_steps", 'Did you mean "train" instead of "trian"?'),
])
def test_unknown_config_key_is_named_and_exits_1(typo, named, hint, tmp_path):
    workdir = str(tmp_path / "run")
    done = run_cli("train", "--config=configs/bert_mlm.py:tiny", typo, f"--workdir={workdir}")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"pretrain-jax train: unknown config key {named}:"), last
    assert hint is None or last.endswith(hint)
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("name, overrides, message", [
    ("bert_mlm", {"objective.bert_mlm.rate": 1.5}, r"objective.bert_mlm: rate=1.5 must be in \(0, 1\)"),
    ("t5_span", {"objective.t5_span_corruption.mean_noise_span_length": 0.5},
     r"t5_span_corruption: mean_noise_span_length=0.5 must be >= 1"),
    ("bert_mlm", {"tokenizer.vocab_size": 50, "tokenizer.num_sentinels": 40},
     r"vocab_size=50 is too small for 13 special ids and 40 sentinels; raise tokenizer.vocab_size"),
    ("xlnet_plm", {"data.seq_len": 8, "model.max_len": 8},
     r"xlnet_plm.num_predict=24 must be an int in \[1, data.seq_len=8\]"),
    ("bert_mlm", {"data.seq_len": 4}, r"data.seq_len=4 is too short"),
    ("bert_mlm", {"model.family": "decoder"},
     r"objective 'bert_mlm' feeds a 'encoder' model, but model.family='decoder'; set --config.model.family=encoder"),
    ("gpt_clm", {"model.family": "encoder_decoder"}, r"objective 'causal_lm' feeds a 'decoder' model"),
])
def test_impossible_config_values_fail_before_the_workdir_is_made(name, overrides, message, tmp_path, monkeypatch,
                                                                  capsys):
    workdir = tmp_path / "run"
    code, lines = run_train(monkeypatch, capsys, tiny_config(name, **overrides), workdir)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("pretrain-jax train: ")
    assert re.search(message, lines[0]), lines[0]
    assert not workdir.exists()


@pytest.fixture(scope="module")
def tokenizer_512(tmp_path_factory):
    """A trained tokenizer of the tiny configs' size (512 ids), in a directory of its own."""
    config = tiny_config("bert_mlm")
    directory = str(tmp_path_factory.mktemp("tokenizer_512"))
    docs = corpus.load_documents(config.data, config.data.train_split, None)
    tokenizer_lib.load_or_train(config.tokenizer, directory, docs)
    return os.path.join(directory, tokenizer_lib.MODEL_FILENAME)


def test_tokenizer_path_of_another_size(tokenizer_512, tmp_path, monkeypatch, capsys):
    config = tiny_config("bert_mlm", **{"tokenizer.vocab_size": 1024, "tokenizer.path": tokenizer_512})
    code, lines = run_train(monkeypatch, capsys, config, tmp_path / "run")
    assert code == 1 and len(lines) == 1, lines
    assert f"Tokenizer {tokenizer_512} has 512 ids" in lines[0] and "tokenizer.vocab_size is 1024" in lines[0]
    assert not (tmp_path / "run").exists()


def test_workdir_tokenizer_of_another_size_is_left_alone(tokenizer_512, tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(tokenizer_512, workdir / tokenizer_lib.MODEL_FILENAME)
    before = snapshot(str(workdir))
    code, lines = run_train(monkeypatch, capsys, tiny_config("bert_mlm", **{"tokenizer.vocab_size": 1024}), workdir)
    assert code == 1 and len(lines) == 1, lines
    assert "has 512 ids" in lines[0] and "tokenizer.vocab_size is 1024" in lines[0]
    assert snapshot(str(workdir)) == before


def test_resuming_with_an_incompatible_config_changes_nothing(tokenizer_512, tmp_path):
    """A workdir with a config, a checkpoint and metrics; a resume that changes the model exits 1."""
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    shutil.copy(tokenizer_512, os.path.join(workdir, tokenizer_lib.MODEL_FILENAME))
    with open(os.path.join(workdir, experiment.CONFIG_FILE), "w") as f:
        f.write(tiny_bert_config().to_json(indent=2))
    checkpointer = Checkpointer(workdir)  # A real (if small) checkpoint: the config check comes before any restore.
    checkpointer.save(3, {"step": jnp.int32(3), "params": {"w": jnp.arange(8.0)}}, {}, {"step": 3})
    checkpointer.wait()
    checkpointer.close()
    writer = MetricsWriter(workdir)
    writer.write("train", 3, {"loss": 6.0, "step_losses": [6.2, 6.1, 6.0]})
    writer.close()
    before = snapshot(workdir)
    assert {"config.json", "metrics.jsonl"} <= set(before) and any(p.startswith("checkpoints/3/") for p in before)

    overrides = {"tokenizer.vocab_size": 512, "tokenizer.num_sentinels": 4, "data.max_documents": 300,
                 "data.seq_len": 32, "model.max_len": 32, "model.d_model": 64, "model.d_ff": 64, "model.num_layers": 2,
                 "data.batch_size": 8, "data.eval_batch_size": 8}
    done = run_cli("train", "--config=configs/bert_mlm.py:tiny", *(f"--config.{k}={v}" for k, v in overrides.items()),
                   f"--workdir={workdir}")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pretrain-jax train: the workdir was trained with a different config (model.d_model: 32"
                           " -> 64)"), last
    assert snapshot(workdir) == before


def test_files_with_no_usable_text_are_named(tmp_path, monkeypatch, capsys):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "empty.txt").write_text("")
    (corpus_dir / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus_dir / "latin1.txt").write_bytes("Café crème.".encode("latin-1"))
    workdir = tmp_path / "run"
    config = tiny_config("bert_mlm", **{"data.source": "files", "data.files": str(corpus_dir)})
    code, lines = run_train(monkeypatch, capsys, config, workdir)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("pretrain-jax train: No usable text in data.files: all 3 file(s) skipped:")
    for name, why in (("empty.txt", "empty"), ("image.bin", "binary"), ("latin1.txt", "not UTF-8 (byte 3)")):
        assert f"{corpus_dir / name} ({why})" in lines[0]
    assert not workdir.exists()  # The files were read before the array_record copy was begun.


def test_empty_corpus_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "corpus").mkdir()
    config = tiny_config("bert_mlm", **{"data.source": "files", "data.files": str(tmp_path / "corpus")})
    code, lines = run_train(monkeypatch, capsys, config, tmp_path / "run")
    assert code == 1 and len(lines) == 1, lines
    assert "data.files:" in lines[0] and "matches no file" in lines[0] and str(tmp_path / "corpus") in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, message", [
    ("no_such_dataset_xyz", "Unknown TFDS dataset 'no_such_dataset_xyz' (data.tfds_name); check the name"),
    ("lm1b", "TFDS dataset 'lm1b' is not prepared in"),
])
def test_tfds_name_unknown_or_not_prepared(name, message, tmp_path, monkeypatch, capsys):
    config = tiny_config("bert_mlm", **{"data.source": "tfds", "data.tfds_name": name,
                                        "data.tfds_data_dir": str(tmp_path / "tfds")})
    code, lines = run_train(monkeypatch, capsys, config, tmp_path / "run")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("pretrain-jax train: ") and message in lines[0]
    assert not (tmp_path / "run").exists()


def test_only_the_packages_own_errors_lose_their_traceback(monkeypatch, capsys):
    from pretrain_jax import train

    def library_error(config, workdir):
        np.zeros(-1)  # A ValueError raised inside numpy: a bug, not bad input, so it keeps its traceback.

    monkeypatch.setattr(train, "run", library_error)
    monkeypatch.setattr(main, "FLAGS", SimpleNamespace(config=tiny_config("bert_mlm"), workdir="unused", debug=False))
    with pytest.raises(ValueError, match="negative dimensions"):
        main.main(["pretrain-jax", "train"])
    assert not main._is_expected(RuntimeError("other"))
    assert main._is_expected(loop.NonFiniteError("non-finite loss"))
    with pytest.raises(ValueError, match="Unknown data.source") as raised:
        corpus.load_documents(tiny_config("bert_mlm", **{"data.source": "hub"}).data, "train", None)
    assert main._is_expected(raised.value)
