"""Next-sentence prediction (BERT) and sentence-order prediction (ALBERT), each trained jointly with
masked LM, for the encoder family.

One example per packed row, built as create_pretraining_data.py builds one instance:
  - the row's main document is the one holding the most tokens (its EOS left out); a sentence
    starts wherever `sentence_ids` changes;
  - target length T = L - 3, or with probability short_seq_prob a uniform length in [2, L - 3];
  - the chunk is the document's first m sentences, m the fewest whose length reaches T (or all);
  - A = the chunk's first a_end sentences, a_end uniform in [1, m - 1] (1 when m = 1);
  - nsp: B = the rest of the chunk (label 0, IsNext), or with probability not_next_prob, and always
    when m = 1, sentences of another row's main document from a uniform sentence on until they
    reach T - len(A) tokens (label 1, NotNext);
  - sop: B = the rest of the chunk, and A and B are swapped with probability swap_prob (label 1);
    when m = 1 B comes from another row as in nsp (label 1), as ALBERT does;
  - the pair is trimmed to L - 3 tokens, one token at a time from the longer side, each from its
    front or back with probability 1/2 (truncate_seq_pair);
  - the row becomes [CLS] A [SEP] B [SEP] + padding and bert_mlm masking (the section's `mlm`
    settings) is applied; [CLS] and [SEP] are special, so never masked.

    row (L = 12) tokens   [ 21 22 23 24 25 26   1 | 31 32   1 | 0 0 ]   sentence_ids [0 0 1 1 2 2 2 | 0 0 0 | 0 0]
    chunk = 3 sentences, a_end = 1, IsNext:
    inputs (before MLM)   [ CLS 21 22 SEP 23 24 25 26 SEP  0  0  0 ]
    token_type_ids        [   0  0  0   0  1  1  1  1   1  0  0  0 ]
    segment_ids           [   1  1  1   1  1  1  1  1   1  0  0  0 ]
    targets["nsp"]: ids 0, weights 1

NotNext B comes from the main document of a row drawn uniformly from the rows of the batch whose
main document is another document than A's (packed.document_ids: the packer splits a long document
over consecutive rows, so another row may hold A's own continuation), as create_pretraining_data.py
draws again when its random document is the current one. When no row holds another document (a
batch cut from one long document), B is the continuation (IsNext) where A's chunk has >= 2
sentences, and the row gets weight 0 otherwise. A row whose A or B is empty (padding rows,
documents without content) gets weight 0.
"""

import jax
import jax.numpy as jnp
import ml_collections

from pretrain_jax.batch import TARGETS, ModelBatch, PackedBatch, Targets
from pretrain_jax.objectives import prefix_sums
from pretrain_jax.objectives.bert_mlm import MaskedLmSettings, mask_tokens
from pretrain_jax.objectives.registry import register
from pretrain_jax.specials import SpecialIds


def _per_row(table, index):
    """table (B, N), index (B,) -> (B,) = table[b, index[b]] (index clipped into range)."""
    index = jnp.clip(index, 0, table.shape[1] - 1)
    return jnp.take_along_axis(table, index[:, None], axis=1)[:, 0]


