"""The T5 paper's baseline objectives (Raffel et al. 2020, section 3.3), for the encoder_decoder family.

"Replace corrupted spans" is `t5_span_corruption`; the others are:

- t5_deshuffle: each document's ordinary tokens are shuffled; the target is the original document.
- t5_mass: MASS-style, every noise token becomes [MASK]; the target is the original document.
- t5_drop_tokens: the noise tokens are dropped from the inputs; the targets are those tokens, EOS.

The noise of the last two is i.i.d. per token (the paper's baseline comparison, 15%), or T5's
random spans (`noise="spans"`). t5_mass draws T5's i.i.d. mask (`noise="iid"`); t5_drop_tokens
defaults to `noise="uniform"`, the same rate with T5's fixed count per document
(`documents.uniform_noise_mask`), so its lengths are known before the draw and its row budget fills
the encoder (602 raw tokens -> 512 inputs and 91 targets) without dropping a token; with "iid" its
rows hold data.seq_len raw tokens (the encoder about 85% full) and a document whose targets would
overflow is left out. Each document is corrupted on its own and stays its own segment on both
sides, as in `span_corruption`. One row (4 = [MASK], 1 = EOS):

    tokens                  [ 20  21  22  23   1 | 30  31   1 ]
    noise                   [  F   T   F   T   F |  T   F   F ]
    t5_mass encoder_inputs  [ 20   4  22   4   1 |  4  31   1 ]     lm_targets = tokens
    t5_drop_tokens inputs   [ 20  22   1 | 31   1 ]                 lm_targets [ 21  23  1 | 30  1 ]
    t5_deshuffle inputs     [ 22  20  23  21   1 | 31  30   1 ]     lm_targets = tokens
"""

import dataclasses
import functools

import ml_collections
import numpy as np

from pretrain_jax import row_budget
from pretrain_jax.batch import ModelBatch, PackedBatch
from pretrain_jax.objectives import documents, masks
from pretrain_jax.objectives import span_corruption as sc
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds

NOISE_KINDS = ("iid", "uniform", "spans")


@dataclasses.dataclass(frozen=True)
class BaselineNoise:
    """Validated noise keys shared by t5_mass and t5_drop_tokens."""

    noise: str
    noise_density: float
    mean_noise_span_length: float

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int, where: str):
        if cfg.noise not in NOISE_KINDS:
            raise ValueError(f"{where}: noise={cfg.noise!r} must be one of {NOISE_KINDS}")
        density, mean = float(cfg.noise_density), float(cfg.mean_noise_span_length)
        if cfg.noise == "spans":
            sc.validate_span_noise(density, mean, seq_len, where)
            sc.check_sentinels(row_budget.plain(seq_len), density, mean, specials, where)
        elif not 0.0 < density < 1.0:
            raise ValueError(f"{where}: noise_density={density} must be in (0, 1)")
        elif seq_len < 2:
            raise ValueError(f"{where}: data.seq_len={seq_len} is too short (a document needs a token + EOS)")
        return cls(cfg.noise, density, mean)

    def mask_fn(self):
        """(rng, eligible, segment_ids) -> (noise, corruptible)."""
        if self.noise == "iid":
            return functools.partial(documents.iid_noise_mask, noise_density=self.noise_density)
        if self.noise == "uniform":
            return functools.partial(documents.uniform_noise_mask, noise_density=self.noise_density)
        return functools.partial(
            documents.random_spans_noise_mask,
            noise_density=self.noise_density,
            mean_noise_span_length=self.mean_noise_span_length,
        )


def _corrupt(rng, packed: PackedBatch, specials: SpecialIds, noise: BaselineNoise):
    eligible = masks.eligible_tokens(packed.tokens, packed.segment_ids, specials)
    noise_mask, corruptible = noise.mask_fn()(rng, eligible, packed.segment_ids)
    return sc.describe_corruption(packed.tokens, packed.segment_ids, noise_mask, specials), corruptible


