"""Asymmetric-distance (ADC) scores of SID codes for a query embedding: q . x_hat, level by level.

A KHQE SID reconstructs its item as x_hat = the residual centroids of its prefix codes + its OPQ
sub-codes rotated back, so q . x_hat is a sum of one term per SID position, and each term depends
only on that position's code (and, for the per-parent level, on its parent's code). The terms are
tables: a trie-constrained beam search over them ranks real SIDs by the query's own embedding with
no model at all (the SID space's ceiling), and they are an additive prior for a trained decoder
(logits + lambda * score). Pure numpy; the decoder side is `decode/score_prior.py`.
"""
from __future__ import annotations

import numpy as np


def parent_levels(khqe) -> tuple[bool, ...]:
    """Per SID position, whether its table is indexed by the previous position's code."""
    per_parent = set(khqe.per_parent_levels)
    return tuple(level in per_parent for level in range(len(khqe.level_sizes)))


def level_score_tables(khqe, queries) -> list[np.ndarray]:
    """Per SID position l, float32 [B, P_l, k_l]: q . (the contribution of code c under parent p).

    P_l = 1 where the contribution does not depend on the prefix (global residual levels, OPQ
    sub-codes), the previous level's size for the per-parent level. The dedup suffix carries no
    vector, so its tables are zeros.
    """
    q = np.asarray(queries, np.float32)
    if q.ndim != 2 or q.shape[1] != khqe.dim:
        raise ValueError(f"queries must be [B, {khqe.dim}], got shape {q.shape}")
    rq = khqe.rq
    tables = [(q @ np.asarray(c, np.float32).T)[:, None, :] for c in rq.global_centroids]
    if rq.last_level == "per_parent":
        tables.append(np.einsum("bd,pkd->bpk", q, np.asarray(rq.parent_centroids, np.float32)))
    sizes = khqe.level_sizes[len(tables):]
    if khqe.opq is None:
        tables += [np.zeros((len(q), 1, k), np.float32) for k in sizes]
    else:
        books = np.asarray(khqe.opq.codebooks, np.float32)  # [M, K, D / M]
        rotated = (q @ np.asarray(khqe.opq.rotation, np.float32)).reshape(len(q), books.shape[0],
                                                                          books.shape[2])
        tables += [(rotated[:, m] @ books[m].T)[:, None, :] for m in range(books.shape[0])]
    return [t.astype(np.float32) for t in tables]


def sid_scores(tables: list[np.ndarray], codes, parents: tuple[bool, ...]) -> np.ndarray:
    """float32 [B, N]: each query's summed table score of each SID in codes int[N, L] (equal to
    q . khqe.decode(codes) for KHQE tables)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != len(tables):
        raise ValueError(f"codes must be [N, {len(tables)}], got shape {codes.shape}")
    total = np.zeros((tables[0].shape[0], len(codes)), np.float32)
    for level, table in enumerate(tables):
        parent = codes[:, level - 1] if parents[level] else np.zeros(len(codes), np.int64)
        total += table[:, parent, codes[:, level]]
    return total
