"""Running the `pretrain-jax` command inside the test process (import as `from cli_in_process import ...`)."""

import sys

from pretrain_jax import main


def run_main(args: list[str], monkeypatch=None) -> None:
    """`pretrain-jax ARGS...` in this process (so it reuses compiled steps); args[0] is the program name.

    With `monkeypatch`, sys.argv is set to args for the call: config_flags reads `--config.*`
    overrides from sys.argv, not from the parsed list.
    """
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "argv", args)
    argv = main.FLAGS(args)
    try:
        main.main(argv)
    finally:
        main.FLAGS.unparse_flags()
