"""Optimised product quantisation (OPQ) of the final residual: KHQE's last two SID tokens.

OPQ (Ge et al. 2013, the non-parametric variant that faiss.OPQMatrix implements) learns an
orthogonal rotation R so that x R splits into M sub-vectors that product k-means quantises well.
It alternates
  (a) product k-means on Y = X R: M independent k-means of K codes, one per block of D/M columns
      (run as one vmapped batch, warm-started from the previous round);
  (b) Procrustes: R = U V^T from the SVD U S V^T = X^T Y_hat, the rotation that best maps X onto
      the current reconstruction Y_hat.
The paper uses faiss `OPQ2,IVF1,PQ2x8`: M = 2 sub-spaces of K = 256 codes.
"""
from __future__ import annotations

import numpy as np

from onesearch_jax.sid import kmeans
from onesearch_jax.sid.assign import check_embeddings
from onesearch_jax.sid.codebooks import OPQ


def procrustes_rotation(x, y) -> np.ndarray:
    """The orthogonal R minimising ||x R - y||_F: R = U V^T with U S V^T = svd(x^T y)."""
    u, _, vt = np.linalg.svd(np.asarray(x, np.float64).T @ np.asarray(y, np.float64))
    return (u @ vt).astype(np.float32)


def fit_opq(x, *, subspaces: int = 2, codes: int = 256, iters: int = 10, pq_iters: int = 4,
            pq_iters_first: int = 20, seed: int = 0, max_points_per_centroid: int = 256) -> OPQ:
    """Fits rotation and codebooks on at most max_points_per_centroid * codes rows of x."""
    x = check_embeddings(x, "residuals")
    n, dim = x.shape
    if subspaces < 1 or dim % subspaces:
        raise ValueError(f"dimension {dim} is not divisible by opq subspaces={subspaces}")
    if codes < 1 or n < codes:
        raise ValueError(f"OPQ needs at least codes={codes} training rows, got {n}")
    rng = kmeans.salted_rng(seed)
    cap = max_points_per_centroid * codes
    if n > cap:
        x = x[np.sort(rng.choice(n, size=cap, replace=False))]
        n = cap
    d_sub = dim // subspaces
    rotation = np.eye(dim, dtype=np.float32)
    w = np.ones((subspaces, n), np.float32)
    valid = np.ones((subspaces, codes), bool)
    codebooks = None
    for it in range(max(1, iters)):
        y = (x @ rotation).reshape(n, subspaces, d_sub).transpose(1, 0, 2)  # (M, n, d_sub)
        if codebooks is None:
            codebooks, _ = kmeans.fit_kmeans_batched(
                y, w, np.full((subspaces,), codes), k_max=codes, iters=pq_iters_first,
                seed=seed)
        else:
            codebooks = kmeans.refine_batched(y, w, codebooks, valid, iters=pq_iters)
        opq = OPQ(rotation=rotation, codebooks=codebooks)
        y_hat = opq.decode(opq.encode(x)) @ rotation   # reconstruction in the rotated space
        if it + 1 < iters:
            rotation = procrustes_rotation(x, y_hat)
    return OPQ(rotation=rotation, codebooks=codebooks)
