"""The `pretrain-jax` command: flags and sub-commands only; each calls an importable function.

    pretrain-jax train --config=configs/bert_mlm.py:tiny --workdir=/tmp/bert_tiny
    pretrain-jax eval --workdir=/tmp/bert_tiny --json
    pretrain-jax fill-mask --workdir=/tmp/bert_tiny "The [MASK] function returns a list."
    pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=/tmp/objectives [--print_commands]
    pretrain-jax generate --workdir=/tmp/gpt_tiny --prompt "The list" --temperature=0.8 --top_p=0.9
    pretrain-jax finetune --config=configs/finetune/classify.py --config.init_from=/tmp/bert_tiny --workdir=/tmp/sst2
    pretrain-jax predict --workdir=/tmp/sst2 --input=new.jsonl --output=preds.jsonl
    pretrain-jax evaluate --suite=glue --config=configs/finetune/classify.py --config.init_from=/tmp/b --workdir=/tmp/g
    pretrain-jax baseline --config=configs/skipgram_bilstm.py:tiny --workdir=/tmp/skipgram_bilstm

Every mistake a user can make (a flag, a path, a config file or value, the disk) ends with one line
on stderr, `pretrain-jax <command>: <message>`: exit status 2 for a malformed command line, 1 for
everything else. A traceback is shown only for a bug, or with --debug.
"""

import errno
import json
import os
import re
import sys
import traceback

from absl import app, flags
from ml_collections import config_flags

# name -> (what it does, the flags it reads, the config keys it reads, an example).
COMMANDS = {
    "train": ("pre-train (or resume) a run in a workdir", ["config", "workdir"],
              "every key of configs/base.py (data, tokenizer, objective, model, optim, train, mesh)",
              "pretrain-jax train --config=configs/bert_mlm.py:tiny --config.train.num_steps=200"
              " --workdir=workdirs/bert_tiny"),
    "eval": ("held-out metrics of a workdir's latest checkpoint (reads the workdir, writes nothing)",
             ["workdir", "json", "eval_batches"], "the workdir's own config.json (data, objective, train.eval_steps)",
             "pretrain-jax eval --workdir=workdirs/bert_tiny --json"),
    "fill-mask": ("top predictions for each [MASK] of a text, from an encoder workdir (writes nothing)",
                  ["workdir", "top_k"], "the workdir's own config.json",
                  'pretrain-jax fill-mask --workdir=workdirs/bert_tiny "The [MASK] function returns a list."'),
    "generate": ("continue a prompt with a decoder or encoder-decoder workdir (writes nothing)",
                 ["workdir", "prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed"],
                 "the workdir's own config.json",
                 'pretrain-jax generate --workdir=workdirs/gpt_tiny --prompt "The open function" --temperature=0.8'),
    "finetune": ("fine-tune a pre-trained workdir for classification or regression; results and model in the"
                 " new workdir",
                 ["config", "workdir"], "configs/finetune/classify.py (init_from, dataset, optim, ...)",
                 "pretrain-jax finetune --config=configs/finetune/classify.py:tiny"
                 " --config.init_from=workdirs/bert_tiny --workdir=workdirs/ft"),
    "predict": ("label the rows of a file with a fine-tuned workdir's saved model (writes only --output)",
                ["workdir", "input", "output"], "none: the fine-tuned workdir's model/model.json",
                "pretrain-jax predict --workdir=workdirs/ft --input=new.jsonl --output=preds.jsonl"),
    "evaluate": ("fine-tune every task of a suite (glue, superglue or a suite file) with several seeds; the"
                 " suite's table, median and spread per task, in the workdir",
                 ["suite", "config", "workdir", "print_commands"],
                 "configs/finetune/classify.py (init_from and the settings every task shares)",
                 "pretrain-jax evaluate --suite=glue --config=configs/finetune/classify.py"
                 " --config.init_from=workdirs/bert --workdir=workdirs/bert_glue"),
    "baseline": ("the pre-2018 baseline: skip-gram embeddings + a BiLSTM classifier",
                 ["config", "workdir"], "configs/skipgram_bilstm.py (its baseline section)",
                 "pretrain-jax baseline --config=configs/skipgram_bilstm.py:tiny --workdir=workdirs/baseline"),
    "sweep": ("run (or print the commands of) every run of a sweep file, under one root workdir",
              ["sweep", "workdir", "print_commands"], "the sweep file's runs (each a train config)",
              "pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=workdirs/sweep"),
}
READ_ONLY = ("eval", "fill-mask", "generate", "predict")

