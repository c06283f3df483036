"""Exact dense retrieval: brute-force cosine similarity over every document.

At benchmark scale (tens of thousands of documents, a few hundred dimensions) an exact search is
one float32 matmul per chunk of queries, a few seconds on a laptop, so there is no reason to
accept the recall loss of an approximate index. Queries are processed in chunks so that the
(chunk, documents) score block stays small; the top k of each row comes from argpartition and is
then sorted, ties going to the lower document index.

Vectors are L2-normalised here, so callers may pass raw embeddings; an all-zero vector (e.g. the
embedding of an empty text) stays zero and scores 0 against everything.
"""
from __future__ import annotations

import numpy as np


def normalize_rows(vectors: np.ndarray, name: str) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dim), got shape {vectors.shape}")
    vectors = vectors.astype(np.float32, copy=False)
    if not np.all(np.isfinite(vectors)):
        raise ValueError(f"{name} contains NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class DenseIndex:
    """An immutable exact-cosine index over document embeddings of shape (N, dim)."""

    def __init__(self, doc_embeddings: np.ndarray, chunk_size: int = 256):
        docs = normalize_rows(doc_embeddings, "doc_embeddings")
        if docs.shape[0] == 0:
            raise ValueError("DenseIndex needs at least one document")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self._docs_t = np.ascontiguousarray(docs.T)  # (dim, N): one matmul per query chunk
        self.num_docs, self.dim = docs.shape
        self.chunk_size = int(chunk_size)

    def search(self, query_embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query by cosine: (indices int64 (Q, k'), scores float32 (Q, k')),
        best first, where k' = min(k, number of documents)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        queries = normalize_rows(query_embeddings, "query_embeddings")
        if queries.shape[1] != self.dim:
            raise ValueError(f"query_embeddings have dim {queries.shape[1]}, "
                             f"the index has dim {self.dim}")
        k = min(int(k), self.num_docs)
        num_queries = queries.shape[0]
        indices = np.empty((num_queries, k), dtype=np.int64)
        scores = np.empty((num_queries, k), dtype=np.float32)
        rows = np.arange(min(self.chunk_size, num_queries))[:, None]
        for start in range(0, num_queries, self.chunk_size):
            block = queries[start:start + self.chunk_size] @ self._docs_t  # (chunk, N)
            r = rows[:block.shape[0]]
            if k < self.num_docs:
                top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(self.num_docs), block.shape).copy()
            top_scores = block[r, top]
            # Sort the k candidates: descending score, then ascending document index.
            order = np.lexsort((top, -top_scores), axis=1)
            indices[start:start + block.shape[0]] = top[r, order]
            scores[start:start + block.shape[0]] = top_scores[r, order]
        return indices, scores
