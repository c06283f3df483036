"""Nearest-centroid assignment (what encoding with fitted codebooks needs; k-means fitting in
`kmeans.py` builds on it). Distances use ||x||^2 - 2 x.c + ||c||^2 (one matmul) at HIGHEST
precision so that TPU/GPU runs do not silently drop to bf16/tf32; rows go through in blocks
padded to a power of two, so any batch size reuses a handful of compiled shapes."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


_PRECISION = jax.lax.Precision.HIGHEST


_FAR = jnp.float32(3e38)


# Rows per chunk are chosen so that one (rows x k) distance block holds about this many floats.
_DISTANCE_BLOCK_FLOATS = 1 << 24


def default_chunk(num_centroids: int) -> int:
    """Rows per distance block: a power of two near 64 MB of float32 distances, >= 256 rows."""
    rows = max(256, _DISTANCE_BLOCK_FLOATS // max(1, num_centroids))
    return int(1 << int(np.floor(np.log2(rows))))


def check_embeddings(x, name: str = "x", *, allow_zero_rows: bool = True) -> np.ndarray:
    """Returns x as float32 (N, D); raises ValueError naming the first NaN/inf (or zero) row."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} row {int(np.argmax(bad))} contains NaN or inf")
    zero = ~(x != 0).any(axis=1)
    if not allow_zero_rows and zero.any():
        raise ValueError(f"{name} row {int(np.argmax(zero))} is all zeros")
    return x


def _assign_chunked(x, c, c_valid, chunk):
    """Nearest valid centroid for each row of x (n multiple of chunk): (codes, sq_dist).

    argmin_j ||x - c_j||^2 = argmin_j (||c_j||^2 - 2 x.c_j): the -2 is folded into the small x
    chunk and invalid centroids get +FAR in ||c||^2, so the big (chunk, k) block sees one matmul,
    one add and one argmin.
    """
    n, dim = x.shape
    c_sq = jnp.where(c_valid, jnp.sum(c * c, axis=1), _FAR)

    def one_chunk(xc):
        scores = c_sq[None, :] + jnp.matmul(-2.0 * xc, c.T, precision=_PRECISION)
        code = jnp.argmin(scores, axis=1)
        best = jnp.take_along_axis(scores, code[:, None], axis=1)[:, 0]
        return code.astype(jnp.int32), jnp.maximum(jnp.sum(xc * xc, axis=1) + best, 0.0)

    codes, dist = jax.lax.map(one_chunk, x.reshape(n // chunk, chunk, dim))
    return codes.reshape(n), dist.reshape(n)


@functools.partial(jax.jit, static_argnames=("chunk",))
def _assign_jit(x, c, c_valid, chunk):
    return _assign_chunked(x, c, c_valid, chunk)


def _pow2_at_least(n: int, floor: int = 8) -> int:
    return max(floor, 1 << int(np.ceil(np.log2(max(n, 1)))))


_ASSIGN_BLOCK_ROWS = 1 << 18


def assign(x, centroids, chunk: int | None = None, valid=None):
    """Nearest centroid per row: (codes int32 (N,), sq_dist float32 (N,)), chunked over rows.

    Rows go through in blocks padded to a power of two, so batches of any size (a single query, a
    catalogue) reuse a handful of compiled shapes.
    """
    x = np.asarray(x, np.float32)
    centroids = np.asarray(centroids, np.float32)
    if x.ndim != 2 or centroids.ndim != 2 or x.shape[1] != centroids.shape[1]:
        raise ValueError(f"dimension mismatch: x {x.shape} vs centroids {centroids.shape}")
    k = centroids.shape[0]
    valid = np.ones((k,), bool) if valid is None else np.asarray(valid, bool)
    n = x.shape[0]
    block = min(_ASSIGN_BLOCK_ROWS, _pow2_at_least(n))
    chunk = min(_pow2_at_least(chunk or default_chunk(k), floor=1), block)
    while block % chunk:
        chunk //= 2
    c, v = jnp.asarray(centroids), jnp.asarray(valid)
    codes, dists = [], []
    for start in range(0, n, block):
        part = x[start:start + block]
        m = part.shape[0]
        if m < block:
            part = np.concatenate([part, np.zeros((block - m, x.shape[1]), np.float32)])
        cd, dd = _assign_jit(jnp.asarray(part), c, v, chunk)
        codes.append(np.asarray(cd)[:m])
        dists.append(np.asarray(dd)[:m])
    return np.concatenate(codes).astype(np.int32), np.concatenate(dists).astype(np.float32)


@jax.jit
def _assign_batched_jit(x, c, c_valid):
    return jax.vmap(lambda x, c, v: _assign_chunked(x, c, v, x.shape[0]))(x, c, c_valid)


def assign_batched(x, centroids, valid):
    """Nearest valid centroid within each of G problems: x (G, n, D), centroids (G, k, D)."""
    codes, dist = _assign_batched_jit(jnp.asarray(x, jnp.float32),
                                      jnp.asarray(centroids, jnp.float32), jnp.asarray(valid))
    return np.asarray(codes), np.asarray(dist)