def document_layout(tokens, segment_ids, sentence_ids, document_ids, eos: int):
    """Each row's main document and its sentences: dict of (B,) and (B, L) int32 arrays.

    start: (B,) first position of the document; document: (B,) its id (document_ids there);
    num_sentences: (B,);
    cum_len: (B, L) tokens in sentences 0..k (EOS excluded), constant after the last sentence.
    """
    batch, seq_len = tokens.shape
    rows = jnp.arange(batch)[:, None]
    content = (segment_ids > 0) & (tokens != eos)
    per_document = jnp.zeros((batch, seq_len + 1), jnp.int32).at[rows, segment_ids].add(content)
    document = jnp.argmax(per_document, axis=1)
    in_document = content & (segment_ids == document[:, None])
    previous_in = jnp.pad(in_document[:, :-1], ((0, 0), (1, 0)))
    previous_sentence = jnp.pad(sentence_ids[:, :-1], ((0, 0), (1, 0)))
    sentence_start = in_document & (~previous_in | (sentence_ids != previous_sentence))
    sentence_index = prefix_sums.cumsum(sentence_start) - 1
    sentence_len = jnp.zeros((batch, seq_len), jnp.int32).at[
        rows, jnp.where(in_document, sentence_index, seq_len)
    ].add(1, mode="drop")
    start = jnp.argmax(in_document, axis=1).astype(jnp.int32)
    return {
        "start": start,
        "document": _per_row(document_ids, start),
        "num_sentences": sentence_start.sum(axis=1, dtype=jnp.int32),
        "cum_len": prefix_sums.cumsum(sentence_len),
    }


def _sentences_before(cum_len, k):
    """(B,) tokens in sentences 0..k-1 (0 when k = 0)."""
    return jnp.where(k > 0, _per_row(cum_len, k - 1), 0)


