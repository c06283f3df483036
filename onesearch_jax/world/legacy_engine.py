"""The old lexical search engine whose rankings decided what users were shown in the logs.

BM25 over title tokens + log-popularity, lightly personalised by brand affinity. It is the source
of exposure bias: it cannot understand negation ("without caffeine" matches "with Caffeine") or
needs, so the logs hold clicks on what it showed, not on what was relevant. Built on an inverted
index (scipy CSR token x item) with long postings cut to the most popular items; each distinct
query's top candidates are computed once, in chunks, with sparse matrix products.
"""
import dataclasses
import re

import numpy as np
import scipy.sparse as sp

TOKEN_RE = re.compile(r"[a-z0-9]+")
BM25_K1, BM25_B = 1.2, 0.75


# Query words the old engine ignored (it indexed them in titles, but did not search on them):
# "without caffeine" is searched as "caffeine", the root of its negation failures.
STOPWORDS = frozenset("a an and any are at be but by do does for from get has have how i in is it "
                      "like me my no not of on or so some something that the to what when which "
                      "with without you".split())


def tokenize(text: str) -> list:
    return TOKEN_RE.findall(text.lower())


def _token_matrix(texts, vocab, grow: bool, skip=frozenset()):
    """Sparse (len(texts), len(vocab)) token counts; grows vocab when asked."""
    indptr, indices = [0], []
    for text in texts:
        for tok in tokenize(text):
            if tok in skip:
                continue
            j = vocab.get(tok)
            if j is None:
                if not grow:
                    continue
                j = vocab[tok] = len(vocab)
            indices.append(j)
        indptr.append(len(indices))
    data = np.ones(len(indices), np.float32)
    m = sp.csr_matrix((data, np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
                      shape=(len(texts), len(vocab)))
    m.sum_duplicates()
    return m


@dataclasses.dataclass
class LegacyEngine:
    vocab: dict                # token -> column
    postings: sp.csr_matrix    # (V, N) BM25 weight of token in item title (truncated postings)
    present: sp.csr_matrix     # (N, V) 1 where the title has the token (untruncated)
    log_pop: np.ndarray        # (N,) float32 popularity prior
    pop_weight: float

    @staticmethod
    def build(titles, popularity, max_posting: int, pop_weight: float) -> "LegacyEngine":
        vocab = {}
        tf = _token_matrix(titles, vocab, grow=True)               # (N, V)
        n = tf.shape[0]
        length = np.asarray(tf.sum(1)).ravel()
        df = np.bincount(tf.indices, minlength=len(vocab))
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        coo = tf.tocoo()
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length[coo.row] / max(length.mean(), 1e-6))
        w = idf[coo.col] * coo.data * (BM25_K1 + 1) / (coo.data + norm)
        # Keep, per token, only the max_posting most popular items (what a real engine would do).
        order = np.lexsort((-popularity[coo.row], coo.col))
        col_sorted = coo.col[order]
        start = np.searchsorted(col_sorted, col_sorted, side="left")
        keep = order[(np.arange(len(order)) - start) < max_posting]
        postings = sp.csr_matrix((w[keep].astype(np.float32), (coo.col[keep], coo.row[keep])),
                                 shape=(len(vocab), n))
        present = sp.csr_matrix((np.ones(len(coo.row), np.float32), (coo.row, coo.col)),
                                shape=(n, len(vocab)))
        log_pop = np.log1p(popularity * n).astype(np.float32)
        return LegacyEngine(vocab, postings, present, log_pop, float(pop_weight))

    def query_matrix(self, texts) -> sp.csr_matrix:
        """(len(texts), V) binary bag of known, non-stopword query tokens."""
        q = _token_matrix(texts, self.vocab, grow=False, skip=STOPWORDS)
        q.data[:] = 1.0
        return q

    def candidates(self, texts, k: int, fill_items=None, chunk: int = 256):
        """Top-k (items, scores, shallow match fraction) per query.

        Queries with fewer than k matching items are padded with `fill_items` (popular items, as
        the old engine did, with scores below any match), else with -1."""
        q_all = self.query_matrix(texts)
        num_tokens = np.maximum(np.asarray((q_all > 0).sum(1)).ravel(), 1)
        items = np.full((len(texts), k), -1, np.int32)
        scores = np.zeros((len(texts), k), np.float32)
        for lo in range(0, len(texts), chunk):
            s = (q_all[lo:lo + chunk] @ self.postings).tocsr()
            for r in range(s.shape[0]):
                cols = s.indices[s.indptr[r]:s.indptr[r + 1]]
                if len(cols) == 0:
                    continue
                val = s.data[s.indptr[r]:s.indptr[r + 1]] + self.pop_weight * self.log_pop[cols]
                top = np.argpartition(-val, min(k, len(val)) - 1)[:k] if len(val) > k else \
                    np.arange(len(val))
                top = top[np.argsort(-val[top], kind="stable")]
                items[lo + r, :len(top)] = cols[top]
                scores[lo + r, :len(top)] = val[top]
        if fill_items is not None:
            self._fill(items, scores, np.asarray(fill_items))
        match = self.match_fraction(q_all, items, num_tokens)
        return items, scores, match

    def _fill(self, items, scores, fill_items):
        short = np.flatnonzero((items < 0).any(1))
        for r in short:
            holes = np.flatnonzero(items[r] < 0)
            extra = fill_items[~np.isin(fill_items, items[r])][: len(holes)]
            items[r, holes[:len(extra)]] = extra
            scores[r, holes[:len(extra)]] = -100.0 + self.pop_weight * self.log_pop[extra]

    def match_fraction(self, q: sp.csr_matrix, items: np.ndarray, num_tokens=None) -> np.ndarray:
        """Share of each query's tokens present in each item's title: the 'shallow' match."""
        if num_tokens is None:
            num_tokens = np.maximum(np.asarray((q > 0).sum(1)).ravel(), 1)
        out = np.zeros(items.shape, np.float32)
        for p in range(items.shape[1]):
            col = items[:, p]
            rows = self.present[np.maximum(col, 0)]
            hits = np.asarray(rows.multiply(q).sum(1)).ravel()
            out[:, p] = np.where(col >= 0, hits / num_tokens, 0.0)
        return out


def personalised_top(cand_scores, cand_brands, user_brands, valid, k: int, bonus: float):
    """(E, k) indices into the candidate lists (E, K): re-ranked with +bonus for the user's
    favourite brands (user_brands (E, B)), invalid candidates last."""
    liked = (cand_brands[:, :, None] == user_brands[:, None, :]).any(-1)
    score = np.where(valid, cand_scores + bonus * liked, -np.inf)
    return np.argsort(-score, axis=1, kind="stable")[:, :k]