config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. configs/bert_mlm.py:tiny (finetune:"
                                " configs/finetune/classify.py; baseline: configs/skipgram_bilstm.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory of the run: checkpoints, tokenizer, metrics.")
flags.DEFINE_bool("json", False, "eval: print one JSON object instead of a table.")
flags.DEFINE_integer("eval_batches", None, "eval: number of held-out batches (default: train.eval_steps).")
flags.DEFINE_integer("top_k", 5, "fill-mask: predictions shown per [MASK]. generate: sample from the K most "
                     "likely tokens (unset there: 0 = no limit).")
flags.DEFINE_string("prompt", None, "generate: text to continue (encoded without EOS).")
flags.DEFINE_integer("max_new_tokens", 64, "generate: most tokens generated (fewer when EOS comes first).")
flags.DEFINE_float("temperature", 0.0, "generate: sampling temperature (0 = greedy).")
flags.DEFINE_float("top_p", 1.0, "generate: nucleus sampling mass (1 = no limit).")
flags.DEFINE_integer("seed", 0, "generate: sampling seed (same seed, same text).")
flags.DEFINE_string("sweep", None, "sweep: sweep file, e.g. configs/sweeps/objectives_tiny.py; --workdir is its root.")
flags.DEFINE_string("input", None, "predict: a .jsonl / .csv / .tsv file of examples with the model's text fields.")
flags.DEFINE_string("output", None, "predict: where to write the rows with their predictions (JSONL).")
flags.DEFINE_bool("print_commands", False, "sweep: print a `pretrain-jax train` command per unfinished run instead;"
                  " evaluate: a `pretrain-jax finetune` command per unfinished run.")
flags.DEFINE_string("suite", None, "evaluate: glue, superglue, or a suite file (get_suite()), e.g."
                    " configs/suites/local_tiny.py.")
flags.DEFINE_bool("debug", False, "Show the traceback of an error about the input too (they are one line otherwise).")
FLAGS = flags.FLAGS
USAGE = 2  # exit status of a malformed command line


def _fail(command: str | None, message: str, status: int = 1) -> None:
    """One line on stderr, no traceback: for errors the user can fix."""
    message = " ".join(message.split())
    sys.stderr.write(f"pretrain-jax{' ' + command if command else ''}: {message}\n")
    sys.exit(status)


def _usage_error(message: str, command: str | None = None) -> None:
    _fail(command, f"{message} (pretrain-jax {command or ''} --help)".replace("  ", " "), USAGE)


def help_text(command: str | None) -> str:
    """`pretrain-jax --help`: the commands, one line each; with a command, its flags, keys and example."""
    if command is None:
        width = max(map(len, COMMANDS))
        lines = ["usage: pretrain-jax COMMAND --workdir=DIR [flags]", "", "commands:"]
        lines += [f"  {name:{width}s}  {summary}" for name, (summary, *_) in COMMANDS.items()]
        lines += ["", "pretrain-jax COMMAND --help shows a command's flags. Common flags: --debug (tracebacks),"
                  " --verbosity=1 (the libraries' INFO lines too)."]
        return "\n".join(lines)
    summary, names, keys, example = COMMANDS[command]
    lines = [f"usage: pretrain-jax {command} [flags]: {summary}", "", "flags:"]
    for name in names:
        flag = FLAGS[name]
        default = "" if flag.default in (None, False) else f" (default {flag.default})"
        lines.append(f"  --{name}: {flag.help}{default}")
    lines += [f"  --debug: {FLAGS['debug'].help}",
              "  --verbosity=1: the libraries' INFO lines too (by default only this package's and their warnings)."]
    lines += ["", f"config keys read: {keys}", "", f"example: {example}"]
    return "\n".join(lines)


