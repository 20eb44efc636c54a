"""One place that checks a whole config at start-up, before anything is compiled.

Every error names the key and the value, and says what would fix it. Unknown keys are caught
earlier, by the locked ConfigDict (a misspelled override fails when the flags are parsed).

The objective is built here once from `config.tokenizer`'s id layout (its builder validates its own
section: rates, lengths, sentinels) and its output shapes are traced with `jax.eval_shape` (nothing
runs), so lengths the objective derives (T5's targets length, BART's extra encoder slots) are
checked against the model before a tokenizer is trained or data is read. `validate` returns that
objective, so start-up builds it once.
"""

import json

import jax
import jax.numpy as jnp
import ml_collections

from pretrain_jax import objectives
from pretrain_jax.batch import PackedBatch
from pretrain_jax.models.spec import REMATS
from pretrain_jax.objectives import FAMILIES, get_spec
from pretrain_jax.specials import SpecialIds

# ModelBatch keys holding a token sequence the model embeds, by what the error message calls them.
SEQUENCE_KEYS = {"inputs": "inputs", "encoder_inputs": "encoder inputs", "decoder_inputs": "decoder inputs"}


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: ml_collections.ConfigDict) -> objectives.BuiltObjective:
    """Checks values and combinations; raises ConfigError with a one-line message. Sets model.family="auto"
    to the objective's registered family (in place). Returns the objective, built for config.tokenizer's
    id layout (SpecialIds(vocab_size, num_sentinels))."""
    d, m, t, o = config.data, config.model, config.train, config.optim
    if m.family == "auto":
        m.family = get_spec(config.objective.name).family
    _require(d.source in ("builtin", "files", "tfds"), f"data.source={d.source!r}: use builtin, files or tfds")
    _require(d.source != "files" or bool(d.files), "data.source='files' needs data.files (paths or globs)")
    _require(d.source != "tfds" or bool(d.tfds_name), "data.source='tfds' needs data.tfds_name")
    _require(0.0 < d.eval_fraction < 1.0, f"data.eval_fraction={d.eval_fraction} must be in (0, 1)")
    _require(d.seq_len >= 8, f"data.seq_len={d.seq_len} is too short (minimum 8)")
    for key in ("batch_size", "eval_batch_size"):
        value = d[key]
        _require(value >= 1, f"data.{key}={value} must be >= 1")
        _require(
            value % jax.process_count() == 0,
            f"data.{key}={value} is not divisible by the {jax.process_count()} processes",
        )
    _require(m.family in FAMILIES, f"model.family={m.family!r}: expected one of {FAMILIES}")
    _require(m.max_len >= d.seq_len, f"model.max_len={m.max_len} must be >= data.seq_len={d.seq_len}")
    for key in ("num_layers", "d_model", "num_heads", "d_ff"):
        _require(m[key] >= 1, f"model.{key}={m[key]} must be >= 1")
    _require(m.num_heads >= 1 and m.d_model % m.num_heads == 0,
             f"model.d_model={m.d_model} must be divisible by model.num_heads={m.num_heads}")
    _require(0.0 <= m.dropout < 1.0, f"model.dropout={m.dropout} must be in [0, 1)")
    _require(m.dtype in ("float32", "bfloat16"), f"model.dtype={m.dtype!r}: use float32 or bfloat16")
    _validate_scale(config)
    _require(o.lr > 0, f"optim.lr={o.lr} must be > 0")
    _require(o.warmup_steps >= 0, f"optim.warmup_steps={o.warmup_steps} must be >= 0")
    _require(t.num_steps >= 1, f"train.num_steps={t.num_steps} must be >= 1")
    _require(t.eval_steps >= 1, f"train.eval_steps={t.eval_steps} must be >= 1")
    _require(t.eval_every >= 0, f"train.eval_every={t.eval_every} must be >= 0 (0 = only at the end)")
    _require(t.log_every_secs >= 0, f"train.log_every_secs={t.log_every_secs} must be >= 0")
    _require(t.keep_every >= 0, f"train.keep_every={t.keep_every} must be >= 0 (0 = none)")
    _require(t.stop_after_steps >= 0, f"train.stop_after_steps={t.stop_after_steps} must be >= 0 (0 = never)")
    _require(t.checkpoint_every >= 1, f"train.checkpoint_every={t.checkpoint_every} must be >= 1")
    _require(t.nonfinite in ("stop", "skip"), f"train.nonfinite={t.nonfinite!r}: use 'stop' or 'skip'")
    profile = (t.get("profile_steps", 0), t.get("profile_after", 0))  # Configs saved before they existed lack them.
    _require(min(profile) >= 0, f"train.profile_steps and train.profile_after={profile} must be >= 0")
    _require(t.keep_checkpoints >= 1, f"train.keep_checkpoints={t.keep_checkpoints} must be >= 1")
    loss_weights(config)
    check_family(config, get_spec(config.objective.name).family)
    check_electra(config)
    objective = build_objective(config)
    check_objective_lengths(config, objective)
    return objective


