"""BERT masked LM (google-research/bert create_pretraining_data.py), with whole-word, SpanBERT span
and ALBERT n-gram masking, for the encoder family.

Per row: the eligible tokens are the real ordinary tokens (never padding or a special id). A budget
of n tokens is set, n = min(max_predictions, max(1, round(num_eligible * rate))) ("fixed", the
reference) or the number of eligible tokens passing a Bernoulli(rate) draw, capped at
max_predictions ("bernoulli"). Units are chosen in a random order until the budget is met
(`masks.select_units`: a unit never splits, one that would exceed the budget is skipped). Each
chosen token independently becomes [MASK] (mask_prob), a random ordinary id (random_prob) or stays;
with unit="span" the choice is made once per span, as SpanBERT does (a span is all [MASK], all
random ids, or all kept).

    tokens        [ 21  40  41   1  30   1   0   0 ]     L = 8, P = max_predictions = 3
    segment_ids   [  1   1   1   1   2   2   0   0 ]
    chosen        [  F   T   F   F   T   F   F   F ]
    inputs        [ 21   4  41   1  30   1   0   0 ]     (40 -> [MASK], 30 kept)
    mlm_positions [  1   4   0 ]
    targets["mlm"]: ids [ 40  30  21 ]                    (padding slots gather position 0)
                weights [  1   1   0 ]
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives import masks, prefix_sums
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds

COUNTS = ("fixed", "bernoulli")
UNITS = ("token", "word", "span", "ngram")


@dataclasses.dataclass(frozen=True)
class MaskedLmSettings:
    """Validated masked-LM hyper-parameters (the keys of config.objective.bert_mlm)."""

    rate: float
    max_predictions: int
    count: str
    mask_prob: float
    random_prob: float
    unit: str
    span_geometric_p: float
    span_max_len: int
    ngram_max: int

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, seq_len: int, where: str = "bert_mlm"):
        """Reads and validates the settings; `where` names the config section in error messages."""
        fields = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in fields if name not in cfg]
        if missing:
            raise ValueError(f"config.objective.{where} lacks keys {missing}")
        settings = cls(**{name: cfg[name] for name in fields})
        settings.validate(seq_len, where)
        return settings

    def validate(self, seq_len: int, where: str) -> None:
        def fail(message):
            raise ValueError(f"config.objective.{where}: {message}")

        if not 0.0 < self.rate < 1.0:
            fail(f"rate={self.rate} must be in (0, 1)")
        if not isinstance(self.max_predictions, int) or not 1 <= self.max_predictions <= seq_len:
            fail(f"max_predictions={self.max_predictions} must be an int in [1, seq_len={seq_len}]")
        if self.count not in COUNTS:
            fail(f"count={self.count!r} must be one of {COUNTS}")
        if self.unit not in UNITS:
            fail(f"unit={self.unit!r} must be one of {UNITS}")
        for name in ("mask_prob", "random_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(f"{name}={getattr(self, name)} must be in [0, 1]")
        if self.mask_prob + self.random_prob > 1.0 + 1e-9:
            fail(f"mask_prob + random_prob = {self.mask_prob + self.random_prob} exceeds 1")
        if not 0.0 < self.span_geometric_p < 1.0:
            fail(f"span_geometric_p={self.span_geometric_p} must be in (0, 1)")
        if not isinstance(self.span_max_len, int) or self.span_max_len < 1:
            fail(f"span_max_len={self.span_max_len} must be an int >= 1")
        if not isinstance(self.ngram_max, int) or self.ngram_max < 1:
            fail(f"ngram_max={self.ngram_max} must be an int >= 1")

    def length_probs(self):
        """Span lengths in units (1..K) for select_units, or None for single units."""
        if self.unit == "span":
            return masks.truncated_geometric_probs(self.span_geometric_p, self.span_max_len)
        if self.unit == "ngram":
            return masks.harmonic_probs(self.ngram_max)
        return None


def choose_positions(rng, tokens, segment_ids, word_starts, settings: MaskedLmSettings,
                     specials: SpecialIds) -> masks.UnitSelection:
    """Which tokens to predict: (B, L) arrays (see masks.UnitSelection; `rank` is all zeros for
    unit="token", whose order is a plain random score per token). Pure and jittable."""
    if settings.unit != "token" and word_starts is None:
        raise ValueError(f"unit={settings.unit!r} needs packed.word_starts; the batch has none")
    batch, seq_len = tokens.shape
    order_key, unit_key = jax.random.split(rng)
    eligible = masks.eligible_tokens(tokens, segment_ids, specials)
    num_eligible = eligible.sum(axis=1)
    # With unit="token" these scores also order the tokens, so "bernoulli" picks exactly the tokens
    # whose draw passed (a random subset of them when more than max_predictions pass).
    scores = jax.random.uniform(order_key, (batch, seq_len))
    if settings.count == "fixed":
        table = masks.fixed_budget_table(settings.rate, settings.max_predictions, seq_len)
        budget = jnp.asarray(table)[num_eligible]
    else:
        passed = (eligible & (scores < settings.rate)).sum(axis=1)
        budget = jnp.minimum(passed, settings.max_predictions).astype(jnp.int32)

    if settings.unit == "token":
        chosen = masks.first_in_random_order(scores, eligible, budget)
        return masks.UnitSelection(chosen=chosen, units=chosen.astype(jnp.int32), rank=jnp.zeros_like(tokens))
    starts, run_starts = masks.unit_and_run_starts(eligible, segment_ids, jnp.asarray(word_starts, bool))
    return masks.select_units(
        unit_key, eligible, starts, run_starts, budget, settings.max_predictions, settings.length_probs()
    )


def corrupt(rng, tokens, chosen, mask_prob: float, random_prob: float, specials: SpecialIds, span_starts=None):
    """(B, L) inputs: each chosen token -> [MASK] (mask_prob), a uniformly random ordinary id from
    [first_normal_id, normal_id_end) (random_prob), or itself (the rest); others unchanged.

    span_starts: (B, L) bool, the first token of each chosen span, or None. Given, every token of a
    span takes the choice drawn at its start (each random id is still drawn per token):
        chosen      [ F  T  T  T  F  T ]
        span_starts [ F  T  F  F  F  T ]  ->  positions 1-3 share one draw, position 5 its own
    """
    draw_key, id_key = jax.random.split(rng)
    draw = jax.random.uniform(draw_key, tokens.shape)
    if span_starts is not None:
        index = jnp.arange(tokens.shape[-1], dtype=jnp.int32)
        latest_start = prefix_sums.cummax(jnp.where(span_starts, index, 0))
        draw = jnp.take_along_axis(draw, latest_start, axis=-1)
    random_ids = masks.random_ordinary_ids(id_key, tokens.shape, specials).astype(tokens.dtype)
    inputs = jnp.where(chosen & (draw < mask_prob), specials.mask, tokens)
    replace = chosen & (draw >= mask_prob) & (draw < mask_prob + random_prob)
    return jnp.where(replace, random_ids, inputs)


def mask_tokens(rng, tokens, segment_ids, word_starts, settings: MaskedLmSettings,
                specials: SpecialIds) -> ModelBatch:
    """The masked-LM part of an encoder batch: `inputs` (B, L), `mlm_positions` (B, P) and the head's
    targets {"mlm": Targets(ids, weights)}, each (B, P). Shared by bert_mlm, nsp/sop and electra."""
    choose_key, corrupt_key = jax.random.split(rng)
    selection = choose_positions(choose_key, tokens, segment_ids, word_starts, settings, specials)
    chosen = selection.chosen
    span_starts = selection.units > 0 if settings.unit == "span" else None
    positions, weights = masks.compact_positions(chosen, settings.max_predictions)
    return {
        "inputs": corrupt(corrupt_key, tokens, chosen, settings.mask_prob, settings.random_prob, specials,
                          span_starts),
        "mlm_positions": positions,
        TARGETS: {"mlm": Targets(jnp.take_along_axis(tokens, positions, axis=1), weights)},
    }


@register("bert_mlm", family="encoder", heads=("mlm",))
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    return build_from_settings(MaskedLmSettings.from_config(cfg, seq_len), specials)


def build_from_settings(settings: MaskedLmSettings, specials: SpecialIds):
    """The bert_mlm objective for already validated settings (also ELECTRA's generator input)."""

    def objective(rng: jax.Array, packed: PackedBatch) -> ModelBatch:
        tokens = jnp.asarray(packed.tokens, jnp.int32)
        segment_ids = jnp.asarray(packed.segment_ids, jnp.int32)
        batch = mask_tokens(rng, tokens, segment_ids, packed.word_starts, settings, specials)
        batch.update(
            segment_ids=segment_ids,
            positions=jnp.asarray(packed.positions, jnp.int32),
            token_type_ids=jnp.zeros_like(tokens),
        )
        return batch

    return objective
