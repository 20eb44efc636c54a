"""The experiment files follow one pattern, and start-up validation catches what they could get wrong.

Cheap: configs are built and validated (the objective is traced with jax.eval_shape, nothing runs).
"""

import glob
import importlib
import os

import pytest
from tiny_configs import project_config

from configs import base
from pretrain_jax import config_validation
from pretrain_jax.baselines import pipeline
from pretrain_jax.config_validation import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENT_FILES = sorted(
    os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "configs", "*.py"))
    if os.path.basename(path) not in ("__init__.py", "base.py", "common.py"))
PUBLISHED_ARGS = {"bert_mlm": ["bert_base"], "gpt_clm": ["gpt2_small"], "t5_span": ["t5_small", "t5_base"],
                  "t5_deshuffle": ["t5_small"], "t5_mass": ["t5_small"], "t5_drop_tokens": ["t5_small"],
                  "xlnet_plm": ["xlnet_base"], "bart_denoise": ["bart_base"], "electra": ["electra_small"]}


def _keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys |= _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return keys


@pytest.mark.parametrize("name", EXPERIMENT_FILES)
def test_experiment_file_changes_values_only_and_validates(name):
    module = importlib.import_module(f"configs.{name}")
    assert f"--config=configs/{name}.py:tiny" in module.__doc__  # the launch command, CPU variant first
    base_keys = _keys(base.get_config().to_dict())
    if "baseline" in module.get_config():  # The skip-gram baseline: base.py plus the baseline run's own section.
        base_keys |= _keys({"baseline": pipeline.default_config().to_dict()})
    for arg in (None, "tiny", *PUBLISHED_ARGS.get(name, [])):
        config = module.get_config(arg)
        assert _keys(config.to_dict()) == base_keys, f"{name}:{arg} adds or drops keys"
        config_validation.validate(config)
    with pytest.raises(ValueError, match="unknown config argument"):
        module.get_config("huge")


@pytest.mark.parametrize("name, overrides, message", [
    ("electra", {"model.electra": False}, r"objective.name='electra' needs model.electra=True"),
    ("bert_mlm", {"model.electra": True}, r"model.electra=True trains only with objective.name='electra'"),
    # Rows of 569 raw tokens: round(0.15 * 569) = 85 noise tokens in round(85 / 3) = 28 spans.
    ("t5_span", {"tokenizer.num_sentinels": 10}, r"569 tokens need up to 28 sentinels .* tokenizer.num_sentinels=10"),
    ("ul2", {"tokenizer.num_sentinels": 50}, r"tokenizer.num_sentinels=50"),
    ("bart_denoise", {"objective.bart.encoder_extra_len": 16},
     r"model.max_len=512 is shorter than the 528-token encoder inputs .*model.max_len=528"),
    ("t5_span", {"objective.t5_span_corruption.targets_length": 600},
     r"model.max_len=512 is shorter than the 600-token decoder inputs"),
    ("xlnet_plm", {"objective.xlnet_plm.num_predict": 600}, r"num_predict=600"),
])
def test_start_up_validation_names_the_keys(name, overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_validation.validate(project_config(name, **overrides))


def test_electra_settings_live_in_one_place():
    config = project_config("electra")
    assert "disc_weight" not in config.objective.electra and "generator_size_fraction" not in config.objective.electra
    assert config.train.loss_weights == "rtd=50" and config.model.electra
    assert project_config("electra", "electra_small").model.electra_generator_fraction == 0.25
