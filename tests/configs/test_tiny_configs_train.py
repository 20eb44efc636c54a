"""Every experiment file with a `tiny` variant trains end to end through the one trainer.

Each `configs/<name>.py:tiny`, shrunk further for CI (2 layers of width 32, rows of 64, batch 8,
300 documents, one shared 512-id tokenizer), runs 30 steps of `pretrain_jax.train.run` on the
built-in corpus; the held-out eval loss after them must be below the eval loss of the initial
parameters on the same eval batches (same masks: the eval step's randomness is fixed by the batch
index). This is what the README's "trains" status means.
"""

import importlib
import os

import pytest
from tiny_configs import tiny_config_names

from pretrain_jax import evaluation, experiment, train
from pretrain_jax.data import corpus, pipeline
from pretrain_jax.data import tokenizer as tokenizer_lib
from pretrain_jax.objectives import registered_names

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB_SIZE, NUM_SENTINELS = 512, 16  # 16 sentinels: UL2's (3, 50%) denoiser needs 11 at 64 tokens.
SEQ_LEN, NUM_STEPS = 64, 30


TINY_CONFIGS = tiny_config_names()


def ci_config(name: str, tokenizer_path: str):
    """configs/<name>.py:tiny with the model, data and run shrunk to seconds (values only)."""
    c = importlib.import_module(f"configs.{name}").get_config("tiny")
    c.tokenizer.path = tokenizer_path
    c.tokenizer.vocab_size = VOCAB_SIZE
    c.tokenizer.num_sentinels = NUM_SENTINELS
    c.data.max_documents = 300
    c.data.seq_len = SEQ_LEN
    c.data.batch_size = 8
    c.data.eval_batch_size = 8
    c.model.max_len = SEQ_LEN + c.objective.bart.encoder_extra_len
    c.model.num_layers = 2
    c.model.d_model = 32
    c.model.num_heads = 4
    c.model.d_ff = 64
    if c.model.embed_dim:
        c.model.embed_dim = 16
    section = c.objective[c.objective.name]
    for masking in (section, section.get("mlm")):
        if masking is not None and "max_predictions" in masking:
            masking.max_predictions = 10  # 15% of 63 tokens is 9
    if "num_predict" in section:
        section.num_predict = 12  # about 1 token in 6 is an XLNet target
    c.optim.lr = 3e-3
    c.optim.warmup_steps = 5
    c.train.num_steps = NUM_STEPS
    c.train.eval_every = 0
    c.train.eval_steps = 2
    c.train.checkpoint_every = NUM_STEPS
    c.train.log_every_secs = 1e9
    return c


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory):
    """One SentencePiece model for every run (trained once; runs read it through tokenizer.path)."""
    config = ci_config(TINY_CONFIGS[0], "")
    workdir = str(tmp_path_factory.mktemp("tokenizer"))
    documents = corpus.load_documents(config.data, config.data.train_split)
    tokenizer_lib.load_or_train(config.tokenizer, workdir, documents)
    return os.path.join(workdir, tokenizer_lib.MODEL_FILENAME)


def test_every_registered_objective_has_a_tiny_config():
    objectives = {importlib.import_module(f"configs.{name}").get_config("tiny").objective.name
                  for name in TINY_CONFIGS}
    assert objectives == set(registered_names())


def initial_eval(config, workdir: str) -> dict[str, float]:
    """Eval metrics of the initial parameters, on the eval batches train.run evaluates at the end."""
    exp = experiment.Experiment.create(config, workdir)
    documents = corpus.load_documents(config.data, config.data.eval_split)
    evaluator = evaluation.Evaluator(exp, lambda: pipeline.make_loader(
        config.data, exp.tokenizer, documents, split_is_train=False, seed=config.seed))
    return evaluator.evaluate(exp.init_state()["params"], config.train.eval_steps)


@pytest.mark.slow  # ~20 s of CPU per config: mostly compiling its train step.
@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_tiny_config_trains_and_eval_loss_falls(name, tokenizer_path, tmp_path):
    config = ci_config(name, tokenizer_path)
    before = initial_eval(config, str(tmp_path / "initial"))
    after = train.run(config, str(tmp_path / "run"))
    assert after["eval_batches"] == before["eval_batches"] == config.train.eval_steps
    assert after["loss"] < before["loss"] - 0.1, (before, after)
    if "rtd/loss" in before:  # ELECTRA: the discriminator learns too, not only the generator's MLM.
        assert after["rtd/loss"] < before["rtd/loss"], (before, after)
