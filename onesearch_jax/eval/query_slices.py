"""Query slices of a real search log for error analysis: which kinds of queries a system fails on.

Each slice is a boolean mask over queries, ready for `metrics.aggregate(per_query, slices=...)`:

- 'has_digit': the query holds a digit (model numbers, sizes: "2x4", "3/4 in. pvc");
- 'long':  at least 5 whitespace-separated words (specific, attribute-heavy queries);
- 'short': at most 2 words (broad, head queries);
- 'oov':   a word that no product title contains (a proxy for misspellings like "thinset morter",
           which lexical matching cannot fix but a learned model might).

Words for 'oov' are cut by BM25's tokenizer (lower-cased runs of letters and digits), so "oov"
means exactly "BM25 has no posting for this word".
"""
from __future__ import annotations

from typing import AbstractSet, Iterable, Sequence

import numpy as np

from onesearch_jax.eval.bm25 import simple_tokenize

SLICE_NAMES = ("has_digit", "long", "short", "oov")
LONG_MIN_WORDS = 5
SHORT_MAX_WORDS = 2


def title_vocabulary(titles: Iterable[str]) -> set[str]:
    """Every word (as `simple_tokenize` cuts it) that occurs in some title."""
    vocab: set[str] = set()
    for title in titles:
        vocab.update(simple_tokenize(title))
    return vocab


def real_query_slices(queries: Sequence[str],
                      products_vocab: AbstractSet[str]) -> dict[str, np.ndarray]:
    """Boolean masks of shape (len(queries),) for each name in SLICE_NAMES.

    Args:
        queries: the query texts.
        products_vocab: the lower-cased title words, e.g. `title_vocabulary(products.titles)`.
    """
    if isinstance(queries, str):
        raise ValueError("queries must be a list of strings, not one string")
    if isinstance(products_vocab, str) or not isinstance(products_vocab, AbstractSet):
        raise ValueError("products_vocab must be a set of words, e.g. title_vocabulary(titles)")
    if not products_vocab:
        raise ValueError("products_vocab is empty: every word would count as out of vocabulary")
    masks = {name: np.zeros(len(queries), dtype=bool) for name in SLICE_NAMES}
    for q, text in enumerate(queries):
        if not isinstance(text, str):
            raise ValueError(f"query {q} is not a string: {text!r}")
        num_words = len(text.split())
        masks["has_digit"][q] = any(c.isdigit() for c in text)
        masks["long"][q] = num_words >= LONG_MIN_WORDS
        masks["short"][q] = num_words <= SHORT_MAX_WORDS
        masks["oov"][q] = any(w not in products_vocab for w in simple_tokenize(text))
    return masks