@register("t5_deshuffle", family="encoder_decoder", heads=("lm",))
def build_deshuffle(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    del cfg  # no hyper-parameters
    if seq_len < 2:
        raise ValueError(f"config.objective.t5_deshuffle: data.seq_len={seq_len} is too short")

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        eligible = masks.eligible_tokens(packed.tokens, packed.segment_ids, specials)
        shuffled = documents.shuffle_within_documents(rng, packed.tokens, eligible, packed.segment_ids)
        layout = (packed.segment_ids, packed.positions)
        return sc.encoder_decoder_batch((shuffled, *layout), (packed.tokens, *layout))

    return objective


@register("t5_mass", family="encoder_decoder", heads=("lm",))
def build_mass(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    noise = BaselineNoise.from_config(cfg, specials, seq_len, "config.objective.t5_mass")

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        corruption, corruptible = _corrupt(rng, packed, specials, noise)
        return sc.denoise(
            corruption,
            corruptible,
            inputs_fn=functools.partial(sc.noise_to_mask_token, mask_id=specials.mask),
            targets_fn=sc.original_tokens,
            inputs_length=seq_len,
            targets_length=seq_len,
        )

    return objective


def drop_tokens_costs(noise: BaselineNoise) -> row_budget.CostFn:
    """A document's (inputs, targets) lengths with its noise dropped: n - num_noise and num_noise + 1
    (EOS), T5's count of its e ordinary tokens; (0, 0) for e < 2, which is left out."""

    def cost(num_tokens, num_eligible, num_interior):
        del num_interior  # no sentinels: a special token inside the noise costs nothing more
        noise_count = documents.t5_noise_count(np.maximum(num_eligible, 2), noise.noise_density, xp=np)
        corruptible = num_eligible >= 2
        return np.stack([np.where(corruptible, num_tokens - noise_count, 0),
                         np.where(corruptible, noise_count + 1, 0)], -1)

    return cost


def drop_tokens_lengths(cfg, specials: SpecialIds, seq_len: int) -> tuple[BaselineNoise, int, row_budget.RowBudget]:
    """(noise, targets_length, budget) of t5_drop_tokens. With a fixed count ("uniform", "spans"),
    the rows hold the most raw tokens whose inputs fit data.seq_len, and the targets length defaults
    to what such a row's targets need (T5's helper, for these targets); with "iid", rows of
    data.seq_len and T5's span-corruption targets length (114 at 512)."""
    where = "config.objective.t5_drop_tokens"
    noise = BaselineNoise.from_config(cfg, specials, seq_len, where)
    targets_length = sc.validate_targets_length(cfg.targets_length, where)
    if noise.noise == "iid":
        if targets_length == 0:
            targets_length = sc.default_targets_length(seq_len, noise.noise_density, noise.mean_noise_span_length)
        return noise, targets_length, row_budget.plain(seq_len)
    cost = drop_tokens_costs(noise)
    if targets_length == 0:
        longest = row_budget.sized_by_cost((seq_len, 4 * seq_len + 9), cost, specials.ordinary_range).row_length
        targets_length = int(cost(np.array([longest]), np.array([longest]), np.array([0]))[0, 1])
    return noise, targets_length, row_budget.sized_by_cost((seq_len, targets_length), cost, specials.ordinary_range)


def _drop_tokens_budget(cfg, specials: SpecialIds, seq_len: int) -> row_budget.RowBudget:
    return drop_tokens_lengths(cfg, specials, seq_len)[2]


@register("t5_drop_tokens", family="encoder_decoder", heads=("lm",), row_budget=_drop_tokens_budget)
def build_drop_tokens(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    noise, targets_length, _ = drop_tokens_lengths(cfg, specials, seq_len)

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        corruption, corruptible = _corrupt(rng, packed, specials, noise)
        return sc.denoise(
            corruption,
            corruptible,
            inputs_fn=sc.drop_noise_tokens,
            targets_fn=functools.partial(sc.noise_spans_then_eos, eos=specials.eos, with_sentinels=False),
            inputs_length=seq_len,
            targets_length=targets_length,
        )

    return objective
