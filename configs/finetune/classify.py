r"""Sequence classification fine-tuning of a pre-trained workdir: every key, each with its meaning and unit.

    pretrain-jax finetune --config=configs/finetune/classify.py --config.init_from=workdirs/bert --workdir=/tmp/sst2
    pretrain-jax finetune --config=configs/finetune/classify.py:tiny --config.init_from=workdirs/bert_tiny \
        --config.dataset=imdb_reviews --config.max_train_examples=500 --workdir=/tmp/imdb_500
    # The from-scratch control: same architecture and tokenizer, random weights.
    pretrain-jax finetune --config=configs/finetune/classify.py --config.init_from=workdirs/bert \
        --config.init=scratch --workdir=/tmp/sst2_scratch
    # Local files with a text and a label column (.csv, .tsv or .jsonl).
    pretrain-jax finetune --config=configs/finetune/classify.py --config.init_from=workdirs/bert \
        --config.dataset=files --config.train_file=train.csv --config.test_file=test.csv --workdir=/tmp/mine

The architecture, the tokenizer and (with init="pretrained") the weights come from `init_from`;
this file has no model section. The defaults are BERT's GLUE recipe (AdamW at 2e-5, 10% warm-up,
linear decay, 3 epochs, batch 32, dropout 0.1). `tiny` is for a tiny pre-trained model on a CPU.
"""

import ml_collections

from configs import base


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.init_from = ""  # Pre-trained workdir (config.json, tokenizer.model, checkpoints/): architecture and tokenizer.
    c.init = "pretrained"  # "pretrained": its latest checkpoint's weights; "scratch": random weights, same size.
    c.seed = 0  # Seed for the new weights (head; every weight with init="scratch"), data order, subset and dropout.

    c.dataset = "glue/sst2"  # TFDS name (glue/sst2, imdb_reviews, ag_news_subset, ...) or "files".
    c.tfds_data_dir = ""  # TFDS data_dir ("" = TFDS default); datasets are read prepared, never downloaded.
    c.glue_dir = ""  # GLUE's own TSV files (GLUE_DIR/RTE/train.tsv, ...) for a glue/* dataset, instead of TFDS.
    c.train_file = ""  # dataset="files": training examples, a .csv / .tsv (with a header row) or .jsonl file.
    c.test_file = ""  # dataset="files": test examples, same format and columns.
    c.text_keys = ""  # Comma-separated text fields, joined with a space ("" = the dataset's own; files: "text").
    c.text_b_keys = ""  # Sentence pairs: the second text's fields, segment B ("" = the dataset's own, or none).
    c.label_key = ""  # Label field ("" = "label").
    c.task = "auto"  # "classification", "regression" (a number per example, e.g. STS-B) or "auto" (the dataset's).
    c.regression_step = 0.2  # encoder_decoder regression: scores are written rounded to this step (T5's STS-B).
    c.labels = ""  # files: comma-separated label names in class-id order ("" = sorted, numerically if numbers).
    c.train_split = ""  # TFDS split to train on ("" = the dataset's own, "train").
    c.test_split = ""  # TFDS split to report ("" = the dataset's own: "test"; GLUE: "validation").
    c.max_train_examples = 0  # Labelled training examples used (0 = all): stratified, every class kept, by seed.
    c.max_test_examples = 0  # Test examples scored (0 = all): a stratified subset fixed by seed 0, not c.seed.
    c.task_prefix = ""  # encoder_decoder: text before each input ("" = "<task>: ", e.g. "sst2: "; files: "classify: ").

    c.seq_len = 128  # Tokens per input, specials included; longer texts are truncated at the end.
    c.batch_size = 32  # Examples per train step (a multiple of the number of devices).
    c.eval_batch_size = 64  # Examples per prediction step (a multiple of the number of devices).
    c.epochs = 3.0  # Passes over the training examples (used when num_steps = 0).
    c.num_steps = 0  # Train steps (0 = ceil(epochs * examples / batch_size), at least min_steps).
    c.min_steps = 0  # With num_steps = 0: train at least this many steps (small labelled sets).
    c.pooling = "auto"  # "auto" (encoder: "cls", BERT's pooler on [CLS]; decoder, two_stream: "last") or "mean".
    c.dropout = 0.1  # Dropout on residual branches, attention and the pooled vector (-1 = the pre-training's).

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 2e-5  # Peak learning rate.
    c.optim.warmup_fraction = 0.1  # Linear warm-up over this fraction of the train steps.
    base.add_adamw_keys(c.optim)

    c.eval_every = 0  # Steps between test-set evaluations logged during training (0 = only at the end).
    c.log_every_steps = 50  # Steps between progress lines.
    c.peak_flops_per_device = 0.0  # Peak FLOP/s per device for MFU (0 = by device kind or measured; -1 = no MFU).

    if arg == "tiny":
        c.seq_len = 64
        c.batch_size = 32
        c.eval_batch_size = 64
        c.min_steps = 100
        c.optim.lr = 1e-3
    elif arg is not None:
        raise ValueError(f"unknown config argument {arg!r}; use ':tiny' or nothing")
    return c
