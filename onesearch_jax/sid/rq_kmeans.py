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

import numpy as np

from onesearch_jax.sid import kmeans
from onesearch_jax.sid.assign import assign, check_embeddings
from onesearch_jax.sid.codebooks import LAST_LEVEL_MODES, ResidualKMeans, assign_per_parent
from onesearch_jax.sid.parent_batches import parent_batches


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
    x = check_embeddings(x, "embeddings")
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
        code, _ = assign(residual, c)
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
