"""Issue 20 through the command line: never silently start over, every mistake in one line, read-only
commands read-only, checks before writing, help.

Each case asserts the exact one-line form `pretrain-jax <command>: <message>`, the exit status, and,
where the workdir held a run, that it is byte-identical afterwards. Most run `main` in this process
(on a config built here, or on parsed flags); one trained run (6 steps, checkpoints 3 and 6) is
shared and copied per test.
"""

import errno
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
from cli_in_process import forget_parsed_flags
from test_bad_input import REPO, snapshot
from tiny_configs import tiny_bert_config

from pretrain_jax import checkpoint, main, train
from pretrain_jax.data import tokenizer as tokenizer_lib

LINE = re.compile(r"^pretrain-jax (train|eval|fill-mask|generate|finetune|baseline|sweep): \S.*$")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    train.run(tiny_bert_config(), workdir)
    return workdir


@pytest.fixture
def run_copy(trained, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    return workdir


def one_line(capsys, command: str, call) -> tuple[int, str]:
    """Runs `call` (which exits), returns (exit status, its one stderr line); asserts the form."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("pretrain-jax")]
    assert "Traceback" not in err and len(lines) == 1, err[-3000:]
    assert LINE.match(lines[0]) and lines[0].startswith(f"pretrain-jax {command}: "), lines[0]
    return exit_info.value.code, lines[0]


def run_command(monkeypatch, command: str, workdir: str, config=None, **flags):
    """`pretrain-jax COMMAND` in this process on already-parsed flags."""
    values = {"config": None if config is None else config.lock(), "workdir": workdir, "debug": False,
              "eval_batches": None, "json": True, **flags}
    monkeypatch.setattr(main, "FLAGS", SimpleNamespace(**values))
    main.main(["pretrain-jax", command])


def parse(monkeypatch, *args: str):
    """main's flag parsing of `pretrain-jax ARGS...` in this process: the parsed --config (a copy)."""
    argv = ["pretrain-jax", *args]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads --config.* overrides from sys.argv
    try:
        main._parse_flags(argv)
        config = main.FLAGS.config
        return None if config is None else config.copy_and_resolve_references()
    finally:
        forget_parsed_flags()


def damage(workdir: str, step: int) -> None:
    """Overwrites every file of a step's train state: its metadata no longer parses (proven damage)."""
    for root, _, files in os.walk(os.path.join(workdir, "checkpoints", str(step), "state")):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"not a checkpoint")


# ---- 1. restore never starts a new run over existing checkpoints --------------------------------


def test_every_checkpoint_damaged_stops_and_keeps_them_all(run_copy, monkeypatch, capsys):
    damage(run_copy, 3)
    damage(run_copy, 6)
    before = snapshot(run_copy)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", run_copy, tiny_bert_config()))
    assert code == 1
    assert line.startswith(f"pretrain-jax train: no checkpoint in {run_copy}/checkpoints can be restored: step 6"
                           " (state/_METADATA is not valid JSON), step 3 (state/_METADATA is not valid JSON); every"
                           " checkpoint was left in place."), line
    assert line.endswith("Start over in a new --workdir, or here with --config.train.restart=True")
    assert snapshot(run_copy) == before


def test_restart_moves_the_damaged_run_aside_and_starts_over(run_copy, monkeypatch, capsys):
    damage(run_copy, 3)
    damage(run_copy, 6)
    before = snapshot(os.path.join(run_copy, "checkpoints"))
    run_command(monkeypatch, "train", run_copy, tiny_bert_config(**{"train.restart": True}))
    aside = [n for n in os.listdir(run_copy) if n.startswith("checkpoints.before-restart-")]
    assert len(aside) == 1 and snapshot(os.path.join(run_copy, aside[0])) == before  # nothing deleted
    assert checkpoint.committed_steps(run_copy) == [3, 6]  # the new run's


def test_a_restore_error_that_proves_nothing_stops_and_touches_nothing(run_copy, monkeypatch, capsys):
    def failing_read(self, step, abstract_state):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "state/ocdbt.process_0/d/0")

    monkeypatch.setattr(checkpoint.Checkpointer, "restore", failing_read)
    before = snapshot(run_copy)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", run_copy,
                                                                tiny_bert_config(**{"train.num_steps": 9})))
    assert code == 1
    assert line == (f"pretrain-jax train: checkpoint step 6 in {run_copy}/checkpoints could not be restored:"
                    f" {os.strerror(errno.EIO)} (state/ocdbt.process_0/d/0); every checkpoint was left in place: run"
                    " again once the cause is fixed, or move that step's directory aside to resume from the one"
                    " before"), line
    assert snapshot(run_copy) == before


