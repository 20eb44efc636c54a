"""Fill-in-the-middle (Bavarian et al. 2022, arXiv 2207.14255), for the decoder family.

With probability `fim_rate` a document is transformed, otherwise it is plain causal LM. Its text
(the document without its final EOS, m tokens) is cut at two points drawn independently and
uniformly and sorted, into prefix / middle / suffix (any part may be empty), and emitted as
    PSM: <PRE> prefix <SUF> suffix <MID> middle EOS
    SPM: <PRE> <SUF> suffix <MID> prefix middle EOS     (the paper's SPM variant, Appendix D)
in SPM order with probability `spm_rate` (0.5: the paper's joint PSM/SPM training), then trained
causally. Loss is on every next token (`loss_on="all"`, the paper) or only on the middle and the EOS
that ends it (`loss_on="middle"`); untransformed documents always have full loss.

Where the cuts fall (`cut_unit`):
- "token" (default): on device, inside the jitted step, two points uniform in [0, m] of the
  document's tokens. A transformed document grows by its 3 sentinels, so the row budget counts every
  document at its length + 3 (rows of data.seq_len - 3 tokens for one document); the documents are
  laid out one after another in the output row of data.seq_len, and no text token is lost. (In a
  row not packed under the budget, documents are transformed only while their sentinels fit.)
- "char": on the characters of the document's text, as the paper recommends, before tokenizing:
  the one objective step that runs on the host (`host_transform`, in the data pipeline, its
  randomness fixed by the seed and the document's place in the stream). Each part is tokenized on
  its own and the document arrives already transformed; on device it is plain causal LM, so
  loss_on must be "all" (the device no longer knows where the middle starts).

    tokens   [ 20  21  22  23   1 | 30   1 ]                  (text m = 4; cuts 1 and 3)
    PSM out  [ 10  20  12  23  11  21  22   1 | 30   1 |  0 ]  (<PRE> = 10, <MID> = 11, <SUF> = 12)
    SPM out  [ 10  12  23  11  20  21  22   1 | 30   1 |  0 ]  (the second document untransformed)
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from pretrain_jax import row_budget
from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives import documents
from pretrain_jax.objectives import span_corruption as sc
from pretrain_jax.objectives.causal_lm import next_token_targets
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds

LOSS_ON = ("all", "middle")
CUT_UNITS = ("token", "char")
SENTINELS = 3  # <PRE>, <SUF>, <MID>


@dataclasses.dataclass(frozen=True)
class FimSettings:
    """Validated keys of config.objective.fim."""

    fim_rate: float
    spm_rate: float
    loss_on: str
    cut_unit: str = "token"

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, seq_len: int):
        where = "config.objective.fim"
        for name in ("fim_rate", "spm_rate"):
            if not 0.0 <= cfg[name] <= 1.0:
                raise ValueError(f"{where}: {name}={cfg[name]} must be a probability in [0, 1]")
        if cfg.loss_on not in LOSS_ON:
            raise ValueError(f"{where}: loss_on={cfg.loss_on!r} must be one of {LOSS_ON}")
        if cfg.cut_unit not in CUT_UNITS:
            raise ValueError(f"{where}: cut_unit={cfg.cut_unit!r} must be one of {CUT_UNITS}")
        if cfg.cut_unit == "char" and cfg.loss_on != "all":
            raise ValueError(f"{where}: loss_on='middle' needs cut_unit='token' (character cuts are made on the"
                             " host, so the device cannot tell the middle); set loss_on='all'")
        if seq_len < SENTINELS + 2:
            raise ValueError(f"{where}: data.seq_len={seq_len} is too short for 3 sentinels, a token and EOS")
        return cls(float(cfg.fim_rate), float(cfg.spm_rate), cfg.loss_on, cfg.cut_unit)


class FimPlan(NamedTuple):
    """Per-document FIM draws, broadcast over each document's positions. Every field is (B, L).

    applied: bool, the document is transformed; spm: bool, in SPM order;
    lo, hi:  int32, the sorted cut points in [0, m]: prefix = text[:lo], middle = text[lo:hi],
             suffix = text[hi:m].
    """

    applied: jax.Array
    spm: jax.Array
    lo: jax.Array
    hi: jax.Array


def text_length(tokens, segment_ids, specials: SpecialIds):
    """(B, L) int32: m, the text tokens of each position's document (its length minus a final EOS)."""
    start, end = documents.document_bounds(segment_ids)
    ends_with_eos = jnp.take_along_axis(tokens, end, axis=-1) == specials.eos
    return end - start + 1 - ends_with_eos.astype(jnp.int32)


