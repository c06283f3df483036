"""Batching many small per-parent problems into a few padded, vmapped shapes.

The per-parent last level of KHQE is one independent k-means (and later one assignment) per parent
code. Parents differ in size, so rows are grouped into buckets by the next power of two of the
parent's row count; inside a bucket, parents are stacked into a (G, n_pad, D) tensor with a 0/1
weight mask, and G is padded to a power of two. The number of compiled shapes is therefore about
log2(largest parent) x a few, however many parents there are; when everything fits one batch's
memory budget, all parents share the largest shape (a single compile).
"""
from __future__ import annotations

import dataclasses

import numpy as np

# One vmapped call holds at most about this many floats (distances, rows and centroids).
_BATCH_FLOATS = 1 << 25


@dataclasses.dataclass(frozen=True)
class ParentBatch:
    """G parents stacked for one vmapped call; rows[g] are the original row ids of parent ids[g]."""
    parent_ids: np.ndarray          # (G,) int, -1 for padding problems
    rows: list[np.ndarray]          # G arrays of original row indices (empty for padding)
    n_pad: int                      # padded rows per problem

    def gather(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G, n_pad, D) stacked rows of x and their (G, n_pad) 0/1 weights."""
        g = len(self.rows)
        out = np.zeros((g, self.n_pad, x.shape[1]), np.float32)
        w = np.zeros((g, self.n_pad), np.float32)
        for i, r in enumerate(self.rows):
            out[i, :len(r)] = x[r]
            w[i, :len(r)] = 1.0
        return out, w


def _next_pow2(n: int, floor: int = 32) -> int:
    return max(floor, 1 << int(np.ceil(np.log2(max(n, 1)))))


def parent_batches(parents: np.ndarray, *, k: int, dim: int, max_rows: int | None = None,
                   rng: np.random.Generator | None = None) -> list[ParentBatch]:
    """Groups row indices by parent code into padded batches.

    parents: (N,) int parent code per row. k: centroids per parent and dim: row width (both bound
    the memory of one batch: distances, rows and centroids).
    max_rows: keep at most this many rows per parent (a random subset drawn with rng).
    """
    parents = np.asarray(parents)
    order = np.argsort(parents, kind="stable")
    uniq, starts, counts = np.unique(parents[order], return_index=True, return_counts=True)
    by_pad: dict[int, list[tuple[int, np.ndarray]]] = {}
    for p, s, c in zip(uniq, starts, counts):
        rows = order[s:s + c]
        if max_rows is not None and len(rows) > max_rows:
            rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
        by_pad.setdefault(_next_pow2(len(rows)), []).append((int(p), rows))
    largest = max(by_pad)
    per_problem = largest * k + largest * dim + k * dim
    if len(uniq) * per_problem <= _BATCH_FLOATS:
        # Small inputs: one shape (one compile) beats tight padding.
        by_pad = {largest: [item for n_pad in sorted(by_pad) for item in by_pad[n_pad]]}
    batches = []
    for n_pad in sorted(by_pad):
        items = by_pad[n_pad]
        cap = max(1, _BATCH_FLOATS // (n_pad * k + n_pad * dim + k * dim))
        largest_pow2_within_cap = 1 << int(np.floor(np.log2(cap)))
        g = min(largest_pow2_within_cap, _next_pow2(len(items), floor=1))
        for start in range(0, len(items), g):
            part = items[start:start + g]
            ids = np.full((g,), -1, np.int64)
            ids[:len(part)] = [p for p, _ in part]
            rows = [r for _, r in part] + [np.zeros((0,), np.int64)] * (g - len(part))
            batches.append(ParentBatch(parent_ids=ids, rows=rows, n_pad=n_pad))
    return batches
