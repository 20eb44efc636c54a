"""Why `pretrain_jax.objectives.prefix_sums` exists: its scans against jax's own running reductions.

    python benchmarks/prefix_scans.py --rounds 4

`jnp.cumsum`, `lax.cummax` and `lax.cummin` lower to reduce-windows, which XLA's CPU backend runs
in O(L^2); `prefix_sums` runs `lax.associative_scan` (O(L log L)). In one process, alternating:
1. each reduction alone on a (128, 512) int32 array, jax's against ours (ms per call);
2. whole objectives (128 x 512 rows of the built-in corpus, as `benchmarks/objectives.py` feeds
   them) with `documents.document_bounds` built on jax's cummax/cummin against ours.
Outputs are equal in both (integer sums and maxima are exact in any order); the script checks.
Re-run after a jax upgrade: if the reduce-windows catch up, prefix_sums can go.
"""

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import objectives as objective_benchmark  # noqa: E402

from pretrain_jax.objectives import documents, prefix_sums  # noqa: E402

REDUCTIONS = {
    "cumsum": (lambda x: jnp.cumsum(x, axis=-1), prefix_sums.cumsum),
    "cummax": (lambda x: jax.lax.cummax(x, axis=x.ndim - 1), prefix_sums.cummax),
    "cummin reverse": (lambda x: jax.lax.cummin(x, axis=x.ndim - 1, reverse=True),
                       lambda x: prefix_sums.cummin(x, reverse=True)),
}


def bounds_with_lax(segment_ids):
    """`documents.document_bounds` as it was, on lax.cummax / lax.cummin."""
    axis = segment_ids.ndim - 1
    length = segment_ids.shape[axis]
    index = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), segment_ids.shape)
    change = segment_ids[..., 1:] != segment_ids[..., :-1]
    edge = jnp.ones_like(change[..., :1])
    start = jax.lax.cummax(jnp.where(jnp.concatenate([edge, change], axis), index, 0), axis)
    end = jax.lax.cummin(jnp.where(jnp.concatenate([change, edge], axis), index, length - 1), axis, reverse=True)
    return start, end


def milliseconds(step, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return 1000 * (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=15, help="calls per timing (their mean is one sample)")
    parser.add_argument("--objectives", default="t5_span_corruption,bart,ul2")
    args = parser.parse_args()

    values = jnp.asarray(np.random.default_rng(0).integers(0, 512, (128, 512)), jnp.int32)
    steps = {}
    for name, (theirs, ours) in REDUCTIONS.items():
        theirs, ours = jax.jit(theirs), jax.jit(ours)
        np.testing.assert_array_equal(theirs(values), ours(values))
        steps[(name, "jax")] = lambda f=theirs: jax.block_until_ready(f(values))
        steps[(name, "prefix_sums")] = lambda f=ours: jax.block_until_ready(f(values))

    rows, tokenizer, _ = objective_benchmark.packed_rows(128, 512)
    ours_bounds = documents.document_bounds
    for theirs, ours in zip(bounds_with_lax(rows.segment_ids), ours_bounds(rows.segment_ids), strict=True):
        np.testing.assert_array_equal(theirs, ours)
    for name in args.objectives.split(","):
        built = {}
        for label, bounds in (("jax", bounds_with_lax), ("prefix_sums", ours_bounds)):
            documents.document_bounds = bounds  # read when the objective is traced, inside prepare_ours
            built[label] = objective_benchmark.prepare_ours(name, rows, tokenizer.specials)[0]
        documents.document_bounds = ours_bounds
        steps[(name, "jax")], steps[(name, "prefix_sums")] = built["jax"], built["prefix_sums"]

    samples = {key: [] for key in steps}
    for round_index in range(args.rounds):
        for key, step in steps.items():
            step()
            samples[key].append(milliseconds(step, args.calls))
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    print("\n| what | jax ms | prefix_sums ms | jax / prefix_sums |\n|---|---:|---:|---:|")
    for name in dict.fromkeys(name for name, _ in steps):
        theirs, ours = (statistics.median(samples[(name, label)]) for label in ("jax", "prefix_sums"))
        print(f"| {name} | {theirs:.3f} | {ours:.3f} | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
