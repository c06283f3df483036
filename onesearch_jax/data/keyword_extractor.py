"""Dictionary keyword extraction (OneSearch's NER-dictionary step) with an Aho-Corasick automaton.

A vocabulary maps phrases ("hampton bay", "stainless steel", "drill") to entity types ("brand",
"material", "category"). All phrases are found in one left-to-right pass over the text, matching
case-insensitively and on whole words only (word boundaries as in regex `\b`: 'tea' is not found
inside 'steak'). Overlaps are resolved by keeping the longest matches first; among equally long
overlapping matches the leftmost wins; a match contained in a kept one is dropped.
`keywords` then groups the kept phrases into the paper's four fields: intent, category,
attribute, topic.
"""
from __future__ import annotations

import re
from collections import deque
from typing import Mapping, NamedTuple, Optional

FIELDS = ("intent", "category", "attribute", "topic")

DEFAULT_FIELD_OF_TYPE = {
    "intent": "intent",
    "category": "category",
    "topic": "topic",
    **{t: "attribute" for t in (
        "brand", "material", "style", "color", "function", "audience", "scene", "specification",
        "price", "season", "pattern", "model", "size", "shape", "feature", "quantity", "finish",
        "power", "gender", "age", "flavor", "ip", "series")},
}


class Match(NamedTuple):
    """One kept dictionary hit: `text[start:end]` is the surface form of vocabulary `phrase`."""
    phrase: str
    type: str
    start: int
    end: int


def _fold(text: str) -> str:
    """Lower-cases char by char so that offsets in the folded text equal offsets in `text`."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


class DictionaryExtractor:
    """Finds vocabulary phrases in text; see the module docstring for the matching rules."""

    def __init__(self, vocabulary: Mapping[str, str],
                 field_of_type: Optional[Mapping[str, str]] = None):
        field_of_type = dict(DEFAULT_FIELD_OF_TYPE if field_of_type is None else field_of_type)
        for typ, field in field_of_type.items():
            if field not in FIELDS:
                raise ValueError(f"type {typ!r} maps to unknown field {field!r}; fields are {FIELDS}")
        self.field_of_type = field_of_type
        # Trie as parallel lists: goto[state] = {char: next state}, out[state] = phrase ids.
        self._goto: list[dict[str, int]] = [{}]
        self._out: list[list[int]] = [[]]
        self._fail: list[int] = [0]
        self._phrases: list[tuple[str, str, int]] = []  # (original phrase, type, folded length)
        seen: dict[str, int] = {}
        for phrase, typ in vocabulary.items():
            if not isinstance(phrase, str) or not isinstance(typ, str):
                raise ValueError(f"vocabulary entries must be str -> str, got {phrase!r}: {typ!r}")
            if typ not in field_of_type:
                raise ValueError(f"phrase {phrase!r} has type {typ!r}, which field_of_type does not "
                                 f"map to a field")
            key = _fold(re.sub(r"\s+", " ", phrase.strip()))
            if not key:
                raise ValueError(f"vocabulary phrase {phrase!r} is empty")
            if key in seen:
                if self._phrases[seen[key]][1] != typ:
                    raise ValueError(f"phrase {phrase!r} is listed with two types: "
                                     f"{self._phrases[seen[key]][1]!r} and {typ!r}")
                continue
            seen[key] = len(self._phrases)
            self._phrases.append((phrase, typ, len(key)))
            self._insert(key, seen[key])
        self._keys = list(seen)  # folded phrase text by id, for boundary checks
        self._build_failure_links()

    def _insert(self, key: str, phrase_id: int) -> None:
        state = 0
        for c in key:
            nxt = self._goto[state].get(c)
            if nxt is None:
                nxt = len(self._goto)
                self._goto[state][c] = nxt
                self._goto.append({})
                self._out.append([])
                self._fail.append(0)
            state = nxt
        self._out[state].append(phrase_id)

    def _build_failure_links(self) -> None:
        """Breadth-first: fail(s) = longest proper suffix of s that is also a trie path."""
        queue = deque(self._goto[0].values())
        while queue:
            state = queue.popleft()
            for c, nxt in self._goto[state].items():
                queue.append(nxt)
                f = self._fail[state]
                while f and c not in self._goto[f]:
                    f = self._fail[f]
                self._fail[nxt] = self._goto[f].get(c, 0) if self._goto[f].get(c, 0) != nxt else 0
                self._out[nxt] = self._out[nxt] + self._out[self._fail[nxt]]

    def _all_matches(self, text: str) -> list[tuple[int, int, int]]:
        """Every whole-word (start, end, phrase id) occurrence, overlapping ones included."""
        folded = _fold(text)
        found = []
        state = 0
        for i, c in enumerate(folded):
            while state and c not in self._goto[state]:
                state = self._fail[state]
            state = self._goto[state].get(c, 0)
            for pid in self._out[state]:
                key = self._keys[pid]
                start, end = i + 1 - len(key), i + 1
                if _is_word_char(key[0]) and start > 0 and _is_word_char(folded[start - 1]):
                    continue
                if _is_word_char(key[-1]) and end < len(folded) and _is_word_char(folded[end]):
                    continue
                found.append((start, end, pid))
        return found

    def extract(self, text: str) -> list[Match]:
        """Kept matches in text order: longest first, leftmost among equals, no overlaps."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        candidates = sorted(self._all_matches(text), key=lambda m: (-(m[1] - m[0]), m[0]))
        taken = [False] * len(text)
        kept = []
        for start, end, pid in candidates:
            if any(taken[start:end]):
                continue
            taken[start:end] = [True] * (end - start)
            phrase, typ, _ = self._phrases[pid]
            kept.append(Match(phrase, typ, start, end))
        return sorted(kept, key=lambda m: m.start)

    def keywords(self, text: str, max_per_field: int = 5) -> dict[str, list[str]]:
        """The four keyword fields of `text`: unique phrases in text order, at most max_per_field."""
        if isinstance(max_per_field, bool) or not isinstance(max_per_field, int) or max_per_field < 0:
            raise ValueError(f"max_per_field must be a non-negative integer, got {max_per_field!r}")
        out: dict[str, list[str]] = {field: [] for field in FIELDS}
        for m in self.extract(text):
            field = out[self.field_of_type[m.type]]
            if m.phrase not in field and len(field) < max_per_field:
                field.append(m.phrase)
        return out
