"""`generate_text` and `pretrain-jax generate` on a tiny (untrained) decoder workdir."""

import os

import pytest
from cli_in_process import run_main

from configs.base import get_config
from pretrain_jax import experiment, generate, inference
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.data import corpus

PROMPT = "The list"
SETTINGS = {"max_new_tokens": 8, "temperature": 1.0, "top_k": 50, "top_p": 0.95, "seed": 3}


def tiny_config(family: str, objective: str):
    c = get_config()
    c.objective.name, c.model.family = objective, family
    c.tokenizer.vocab_size, c.tokenizer.num_sentinels = 512, 4
    c.data.max_documents, c.data.seq_len = 300, 32
    c.model.num_layers, c.model.d_model, c.model.num_heads, c.model.d_ff, c.model.max_len = 2, 32, 4, 64, 32
    c.model.init_std = 0.2  # Untrained: wide enough that the sampled text is not one repeated piece.
    return c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir as `train` leaves it (config, tokenizer, checkpoint), with freshly initialised weights."""
    workdir = str(tmp_path_factory.mktemp("gpt_tiny"))
    config = tiny_config("decoder", "causal_lm")
    docs = corpus.load_documents(config.data, config.data.train_split, workdir)
    exp = experiment.Experiment.create(config, workdir, train_documents=docs)
    exp.save_config()
    checkpointer = Checkpointer(workdir)
    checkpointer.save(0, exp.init_state(), {}, {"step": 0})
    checkpointer.wait()
    checkpointer.close()
    return workdir


def run_cli(*args: str) -> None:
    """`pretrain-jax generate ARGS` in this process (so it reuses the compiled steps)."""
    run_main(["pretrain-jax", "generate", *args])


def test_generate_text_and_the_cli_stream_the_decoded_tokens(workdir, capsys):
    exp, params, _ = inference.load(workdir)
    ids = list(generate.stream(exp.model(params), exp.tokenizer.encode(PROMPT), eos_id=exp.specials.eos, **SETTINGS))
    pieces = list(generate.generate_text(workdir, PROMPT, **SETTINGS))
    assert len(pieces) > 1 and "".join(pieces) == exp.tokenizer.decode(ids)
    run_cli(f"--workdir={workdir}", f"--prompt={PROMPT}", *(f"--{name}={value}" for name, value in SETTINGS.items()))
    assert capsys.readouterr().out == "".join(pieces) + "\n"


def test_other_families_are_refused(tmp_path, capsys):
    workdir = str(tmp_path)
    with open(os.path.join(workdir, experiment.CONFIG_FILE), "w") as f:
        f.write(tiny_config("encoder", "bert_mlm").to_json())
    with pytest.raises(ValueError, match="decoder or encoder_decoder model; .* 'encoder' model"):
        next(generate.generate_text(workdir, PROMPT))
    with pytest.raises(SystemExit) as exit_info:
        run_cli(f"--workdir={workdir}", f"--prompt={PROMPT}")
    assert exit_info.value.code == 1
    assert "generate needs a decoder or encoder_decoder model" in capsys.readouterr().err