# ---- 3. disk full --------------------------------------------------------------------------------


def test_disk_full_is_one_line_and_the_previous_checkpoint_restores(run_copy, monkeypatch, capsys):
    """An OSError(ENOSPC) from the writer of step 9 (injected where orbax saves; a tmpfs that fills up
    fails the same way): one line naming the step and the cause; step 6 still restores."""
    original_save = checkpoint.Checkpointer.save

    def full_disk(self, step, *args):
        if step == 9:
            with self._writing(step):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(self.directory, "9"))
        return original_save(self, step, *args)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", full_disk)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", run_copy,
                                                                tiny_bert_config(**{"train.num_steps": 9})))
    assert code == 1
    assert line == (f"pretrain-jax train: writing checkpoint step 9 to {run_copy}/checkpoints failed: No space left"
                    f" on device ({run_copy}/checkpoints/9); the steps saved before it are intact"), line
    monkeypatch.undo()
    run_command(monkeypatch, "eval", run_copy)
    assert '"step": 6' in capsys.readouterr().out


def test_a_real_full_disk_is_refused_before_the_save_and_step_6_restores(trained, tmp_path, monkeypatch, capsys,
                                                                          request):
    """The run on a tmpfs with 1 MiB left: the save of step 9 is refused before orbax starts it (a
    save that runs out of room part-way fails in a dozen threads, a traceback each)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    used = sum(os.path.getsize(os.path.join(root, name)) for root, _, files in os.walk(trained) for name in files)
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + (2 << 20)}", "tmpfs", str(small)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    request.addfinalizer(lambda: subprocess.run(["umount", "--lazy", str(small)]))
    workdir = str(small / "run")
    shutil.copytree(trained, workdir)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", workdir,
                                                                tiny_bert_config(**{"train.num_steps": 9})))
    assert code == 1
    assert re.fullmatch(rf"pretrain-jax train: writing checkpoint step 9 to {workdir}/checkpoints needs about"
                        r" \d+\.\d MiB and the disk has \d+\.\d MiB free: No space left on device; the steps saved"
                        r" before it are intact \(free some space, or lower train.keep_checkpoints, then run again to"
                        r" resume\)", line), line
    assert checkpoint.committed_steps(workdir) == [3, 6]
    run_command(monkeypatch, "eval", workdir)
    assert '"step": 6' in capsys.readouterr().out


# ---- 4. one line for every user mistake ----------------------------------------------------------


@pytest.mark.parametrize("case", ["file", "under_file", "read_only"])
def test_a_workdir_that_cannot_be_written(case, tmp_path, monkeypatch, capsys, request):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    cause = "Permission denied"
    if case == "read_only":
        (tmp_path / "locked").mkdir(mode=0o555)
        if os.geteuid() == 0:  # root writes in any directory, but not on a read-only file system
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(tmp_path / "locked")],
                                     capture_output=True)
            if mounted.returncode != 0:
                pytest.skip(f"root writes to read-only directories and cannot mount one: {mounted.stderr!r}")
            request.addfinalizer(lambda: subprocess.run(["umount", "--lazy", str(tmp_path / "locked")]))
            cause = "Read-only file system"
    workdir = {"file": blocker, "under_file": blocker / "run", "read_only": tmp_path / "locked" / "run"}[case]
    before = snapshot(str(tmp_path))
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", str(workdir),
                                                                tiny_bert_config()))
    expected = {"file": f"--workdir={workdir} is a file, not a directory; give a directory",
                "under_file": f"--workdir={workdir} lies under {blocker}, which is a file; give a directory",
                "read_only": f"--workdir={workdir} (its nearest existing parent {tmp_path / 'locked'}) is not"
                             f" writable: {cause}"}[case]
    assert (code, line) == (1, f"pretrain-jax train: {expected}")
    assert snapshot(str(tmp_path)) == before


@pytest.mark.parametrize("args, status, message", [
    (["--config.optim.lr=abc"], 1, "--config.optim.lr=abc: could not convert string to float: 'abc'"),
    (["--config.model.num_layers=0"], 1, "model.num_layers=0 must be >= 1"),
    (["--config.train.eval_every=-1"], 1, "train.eval_every=-1 must be >= 0 (0 = only at the end)"),
])
def test_bad_values_on_the_command_line(args, status, message, tmp_path, monkeypatch, capsys):
    workdir = str(tmp_path / "run")

    def call():
        config = parse(monkeypatch, "train", "--config=configs/bert_mlm.py:tiny", *args, f"--workdir={workdir}")
        run_command(monkeypatch, "train", workdir, config)

    code, line = one_line(capsys, "train", call)
    assert (code, line) == (status, f"pretrain-jax train: {message}")
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("config, message", [
    ("configs/no_such_file.py",
     "config file configs/no_such_file.py does not exist (--config=configs/no_such_file.py)"),
    ("configs/bert_mlm.py:nosuchvariant", "--config=configs/bert_mlm.py: unknown config argument 'nosuchvariant';"
                                          " use ':tiny', ':bert_base' or nothing"),
])
def test_a_config_file_that_cannot_be_read(config, message, tmp_path, monkeypatch, capsys):
    code, line = one_line(capsys, "train", lambda: parse(monkeypatch, "train", f"--config={config}",
                                                          f"--workdir={tmp_path / 'run'}"))
    assert (code, line) == (1, f"pretrain-jax train: {message}")


def test_usage_errors_are_one_line_with_status_2(tmp_path, monkeypatch, capsys):
    code, line = one_line(capsys, "train", lambda: parse(monkeypatch, "train", "--wrkdir=x"))
    assert (code, line) == (2, "pretrain-jax train: Unknown command line flag 'wrkdir'. Did you mean: workdir ?")
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", None))
    assert (code, line) == (2, "pretrain-jax train: --workdir is required (pretrain-jax train --help)")
    code, line = one_line(capsys, "eval", lambda: run_command(monkeypatch, "eval", str(tmp_path), eval_batches=0))
    assert code == 2 and "--eval_batches=0 must be >= 1" in line
    with pytest.raises(SystemExit) as exit_info:
        run_command(monkeypatch, "evalute", str(tmp_path))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("pretrain-jax: unknown command 'evalute'; use one of train, eval,"
                                               " fill-mask, generate, finetune, predict, evaluate, baseline, sweep"
                                               " (pretrain-jax --help)")


# ---- 5. the tokenizer is fingerprinted ------------------------------------------------------------


def test_a_changed_tokenizer_is_refused_on_resume(run_copy, monkeypatch, capsys):
    path = os.path.join(run_copy, tokenizer_lib.MODEL_FILENAME)
    with open(path, "rb") as f:
        proto = bytearray(f.read())
    original = tokenizer_lib.fingerprint(tokenizer_lib.Tokenizer(bytes(proto), 4))
    index = proto.index(b"\xe2\x96\x81the")  # one piece, "▁the" -> "▁thE": same size, same ids
    proto[index + 5] = ord("E")
    with open(path, "wb") as f:
        f.write(proto)
    before = snapshot(run_copy)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", run_copy,
                                                                tiny_bert_config(**{"train.num_steps": 9})))
    changed = tokenizer_lib.fingerprint(tokenizer_lib.Tokenizer(bytes(proto), 4))
    assert code == 1
    assert line == (f"pretrain-jax train: tokenizer {path} is not the one the checkpoints were trained with: its"
                    f" sha256 is {changed[:16]}..., the checkpoint step 6 records {original[:16]}...; put back the"
                    " original file (or start a new --workdir)"), line
    assert snapshot(run_copy) == before


def test_a_truncated_tokenizer_names_the_file_not_vocab_size(run_copy, monkeypatch, capsys):
    """On resume the fingerprint refuses it; read on its own, SentencePiece's failure names the file."""
    path = os.path.join(run_copy, tokenizer_lib.MODEL_FILENAME)
    with open(path, "rb") as f:
        proto = f.read()
    with open(path, "wb") as f:
        f.write(proto[: len(proto) // 2])
    before = snapshot(run_copy)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", run_copy,
                                                                tiny_bert_config(**{"train.num_steps": 9})))
    assert code == 1 and line.startswith(f"pretrain-jax train: tokenizer {path} is not the one the checkpoints were"
                                         " trained with: its sha256 is "), line
    assert line.endswith("put back the original file (or start a new --workdir)") and "vocab_size" not in line
    assert snapshot(run_copy) == before
    with pytest.raises(ValueError) as error:
        tokenizer_lib.Tokenizer.load(path, 4)
    message = str(error.value)
    assert message.startswith(f"tokenizer file {path} cannot be read by SentencePiece (")
    assert "vocab_size" not in message
    assert message.endswith("it is damaged or not a SentencePiece model; put back the run's tokenizer.model")


