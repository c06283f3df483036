"""Scores any keyword writer (the stand-in LLM, a real LLM's JSONL) against the ground truth.

Truth = keyword_fields.render_keywords(the query's latent intent). A query's keywords are the
union of its four fields; precision = |written & truth| / |written|, recall = |written & truth| /
|truth|, macro-averaged over the queries that have keywords, overall and per query type.
`coverage` is the share of the scored queries that have keywords at all.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from onesearch_jax.world import keyword_fields
from onesearch_jax.world import taxonomy as tx


def flat_keywords(fields: Mapping[str, Sequence[str]]) -> set:
    """A query's keywords as one set: the union of its four fields."""
    return {w for f in keyword_fields.FIELDS for w in fields.get(f, ())}


def score_keywords(world, rows: Mapping[str, Mapping], query_ids: Sequence[int],
                   prefix: str = "keywords/") -> dict[str, float]:
    """rows: query text -> keyword fields (user-free rows); query_ids: the queries to score."""
    counts = np.bincount(world.catalog.leaf, minlength=len(tx.get_taxonomy().leaf_names))
    q = world.queries
    per = {"precision": {}, "recall": {}}
    covered = {}
    for i in query_ids:
        text, qtype = q.texts[int(i)], str(q.qtype[int(i)])
        covered.setdefault(qtype, []).append(text in rows)
        if text not in rows:
            continue
        written = flat_keywords(rows[text])
        truth = flat_keywords(keyword_fields.render_keywords(q.intents[int(i)], counts))
        hit = len(written & truth)
        per["precision"].setdefault(qtype, []).append(hit / max(len(written), 1))
        per["recall"].setdefault(qtype, []).append(hit / max(len(truth), 1))
    out = {}
    for name, by_type in per.items():
        everything = [v for vs in by_type.values() for v in vs]
        out[prefix + name] = float(np.mean(everything)) if everything else float("nan")
        for qtype, vs in sorted(by_type.items()):
            out[f"{prefix}{name}/{qtype}"] = float(np.mean(vs))
    allc = [c for cs in covered.values() for c in cs]
    out[prefix + "coverage"] = float(np.mean(allc)) if allc else float("nan")
    return out
