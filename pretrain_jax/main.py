"""The `pretrain-jax` command: flags and sub-commands only; each calls an importable function.

    pretrain-jax train --config=configs/bert_mlm.py:tiny --workdir=/tmp/bert_tiny
    pretrain-jax eval --workdir=/tmp/bert_tiny --json
    pretrain-jax fill-mask --workdir=/tmp/bert_tiny "The [MASK] function returns a list."
    pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=/tmp/objectives [--print_commands]
    pretrain-jax generate --workdir=/tmp/gpt_tiny --prompt "The list" --temperature=0.8 --top_p=0.9
    pretrain-jax finetune --config=configs/finetune/classify.py --config.init_from=/tmp/bert_tiny --workdir=/tmp/sst2
    pretrain-jax baseline --config=configs/skipgram_bilstm.py:tiny --workdir=/tmp/skipgram_bilstm
"""

import json
import os
import re
import sys
import traceback

from absl import app, flags
from ml_collections import config_flags

COMMANDS = ("train", "eval", "fill-mask", "sweep", "generate", "finetune", "baseline")

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
flags.DEFINE_bool("print_commands", False, "sweep: print a `pretrain-jax train` command per unfinished run instead.")
FLAGS = flags.FLAGS


def _usage_error(message: str) -> None:
    sys.stderr.write(f"pretrain-jax: {message}\nusage: pretrain-jax {{{'|'.join(COMMANDS)}}} --workdir=DIR ...\n")
    sys.exit(2)


def _fail(command: str | None, message: str) -> None:
    """One line on stderr, no traceback, exit status 1: for errors the user can fix."""
    sys.stderr.write(f"pretrain-jax{' ' + command if command else ''}: {message}\n")
    sys.exit(1)


def _is_expected(error: BaseException) -> bool:
    """Errors this package raises on purpose about the user's input (config, data, workdir, a diverged run).

    A ValueError or FileNotFoundError counts only when the package itself raised it: one raised deep
    inside a library is a bug to report, so it keeps its traceback.
    """
    from pretrain_jax.train import NonFiniteError

    if isinstance(error, NonFiniteError):
        return True
    if not isinstance(error, ValueError | FileNotFoundError) or error.__traceback__ is None:
        return False
    raised_in = traceback.extract_tb(error.__traceback__)[-1].filename
    return os.path.abspath(raised_in).startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with an override of a config key that does not exist as a one-line error.

    (ml_collections raises KeyError / AttributeError there, which absl would show as a traceback.)
    """
    try:
        return FLAGS(argv)
    except (KeyError, AttributeError) as error:
        command = next((a for a in argv[1:] if a in COMMANDS), None)
        text = str(error.args[0] if error.args else error)
        quoted = re.findall(r"'([^']+)'", text)
        overrides = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
        culprit = next((a for a in overrides if a[len("--config."):] in text or set(quoted) & set(a.split("."))),
                       None)
        hint = " ".join(line.strip() for line in text.splitlines()[1:] if line.strip())
        _fail(command, f"unknown config key {culprit or text.splitlines()[0]}: the config defines no such key"
              f"{'; ' + hint if hint else ''}")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        _usage_error(f"expected a command, one of {', '.join(COMMANDS)}")
    if not FLAGS.workdir:
        _usage_error("--workdir is required")
    from pretrain_jax import metrics

    metrics.quiet_library_logs()  # Every command: orbax's INFO lines would bury what it prints.
    try:
        _run_command(argv[1], argv[2:])
    except Exception as error:
        if not _is_expected(error):
            raise
        _fail(argv[1], " ".join(str(error).split("\n")[0].split()) or type(error).__name__)


def _run_command(command: str, rest: list[str]) -> None:
    if command == "train":
        if FLAGS.config is None:
            _usage_error("train needs --config=configs/<experiment>.py[:arg]")
        from pretrain_jax import train

        train.run(FLAGS.config, FLAGS.workdir)
    elif command == "finetune":
        if FLAGS.config is None:
            _usage_error("finetune needs --config=configs/finetune/classify.py --config.init_from=PRETRAINED_WORKDIR")
        from pretrain_jax import finetune

        results = finetune.run(FLAGS.config, FLAGS.workdir)
        print(json.dumps({k: results[k] for k in ("accuracy", "macro_f1", "num_train_examples", "steps")}))
    elif command == "baseline":
        if FLAGS.config is None or "baseline" not in FLAGS.config:
            _usage_error("baseline needs --config=configs/skipgram_bilstm.py[:tiny] (a config with a baseline section)")
        from pretrain_jax.baselines import pipeline

        results = pipeline.run(FLAGS.config, FLAGS.workdir)
        print(json.dumps({k: results[k] for k in ("accuracy", "macro_f1", "majority_baseline_accuracy",
                                                  "num_train_examples", "num_test_examples")}))
    elif command == "eval":
        from pretrain_jax import evaluation, inference

        scalars = inference.evaluate_workdir(FLAGS.workdir, FLAGS.eval_batches)
        if FLAGS.json:
            print(json.dumps(scalars, sort_keys=True))
        else:
            print(evaluation.format_metrics(scalars))
            for key in sorted(scalars):
                print(f"  {key:32s} {scalars[key]:.6g}")
    elif command == "sweep":
        if not FLAGS.sweep:
            _usage_error("sweep needs --sweep=configs/sweeps/<name>.py")
        from pretrain_jax.research import sweeps

        sweeps.main(FLAGS.sweep, FLAGS.workdir, print_commands=FLAGS.print_commands)
    elif command == "fill-mask":
        if not rest:
            _usage_error('fill-mask needs a text with [MASK], e.g. "The [MASK] function returns a list."')
        from pretrain_jax import inference

        for text in rest:
            print(text)
            for k, predictions in enumerate(inference.fill_mask(FLAGS.workdir, text, FLAGS.top_k)):
                shown = "  ".join(f"{piece} {prob:.3f}" for piece, prob in predictions)
                print(f"  [MASK] #{k + 1}: {shown}")
    elif command == "generate":
        if FLAGS.prompt is None:
            _usage_error('generate needs --prompt "text to continue"')
        from pretrain_jax import generate

        pieces = generate.generate_text(
            FLAGS.workdir, FLAGS.prompt, max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature,
            top_k=FLAGS.top_k if FLAGS["top_k"].present else 0, top_p=FLAGS.top_p, seed=FLAGS.seed)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()


def entry_point() -> None:
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    entry_point()
