"""`ModelSpec`: the model section of the config, validated once and with every "auto" resolved.

Modules take a `ModelSpec` (a frozen dataclass), not the ConfigDict, so they can be built in a test
or a notebook from plain values, and every choice a family makes by default is visible in one place.
"""

import dataclasses

import jax.numpy as jnp
import ml_collections

FAMILIES = ("encoder", "decoder", "encoder_decoder", "two_stream")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
ATTENTION_IMPLS = ("xla", "cudnn")
# Per-block rematerialisation (layers.REMAT_POLICIES): what a block keeps for the backward pass.
REMATS = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable")

# What "auto" means per family: the published model's choice (BERT, GPT-2, T5, XLNet).
_AUTO_NORM = {"encoder_decoder": "rmsnorm"}
_AUTO_POSITION = {"encoder": "post", "two_stream": "post", "decoder": "pre", "encoder_decoder": "pre"}
_AUTO_ACTIVATION = {"encoder_decoder": "relu", "decoder": "gelu_tanh"}
# Where token order comes from: a learned absolute table, T5's bucketed relative bias, or ALiBi's
# fixed distance penalty.
POSITION_ENCODINGS = {"encoder": ("learned", "relative", "alibi"), "decoder": ("learned",), "two_stream": ("learned",),
                      "encoder_decoder": ("relative",)}
RELATIVE_BIAS_INITS = ("normal", "alibi")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    family: str
    vocab_size: int  # Embedding rows: the tokenizer's full vocabulary, sentinels included.
    num_layers: int  # Blocks per stack.
    d_model: int
    num_heads: int
    d_ff: int
    dropout: float  # Residual-branch and embedding dropout.
    attention_dropout: float  # Dropout on attention probabilities.
    max_len: int  # Learned position table size (unused with relative positions).
    type_vocab_size: int  # Token-type table size (encoder only; 0 = none).
    embed_dim: int  # Token-embedding width; projected to d_model when different.
    norm: str  # "layernorm" or "rmsnorm".
    pre_ln: bool  # True: x + f(norm(x)) and a final norm; False (BERT): norm(x + f(x)).
    activation: str
    use_bias: bool  # Biases in dense layers and LayerNorm (T5 has none).
    init_std: float
    dtype: jnp.dtype  # Compute dtype.
    param_dtype: jnp.dtype  # Parameter storage dtype.
    attention_impl: str
    relative_attention_num_buckets: int
    relative_attention_max_distance: int
    electra: bool
    electra_generator_fraction: float
    remat: str = "none"  # One of REMATS; "none" keeps every activation.
    position_encoding: str = "learned"  # "learned" (absolute table), "relative" (T5 bias) or "alibi".
    relative_bias_init: str = "normal"  # Relative bias table's start: "normal" (init_std, T5) or "alibi".

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    def scaled(self, fraction: float) -> "ModelSpec":
        """The same model with width, MLP width and heads scaled (ELECTRA's generator)."""
        heads = max(1, round(self.num_heads * fraction))
        return dataclasses.replace(
            self,
            d_model=max(heads, round(self.d_model * fraction)),
            d_ff=max(1, round(self.d_ff * fraction)),
            num_heads=heads,
        )


def _choose(value: str, auto: str, allowed: tuple[str, ...], key: str) -> str:
    value = auto if value == "auto" else value
    if value not in allowed:
        raise ValueError(f"model.{key}={value!r}; expected 'auto' or one of {allowed}")
    return value


def spec_from_config(cfg: ml_collections.ConfigDict, vocab_size: int) -> ModelSpec:
    """Validates `config.model` and resolves its "auto" values for the chosen family."""
    family = cfg.family
    if family == "auto":
        raise ValueError("model.family='auto' is the objective's family, which config_validation.validate sets;"
                         f" validate the whole config first, or set one of {FAMILIES}")
    if family not in FAMILIES:
        raise ValueError(f"model.family={family!r}; expected one of {FAMILIES}")
    if cfg.d_model % cfg.num_heads:
        raise ValueError(f"model.d_model={cfg.d_model} is not divisible by num_heads={cfg.num_heads}")
    if cfg.electra and family != "encoder":
        raise ValueError("model.electra=True needs model.family='encoder'")
    if not 0.0 < cfg.electra_generator_fraction <= 1.0:
        raise ValueError("model.electra_generator_fraction must be in (0, 1]")
    if cfg.get("remat", "none") not in REMATS:
        raise ValueError(f"model.remat={cfg.remat!r}; expected one of {REMATS}")
    position_encoding = _choose(cfg.get("position_encoding", "auto"), POSITION_ENCODINGS[family][0],
                                POSITION_ENCODINGS[family], "position_encoding")
    if cfg.get("relative_bias_init", "normal") not in RELATIVE_BIAS_INITS:
        raise ValueError(f"model.relative_bias_init={cfg.relative_bias_init!r}; expected one of {RELATIVE_BIAS_INITS}")
    position = _choose(cfg.norm_position, _AUTO_POSITION[family], ("pre", "post"), "norm_position")
    spec = ModelSpec(
        family=family,
        vocab_size=vocab_size,
        num_layers=cfg.num_layers,
        d_model=cfg.d_model,
        num_heads=cfg.num_heads,
        d_ff=cfg.d_ff,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        max_len=cfg.max_len,
        type_vocab_size=cfg.type_vocab_size,
        embed_dim=cfg.embed_dim or cfg.d_model,
        norm=_choose(cfg.norm, _AUTO_NORM.get(family, "layernorm"), NORMS, "norm"),
        pre_ln=position == "pre",
        activation=_choose(cfg.activation, _AUTO_ACTIVATION.get(family, "gelu"), ACTIVATIONS, "activation"),
        use_bias=family != "encoder_decoder",
        init_std=cfg.init_std,
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        attention_impl=_choose(cfg.attention_impl, "xla", ATTENTION_IMPLS, "attention_impl"),
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        electra=cfg.electra,
        electra_generator_fraction=cfg.electra_generator_fraction,
        remat=cfg.get("remat", "none"),  # Configs saved before the key existed: "none".
        position_encoding=position_encoding,
        relative_bias_init=cfg.get("relative_bias_init", "normal"),
    )
    generator = spec.scaled(spec.electra_generator_fraction)
    if spec.electra and generator.d_model % generator.num_heads:
        raise ValueError(f"ELECTRA generator width {generator.d_model} is not divisible by its "
                         f"{generator.num_heads} heads; change model.electra_generator_fraction")
    return spec