# ---- 6. read-only commands are read-only ------------------------------------------------------------


def test_eval_on_a_damaged_newest_checkpoint_writes_nothing(run_copy, monkeypatch, capsys):
    damage(run_copy, 6)
    before = snapshot(run_copy)
    run_command(monkeypatch, "eval", run_copy)
    out, err = capsys.readouterr()
    assert '"step": 3' in out  # the newest step that restores
    assert "Traceback" not in err and "asyncio" not in err
    monkeypatch.setattr(main, "FLAGS", SimpleNamespace(workdir=run_copy, debug=False, top_k=2))
    main.main(["pretrain-jax", "fill-mask", "The [MASK] function returns a list."])
    out, err = capsys.readouterr()
    assert "[MASK] #1:" in out and "Traceback" not in err and "asyncio" not in err
    assert snapshot(run_copy) == before


# ---- 7, 8. impossible values and checks before anything is written ---------------------------------


def test_num_steps_below_the_checkpoint_is_refused(run_copy, monkeypatch, capsys):
    before = snapshot(run_copy)
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", run_copy,
                                                                tiny_bert_config(**{"train.num_steps": 4})))
    assert (code, line) == (1, "pretrain-jax train: train.num_steps=4 is below step 6 of the workdir's latest"
                               " checkpoint; set --config.train.num_steps=6 or more to go on, or use a new --workdir")
    assert snapshot(run_copy) == before


