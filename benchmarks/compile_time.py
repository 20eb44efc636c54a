"""Compile time of the real train step against depth, with XLA's backend optimisations on and off.

    python benchmarks/compile_time.py                                  # bart_denoise, gpt_clm, bert_mlm
    python benchmarks/compile_time.py --configs t5_span --layers 1,2,4,8

Each configs/<name>.py:tiny is shrunk as benchmarks/step_losses.py shrinks it (width 32, rows of 64
tokens, batch 8), then given --layers blocks per stack. Its train step (objective inside, as
`pretrain-jax train` builds it) is lowered and compiled twice per depth on the default devices, side
by side: with XLA's defaults and with `jax_disable_most_optimizations` (what tests/conftest.py
sets for the test suite). No compilation cache is used. Seconds are wall time on this machine.
"""

import argparse
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from step_losses import tiny  # noqa: E402

from pretrain_jax import config_validation, experiment  # noqa: E402


def lower_and_compile(exp: experiment.Experiment, loss_weights: dict, disable_most_optimizations: bool):
    """(lowering seconds, compile seconds) of a fresh lowering, so no cached executable is reused."""
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", disable_most_optimizations)
    try:
        start = time.perf_counter()
        lowered = exp.jit_train_step(loss_weights).lower(exp.abstract_state(), exp.abstract_batch())
        lowered_at = time.perf_counter()
        lowered.compile()
        return lowered_at - start, time.perf_counter() - lowered_at
    finally:
        jax.config.update("jax_disable_most_optimizations", False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="bart_denoise,gpt_clm,bert_mlm")
    parser.add_argument("--layers", default="2", help="comma-separated blocks per stack")
    args = parser.parse_args()
    jax.config.update("jax_compilation_cache_dir", None)
    print(f"{'config':14s} {'layers':>6s} {'lower s':>8s} {'default s':>10s} {'no-opt s':>9s} {'ratio':>6s}")
    for name in args.configs.split(","):
        for layers in map(int, args.layers.split(",")):
            config = tiny(name, "", steps=1, microbatches=1)
            config.model.num_layers = layers
            exp = experiment.Experiment.for_shapes(config)
            weights = config_validation.loss_weights(config)
            lower, default = lower_and_compile(exp, weights, False)
            fast = lower_and_compile(exp, weights, True)[1]
            print(f"{name:14s} {layers:6d} {lower:8.1f} {default:10.1f} {fast:9.1f} {fast / default:6.2f}", flush=True)


if __name__ == "__main__":
    main()
