"""T5's drop-corrupted-tokens baseline (Raffel et al., 2020, §3.3.2) on an encoder-decoder.

    pretrain-jax train --config=configs/t5_drop_tokens.py:tiny --workdir=/tmp/t5_drop_tiny  # CPU, minutes
    pretrain-jax train --config=configs/t5_drop_tokens.py --workdir=gs://bucket/t5_drop    # T5-base shape

15% of the tokens (the paper's comparison) are dropped from the inputs; the targets are the
dropped tokens in order, then EOS. The paper draws them i.i.d.; here each document loses exactly
T5's count, at uniformly random positions (`noise="uniform"`, the same rate), so that 602 raw
tokens fill the 512 inputs and nothing is dropped; `--config.objective.t5_drop_tokens.noise=iid`
is the paper's draw. The T5 paper compares its objectives on one model and schedule,
so this is configs/t5_span.py (same arguments: `tiny`, `t5_small`, `t5_base`) with only the
objective changed.
"""

from configs import t5_span


def get_config(arg=None):
    c = t5_span.get_config(arg)
    c.objective.name = "t5_drop_tokens"
    c.objective.t5_drop_tokens.noise = "uniform"
    c.objective.t5_drop_tokens.noise_density = 0.15
    return c
