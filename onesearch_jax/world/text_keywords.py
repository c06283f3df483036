"""Keywords a company can derive without an LLM: a dictionary extractor over texts (OneSearch's
NER-dictionary step) and a seller-filled attribute sheet with gaps and mistakes.

These feed keyword-enhanced SIDs (KHQE): item keywords = the noisy sheet (category path, brand,
attribute values; `item_keyword_noise` of the entries missing, half as many wrong) plus what the
dictionary finds in the title; query keywords = what the dictionary finds in the query text. No
hidden truth (needs an item really serves, "X-free" status) is listed unless the title says it.
"""
from __future__ import annotations

import functools

import numpy as np

from onesearch_jax.data.keyword_extractor import DictionaryExtractor
from onesearch_jax.world import taxonomy as tx


@functools.lru_cache(maxsize=1)
def dictionary() -> DictionaryExtractor:
    """The public store vocabulary: categories, brands, attribute values, components."""
    t = tx.get_taxonomy()
    vocab = {}
    for names in (t.leaf_names, t.mid_names, t.top_names):
        for name in names:
            vocab.setdefault(name.lower(), "category")
    for name in t.brand_names:
        vocab.setdefault(name.lower(), "brand")
    for values in t.attr_values:
        for v in values:
            vocab.setdefault(v.lower(), "attribute")
    for c in t.component_names:
        vocab.setdefault(c.lower(), "attribute")
    return DictionaryExtractor(vocab, field_of_type={"category": "category", "brand": "attribute",
                                                     "attribute": "attribute"})


def text_keywords(texts) -> list[list[str]]:
    """Dictionary phrases found in each text, in text order (deduplicated)."""
    ex = dictionary()
    return [list(dict.fromkeys(m.phrase for m in ex.extract(text.lower()))) for text in texts]


def attribute_sheet(catalog, seed: int, noise: float) -> list[list[str]]:
    """Per item: category path, brand and attribute values as a seller lists them (noisy)."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"item_keyword_noise must be in [0, 1], got {noise}")
    t = tx.get_taxonomy()
    rng = np.random.default_rng([int(seed), 707])
    n, num_types = catalog.attrs.shape
    u = rng.random((n, num_types))
    wrong = rng.integers(0, 1 << 30, (n, num_types))
    out = []
    for i in range(n):
        leaf = int(catalog.leaf[i])
        row = [t.top_names[t.leaf_top[leaf]], t.mid_names[t.leaf_mid[leaf]], t.leaf_names[leaf],
               t.brand_names[int(catalog.brand[i])]]
        for a in range(num_types):
            v = int(catalog.attrs[i, a])
            if v < 0 or u[i, a] < noise:  # unset, or left blank by the seller
                continue
            if u[i, a] < 1.5 * noise:     # filled in wrong: another value allowed for the leaf
                others = np.flatnonzero(t.attr_allowed[a][leaf] & (np.arange(len(t.attr_values[a])) != v))
                if len(others):
                    v = int(others[wrong[i, a] % len(others)])
            row.append(t.attr_values[a][v])
        out.append(row)
    return out


def item_keywords(catalog, seed: int, noise: float) -> list[list[str]]:
    """The attribute sheet plus the dictionary phrases of the title."""
    sheet = attribute_sheet(catalog, seed, noise)
    return [list(dict.fromkeys(s + k)) for s, k in zip(sheet, text_keywords(catalog.titles))]
