"""Reciprocal-rank fusion (Cormack et al., 2009): merges ranked lists from several retrievers.

score(id) = sum over systems that list the id of 1 / (k + rank), rank starting at 1. It needs no
score calibration between systems, which is why it is the usual way to combine, say, BM25 with a
generative retriever. Ties go to the id with the better best rank, then to the earlier system.
"""
from __future__ import annotations

from typing import Hashable, Optional, Sequence


def rrf(rankings: Sequence[Sequence[Sequence[Hashable]]], k: float = 60,
        top: Optional[int] = None, pad: Optional[Hashable] = None) -> list[list[Hashable]]:
    """Fuses per-query rankings from several systems.

    Args:
        rankings: rankings[s][q] is system s's ranked id list for query q, best first.
        k: the rank offset (60 in the original paper); larger k flattens the rank weights.
        top: keep only this many fused ids per query (all when None).
        pad: an id meaning "no result" (e.g. -1 from BM25Index.search); it is skipped.

    Returns:
        Per query, the fused ids best first. An id repeated in one system counts at its first rank.
    """
    if len(rankings) == 0:
        raise ValueError("rrf needs at least one system's rankings")
    if not k >= 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top must be a positive integer or None, got {top!r}")
    num_queries = len(rankings[0])
    for s, system in enumerate(rankings):
        if len(system) != num_queries:
            raise ValueError(f"system 0 ranks {num_queries} queries but system {s} ranks "
                             f"{len(system)}")
    fused = []
    for q in range(num_queries):
        score: dict[Hashable, float] = {}
        first_seen: dict[Hashable, tuple[int, int]] = {}  # (best rank, system) for tie-breaks
        for s, system in enumerate(rankings):
            seen_here = set()
            for rank, item in enumerate(list(system[q]), start=1):
                if (pad is not None and item == pad) or item in seen_here:
                    continue
                seen_here.add(item)
                score[item] = score.get(item, 0.0) + 1.0 / (k + rank)
                first_seen[item] = min(first_seen.get(item, (rank, s)), (rank, s))
        order = sorted(score, key=lambda item: (-score[item], first_seen[item]))
        fused.append(order if top is None else order[:top])
    return fused
