"""ELECTRA replaced-token detection (google-research/electra), the objective side, encoder family.

The objective is the generator's masked LM: bert_mlm masking with ELECTRA's defaults (rate 0.15;
of the chosen 85% [MASK], 15% unchanged, no random ids), producing the same keys as bert_mlm. The
model samples the generator's replacements at the masked positions and derives the `rtd` head's
targets itself (docs/contracts.md). The rest of ELECTRA is set once, where it acts: the
generator's size is `model.electra_generator_fraction` (with `model.electra=True`, which
config_validation requires for this objective) and the weight 50 of replaced-token detection is
`train.loss_weights="rtd=50"` (configs/electra.py).
"""

import ml_collections

from pretrain_jax.objectives import bert_mlm
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


@register("electra", family="encoder", heads=("mlm", "rtd"))
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    return bert_mlm.build_from_settings(bert_mlm.MaskedLmSettings.from_config(cfg, seq_len, where="electra"), specials)
