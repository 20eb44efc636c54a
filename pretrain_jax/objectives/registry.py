"""Objective registry: name -> (model family, loss heads, builder, row budget).

A builder binds every hyper-parameter from the config when the objective is built, and returns a
pure function `objective(rng, packed) -> ModelBatch` whose output shapes depend on the config only:

    @register("bert_mlm", family="encoder", heads=("mlm",), heads=("mlm",))
    def build(cfg, specials, seq_len):            # cfg = config.objective.bert_mlm
        def objective(rng, packed): ...
        return objective

`heads` names the loss heads the model returns logits for; the first is the one progress lines and
evaluations report as `loss` and `accuracy`, and train.loss_weights may weight only these.

`seq_len` is data.seq_len, the length of the sequences the model reads. The packed rows hold
data.seq_len raw tokens, unless the objective registers `row_budget=fn`, fn(cfg, specials, seq_len)
-> RowBudget (row_budget.py): then the rows hold what the budget says (T5 span corruption: 569 raw
tokens, so that inputs + EOS fill an encoder of 512) and `packed` has its row_length.
"""

import dataclasses
from collections.abc import Callable

import ml_collections

from pretrain_jax import row_budget
from pretrain_jax.batch import ModelBatch, PackedBatch
from pretrain_jax.specials import SpecialIds

FAMILIES = ("encoder", "decoder", "encoder_decoder", "two_stream")

ObjectiveFn = Callable[..., ModelBatch]  # (rng: jax.Array, packed: PackedBatch) -> ModelBatch
Builder = Callable[[ml_collections.ConfigDict, SpecialIds, int], ObjectiveFn]
BudgetFn = Callable[[ml_collections.ConfigDict, SpecialIds, int], row_budget.RowBudget]
# (cfg, specials) -> the objective's host step on each document's text, or None (see
# data/pipeline.py HostTransform): fim's character-level cuts, the one objective step off device.
HostStepFn = Callable[[ml_collections.ConfigDict, SpecialIds], Callable | None]


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    name: str
    family: str
    heads: tuple[str, ...]  # Loss heads; heads[0] is the reported one.
    builder: Builder
    row_budget: BudgetFn | None = None
    host_transform: HostStepFn | None = None


_REGISTRY: dict[str, ObjectiveSpec] = {}


def register(name: str, family: str, heads: tuple[str, ...], row_budget: BudgetFn | None = None,
             host_transform: HostStepFn | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering `builder` under `name` for one model family and its loss heads (with its
    row budget and host step, if it has them)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    if not heads or isinstance(heads, str):
        raise ValueError(f"objective {name!r}: heads must be a non-empty tuple of head names, not {heads!r}")

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is registered twice")
        _REGISTRY[name] = ObjectiveSpec(name, family, tuple(heads), builder, row_budget, host_transform)
        return builder

    return decorate


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ObjectiveSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; registered: {', '.join(registered_names())}")
    return _REGISTRY[name]


@dataclasses.dataclass(frozen=True)
class BuiltObjective:
    """Everything a run takes from its objective, built once at start-up (`build`)."""

    spec: ObjectiveSpec  # name, family, heads
    fn: ObjectiveFn  # (rng, packed) -> ModelBatch, pure and jittable
    row_budget: row_budget.RowBudget  # raw tokens per packed row
    host_transform: Callable | None  # the host step on each document's text, or None
    specials: SpecialIds  # the id layout it was built for


def build(objective_config: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int) -> BuiltObjective:
    """Builds `config.objective` once: function, row budget and host step, for `specials`' id layout."""
    fn, _ = build_objective(objective_config, specials, seq_len)
    return BuiltObjective(get_spec(objective_config.name), fn, build_row_budget(objective_config, specials, seq_len),
                          build_host_transform(objective_config, specials), specials)


def build_objective(
    objective_config: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int
) -> tuple[ObjectiveFn, str]:
    """Builds `config.objective` -> (objective function, model family it feeds)."""
    spec = get_spec(objective_config.name)
    if spec.name not in objective_config:
        raise ValueError(f"config.objective has no section {spec.name!r} for its hyper-parameters")
    return spec.builder(objective_config[spec.name], specials, seq_len), spec.family


def build_row_budget(objective_config: ml_collections.ConfigDict, specials: SpecialIds,
                     seq_len: int) -> row_budget.RowBudget:
    """The RowBudget of `config.objective`: the registered one, else rows of seq_len tokens."""
    spec = get_spec(objective_config.name)
    if spec.row_budget is None:
        return row_budget.plain(seq_len)
    return spec.row_budget(objective_config[spec.name], specials, seq_len)


def build_host_transform(objective_config: ml_collections.ConfigDict, specials: SpecialIds):
    """The host step of `config.objective` on each document's text, or None (most objectives)."""
    spec = get_spec(objective_config.name)
    if spec.host_transform is None:
        return None
    return spec.host_transform(objective_config[spec.name], specials)


__all__ = ["FAMILIES", "BuiltObjective", "ObjectiveSpec", "PackedBatch", "build", "build_host_transform",
           "build_objective", "build_row_budget", "get_spec", "register"]
