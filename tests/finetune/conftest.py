"""Session fixtures: one tiny pre-trained encoder, and decoder and T5 architectures sharing its tokenizer."""

import os

import pytest
from finetune_fixtures import architecture_workdir, keyword_task_files, pretrain_encoder


@pytest.fixture(scope="session")
def encoder_workdir(tmp_path_factory):
    return pretrain_encoder(str(tmp_path_factory.mktemp("bert_tiny")))


@pytest.fixture(scope="session")
def decoder_workdir(tmp_path_factory, encoder_workdir):
    return architecture_workdir(str(tmp_path_factory.mktemp("gpt_tiny")), "decoder", "causal_lm",
                               os.path.join(encoder_workdir, "tokenizer.model"))


@pytest.fixture(scope="session")
def encoder_decoder_workdir(tmp_path_factory, encoder_workdir):
    return architecture_workdir(str(tmp_path_factory.mktemp("t5_tiny")), "encoder_decoder", "t5_span_corruption",
                               os.path.join(encoder_workdir, "tokenizer.model"))


@pytest.fixture(scope="session")
def keyword_task(tmp_path_factory):
    """(train.jsonl, test.jsonl) of the keyword task: 128 and 64 examples."""
    return keyword_task_files(str(tmp_path_factory.mktemp("keyword_task")))
