"""Objective ablation at tiny size: 5 objectives x 2 widths x 2 seeds on the built-in corpus (20 runs).

    pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=/tmp/objectives_tiny
    pretrain-jax sweep --sweep=configs/sweeps/objectives_tiny.py --workdir=/tmp/objectives_tiny --print_commands

Every run starts from configs/bert_mlm.py:tiny and sets the objective with the model family it feeds
(and, off the encoder, that family's own position encoding). The eval losses of different objectives
predict different targets (masked tokens, next tokens, spans), so compare them within an objective
(across widths and seeds), and compare objectives by fine-tuning the checkpoints.
"""

from pretrain_jax.research.sweeps import Sweep, choice

# bert_mlm:tiny's relative position bias is an encoder choice: the other families take their own
# ("auto": learned positions for decoder and two_stream, T5's relative bias for encoder_decoder,
# started at ALiBi's values as the tiny encoder's is, through model.relative_bias_init).
OWN_POSITIONS = {"model.position_encoding": "auto"}

OBJECTIVES = (
    choice("bert_mlm", {"objective.name": "bert_mlm", "model.family": "encoder"}),
    choice("causal_lm", {"objective.name": "causal_lm", "model.family": "decoder", **OWN_POSITIONS}),
    choice("prefix_lm", {"objective.name": "prefix_lm", "model.family": "decoder", **OWN_POSITIONS}),
    choice("t5_span", {"objective.name": "t5_span_corruption", "model.family": "encoder_decoder", **OWN_POSITIONS}),
    choice("xlnet_plm", {"objective.name": "xlnet_plm", "model.family": "two_stream", **OWN_POSITIONS}),
)

WIDTHS = tuple(choice(f"d{width}", {"model.d_model": width, "model.d_ff": 4 * width}) for width in (64, 128))


def get_sweep():
    return Sweep(
        config="configs/bert_mlm.py:tiny",
        fixed={"train.num_steps": 300, "optim.warmup_steps": 30, "train.eval_every": 0,
               "train.checkpoint_every": 300},
        axes=(OBJECTIVES, WIDTHS),
        seeds=(0, 1),
    )
