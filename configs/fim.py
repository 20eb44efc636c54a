"""Fill-in-the-middle (Bavarian et al., 2022) on a decoder.

    pretrain-jax train --config=configs/fim.py:tiny --workdir=/tmp/fim_tiny  # CPU, minutes
    pretrain-jax train --config=configs/fim.py --workdir=gs://bucket/fim     # GPT-2-small shape

Half the documents (objective.fim.fim_rate) are cut at two uniform points into prefix, middle and
suffix and emitted as <PRE> prefix <SUF> suffix <MID> middle (PSM) or, half of those
(objective.fim.spm_rate), <PRE> <SUF> suffix <MID> prefix middle (SPM): the paper's joint training.
The rest are plain causal LM; loss on every next token. Cuts fall on tokens, on device;
`--config.objective.fim.cut_unit=char` cuts the text's characters on the host, as the paper
recommends. Model and schedule as configs/gpt_clm.py, so FIM and causal LM compare one for one
(the paper's point: FIM costs no left-to-right quality).
"""

from configs import common, gpt_clm


def get_config(arg=None):
    if arg not in (None, "tiny"):
        raise common.unknown_arg(arg, ["tiny"])
    c = gpt_clm.get_config(arg)  # Same model, data and schedule as causal LM: only the objective differs.
    c.objective.name = "fim"
    c.objective.fim.fim_rate = 0.5
    c.objective.fim.spm_rate = 0.5
    c.objective.fim.loss_on = "all"
    return c
