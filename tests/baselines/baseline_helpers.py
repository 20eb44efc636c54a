"""A whitespace tokenizer with the project's id layout, and synthetic corpora with known structure."""

import numpy as np

FIRST_NORMAL_ID = 13  # Ids 0..12 are specials (pretrain_jax.specials); 0 is padding.


class WordTokenizer:
    """One id per word of a fixed list, from id 13 up; the same interface the baselines use."""

    def __init__(self, words):
        self.ids = {word: FIRST_NORMAL_ID + i for i, word in enumerate(words)}
        self.vocab_size = FIRST_NORMAL_ID + len(words)

    def encode_batch(self, texts):
        return [[self.ids[word] for word in text.split()] for text in texts]


def keyword_examples(n, seed, keywords=("x", "y", "z"), fillers=20):
    """(text, label) pairs: 3..12 random filler words with the label's keyword inserted anywhere."""
    rng = np.random.default_rng(seed)
    filler_words = [f"w{i}" for i in range(fillers)]
    examples = []
    for _ in range(n):
        label = int(rng.integers(len(keywords)))
        words = list(rng.choice(filler_words, int(rng.integers(3, 13))))
        words.insert(int(rng.integers(len(words) + 1)), keywords[label])
        examples.append((" ".join(words), label))
    return examples, WordTokenizer(filler_words + list(keywords))


def write_fake_fortunes(directory):
    """Fortune-style topic files (entries between "%" lines) in `directory`; returns its path as str.

    computers 30, science 20, food 10, politics 12 entries, all distinct: the topic's keyword among
    three common words ("the computer of a").
    """
    directory.mkdir(parents=True)
    common = ["the", "a", "of", "is"]
    topics = {"computers": ("computer", 30), "science": ("science", 20), "food": ("food", 10),
              "politics": ("politics", 12)}
    for topic, (keyword, count) in topics.items():
        entries = []
        for i in range(count):
            words = [common[(i // 4**k) % 4] for k in range(3)]
            words.insert(i % 4, keyword)
            entries.append(" ".join(words))
        (directory / topic).write_text("\n%\n".join(entries) + "\n%\n", encoding="utf-8")
    return str(directory)
