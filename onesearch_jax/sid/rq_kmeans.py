"""Residual k-means (RQ-KMeans): each level quantises what the previous levels left over.

Levels 1..L-1 are global k-means on the running residual. The last level is either
  * 'global': one more global k-means, or
  * 'per_parent': KHQE's "L3 balance" (OneSearch `rq_dynamic.py`, balanced_type=2): an independent
    k-means on the residuals of each parent, the parent being the previous level's code. k is capped
    at the parent's row count, and codes are LOCAL in [0, k_last): a last-level code means something
    only together with its parent code. Parents seen by no training row get no codebook; rows that
    land there at encode time get code 0 and keep their residual.
Per-parent problems are batched by `parent_batches` (a few compiled shapes for thousands of parents).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from onesearch_jax.sid import kmeans
from onesearch_jax.sid.parent_batches import parent_batches

LAST_LEVEL_MODES = ("global", "per_parent")


@dataclasses.dataclass
class ResidualKMeans:
    """Codebooks of a fitted residual k-means."""
    global_centroids: list[np.ndarray]        # per global level, (k_l, D)
    last_level: str                           # 'global' | 'per_parent'
    parent_centroids: np.ndarray | None = None  # (num_parents, k_last, D) when per_parent
    parent_valid: np.ndarray | None = None      # (num_parents, k_last) bool

    @property
    def dim(self) -> int:
        return int(self.global_centroids[0].shape[1])

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Vocabulary size per level (k_last for a per-parent level: codes are local)."""
        sizes = [int(c.shape[0]) for c in self.global_centroids]
        if self.last_level == "per_parent":
            sizes.append(int(self.parent_centroids.shape[1]))
        return tuple(sizes)

    def encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(codes int32 (N, L), final residual float32 (N, D))."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected embeddings of shape (N, {self.dim}), got {x.shape}")
        residual = x.copy()
        codes = []
        for c in self.global_centroids:
            code, _ = kmeans.assign(residual, c)
            residual -= c[code]
            codes.append(code)
        if self.last_level == "per_parent":
            code = assign_per_parent(residual, codes[-1], self.parent_centroids, self.parent_valid)
            residual -= self.parent_centroids[codes[-1], code]
            codes.append(code)
        return np.stack(codes, axis=1).astype(np.int32), residual

    def decode(self, codes) -> np.ndarray:
        """Sum of the selected centroids: the reconstruction of x from its codes."""
        codes = np.asarray(codes)
        out = np.zeros((codes.shape[0], self.dim), np.float32)
        for level, c in enumerate(self.global_centroids):
            out += c[codes[:, level]]
        if self.last_level == "per_parent":
            out += self.parent_centroids[codes[:, -2], codes[:, -1]]
        return out


def assign_per_parent(residual, parents, parent_centroids, parent_valid) -> np.ndarray:
    """Local code of each row among its parent's centroids (0 where the parent has none)."""
    num_parents, k, dim = parent_centroids.shape
    codes = np.zeros((residual.shape[0],), np.int32)
    for batch in parent_batches(parents, k=k, dim=dim):
        xs, _ = batch.gather(residual)
        ids = np.maximum(batch.parent_ids, 0)
        valid = parent_valid[ids] & (batch.parent_ids >= 0)[:, None]
        code, _ = kmeans.assign_batched(xs, parent_centroids[ids], valid)
        for g, rows in enumerate(batch.rows):
            codes[rows] = code[g, :len(rows)]
    return codes


def fit_per_parent(residual, parents, *, num_parents: int, k: int, iters: int = 20, seed: int = 0,
                   max_points_per_centroid: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Independent k-means per parent code: (centroids (P, k, D), valid (P, k))."""
    dim = residual.shape[1]
    rng = kmeans.salted_rng(seed)
    cents = np.zeros((num_parents, k, dim), np.float32)
    valid = np.zeros((num_parents, k), bool)
    batches = parent_batches(parents, k=k, dim=dim, max_rows=max_points_per_centroid * k, rng=rng)
    for i, batch in enumerate(batches):
        xs, w = batch.gather(residual)
        k_valid = np.minimum(k, w.sum(axis=1).astype(np.int32))
        k_max = min(k, batch.n_pad)
        c, v = kmeans.fit_kmeans_batched(xs, w, k_valid, k_max=k_max, iters=iters,
                                         seed=seed + 1 + i)
        real = batch.parent_ids >= 0
        cents[batch.parent_ids[real], :k_max] = c[real]
        valid[batch.parent_ids[real], :k_max] = v[real]
    return cents, valid


def fit_residual_kmeans(x, sizes, *, last_level: str = "per_parent", iters: int = 20,
                        seed: int = 0, max_points_per_centroid: int = 256
                        ) -> tuple[ResidualKMeans, np.ndarray, np.ndarray]:
    """Fits the levels in order; returns (model, codes (N, L) int32, final residual (N, D))."""
    x = kmeans.check_embeddings(x, "embeddings")
    sizes = tuple(int(s) for s in sizes)
    if last_level not in LAST_LEVEL_MODES:
        raise ValueError(f"last_level must be one of {LAST_LEVEL_MODES}, got {last_level!r}")
    if not sizes or min(sizes) < 1:
        raise ValueError(f"level sizes must be positive integers, got {sizes}")
    if last_level == "per_parent" and len(sizes) < 2:
        raise ValueError("a per_parent last level needs at least one global level before it")
    n_global = len(sizes) - (1 if last_level == "per_parent" else 0)
    for level, k in enumerate(sizes[:n_global]):
        if x.shape[0] < k:
            raise ValueError(f"{x.shape[0]} items are fewer than the {k} centroids of level "
                             f"{level + 1}; use smaller level sizes")
    residual = x.copy()
    globals_, codes = [], []
    for level, k in enumerate(sizes[:n_global]):
        c = kmeans.fit_kmeans(residual, k, iters=iters, seed=seed + level,
                              max_points_per_centroid=max_points_per_centroid)
        code, _ = kmeans.assign(residual, c)
        residual -= c[code]
        globals_.append(c)
        codes.append(code)
    model = ResidualKMeans(global_centroids=globals_, last_level=last_level)
    if last_level == "per_parent":
        pc, pv = fit_per_parent(residual, codes[-1], num_parents=sizes[-2], k=sizes[-1],
                                iters=iters, seed=seed + len(sizes),
                                max_points_per_centroid=max_points_per_centroid)
        model.parent_centroids, model.parent_valid = pc, pv
        code = assign_per_parent(residual, codes[-1], pc, pv)
        residual -= pc[codes[-1], code]
        codes.append(code)
    return model, np.stack(codes, axis=1).astype(np.int32), residual