def draw_plan(rng, tokens, segment_ids, settings: FimSettings, specials: SpecialIds) -> FimPlan:
    """Draws, per document, whether to transform (fim_rate), the order (spm_rate) and two cuts
    independently uniform in [0, m]; documents without text (m = 0) are never transformed."""
    start, _ = documents.document_bounds(segment_ids)
    m = text_length(tokens, segment_ids, specials)
    apply_key, order_key, cut_key = jax.random.split(rng, 3)

    def per_document(values):
        return jnp.take_along_axis(values, start, axis=-1)

    chosen = per_document(jax.random.uniform(apply_key, tokens.shape) < settings.fim_rate)
    spm = per_document(jax.random.uniform(order_key, tokens.shape) < settings.spm_rate)
    cuts = jax.random.randint(cut_key, (2, *tokens.shape), 0, jnp.maximum(m, 0) + 1, dtype=jnp.int32)
    first, second = per_document(cuts[0]), per_document(cuts[1])
    applied = (segment_ids > 0) & (m >= 1) & chosen
    return FimPlan(applied, spm, jnp.minimum(first, second), jnp.maximum(first, second))


def apply_plan(tokens, segment_ids, plan: FimPlan, specials: SpecialIds, length: int):
    """Rewrites the planned documents, laid out one after another in rows of `length`:
    (tokens, segment_ids, positions, in_middle, transformed), each (B, length); in_middle (bool)
    marks the middle tokens and the EOS that ends a transformed document, transformed (bool) every
    token of a transformed document.

    Each document's text is first reordered in place (PSM: prefix, suffix, middle; SPM: suffix,
    prefix, middle), then every position emits the sentinels that go before it and its token (and,
    at the end of a document without EOS, the sentinels that go after its last token):

        text [ 20  21  22  23 ] + EOS, lo = 1, hi = 3, PSM
        reordered   20    23    21  22   EOS
        emitted   <PRE>20 <SUF>23 <MID>21 22 EOS  ->  <PRE> 20 <SUF> 23 <MID> 21 22 EOS
    """
    start, end = documents.document_bounds(segment_ids)
    row_length = tokens.shape[-1]
    o = jnp.arange(row_length, dtype=jnp.int32) - start
    m = text_length(tokens, segment_ids, specials)
    lo, hi, spm = plan.lo, plan.hi, plan.spm
    # Rows packed under fim's row budget have room for 3 more tokens per document. Other rows (made
    # by hand) transform their planned documents in order while the sentinels fit, so no token is lost.
    room = length - jnp.sum(segment_ids > 0, axis=-1, keepdims=True)
    planned_so_far = documents.cumsum_within_documents(plan.applied & (o == 0), jnp.zeros_like(start))
    planned_so_far = jnp.take_along_axis(planned_so_far, start, axis=-1)
    applied = plan.applied & (SENTINELS * planned_so_far <= room)
    suffix_len = m - hi
    psm_source = jnp.select([o < lo, o < lo + suffix_len], [o, hi + o - lo], lo + o - lo - suffix_len)
    spm_source = jnp.where(o < suffix_len, hi + o, o - suffix_len)
    source = jnp.where(applied & (o < m), jnp.where(spm, spm_source, psm_source), o)
    reordered = jnp.take_along_axis(tokens, jnp.clip(start + source, 0, row_length - 1), axis=-1)
    in_middle = applied & (((source >= lo) & (source < hi) & (o < m)) | (o >= m))

    markers = [jnp.zeros_like(o), jnp.where(spm, 0, lo), jnp.where(spm, suffix_len, lo + suffix_len)]
    ids = [specials.fim_prefix, specials.fim_suffix, specials.fim_middle]
    has_eos = m < end - start + 1
    before = [applied & (o == marker) for marker in markers]
    after = [applied & ~has_eos & (o == m - 1) & (marker == m) for marker in markers[1:]]
    real = segment_ids > 0
    emitted = sc.Emission(
        jnp.stack([jnp.full_like(tokens, i) for i in ids] + [reordered] + [jnp.full_like(tokens, i) for i in ids[1:]],
                  -1),
        jnp.stack(before + [real] + after, -1),
    )
    out_tokens, out_segments, out_positions = sc.compact(emitted, segment_ids, length)
    # The two flags travel through the same compaction as one code: 1 = in the middle, 2 = transformed.
    code = 2 * applied.astype(jnp.int32)
    codes = jnp.stack([code] * 3 + [code + in_middle.astype(jnp.int32)] + [code] * 2, -1)
    out_code, _, _ = sc.compact(sc.Emission(codes, emitted.keep), segment_ids, length)
    return out_tokens, out_segments, out_positions, out_code % 2 == 1, out_code >= 2


