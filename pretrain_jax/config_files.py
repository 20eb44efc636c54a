"""Config files as `--config=path[:arg]` reads them, with dotted-key overrides; shared by sweeps and suites.

    config = build_config("configs/bert_mlm.py:tiny", {"train.num_steps": 200})
    f"--config.train.num_steps={flag_value(200)}"      # the same override as a command-line flag
    command_line(["train"], "configs/bert_mlm.py:tiny", {"train.num_steps": 200}, "/tmp/run")
    # -> "pretrain-jax train --config=configs/bert_mlm.py:tiny --config.train.num_steps=200 --workdir=/tmp/run"
"""

import importlib.util
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

import ml_collections

_VALUE_TYPES = (bool, int, float, str, tuple)


def build_config(config_file: str, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Loads `path[:arg]` like --config does, locks it, and applies dotted-key overrides."""
    path, _, arg = config_file.partition(":")
    module = load_module(path, "get_config")
    config = module.get_config(arg) if arg else module.get_config()
    config.lock()
    for key, value in overrides.items():
        if not isinstance(value, _VALUE_TYPES):
            raise TypeError(f"override {key}={value!r}: values must be bool, int, float, str or tuple")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise KeyError(f"override {key!r}: {config_file} has no config section {part!r}")
            node = node[part]
        if leaf not in node:
            raise KeyError(f"override {key!r}: {config_file} has no config key {leaf!r}")
        node[leaf] = value
    return config


def load_module(path: str, function: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (paths are relative to {os.getcwd()})")
    name = "_pretrain_jax_loaded_" + re.sub(r"\W", "_", os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, function):
        raise AttributeError(f"{path} defines no {function}()")
    return module


def flag_value(value: Any) -> str:
    """A value as ml_collections' config_flags parses it back (tuples as '(a, b)')."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return repr(tuple(value))
    return str(value)


def command_line(command: list[str], config_file: str, overrides: Mapping[str, Any], workdir: str) -> str:
    """The shell-quoted `pretrain-jax COMMAND... --config=FILE --config.KEY=VALUE... --workdir=DIR`."""
    args = ["pretrain-jax", *command, f"--config={config_file}"]
    args += [f"--config.{key}={flag_value(value)}" for key, value in overrides.items()]
    args.append(f"--workdir={workdir}")
    return " ".join(shlex.quote(a) for a in args)
