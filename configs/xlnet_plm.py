"""XLNet permutation language modelling with partial prediction (Yang et al., 2019) on the
two-stream model.

    pretrain-jax train --config=configs/xlnet_plm.py:tiny --workdir=/tmp/xlnet_tiny                # CPU, minutes
    pretrain-jax train --config=configs/xlnet_plm.py --workdir=gs://bucket/xlnet                   # XLNet-base shape
    pretrain-jax train --config=configs/xlnet_plm.py:xlnet_base --workdir=gs://bucket/xlnet_base  # + XLNet's vocabulary

About one token in K = 6 is a target (word-aligned n-grams of up to 5 words), at most 85 targets in
a row of 512; targets are predicted from the query stream in a random factorization order. The
model has XLNet-base's shape (12 layers of width 768, 12 heads, MLP 3072) with learned absolute
positions: XLNet's relative positional encoding and segment recurrence (Transformer-XL memory) are
not implemented. XLNet-base was trained on BERT's data and settings for comparison, hence BERT's
schedule: rows of 512, batch 256, 1M steps, learning rate 1e-4 after 10K warm-up steps, linear
decay, weight decay 0.01. `xlnet_base` sets XLNet's 32000-id vocabulary: 110M parameters
(tests/configs/test_published_sizes.py).
"""

from configs import base, common


def get_config(arg=None):
    c = base.get_config()
    c.objective.name = "xlnet_plm"
    c.objective.xlnet_plm.mask_alpha = 6
    c.objective.xlnet_plm.mask_beta = 1
    c.objective.xlnet_plm.max_ngram = 5
    c.objective.xlnet_plm.num_predict = 85
    c.model.family = "two_stream"
    c.model.type_vocab_size = 0
    c.data.seq_len = 512
    c.data.batch_size = 256
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 10_000
    c.optim.weight_decay = 0.01
    c.train.num_steps = 1_000_000
    if arg == "tiny":
        common.tiny(c)
        c.objective.xlnet_plm.num_predict = 24
    elif arg == "xlnet_base":
        c.tokenizer.vocab_size = 32000
    elif arg is not None:
        raise common.unknown_arg(arg, ["tiny", "xlnet_base"])
    return c