def _validate_scale(config: ml_collections.ConfigDict) -> None:
    """Precision, memory and multi-process keys (model.param_dtype, model.remat, train.microbatches, mesh.*)."""
    m, t, mesh = config.model, config.train, config.mesh
    _require(m.param_dtype in ("float32", "bfloat16"), f"model.param_dtype={m.param_dtype!r}: use float32 or bfloat16")
    _require(m.remat in REMATS, f"model.remat={m.remat!r}: expected one of {REMATS}")
    _require(t.microbatches >= 1 and config.data.batch_size % t.microbatches == 0,
             f"train.microbatches={t.microbatches} must be >= 1 and divide data.batch_size={config.data.batch_size}")
    if m.attention_impl == "cudnn":  # cuDNN fused attention: GPU, half precision, no attention dropout.
        backend = jax.default_backend()
        _require(backend == "gpu", f"model.attention_impl='cudnn' needs a GPU (this backend: {backend})")
        _require(m.dtype == "bfloat16", f"model.attention_impl='cudnn' needs model.dtype='bfloat16', not {m.dtype!r}")
        _require(m.attention_dropout == 0.0, "model.attention_impl='cudnn' with model.attention_dropout > 0 would train"
                 " on the unfused einsum path; set model.attention_dropout=0")
    _require(mesh.distributed in ("auto", "on", "off"), f"mesh.distributed={mesh.distributed!r}: use auto, on or off")
    _require(mesh.num_processes >= 0, f"mesh.num_processes={mesh.num_processes} must be >= 0 (0 = from the cluster)")


def loss_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
    """train.loss_weights, e.g. "rtd=50,mlm=1", as {head: weight}; heads it does not name weigh 1."""
    weights = {}
    for item in filter(None, (s.strip() for s in config.train.loss_weights.split(","))):
        head, _, value = item.partition("=")
        try:
            weights[head.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"train.loss_weights item {item!r} is not head=number") from None
    return weights


def check_family(config: ml_collections.ConfigDict, objective_family: str) -> None:
    _require(
        config.model.family == objective_family,
        f"objective {config.objective.name!r} feeds a {objective_family!r} model, but model.family="
        f"{config.model.family!r}; set --config.model.family={objective_family} (or auto)",
    )


def check_electra(config: ml_collections.ConfigDict) -> None:
    """The ELECTRA objective and the ELECTRA generator + discriminator model come together."""
    name, electra = config.objective.name, config.model.electra
    _require(name != "electra" or electra, "objective.name='electra' needs model.electra=True (the generator +"
             " discriminator pair); set --config.model.electra=True")
    _require(name == "electra" or not electra, f"model.electra=True trains only with objective.name='electra', not"
             f" {name!r}; set --config.model.electra=False")


def build_objective(config: ml_collections.ConfigDict) -> objectives.BuiltObjective:
    """The objective built for config.tokenizer's id layout. Raises ConfigError for settings its
    builder rejects (e.g. too few tokenizer.num_sentinels)."""
    try:
        specials = SpecialIds(vocab_size=config.tokenizer.vocab_size, num_sentinels=config.tokenizer.num_sentinels)
        return objectives.build(config.objective, specials, config.data.seq_len)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def objective_output_lengths(config: ml_collections.ConfigDict, objective: objectives.BuiltObjective) -> dict[str, int]:
    """Traces the objective (nothing runs): {ModelBatch sequence key: length}, e.g.
    {"encoder_inputs": 512, "decoder_inputs": 114}."""
    rows, row_length = config.data.batch_size, objective.row_budget.row_length
    ints = jax.ShapeDtypeStruct((rows, row_length), jnp.int32)
    packed = PackedBatch(ints, ints, ints, ints, jax.ShapeDtypeStruct((rows, row_length), jnp.bool_), ints)
    shapes = jax.eval_shape(objective.fn, jax.random.key(0), packed)
    return {key: shapes[key].shape[1] for key in SEQUENCE_KEYS if key in shapes}


def check_objective_lengths(config: ml_collections.ConfigDict, objective: objectives.BuiltObjective) -> None:
    """model.max_len covers every sequence the objective feeds the model (for encoder_decoder: the
    encoder length, which BART's objective.bart.encoder_extra_len grows, and the decoder length,
    the objective's targets_length)."""
    lengths = objective_output_lengths(config, objective)
    key = max(lengths, key=lengths.get)
    _require(
        config.model.max_len >= lengths[key],
        f"model.max_len={config.model.max_len} is shorter than the {lengths[key]}-token {SEQUENCE_KEYS[key]} that"
        f" objective {config.objective.name!r} feeds at data.seq_len={config.data.seq_len};"
        f" set --config.model.max_len={lengths[key]} or more",
    )


# Keys that may change between the first run in a workdir and a resumed one (besides the sections of
# objectives the run does not use).
RESUMABLE_CHANGES = ("train.", "mesh.", "data.worker_count", "data.eval_batch_size", "model.remat")


def check_resume_compatible(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict) -> None:
    """Resuming a workdir with a config that changes the model, data or objective is an error."""
    old, new = _flatten(json.loads(saved.to_json())), _flatten(json.loads(config.to_json()))
    active = f"objective.{config.objective.name}."
    changed = sorted(
        k
        for k in set(old) | set(new)
        if old.get(k) != new.get(k)
        and not k.startswith(RESUMABLE_CHANGES)
        and (not k.startswith("objective.") or k.startswith(active) or k == "objective.name")
    )
    _require(
        not changed,
        "the workdir was trained with a different config ("
        + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
        + "); use a new --workdir or the original config",
    )


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
