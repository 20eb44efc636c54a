"""BERT masked LM (Devlin et al., 2019) on an encoder.

    pretrain-jax train --config=configs/bert_mlm.py:tiny --workdir=/tmp/bert_tiny   # minutes on a laptop CPU
    pretrain-jax train --config=configs/bert_mlm.py --workdir=gs://bucket/bert_base  # BERT-base recipe
    pretrain-jax train --config=configs/bert_mlm.py:bert_base --workdir=gs://bucket/bert_base_30k

The default is BERT-base with the paper's schedule (1M steps of 256 x 512 would be the full run;
sequence length 128 for 90% of it in the paper) on this project's 8192-id tokenizer. `bert_base` is
the published model exactly: 30522 ids, 12 layers of width 768, 12 heads, MLP 3072, 2 token types,
512 positions: 110M parameters (tests/configs/test_published_sizes.py). `tiny` shrinks everything
for a 2-core CPU and replaces the learned position table with T5's relative position bias started
at ALiBi's values (Press et al., 2022), half the heads leaning left and half right: every head
attends locally and knows left from right from the first step, and the table stays learnable. A
model this small and short-trained learns far faster with it.
"""

from configs import base


def get_config(arg=None):
    c = base.get_config()
    c.objective.name = "bert_mlm"
    c.model.family = "encoder"
    c.data.seq_len = 128
    c.data.batch_size = 256
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 10_000
    c.optim.weight_decay = 0.01
    if arg == "tiny":
        # A 2-core CPU run of about 7 minutes. The ALiBi-initialised relative bias instead of BERT's
        # learned positions, the 2048-id tokenizer, Adam b2 = 0.98 and lr 2e-3 were chosen by held-out
        # accuracy over baseline at equal steps (BENCHMARKS.md, "Quickstart"): with learned or plain T5
        # relative positions the model does not use the context of a [MASK] within 1000 steps, and
        # fixed (symmetric) ALiBi cannot tell left from right.
        c.tokenizer.vocab_size = 2048
        c.data.batch_size = 32
        c.data.eval_batch_size = 32
        c.data.eval_fraction = 0.05  # ~60 held-out documents: a few thousand predicted tokens per eval.
        c.model.num_layers = 4
        c.model.d_model = 128
        c.model.num_heads = 4
        c.model.d_ff = 512
        c.model.dropout = 0.0
        c.model.attention_dropout = 0.0
        c.model.max_len = 128
        c.model.position_encoding = "relative"
        c.model.relative_bias_init = "alibi"
        c.optim.lr = 2e-3
        c.optim.b2 = 0.98
        c.optim.warmup_steps = 60
        c.train.num_steps = 1000
        c.train.eval_every = 500
        c.train.eval_steps = 20
        c.train.checkpoint_every = 250
        c.train.log_every_secs = 15.0
    elif arg == "bert_base":
        c.tokenizer.vocab_size = 30522
    elif arg is not None:
        raise ValueError(f"unknown config argument {arg!r}; use ':tiny', ':bert_base' or nothing")
    return c
