"""The pre-2018 baseline: skip-gram embeddings on the pre-training corpus feeding a BiLSTM classifier.

    pretrain-jax baseline --config=configs/skipgram_bilstm.py --workdir=workdirs/baseline
    pretrain-jax baseline --config=configs/skipgram_bilstm.py:tiny --workdir=/tmp/baseline_tiny   # ~1 min on a CPU
    # The same ids as a pre-trained transformer: reuse its tokenizer.
    pretrain-jax baseline --config=configs/skipgram_bilstm.py \
        --config.tokenizer.path=workdirs/bert_tiny/tokenizer.model --workdir=workdirs/baseline_bert_tiny
    # Another labelled task: {"text", "label"} JSONL files.
    pretrain-jax baseline --config=configs/skipgram_bilstm.py --config.baseline.task.train_file=train.jsonl \
        --config.baseline.task.test_file=test.jsonl --workdir=workdirs/baseline_mine

configs/base.py's data and tokenizer sections (the built-in corpus, 8192 ids: the same tokenizer as
`configs/bert_mlm.py`) plus the `baseline` section of pretrain_jax/baselines/pipeline.py: skipgram,
bilstm and task keys, each commented there. The default task is the `fortunes` topic task. Skip-gram
subsampling uses t = 1e-4, word2vec's advice for a corpus as small as the built-in one (~0.5M tokens).
`tiny` shrinks the vectors, the LSTM and the epochs for a 2-core CPU (fortunes task: accuracy 0.47
against 0.31 for the majority class, in under a minute, with bert_mlm:tiny's tokenizer).
"""

from configs import base
from configs.common import unknown_arg
from pretrain_jax.baselines import pipeline


def get_config(arg=None):
    c = pipeline.with_baseline_section(base.get_config())
    c.baseline.skipgram.subsample_t = 1e-4
    if arg == "tiny":
        c.baseline.skipgram.embedding_dim = 64
        c.baseline.skipgram.num_epochs = 3
        c.baseline.skipgram.batch_size = 2048
        c.baseline.skipgram.learning_rate = 5e-3
        c.baseline.bilstm.hidden_size = 64
        c.baseline.bilstm.max_length = 64
        c.baseline.bilstm.num_epochs = 10
    elif arg is not None:
        raise unknown_arg(arg, ["tiny"])
    return c