def trim_pair(rng, len_a, len_b, max_tokens: int, max_len: int):
    """BERT's truncate_seq_pair in closed form: (front_a, len_a, front_b, len_b), all (B,) int32.

    len_a, len_b: (B,) int32, each at most `max_len` (static).

    Tokens are removed one at a time from the longer side (B on ties) until the pair fits; each from
    the front or the back with probability 1/2, so the front cut is Binomial(cut, 1/2).
    """
    over = len_a + len_b > max_tokens
    kept_a = jnp.where(over, jnp.minimum(len_a, jnp.maximum((max_tokens + 1) // 2, max_tokens - len_b)), len_a)
    kept_b = jnp.where(over, max_tokens - kept_a, len_b)
    coins = jax.random.bernoulli(rng, 0.5, (2, len_a.shape[0], max_len))
    index = jnp.arange(max_len)
    front_a = jnp.sum(coins[0] & (index < (len_a - kept_a)[:, None]), axis=1, dtype=jnp.int32)
    front_b = jnp.sum(coins[1] & (index < (len_b - kept_b)[:, None]), axis=1, dtype=jnp.int32)
    return front_a, kept_a, front_b, kept_b


def make_pairs(rng, packed: PackedBatch, specials: SpecialIds, *, short_seq_prob: float,
               other_document_prob: float, swap_prob: float):
    """[CLS] A [SEP] B [SEP] rows (before masking): dict of (B, L) arrays and "nsp": Targets, each (B,).

    other_document_prob: chance that B comes from another row (nsp); swap_prob: chance that A and B
    are swapped (sop). Label 1 = B from another document or swapped.
    """
    if packed.sentence_ids is None or packed.document_ids is None:
        raise ValueError("nsp/sop need packed.sentence_ids and packed.document_ids; the batch lacks one")
    tokens = jnp.asarray(packed.tokens, jnp.int32)
    segment_ids = jnp.asarray(packed.segment_ids, jnp.int32)
    batch, seq_len = tokens.shape
    if batch < 2:
        raise ValueError(f"nsp/sop draw NotNext sentences from another row; batch size {batch} < 2")
    word_starts = (jnp.zeros_like(tokens, bool) if packed.word_starts is None
                   else jnp.asarray(packed.word_starts, bool))
    layout = document_layout(tokens, segment_ids, jnp.asarray(packed.sentence_ids, jnp.int32),
                             jnp.asarray(packed.document_ids, jnp.int32), specials.eos)
    draw_key, other_key, trim_key = jax.random.split(rng, 3)
    # One uniform per row for each decision (fewer random calls compile faster): short target, target
    # length, a_end, label, first sentence of B from the other row.
    draws = jax.random.uniform(draw_key, (5, batch))

    def uniform_int(draw, low, high):  # uniform in [low, high), high > low, from a uniform draw
        return jnp.minimum(low + jnp.floor(draw * (high - low)).astype(jnp.int32), high - 1)

    max_tokens = seq_len - 3
    short = draws[0] < short_seq_prob
    target = jnp.where(short, uniform_int(draws[1], 2, max_tokens + 1), max_tokens)
    num_sentences, cum_len = layout["num_sentences"], layout["cum_len"]
    sentence = jnp.arange(seq_len)
    short_of_target = (sentence < num_sentences[:, None]) & (cum_len < target[:, None])
    chunk = jnp.minimum(num_sentences, 1 + short_of_target.sum(axis=1, dtype=jnp.int32))
    a_end = jnp.where(chunk >= 2, uniform_int(draws[2], 1, jnp.maximum(chunk, 2)), 1)
    len_a = _sentences_before(cum_len, a_end)
    len_rest = _sentences_before(cum_len, chunk) - len_a

    other, has_other = _row_of_another_document(other_key, layout["document"], num_sentences)
    from_other = has_other & ((chunk == 1) | (draws[3] < other_document_prob))
    swapped = (chunk >= 2) & ~from_other & (draws[3] < swap_prob)

    # B from another row: its main document from a uniform sentence on, until T - len(A) tokens.
    other_sentences, other_cum = num_sentences[other], cum_len[other]
    first = uniform_int(draws[4], 0, jnp.maximum(other_sentences, 1))
    skipped = _sentences_before(other_cum, first)
    short_of_b = ((sentence >= first[:, None]) & (sentence < other_sentences[:, None])
                  & (other_cum - skipped[:, None] < (target - len_a)[:, None]))
    last = jnp.minimum(first + short_of_b.sum(axis=1, dtype=jnp.int32), other_sentences - 1)
    len_other = jnp.where(other_sentences > 0, _per_row(other_cum, last) - skipped, 0)

    # Source windows (row tokens, start, length) of the two halves, then swap for sop.
    start = layout["start"]
    b_tokens = jnp.where(from_other[:, None], tokens[other], tokens)
    b_words = jnp.where(from_other[:, None], word_starts[other], word_starts)
    b_start = jnp.where(from_other, layout["start"][other] + skipped, start + len_a)
    len_b = jnp.where(from_other, len_other, len_rest)
    first_start = jnp.where(swapped, b_start, start)
    second_start = jnp.where(swapped, start, b_start)
    first_tokens = jnp.where(swapped[:, None], b_tokens, tokens)
    first_words = jnp.where(swapped[:, None], b_words, word_starts)
    second_tokens = jnp.where(swapped[:, None], tokens, b_tokens)
    second_words = jnp.where(swapped[:, None], word_starts, b_words)
    first_len, second_len = jnp.where(swapped, len_b, len_a), jnp.where(swapped, len_a, len_b)

    front_a, len_a, front_b, len_b = trim_pair(trim_key, first_len, second_len, max_tokens, seq_len)
    first_start, second_start = first_start + front_a, second_start + front_b

    # Output row: 0 CLS | 1..len_a A | len_a+1 SEP | len_a+2 .. len_a+len_b+1 B | len_a+len_b+2 SEP.
    j = jnp.arange(seq_len)[None, :]
    la, lb = len_a[:, None], len_b[:, None]
    in_a = (j >= 1) & (j <= la)
    in_b = (j >= la + 2) & (j <= la + lb + 1)
    a_index = jnp.clip(first_start[:, None] + j - 1, 0, seq_len - 1)
    b_index = jnp.clip(second_start[:, None] + j - la - 2, 0, seq_len - 1)
    pair_tokens = jnp.where(in_a, jnp.take_along_axis(first_tokens, a_index, axis=1), specials.pad)
    pair_tokens = jnp.where(in_b, jnp.take_along_axis(second_tokens, b_index, axis=1), pair_tokens)
    pair_tokens = jnp.where(j == 0, specials.cls, pair_tokens)
    pair_tokens = jnp.where((j == la + 1) | (j == la + lb + 2), specials.sep, pair_tokens)
    pair_words = (in_a & jnp.take_along_axis(first_words, a_index, axis=1)) | (
        in_b & jnp.take_along_axis(second_words, b_index, axis=1))
    used = j <= la + lb + 2
    return {
        "tokens": pair_tokens,
        "word_starts": pair_words,
        "segment_ids": used.astype(jnp.int32),
        "positions": jnp.where(used, j, 0).astype(jnp.int32),
        "token_type_ids": ((j >= la + 2) & used).astype(jnp.int32),
        "nsp": Targets((from_other | swapped).astype(jnp.int32),
                       ((len_a > 0) & (len_b > 0) & (has_other | (chunk >= 2))).astype(jnp.float32)),
    }


def _row_of_another_document(rng, document, num_sentences):
    """(B,) int32 rows whose main document is not row b's, uniform among them, and (B,) bool whether
    one exists. document, num_sentences: (B,) int32, each row's main document id and sentence count.

        document [ 7  7  7  9 ]  ->  rows [ 3  3  3  0|1|2 ],  exists [ T  T  T  T ]
    """
    candidate = (document[None, :] != document[:, None]) & (num_sentences[None, :] > 0)
    scores = jnp.where(candidate, jax.random.uniform(rng, candidate.shape), -1.0)
    return jnp.argmax(scores, axis=1).astype(jnp.int32), candidate.any(axis=1)


def _validated(cfg: ml_collections.ConfigDict, seq_len: int, name: str, label_key: str):
    if seq_len < 5:
        raise ValueError(f"{name}: seq_len={seq_len} cannot hold [CLS] A [SEP] B [SEP] with A, B >= 1 token")
    for key in ("short_seq_prob", label_key, "mlm"):
        if key not in cfg:
            raise ValueError(f"config.objective.{name} lacks key {key!r}")
    if not 0.0 <= cfg.short_seq_prob <= 1.0:
        raise ValueError(f"config.objective.{name}: short_seq_prob={cfg.short_seq_prob} must be in [0, 1]")
    if not 0.0 < cfg[label_key] < 1.0:
        raise ValueError(f"config.objective.{name}: {label_key}={cfg[label_key]} must be in (0, 1)")
    return MaskedLmSettings.from_config(cfg.mlm, seq_len, where=f"{name}.mlm")


def _pair_objective(specials, mlm: MaskedLmSettings, short_seq_prob, other_document_prob, swap_prob):
    short_seq_prob, other_document_prob, swap_prob = map(float, (short_seq_prob, other_document_prob, swap_prob))

    def objective(rng: jax.Array, packed: PackedBatch) -> ModelBatch:
        pair_key, mask_key = jax.random.split(rng)
        pair = make_pairs(pair_key, packed, specials, short_seq_prob=short_seq_prob,
                          other_document_prob=other_document_prob, swap_prob=swap_prob)
        batch = mask_tokens(mask_key, pair["tokens"], pair["segment_ids"], pair["word_starts"], mlm, specials)
        batch.update({key: pair[key] for key in ("segment_ids", "positions", "token_type_ids")})
        batch[TARGETS]["nsp"] = pair["nsp"]
        return batch

    return objective


@register("nsp", family="encoder", heads=("mlm", "nsp"))
def build_nsp(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    mlm = _validated(cfg, seq_len, "nsp", "not_next_prob")
    return _pair_objective(specials, mlm, cfg.short_seq_prob, other_document_prob=cfg.not_next_prob, swap_prob=0.0)


@register("sop", family="encoder", heads=("mlm", "nsp"))
def build_sop(cfg: ml_collections.ConfigDict, specials: SpecialIds, seq_len: int):
    mlm = _validated(cfg, seq_len, "sop", "swap_prob")
    return _pair_objective(specials, mlm, cfg.short_seq_prob, other_document_prob=0.0, swap_prob=cfg.swap_prob)