def host_transform(cfg: ml_collections.ConfigDict, specials: SpecialIds):
    """The host step of cut_unit="char", or None: (text, encode_batch, rng) -> the transformed
    document's token ids without EOS, or None where the document stays plain (tokenized as usual).

    'Hello world' cut at characters 3 and 8 (PSM) -> <PRE> ids('Hel') <SUF> ids('rld') <MID> ids('lo wo')
    """
    if cfg.cut_unit != "char":
        return None
    fim_rate, spm_rate = float(cfg.fim_rate), float(cfg.spm_rate)

    def transform(text: str, encode_batch, rng: np.random.Generator) -> list[int] | None:
        if not text or rng.random() >= fim_rate:
            return None
        lo, hi = sorted(int(c) for c in rng.integers(0, len(text) + 1, size=2))
        prefix, middle, suffix = encode_batch([text[:lo], text[lo:hi], text[hi:]])
        if rng.random() < spm_rate:
            return [specials.fim_prefix, specials.fim_suffix, *suffix, specials.fim_middle, *prefix, *middle]
        return [specials.fim_prefix, *prefix, specials.fim_suffix, *suffix, specials.fim_middle, *middle]

    return transform


def fim_costs(num_tokens, num_eligible, num_interior):
    """A document's length in the output row, if transformed: its length + 3 sentinels."""
    del num_eligible, num_interior
    return (num_tokens + SENTINELS)[:, None]


def _budget(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int) -> row_budget.RowBudget:
    settings = FimSettings.from_config(cfg, seq_len)
    if settings.cut_unit == "char":
        return row_budget.plain(seq_len)
    return row_budget.sized_by_cost((seq_len,), fim_costs, specials.ordinary_range)


@register("fim", family="decoder", heads=("lm",), row_budget=_budget, host_transform=host_transform)
def build(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    settings = FimSettings.from_config(cfg, seq_len)

    def objective(rng, packed: PackedBatch) -> ModelBatch:
        tokens, segment_ids = jnp.asarray(packed.tokens, jnp.int32), jnp.asarray(packed.segment_ids, jnp.int32)
        positions = jnp.asarray(packed.positions, jnp.int32)
        if settings.cut_unit == "token":  # with "char" the host has transformed the documents already
            plan = draw_plan(rng, tokens, segment_ids, settings, specials)
            tokens, segment_ids, positions, in_middle, transformed = apply_plan(
                tokens, segment_ids, plan, specials, seq_len)
        targets, weights = next_token_targets(tokens, segment_ids)
        if settings.loss_on == "middle":
            target_in_middle = jnp.pad(in_middle[:, 1:], ((0, 0), (0, 1)))
            weights = weights & (~transformed | target_in_middle)
        return {
            "inputs": tokens,
            "segment_ids": segment_ids,
            "positions": positions,
            TARGETS: {"lm": Targets(targets, weights.astype(jnp.float32))},
        }

    return objective
