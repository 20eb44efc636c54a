"""Special token ids, defined in this one place.

The SentencePiece model reserves the low ids for control and user-defined symbols in the order of
`SPECIAL_PIECES`; T5-style sentinels sit at the TOP of the vocabulary, outside the SentencePiece
model (like T5's extra ids): sentinel k has id vocab_size - 1 - k.

    ids:  0 <pad> | 1 </s> | 2 <unk> | 3 <s> | 4 [MASK] | 5 [CLS] | 6 [SEP] | 7 [NLU] | 8 [NLG]
          | 9 [S2S] | 10 <PRE> | 11 <MID> | 12 <SUF> | 13 .. V-S-1 normal pieces | V-S .. V-1 sentinels
"""

import dataclasses

# (field name, SentencePiece piece). The first four are SentencePiece's own pad/eos/unk/bos ids;
# the rest are user-defined symbols, so "[MASK]" typed in text encodes to the mask id.
SPECIAL_PIECES = (
    ("pad", "<pad>"),
    ("eos", "</s>"),
    ("unk", "<unk>"),
    ("bos", "<s>"),
    ("mask", "[MASK]"),
    ("cls", "[CLS]"),
    ("sep", "[SEP]"),
    ("nlu", "[NLU]"),
    ("nlg", "[NLG]"),
    ("s2s", "[S2S]"),
    ("fim_prefix", "<PRE>"),
    ("fim_middle", "<MID>"),
    ("fim_suffix", "<SUF>"),
)
USER_DEFINED_PIECES = tuple(piece for _, piece in SPECIAL_PIECES[4:])


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """Ids of every special token, plus the vocabulary layout around them.

    vocab_size:    total ids the model's embedding must cover (SentencePiece pieces + sentinels).
    num_sentinels: ids at the top of the vocabulary reserved for T5-style sentinels.
    """

    vocab_size: int
    num_sentinels: int
    pad: int = 0
    eos: int = 1
    unk: int = 2
    bos: int = 3
    mask: int = 4
    cls: int = 5
    sep: int = 6
    nlu: int = 7
    nlg: int = 8
    s2s: int = 9
    fim_prefix: int = 10
    fim_middle: int = 11
    fim_suffix: int = 12

    def __post_init__(self):
        if self.vocab_size < self.first_normal_id + self.num_sentinels + 1:
            raise ValueError(
                f"vocab_size={self.vocab_size} is too small for {self.first_normal_id} special ids"
                f" and {self.num_sentinels} sentinels; raise tokenizer.vocab_size"
            )

    @property
    def first_normal_id(self) -> int:
        """The lowest id of an ordinary piece (everything below it is special)."""
        return len(SPECIAL_PIECES)

    @property
    def normal_id_end(self) -> int:
        """One past the highest ordinary id: random replacements draw from [first_normal_id, this)."""
        return self.vocab_size - self.num_sentinels

    @property
    def ordinary_range(self) -> tuple[int, int]:
        """[first_normal_id, normal_id_end): the ids noise may hit (the row budget counts them)."""
        return self.first_normal_id, self.normal_id_end

    def sentinel(self, k: int) -> int:
        """Id of the k-th sentinel (k = 0 is the first), counting down from the top of the vocabulary."""
        if not 0 <= k < self.num_sentinels:
            raise ValueError(f"sentinel {k} out of range: only {self.num_sentinels} sentinels")
        return self.vocab_size - 1 - k

    def is_special(self, token_id: int) -> bool:
        return token_id < self.first_normal_id or token_id >= self.normal_id_end
