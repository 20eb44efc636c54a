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
        forget_parsed_flags()


def forget_parsed_flags() -> None:
    """Unparses main's flags and deletes the `--config.*` override flags that parsing defined.

    config_flags defines one flag per override it reads; left defined, the next in-process parse of
    the same override fails with DuplicateFlagError.
    """
    main.FLAGS.unparse_flags()
    for name in [name for name in main.FLAGS if name.startswith("config.")]:
        delattr(main.FLAGS, name)
