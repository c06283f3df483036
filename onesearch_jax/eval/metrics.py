"""Per-query ranking metrics (HR, MRR, NDCG, Recall @K) and their sliced aggregation.

Everything here is pure numpy over plain Python ids, so the simulated world, the real-data
benchmark and the generative model's decoded items are all scored by the same code.

Conventions:
- ranks start at 1; the NDCG discount is 1 / log2(rank + 1);
- precision@K divides the hits in the top K by K (a short list is not rewarded for brevity);
- an id repeated in a ranked list counts only at its first position (a model emitting the same
    item twice must not earn it twice);
- a query whose target set is empty gets NaN for every metric, and `aggregate` leaves it out
    (NaN-aware means); NDCG is also NaN when the ideal DCG is 0 (all graded gains zero).
"""
from __future__ import annotations

from typing import Collection, Hashable, Mapping, Optional, Sequence

import numpy as np

METRIC_NAMES = ("hr", "mrr", "ndcg", "recall", "precision")


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one cutoff K")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"every K in ks must be a positive integer, got {k!r}")
    return tuple(int(k) for k in ks)


def _dedup(ranked: Sequence[Hashable], limit: int) -> list[Hashable]:
    """The first `limit` positions of a ranked list with repeats blanked out (kept as None slots)."""
    seen = set()
    out = []
    for item in list(ranked)[:limit]:
        if item in seen:
            out.append(None)  # Keeps the rank positions of later items unchanged.
        else:
            seen.add(item)
            out.append(item)
    return out


def _dcg(gains_in_rank_order: Sequence[float]) -> float:
    g = np.asarray(gains_in_rank_order, dtype=np.float64)
    if g.size == 0:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, g.size + 2, dtype=np.float64))
    return float(np.sum(g * discounts))


def per_query_metrics(
    ranked: Sequence[Sequence[Hashable]],
    targets: Sequence[Collection[Hashable]],
    ks: Sequence[int] = (10,),
    gains: Optional[Sequence[Mapping[Hashable, float]]] = None,
) -> dict[str, np.ndarray]:
    """Scores each query's ranked list against its targets.

    Args:
        ranked: per query, item ids best first (any length; may be shorter than K).
        targets: per query, the set of relevant ids (used by hr, mrr, recall, and by ndcg when
            `gains` is None as binary gains).
        ks: cutoffs K.
        gains: optional per query mapping id -> non-negative graded gain for NDCG (linear in the
            gain: pass 2**rel - 1 yourself for exponential gains). The ideal DCG ranks all gains.

    Returns:
        {'hr@K', 'mrr@K', 'ndcg@K', 'recall@K', 'precision@K'} for every K, each a float64 array of shape (Q,).
    """
    ks = _check_ks(ks)
    num_queries = len(ranked)
    if len(targets) != num_queries:
        raise ValueError(f"ranked has {num_queries} queries but targets has {len(targets)}")
    if gains is not None and len(gains) != num_queries:
        raise ValueError(f"ranked has {num_queries} queries but gains has {len(gains)}")
    max_k = max(ks)
    out = {f"{m}@{k}": np.full(num_queries, np.nan) for k in ks for m in METRIC_NAMES}
    for q in range(num_queries):
        target_set = set(targets[q])
        if not target_set:
            continue
        top = _dedup(ranked[q], max_k)
        hit = np.array([item is not None and item in target_set for item in top], dtype=bool)
        if gains is None:
            rank_gains = hit.astype(np.float64)
            all_gains = np.ones(len(target_set))
        else:
            gain_of = gains[q]
            all_gains = np.asarray(list(gain_of.values()), dtype=np.float64)
            if np.any(~np.isfinite(all_gains)) or np.any(all_gains < 0):
                raise ValueError(f"query {q}: gains must be finite and non-negative, got {gain_of}")
            rank_gains = np.array([float(gain_of.get(item, 0.0)) if item is not None else 0.0
                                   for item in top])
        ideal_sorted = np.sort(all_gains)[::-1]
        hit_ranks = np.flatnonzero(hit) + 1
        for k in ks:
            within = hit_ranks[hit_ranks <= k]
            out[f"hr@{k}"][q] = float(within.size > 0)
            out[f"mrr@{k}"][q] = 1.0 / within[0] if within.size else 0.0
            out[f"recall@{k}"][q] = within.size / len(target_set)
            out[f"precision@{k}"][q] = within.size / k
            ideal = _dcg(ideal_sorted[:k])
            out[f"ndcg@{k}"][q] = _dcg(rank_gains[:k]) / ideal if ideal > 0 else np.nan
    return out


def aggregate(
    per_query: Mapping[str, np.ndarray],
    slices: Optional[Mapping[str, np.ndarray]] = None,
    prefix: str = "",
    intervals: Sequence[str] = (),
) -> dict[str, float]:
    """Means of per-query metrics, overall and per slice, under flat names.

    For each metric named in `intervals`, `..._ci95` is the half-width of its normal-approximation
    95% interval (1.96 * std / sqrt(n)), e.g. 'rel_hr@10/tail_ci95'.
    Names are `prefix + metric` (e.g. 'rel_hr@10') and `prefix + metric + '/' + slice`
    (e.g. 'click_mrr@10/negation'), plus `prefix + 'count'` and `prefix + 'count/' + slice`: the
    number of queries that were scored (some metric not NaN). A slice with no scored query gives NaN.
    """
    if not per_query:
        raise ValueError("per_query holds no metrics")
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in per_query.items()}
    sizes = {a.shape for a in arrays.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ValueError(f"per-query metrics must be 1-D arrays of one length, got shapes {sizes}")
    (num_queries,) = next(iter(sizes))
    scored = np.zeros(num_queries, dtype=bool)
    for a in arrays.values():
        scored |= ~np.isnan(a)

    def summarize(mask: np.ndarray, suffix: str) -> dict[str, float]:
        res = {}
        for name, a in arrays.items():
            vals = a[mask & ~np.isnan(a)]
            res[f"{prefix}{name}{suffix}"] = float(vals.mean()) if vals.size else float("nan")
            if name in intervals:
                res[f"{prefix}{name}{suffix}_ci95"] = (
                    float(1.96 * vals.std(ddof=1) / np.sqrt(vals.size)) if vals.size > 1 else float("nan"))
        res[f"{prefix}count{suffix}"] = float(np.sum(mask & scored))
        return res

    result = summarize(np.ones(num_queries, dtype=bool), "")
    for slice_name, mask in (slices or {}).items():
        if not slice_name or "/" in slice_name:
            raise ValueError(f"slice names must be non-empty and contain no '/', got {slice_name!r}")
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (num_queries,):
            raise ValueError(f"slice {slice_name!r} must be a bool array of shape ({num_queries},), "
                             f"got dtype {mask.dtype} shape {mask.shape}")
        result.update(summarize(mask, f"/{slice_name}"))
    return result


def valid_sid_rate(valid: np.ndarray) -> float:
    """Fraction of generated SIDs that name a real item (any shape of bool flags)."""
    valid = np.asarray(valid)
    if valid.size == 0:
        raise ValueError("valid_sid_rate needs at least one flag")
    if valid.dtype != bool:
        raise ValueError(f"valid must be a bool array, got dtype {valid.dtype}")
    return float(valid.mean())