def _is_expected(error: BaseException) -> bool:
    """Errors about the user's input, the workdir or the disk, which are said in one line.

    A ValueError or FileNotFoundError counts only when this package raised it: one raised deep inside
    a library is a bug to report, so it keeps its traceback. An OSError of the disk (full, read-only,
    permission denied) counts wherever it comes from.
    """
    from pretrain_jax.checkpoint import DISK_ERRNOS, CheckpointError
    from pretrain_jax.loop import NonFiniteError

    if isinstance(error, NonFiniteError | CheckpointError):
        return True
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
        return True
    if not isinstance(error, ValueError | FileNotFoundError) or error.__traceback__ is None:
        return False
    raised_in = traceback.extract_tb(error.__traceback__)[-1].filename
    return os.path.abspath(raised_in).startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        from pretrain_jax import workdirs

        return workdirs.os_error_text(error)
    return str(error).split("\n")[0] or type(error).__name__


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv[1:] if a in COMMANDS), None)


def _config_file_error(argv: list[str]) -> str | None:
    """What is wrong with the --config file itself (missing, or not a config file), before absl reads it."""
    value = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
    if value is None:
        return None
    path = value.split(":", 1)[0]
    if not os.path.exists(path):
        return f"config file {path} does not exist (--config={value})"
    if os.path.isdir(path):
        return f"config file {path} is a directory (--config={value}); give a .py file"
    return None


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, every error a user can make in it said in one line."""
    command = _command_of(argv)
    problem = _config_file_error(argv)
    if problem:
        _fail(command, problem)
    try:
        return FLAGS(argv)
    except (KeyError, AttributeError) as error:  # ml_collections: an override of a key that does not exist
        text = str(error.args[0] if error.args else error)
        quoted = re.findall(r"'([^']+)'", text)
        overrides = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
        culprit = next((a for a in overrides if a[len("--config."):] in text or set(quoted) & set(a.split("."))),
                       None)
        hint = " ".join(line.strip() for line in text.splitlines()[1:] if line.strip())
        _fail(command, f"unknown config key {culprit or text.splitlines()[0]}: the config defines no such key"
              f"{'; ' + hint if hint else ''}")
    except flags.IllegalFlagValueError as error:  # a value of the wrong type, or a config file that raised
        text = str(error).removeprefix("flag ")
        if "Error whilst parsing config file" in text:  # ml_collections quotes get_config's traceback
            last = [line for line in text.splitlines() if line.strip()][-1]
            text = f"{text.split(':', 1)[0]}: {re.sub(r'^[A-Za-z_.]*Error: ', '', last.strip())}"
        _fail(command, text.split("\n")[0])
    except flags.Error as error:  # an unknown flag, a flag without its value, ...
        _fail(command, f"{str(error).splitlines()[0]}", USAGE)
    except Exception as error:  # noqa: BLE001 (the config file's get_config raised: its message says why)
        _fail(command, f"--config: {_one_line(error)}")


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else None
    if command not in COMMANDS:
        _usage_error(f"expected a command, one of {', '.join(COMMANDS)}" if command is None
                     else f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    if not FLAGS.workdir:
        _usage_error("--workdir is required", command)
    from pretrain_jax import metrics

    # Every command: the libraries' INFO lines and tracebacks would bury what it prints.
    metrics.quiet_library_logs(tracebacks=FLAGS.debug)
    try:
        _run_command(command, argv[2:])
    except Exception as error:
        if FLAGS.debug or not _is_expected(error):
            raise
        _fail(command, _one_line(error))


def _run_command(command: str, rest: list[str]) -> None:
    if command in READ_ONLY:
        from pretrain_jax import workdirs

        workdirs.check_readable(FLAGS.workdir)
    if command == "train":
        if FLAGS.config is None:
            _usage_error("train needs --config=configs/<experiment>.py[:arg]", command)
        from pretrain_jax import train

        train.run(FLAGS.config, FLAGS.workdir)
    elif command == "finetune":
        if FLAGS.config is None:
            _usage_error("finetune needs --config=configs/finetune/classify.py --config.init_from=WORKDIR", command)
        from pretrain_jax import finetune

        results = finetune.run(FLAGS.config, FLAGS.workdir)
        headline = ("accuracy", "macro_f1") if results["task"] == "classification" else ("pearson", "spearman")
        print(json.dumps({k: results[k] for k in ("score", *headline, "num_train_examples", "steps")}))
    elif command == "predict":
        if not FLAGS.input or not FLAGS.output:
            _usage_error("predict needs --input=FILE and --output=FILE", command)
        from pretrain_jax.finetune import predict

        summary = predict.predict_file(FLAGS.workdir, FLAGS.input, FLAGS.output)
        print(json.dumps({k: v for k, v in summary.items() if k in ("score", "accuracy", "macro_f1", "pearson",
                                                                    "spearman", "num_examples", "output")}))
    elif command == "baseline":
        if FLAGS.config is None or "baseline" not in FLAGS.config:
            _usage_error("baseline needs --config=configs/skipgram_bilstm.py[:tiny] (a config with a baseline"
                         " section)", command)
        from pretrain_jax.baselines import pipeline

        results = pipeline.run(FLAGS.config, FLAGS.workdir)
        print(json.dumps({k: results[k] for k in ("accuracy", "macro_f1", "majority_baseline_accuracy",
                                                  "num_train_examples", "num_test_examples")}))
    elif command == "eval":
        if FLAGS.eval_batches is not None and FLAGS.eval_batches < 1:
            _usage_error(f"--eval_batches={FLAGS.eval_batches} must be >= 1 (leave it out for train.eval_steps)",
                         command)
        from pretrain_jax import evaluation, inference

        scalars = inference.evaluate_workdir(FLAGS.workdir, FLAGS.eval_batches)
        if FLAGS.json:
            print(json.dumps(scalars, sort_keys=True))
        else:
            print(evaluation.format_metrics(scalars))
            for key in sorted(scalars):
                print(f"  {key:32s} {scalars[key]:.6g}")
    elif command == "evaluate":
        if FLAGS.config is None or not FLAGS.suite:
            _usage_error("evaluate needs --suite=glue (or superglue, or a suite file) and"
                         " --config=configs/finetune/classify.py --config.init_from=WORKDIR", command)
        from pretrain_jax.finetune import suite

        suite.main(FLAGS.suite, config_flags.get_config_filename(FLAGS["config"]),
                   config_flags.get_override_values(FLAGS["config"]), FLAGS.workdir,
                   print_commands=FLAGS.print_commands)
    elif command == "sweep":
        if not FLAGS.sweep:
            _usage_error("sweep needs --sweep=configs/sweeps/<name>.py", command)
        from pretrain_jax.research import sweeps

        sweeps.main(FLAGS.sweep, FLAGS.workdir, print_commands=FLAGS.print_commands)
    elif command == "fill-mask":
        if not rest:
            _usage_error('fill-mask needs a text with [MASK], e.g. "The [MASK] function returns a list."', command)
        from pretrain_jax import inference

        for text in rest:
            print(text)
            for k, predictions in enumerate(inference.fill_mask(FLAGS.workdir, text, FLAGS.top_k)):
                shown = "  ".join(f"{piece} {prob:.3f}" for piece, prob in predictions)
                print(f"  [MASK] #{k + 1}: {shown}")
    elif command == "generate":
        if FLAGS.prompt is None:
            _usage_error('generate needs --prompt "text to continue"', command)
        from pretrain_jax import generate

        pieces = generate.generate_text(
            FLAGS.workdir, FLAGS.prompt, max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature,
            top_k=FLAGS.top_k if FLAGS["top_k"].present else 0, top_p=FLAGS.top_p, seed=FLAGS.seed)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()


def entry_point() -> None:
    argv = sys.argv
    if any(a in ("--help", "-h", "--helpshort", "-?") for a in argv[1:]):
        print(help_text(_command_of(argv)))
        sys.exit(0)
    try:
        app.run(main, flags_parser=_parse_flags)
    except OSError as error:  # A full disk can also surface while Python flushes or closes files at exit.
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        _fail(_command_of(argv), _one_line(error))


if __name__ == "__main__":
    entry_point()
