"""Keyword chain-of-thought as text: the span a teacher reads and the personalised keywords.

Pure functions over keyword fields ({intent, category, attribute, topic} -> [phrases], the
keywords_io format written by the world's LLM stand-in, a real LLM's JSONL, or the dictionary
extractor), so every keyword source feeds the same tasks.
"""
from __future__ import annotations

from typing import Mapping, Sequence

FIELD_ORDER = ("intent", "category", "attribute", "topic")  # most specific first
MAX_KEYWORDS = 5  # the paper's teacher prompt lists <kw1>..<kw5>


def ordered_keywords(fields: Mapping[str, Sequence[str]], limit: int = MAX_KEYWORDS) -> list[str]:
    """Up to `limit` distinct keywords, intent first, then category, attribute, topic."""
    out: list[str] = []
    for field in FIELD_ORDER:
        for kw in fields.get(field, ()):
            kw = kw.strip()
            if kw and kw.lower() not in {k.lower() for k in out}:
                out.append(kw)
    return out[:limit]


def keyword_text(keywords: Sequence[str]) -> str:
    """The comma list a teacher input carries after its [KW] marker (and task 1 generates)."""
    return ", ".join(keywords)


def personal_keywords(fields: Mapping[str, Sequence[str]], item_words: Sequence[str],
                      user_brands: Sequence[str] = (), limit: int = MAX_KEYWORDS) -> list[str]:
    """1-`limit` keywords for one (query, user, interacted item): preference calibration.

    As in the paper's training data, the session's interacted item is injected: the query's
    keywords that the item carries survive first, then the user's preferred brands the query
    named, then the rest in their usual order; never empty when the query has any keyword.
    """
    ranked = ordered_keywords(fields, limit=10 * limit)
    item = {w.lower() for w in item_words}
    brands = {b.lower() for b in user_brands}

    def rank(kw: str) -> int:
        k = kw.lower()
        return 0 if k in item or any(k in w or w in k for w in item if len(w) > 3) else (
            1 if k in brands else 2)

    kept = sorted(range(len(ranked)), key=lambda i: (rank(ranked[i]), i))
    matched = [ranked[i] for i in kept if rank(ranked[i]) < 2]
    return (matched or [ranked[i] for i in kept])[:limit]


def keywords_with_traffic(keywords: Mapping[str, Mapping], events_per_query: Mapping[str, int],
                          min_events: int) -> dict[str, Mapping]:
    """The keyword rows of queries with at least `min_events` training-log events: the coverage
    an offline LLM with a budget gives (1 = every logged query). Pure."""
    if int(min_events) < 1:
        raise ValueError(f"data.keyword_min_events must be >= 1, got {min_events}")
    return {text: fields for text, fields in keywords.items()
            if int(events_per_query.get(text, 0)) >= int(min_events)}
