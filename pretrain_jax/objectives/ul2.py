"""UL2 mixture of denoisers (Tay et al. 2022, arXiv 2205.05131), for the encoder_decoder family.

Seven denoisers by default: R (mean span 3, density 0.15), (8, 0.15); X (3, 0.5), (8, 0.5),
(64, 0.15), (64, 0.5), all T5 span corruption with sentinels; and S, prefix LM as seq2seq (the
inputs are a prefix of uniform length in [1, n), the targets the rest, no sentinels). A span
denoiser is X ("extreme") when its spans are long (mean >= 12) or its density high (>= 0.3), else R
(the paper's definition). Each document of a packed row draws its own denoiser from the mixture
rates (uniform by default, as `ul2_objective` in the paper's appendix when `rates` is None) and
starts its encoder inputs with the mode token: [NLU] for R, [NLG] for X, [S2S] for S.

All denoisers share one pass: the span noise mask takes each document's density and mean span as
arrays, so mixing per document costs nothing extra. Shapes are static: the encoder has
data.seq_len tokens, the decoder the largest targets length any denoiser needs (data.seq_len with
the default mixture, set by the S and 50% denoisers).

Lengths: the denoiser is drawn on device, per document, after the rows are packed, so the row
budget (`ul2_budget`) counts each document at the most any denoiser with a positive rate can make
of it (in the encoder: the R-denoiser's inputs or S's prefix, nearly the whole document, plus the
mode token; in the decoder: S's continuation, nearly the whole document). So no document
overflows, and the rows hold about data.seq_len raw tokens: the encoder is full only under S with a
long prefix, and the measured fill per denoiser is in BENCHMARKS.md. Giving each denoiser its own
lengths, as UL2's seqio mixture does, would need the denoiser drawn in the host pipeline, before
packing, which this project's objectives (randomness from the step's key, on device) do not do.

    tokens          [ 20  21  22  23   1 | 30  31  32  33   1 ]
    denoiser        [  S                 | R (3, 0.15)        ]
    encoder_inputs  [  9  20   1 |  7  30  31  32 V-1  1 ]           ([S2S] = 9, [NLU] = 7)
    lm_targets      [ 21  22  23   1 | V-1  33   1 ]
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax import row_budget
from pretrain_jax.batch import ModelBatch, PackedBatch
from pretrain_jax.objectives import documents, masks
from pretrain_jax.objectives import span_corruption as sc
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds

# UL2's boundary between regular (R) and extreme (X) span denoising.
EXTREME_MEAN_SPAN = 12.0
EXTREME_DENSITY = 0.3


@dataclasses.dataclass(frozen=True)
class Ul2Settings:
    """Validated keys of config.objective.ul2, as per-denoiser tables (span denoisers first, S last)."""

    mean_noise_span_lengths: tuple[float, ...]
    noise_densities: tuple[float, ...]
    rates: tuple[float, ...]  # normalised sampling probabilities, S last
    mode_ids: tuple[int, ...]
    mode_tokens: bool
    targets_length: int
    budget: row_budget.RowBudget

    @property
    def num_span_denoisers(self) -> int:
        return len(self.noise_densities)

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
        where = "config.objective.ul2"
        means = tuple(float(m) for m in cfg.mean_noise_span_lengths)
        densities = tuple(float(d) for d in cfg.noise_densities)
        span_rates = tuple(float(r) for r in cfg.span_denoiser_rates)
        if not len(means) == len(densities) == len(span_rates):
            raise ValueError(
                f"{where}: mean_noise_span_lengths, noise_densities and span_denoiser_rates must have"
                f" one entry per span denoiser (got {len(means)}, {len(densities)}, {len(span_rates)})"
            )
        for mean, density in zip(means, densities, strict=True):
            sc.validate_span_noise(density, mean, seq_len, where)
        rates = np.array((*span_rates, float(cfg.prefix_lm_rate)))
        if np.any(rates < 0) or rates.sum() <= 0:
            raise ValueError(f"{where}: mixture rates {tuple(rates)} must be >= 0 with a positive sum")
        targets_length = sc.validate_targets_length(cfg.targets_length, where)
        if targets_length == 0:
            needed = [sc.default_targets_length(seq_len, d, m) for m, d in zip(means, densities, strict=True)]
            # S-denoiser: a lone document of seq_len - 1 tokens + EOS keeps at most seq_len - 1 targets.
            targets_length = max(needed + [seq_len] * (cfg.prefix_lm_rate > 0))
        modes = [
            specials.nlg if mean >= EXTREME_MEAN_SPAN or density >= EXTREME_DENSITY else specials.nlu
            for mean, density in zip(means, densities, strict=True)
        ]
        used = [(m, d) for m, d, r in zip(means, densities, rates[:-1], strict=True) if r > 0]
        budget = ul2_budget(used, rates[-1] > 0, bool(cfg.mode_tokens), seq_len, targets_length, specials)
        for mean, density in used:
            sc.check_sentinels(budget, density, mean, specials, where)
        return cls(
            mean_noise_span_lengths=means,
            noise_densities=densities,
            rates=tuple(float(r) for r in rates / rates.sum()),
            mode_ids=(*modes, specials.s2s),
            mode_tokens=bool(cfg.mode_tokens),
            targets_length=targets_length,
            budget=budget,
        )


def ul2_budget(span_denoisers, with_prefix_lm: bool, mode_tokens: bool, seq_len: int, targets_length: int,
               specials: SpecialIds) -> row_budget.RowBudget:
    """Rows sized for the worst denoiser of each document: its cost is the elementwise maximum over
    the span denoisers ((mean, density) pairs) and, if used, S (prefix LM: inputs n - 1, the shortest
    continuation, targets e, the longest, each at most), plus the mode token in the inputs."""
    mode = int(mode_tokens)
    costs = [sc.span_costs(density, mean, prefix_tokens=mode) for mean, density in span_denoisers]

    def cost(num_tokens, num_eligible, num_interior):
        corruptible = num_eligible >= 2
        worst = [c(num_tokens, num_eligible, num_interior) for c in costs]
        if with_prefix_lm:
            prefix_lm = np.stack([num_tokens - 1 + mode, num_eligible], -1)
            worst.append(np.where(corruptible[:, None], prefix_lm, 0))
        return np.max(np.stack(worst), axis=0)

    return row_budget.sized_by_cost((seq_len, targets_length), cost, specials.ordinary_range)


def choose_denoisers(rng, segment_ids, rates):
    """(B, L) int32: the denoiser of each document (an index into `rates`), drawn per document."""
    start, _ = documents.document_bounds(segment_ids)
    logits = jnp.log(jnp.asarray(rates, jnp.float32))
    choice = jax.random.categorical(rng, logits, shape=segment_ids.shape).astype(jnp.int32)
    return jnp.take_along_axis(choice, start, axis=-1)


def _budget(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int) -> row_budget.RowBudget:
    return Ul2Settings.from_config(cfg, specials, seq_len).budget


@register("ul2", family="encoder_decoder", heads=("lm",), row_budget=_budget)
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    settings = Ul2Settings.from_config(cfg, specials, seq_len)
    prefix_lm = settings.num_span_denoisers
    # Table rows per denoiser; the S row's span settings are placeholders, never used.
    means = jnp.asarray((*settings.mean_noise_span_lengths, 1.0), jnp.float32)
    densities = jnp.asarray((*settings.noise_densities, 0.5), jnp.float32)
    mode_ids = jnp.asarray(settings.mode_ids, jnp.int32)

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        choice_key, span_key, prefix_key = jax.random.split(rng, 3)
        tokens, segment_ids = packed.tokens, packed.segment_ids
        denoiser = choose_denoisers(choice_key, segment_ids, settings.rates)
        is_prefix_lm = denoiser == prefix_lm
        eligible = masks.eligible_tokens(tokens, segment_ids, specials)
        span_noise, span_ok = documents.random_spans_noise_mask(
            span_key, eligible, segment_ids, densities[denoiser], means[denoiser]
        )
        prefix_noise, prefix_ok = documents.random_prefix_noise_mask(prefix_key, eligible, segment_ids)
        noise = jnp.where(is_prefix_lm, prefix_noise, span_noise)
        corruption = sc.describe_corruption(tokens, segment_ids, noise, specials)

        def inputs_fn(c):
            inputs = sc.noise_span_to_sentinel(c, with_sentinels=~is_prefix_lm)
            return sc.with_document_prefix(inputs, c, mode_ids[denoiser], enabled=settings.mode_tokens)

        return sc.denoise(
            corruption,
            jnp.where(is_prefix_lm, prefix_ok, span_ok),
            inputs_fn=inputs_fn,
            targets_fn=functools.partial(sc.noise_spans_then_eos, eos=specials.eos, with_sentinels=~is_prefix_lm),
            inputs_length=seq_len,
            targets_length=settings.targets_length,
            max_spans=specials.num_sentinels,
        )

    return objective
