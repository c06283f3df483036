"""Hybrid lexical + dense scoring: cosine(q, title) + weight * BM25(q, title) / max BM25(q).

Dividing BM25 by the query's best score over the whole catalog puts it on the cosine's [0, 1]
scale without tuning per query, so one weight serves every query. On Home Depot dev this linear
mix beats reciprocal-rank fusion of the same two systems (README, real-data table): RRF throws
the score margins away. The same scorer ranks the whole catalog (a baseline) or only a
candidate set (the items of the generated SID cells), so the two are directly comparable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from onesearch_jax.eval.bm25 import BM25Index
from onesearch_jax.eval.dense import normalize_rows


def hybrid_scores(cosine: np.ndarray, bm25: np.ndarray, bm25_max: float,
                  weight: float) -> np.ndarray:
    """cosine + weight * bm25 / bm25_max (bm25_max <= 0: the query matches no title, so the
    lexical term is 0)."""
    cosine = np.asarray(cosine, np.float32)
    if bm25_max <= 0:
        return cosine
    return cosine + np.float32(weight) * np.asarray(bm25, np.float32) / np.float32(bm25_max)


class HybridRanker:
    """Scores queries against catalog titles by `hybrid_scores`; vectors are L2-normalised here."""

    def __init__(self, titles: Sequence[str], item_vectors: np.ndarray, weight: float):
        if not weight >= 0:
            raise ValueError(f"the BM25 weight must be >= 0, got {weight}")
        if len(item_vectors) != len(titles):
            raise ValueError(f"{len(titles)} titles but {len(item_vectors)} item vectors")
        self.item_vectors = normalize_rows(item_vectors, "item_vectors")
        self.bm25 = BM25Index(list(titles))
        self.weight = float(weight)

    def _rows(self, queries: Sequence[str], query_vectors: np.ndarray):
        return normalize_rows(query_vectors, "query_vectors"), self.bm25.score_matrix(list(queries)).tocsr()

    def rerank(self, queries: Sequence[str], query_vectors: np.ndarray,
               candidates: Sequence[Sequence[int]], k: int) -> list[list[int]]:
        """Per query, its candidate items ordered by hybrid score (ties: candidate order)."""
        q, lexical = self._rows(queries, query_vectors)
        out = []
        for row, items in enumerate(candidates):
            items = np.asarray(items, np.int64)
            if items.size == 0:
                out.append([])
                continue
            bm25 = lexical[row]
            best = bm25.data.max() if bm25.nnz else 0.0
            scores = hybrid_scores(self.item_vectors[items] @ q[row],
                                   bm25.toarray()[0][items], best, self.weight)
            out.append(items[np.argsort(-scores, kind="stable")[:k]].tolist())
        return out

    def search(self, queries: Sequence[str], query_vectors: np.ndarray, k: int,
               chunk: int = 256) -> list[list[int]]:
        """Top k items of the whole catalog per query (ties: the lower index)."""
        q, lexical = self._rows(queries, query_vectors)
        out = []
        for lo in range(0, len(q), chunk):
            scores = q[lo:lo + chunk] @ self.item_vectors.T
            bm25 = lexical[lo:lo + chunk].toarray().astype(np.float32)
            best = bm25.max(axis=1, keepdims=True)
            scores += np.float32(self.weight) * bm25 / np.where(best > 0, best, 1.0)
            top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
            for row, cand in zip(scores, top):
                order = np.lexsort((cand, -row[cand]))
                out.append(cand[order].tolist())
        return out
