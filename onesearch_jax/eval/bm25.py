"""BM25 lexical retrieval over a sparse term-document matrix: the classic search baseline.

Scoring (Lucene's idf, Robertson's saturation, query term repeats counted like Lucene's sum):

    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(q, d) = sum over query tokens t of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

The (k1 + 1) factor (dropped by Lucene >= 8) only scales scores and leaves rankings unchanged.
The per-(term, doc) weights are precomputed once into a CSR matrix (terms x docs); a batch of
queries is one sparse (queries x terms) @ (terms x docs) product, so nothing loops over documents
in Python. Ties are broken by the lower document index.
"""
from __future__ import annotations

import itertools
import re
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

_WORD = re.compile(r"[^\W_]+")


def simple_tokenize(text: str) -> list[str]:
    """Lower-cased runs of letters and digits ('Two-Pack 3/4in.' -> ['two', 'pack', '3', '4in'])."""
    return _WORD.findall(text.lower())


class BM25Index:
    """An immutable BM25 index over a list of documents; `search` returns top-k doc indices."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75,
                 tokenizer: Callable[[str], list[str]] = simple_tokenize):
        if len(documents) == 0:
            raise ValueError("BM25Index needs at least one document")
        if not k1 >= 0:
            raise ValueError(f"k1 must be >= 0, got {k1}")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"b must be in [0, 1], got {b}")
        self.k1, self.b, self.tokenizer = float(k1), float(b), tokenizer
        for d, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise ValueError(f"document {d} is not a string: {doc!r}")
        # C-level map/chain/dict passes; a per-token Python loop would dominate at 1M documents.
        token_lists = list(map(tokenizer, documents))
        doc_lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        all_tokens = list(itertools.chain.from_iterable(token_lists))
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(dict.fromkeys(all_tokens))}
        num_docs, num_terms = len(documents), max(len(self.vocab), 1)
        cols = np.fromiter(map(self.vocab.__getitem__, all_tokens), dtype=np.int64,
                           count=len(all_tokens))
        del token_lists, all_tokens
        rows = np.repeat(np.arange(num_docs, dtype=np.int64), doc_lengths)
        # Duplicate (doc, term) entries are summed into term frequencies by the COO -> CSR step.
        tf = sp.csr_matrix((np.ones(cols.size, dtype=np.float64), (rows, cols)),
                           shape=(num_docs, num_terms))
        tf.sum_duplicates()
        df = np.bincount(tf.indices, minlength=num_terms).astype(np.float64)
        self.idf = np.log1p((num_docs - df + 0.5) / (df + 0.5))
        avgdl = max(doc_lengths.mean(), 1e-9)
        norm = self.k1 * (1.0 - self.b + self.b * doc_lengths / avgdl)  # per doc
        doc_of_entry = np.repeat(np.arange(num_docs), np.diff(tf.indptr))
        tf_vals = tf.data
        weights = (self.idf[tf.indices] * tf_vals * (self.k1 + 1.0)
                   / (tf_vals + norm[doc_of_entry]))
        doc_term = sp.csr_matrix((weights, tf.indices, tf.indptr), shape=tf.shape)
        self._term_doc = doc_term.T.tocsr()  # (terms, docs): one row slice per query term.
        self.num_docs = num_docs

    def _query_matrix(self, queries: Sequence[str]) -> sp.csr_matrix:
        rows, cols = [], []
        for q, text in enumerate(queries):
            if not isinstance(text, str):
                raise ValueError(f"query {q} is not a string: {text!r}")
            ids = [self.vocab[t] for t in self.tokenizer(text) if t in self.vocab]
            cols.extend(ids)
            rows.extend([q] * len(ids))
        return sp.csr_matrix((np.ones(len(cols)), (rows, cols)),
                             shape=(len(queries), self._term_doc.shape[0]))

    def score_matrix(self, queries: Sequence[str]) -> sp.csr_matrix:
        """Sparse (queries, docs) BM25 scores; documents sharing no term are absent (score 0)."""
        return (self._query_matrix(queries) @ self._term_doc).tocsr()

    def search(self, queries: Sequence[str], k: int,
               batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query: (indices int64 (Q, k), scores float64 (Q, k)).

        Rows with fewer than k matching documents are padded with index -1 and score 0.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if isinstance(queries, str):
            raise ValueError("queries must be a list of strings, not one string")
        num_queries = len(queries)
        indices = np.full((num_queries, k), -1, dtype=np.int64)
        scores = np.zeros((num_queries, k), dtype=np.float64)
        for start in range(0, num_queries, batch_size):
            block = self.score_matrix(queries[start:start + batch_size])
            for r in range(block.shape[0]):
                lo, hi = block.indptr[r], block.indptr[r + 1]
                docs, vals = block.indices[lo:hi], block.data[lo:hi]
                if docs.size > k:
                    # Keep every doc scoring at least the k-th best, then sort exactly with ties.
                    kth = np.partition(vals, docs.size - k)[docs.size - k]
                    keep = vals >= kth
                    docs, vals = docs[keep], vals[keep]
                order = np.lexsort((docs, -vals))[:k]
                indices[start + r, :order.size] = docs[order]
                scores[start + r, :order.size] = vals[order]
        return indices, scores