def test_a_batch_that_does_not_split_over_the_devices_writes_nothing(tmp_path, monkeypatch, capsys):
    workdir = str(tmp_path / "run")
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", workdir,
                                                                tiny_bert_config(**{"data.batch_size": 6})))
    assert (code, line) == (1, "pretrain-jax train: data.batch_size=6 does not split evenly over the 8 data-parallel"
                               " devices (mesh data x fsdp); use a multiple of 8")
    assert not os.path.exists(workdir)


def test_an_empty_validation_split_of_local_files_writes_nothing(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("One document about lists and tuples.\n\nAnother about dicts.\n")
    workdir = str(tmp_path / "run")
    config = tiny_bert_config(**{"data.source": "files", "data.files": str(corpus), "data.eval_fraction": 0.001})
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", workdir, config))
    assert code == 1 and line.startswith("pretrain-jax train: Split 'validation' of data.files would be empty"), line
    assert not os.path.exists(workdir)


# ---- 10. a right name called wrong ----------------------------------------------------------------


def test_a_tfds_name_whose_builder_needs_tensorflow_says_so(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorflow_datasets")
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("with TensorFlow installed, super_glue's builder imports")
    workdir = str(tmp_path / "run")
    # super_glue's builder module imports TensorFlow (glue's and c4's do not: they register without it).
    config = tiny_bert_config(**{"data.source": "tfds", "data.tfds_name": "super_glue/boolq",
                                 "data.tfds_data_dir": str(tmp_path / "tfds")})
    code, line = one_line(capsys, "train", lambda: run_command(monkeypatch, "train", workdir, config))
    assert (code, line) == (1, "pretrain-jax train: TFDS dataset 'super_glue/boolq' exists, but its builder needs"
                               " TensorFlow, which is not installed, and no prepared copy is in"
                               f" {tmp_path / 'tfds'}: prepare one where TensorFlow is (`tfds build super_glue"
                               " --file_format=array_record --data_dir=DIR`) and set data.tfds_data_dir=DIR, or"
                               " install tensorflow-cpu")
    assert not os.path.exists(workdir)


# ---- 9. help and quiet output --------------------------------------------------------------------


def test_help_lists_the_commands_and_each_commands_flags():
    def cli(*args):
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        return subprocess.run([sys.executable, "-c", "from pretrain_jax.main import entry_point; entry_point()",
                               *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=120)

    listing = cli("--help")
    assert listing.returncode == 0 and listing.stderr == ""
    for command, (summary, *_) in main.COMMANDS.items():
        assert f"  {command:9s}  {summary}" in listing.stdout
    train_help = cli("train", "--help")
    assert train_help.returncode == 0
    assert "--config:" in train_help.stdout and "--workdir:" in train_help.stdout and "example: pretrain-jax train" \
        in train_help.stdout and "config keys read:" in train_help.stdout
    assert "--prompt" not in train_help.stdout  # only the command's own flags


@pytest.mark.parametrize("verbosity", [None, 1])
def test_library_info_lines_are_hidden_unless_verbosity_asks(verbosity, run_copy):
    """jax's backend probing ("Unable to initialize backend 'tpu'") and orbax's INFO lines stay hidden;
    --verbosity=1 shows them."""
    env = {key: value for key, value in os.environ.items() if key != "JAX_PLATFORMS"}
    flag = [] if verbosity is None else [f"--verbosity={verbosity}"]
    done = subprocess.run([sys.executable, "-m", "pretrain_jax.main", "eval", f"--workdir={run_copy}", "--json", *flag],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = "Unable to initialize backend" in done.stderr, "orbax" in done.stderr
    assert shown == ((False, False) if verbosity is None else (True, True)), done.stderr[-2000:]
