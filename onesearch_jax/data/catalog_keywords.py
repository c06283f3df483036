"""A keyword dictionary mined from a real catalog's titles, for the dictionary extractor.

Real catalogs come without an LLM's keyword chain-of-thought, so the keywords of V2's alignment
tasks and of KHQE's keyword enhancement come from OneSearch's other source, an NER dictionary.
Ours is mined from the titles themselves, with rules that fit marketplace titles
("BEHR Premium Textured DeckOver 1-gal. Wood and Concrete Coating"):

- brand: a title's first word, or first two words, when at least `min_brand` titles start with
  it and it is capitalised (e.g. "BEHR", "Hampton Bay");
- category: a title's last word, or last two words, when at least `min_category` titles end
  with it (the head noun: "coating", "ceiling fan");
- color / material / finish: a fixed lexicon of common attribute words.

Frequent generic words (stop words, units) are never keywords. The vocabulary is a plain
phrase -> type dict, saved as JSON beside the workdir's catalog, so users can edit or replace it.
"""
from __future__ import annotations

import collections
import re
from typing import Iterable, Sequence

from onesearch_jax.data.keyword_extractor import FIELDS, DictionaryExtractor

ATTRIBUTE_LEXICON = {
    "color": ("white", "black", "gray", "grey", "silver", "brown", "red", "blue", "green",
              "yellow", "beige", "ivory", "almond", "bronze", "gold", "copper", "brass", "clear",
              "chrome", "nickel", "tan", "orange", "purple", "pink", "natural", "espresso",
              "cherry", "walnut", "oak", "maple", "mahogany", "teal", "navy", "cream"),
    "material": ("stainless steel", "steel", "aluminum", "wood", "vinyl", "plastic", "pvc",
                 "ceramic", "porcelain", "glass", "concrete", "granite", "marble", "cedar",
                 "pine", "fiberglass", "rubber", "cast iron", "iron", "bamboo", "resin", "cotton",
                 "polyester", "nylon", "acrylic", "laminate", "tile", "brick", "stone", "wicker",
                 "composite", "metal", "leather", "zinc", "polypropylene", "carpet"),
    "finish": ("matte", "gloss", "semi-gloss", "satin", "flat", "eggshell", "brushed",
               "polished", "oil-rubbed", "antique", "textured", "galvanized", "painted",
               "unfinished", "primed", "frosted"),
}
STOP_WORDS = frozenset(
    "a an and or the of for with without in on to by from at as is x per pack piece set kit "
    "ft lb lbs oz gal qt pt sq cu yd mm cm gauge watt volt amp each new only unit count "
    "case box bag roll sheet pair".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z&'\-]*[A-Za-z]|[A-Za-z]")


def _words(title: str) -> list[str]:
    return _WORD.findall(title)


def _is_keyword(phrase: str) -> bool:
    parts = phrase.lower().split()
    return bool(parts) and all(len(p) > 1 and p not in STOP_WORDS for p in parts)


def build_keyword_vocabulary(titles: Sequence[str], min_brand: int = 5,
                             min_category: int = 10) -> dict[str, str]:
    """phrase (lower case) -> type ('brand', 'category', 'color', 'material', 'finish')."""
    if isinstance(titles, str):
        raise ValueError("titles must be a list of strings, not one string")
    starts, ends = collections.Counter(), collections.Counter()
    for title in titles:
        words = _words(title)
        if not words:
            continue
        if words[0][0].isupper():
            starts[words[0]] += 1
            if len(words) > 1 and words[1][0].isupper():
                starts[f"{words[0]} {words[1]}"] += 1
        ends[words[-1].lower()] += 1
        if len(words) > 1:
            ends[f"{words[-2]} {words[-1]}".lower()] += 1
    vocab: dict[str, str] = {}
    for typ, phrases in ATTRIBUTE_LEXICON.items():
        for phrase in phrases:
            vocab[phrase] = typ
    for phrase, count in ends.items():
        if count >= min_category and _is_keyword(phrase) and phrase not in vocab:
            vocab[phrase] = "category"
    for phrase, count in starts.items():
        key = phrase.lower()
        if count < min_brand or not _is_keyword(key) or key in vocab:
            continue
        # "Valley" alone is not a brand when most titles starting with it say "Valley View".
        longer = max((c for p, c in starts.items() if p.startswith(phrase + " ")), default=0)
        if " " not in phrase and longer * 2 >= count:
            continue
        vocab[key] = "brand"
    return vocab


class CatalogKeywords:
    """Keywords of texts under a mined vocabulary, in the paper's four fields."""

    def __init__(self, vocabulary: dict[str, str]):
        self.vocabulary = dict(vocabulary)
        self.extractor = DictionaryExtractor(self.vocabulary)

    def fields(self, text: str, max_per_field: int = 5) -> dict[str, list[str]]:
        return self.extractor.keywords(text, max_per_field=max_per_field)

    def flat(self, texts: Iterable[str], max_keywords: int = 8) -> list[list[str]]:
        """Per text, its keywords (category first, then attributes, intent, topic), no repeats."""
        order = ("category", "attribute", "intent", "topic")
        assert set(order) == set(FIELDS)
        out = []
        for text in texts:
            found = self.fields(text)
            words: list[str] = []
            for field in order:
                for w in found.get(field, []):
                    if w not in words:
                        words.append(w)
            out.append(words[:max_keywords])
        return out
