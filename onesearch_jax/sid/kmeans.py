"""k-means in JAX: k-means++ init on a sample, jitted Lloyd iterations, farthest-point repair.

One padded, masked solver (`fit_padded`) serves every caller:
  * a single global k-means (`fit_kmeans`), chunked over points so that N x k distances are never
    materialised at once (1M x 4096 floats would be 16 GB);
  * a batch of independent k-means problems of the same padded shape (`fit_kmeans_batched`,
    vmapped), used for the per-parent last level and for the OPQ sub-quantisers, so that thousands of
    small problems cost one compile per shape bucket, not one per problem.

Initialisation is k-means++ (D^2 sampling) run on a random subsample of
max(1024, init_points_per_centroid * k) points (default 2k, "k-means++ on a sample"): the k
sequential, memory-bound steps touch only that sample, which keeps the init cost a small fraction of
one Lloyd pass at paper sizes. Clusters that end an iteration empty are re-seeded
at the points currently farthest from their centroid (distinct points per empty cluster), which is
what keeps codebook utilisation high.

Distances use ||x||^2 - 2 x.c + ||c||^2 (one matmul) at HIGHEST precision so that TPU/GPU runs do not
silently drop to bf16/tf32. Randomness (row sample, init order, D^2 draws) comes from a seeded numpy
Generator on the host, so results are deterministic for a fixed seed, device and sizes, and the
jitted code has no PRNG ops (threefry compiles slowly on CPU).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.sid.assign import (_FAR, _PRECISION, _assign_chunked, check_embeddings,
                                     default_chunk)


def _kmeans_pp_init(x, w, k_valid, noise, draws, k_max, init_size):
    """k-means++ (D^2 sampling) on a random weighted subsample of `init_size` rows of x.

    Randomness comes from the host (noise (n,) orders the rows, draws (k_max,) in [0, 1) pick each
    centroid by inverse CDF): it keeps this function free of PRNG ops, which compile slowly on CPU.
    """
    order = jnp.argsort(noise + 2.0 * (w <= 0))   # valid rows first, in random order
    sample = x[order[:init_size]]
    s_valid = (w[order[:init_size]] > 0).astype(x.dtype)
    s_sq = jnp.sum(sample * sample, axis=1)

    def body(j, carry):
        cents, min_d2 = carry
        weights = s_valid * min_d2
        weights = jnp.where((j == 0) | (jnp.sum(weights) <= 0), s_valid, weights)
        cdf = jnp.cumsum(weights)
        idx = jnp.sum(cdf <= draws[j] * cdf[-1])   # first index with cdf > target
        c = sample[jnp.clip(idx, 0, init_size - 1)]
        d2 = s_sq - 2.0 * jnp.matmul(sample, c, precision=_PRECISION) + jnp.sum(c * c)
        use = j < k_valid
        min_d2 = jnp.where(use, jnp.minimum(min_d2, jnp.maximum(d2, 0.0)), min_d2)
        cents = cents.at[j].set(jnp.where(use, c, 0.0))
        return cents, min_d2

    init = (jnp.zeros((k_max, x.shape[1]), x.dtype), jnp.full((init_size,), _FAR))
    cents, _ = jax.lax.fori_loop(0, k_max, body, init)
    return cents


def _lloyd_step(x, w, c, c_valid, chunk):
    """One Lloyd iteration with farthest-point repair of empty valid clusters."""
    k_max = c.shape[0]
    codes, dist = _assign_chunked(x, c, c_valid, chunk)
    sums = jax.ops.segment_sum(x * w[:, None], codes, num_segments=k_max)
    counts = jax.ops.segment_sum(w, codes, num_segments=k_max)
    new_c = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)
    empty = c_valid & (counts <= 0)
    # The r-th empty cluster takes the r-th farthest valid point.
    far_idx = jax.lax.top_k(jnp.where(w > 0, dist, -1.0), k_max)[1]
    rank = jnp.clip(jnp.cumsum(empty) - 1, 0, k_max - 1)
    new_c = jnp.where(empty[:, None], x[far_idx[rank]], new_c)
    return new_c


def _fit_impl(x, w, k_valid, noise, draws, k_max, iters, chunk, init_size):
    c_valid = jnp.arange(k_max) < k_valid
    c = _kmeans_pp_init(x, w, k_valid, noise, draws, k_max, init_size)
    c = jax.lax.fori_loop(0, iters, lambda _, c: _lloyd_step(x, w, c, c_valid, chunk), c)
    return jnp.where(c_valid[:, None], c, 0.0), c_valid


@functools.partial(jax.jit, static_argnames=("k_max", "iters", "chunk", "init_size"))
def fit_padded(x, w, k_valid, noise, draws, *, k_max, iters, chunk, init_size):
    """k-means on the rows of x with weight w (0 = padding), k_valid <= k_max live centroids.

    Returns (centroids (k_max, D), valid (k_max,) bool). x.shape[0] must be a multiple of chunk and
    at least k_max. noise (n,) and draws (k_max,) are uniform [0, 1) randomness for the init.
    Rows past k_valid in the result are zeros and marked invalid.
    """
    return _fit_impl(x, w, k_valid, noise, draws, k_max, iters, chunk, init_size)


@functools.partial(jax.jit, static_argnames=("k_max", "iters", "chunk", "init_size"))
def _fit_padded_batched(x, w, k_valid, noise, draws, *, k_max, iters, chunk, init_size):
    def one(x, w, kv, nz, dr):
        return _fit_impl(x, w, kv, nz, dr, k_max, iters, chunk, init_size)
    return jax.vmap(one)(x, w, k_valid, noise, draws)


@functools.partial(jax.jit, static_argnames=("iters",))
def _refine_batched(x, w, c, c_valid, *, iters):
    def one(x, w, c, v):
        step = lambda _, c: _lloyd_step(x, w, c, v, x.shape[0])
        return jnp.where(v[:, None], jax.lax.fori_loop(0, iters, step, c), 0.0)
    return jax.vmap(one)(x, w, c, c_valid)


def refine_batched(x, w, centroids, valid, *, iters: int):
    """Warm-started Lloyd iterations for G padded problems (used by OPQ's alternation)."""
    c = _refine_batched(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                        jnp.asarray(centroids, jnp.float32), jnp.asarray(valid), iters=iters)
    return np.asarray(c)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


_MIN_INIT_ROWS = 1024


def _init_size(n_rows: int, k: int, init_points_per_centroid: int) -> int:
    """k-means++ sample: init_points_per_centroid * k rows, at least 1024, at most all rows."""
    return int(min(n_rows, max(_MIN_INIT_ROWS, k, init_points_per_centroid * k)))


def salted_rng(seed: int) -> np.random.Generator:
    """Salted stream, so that data drawn with the same integer seed is not correlated with ours."""
    return np.random.default_rng([int(seed), 0x6B6D65616E73])


def fit_kmeans(x, k: int, *, iters: int = 20, seed: int = 0, max_points_per_centroid: int = 256,
               init_points_per_centroid: int = 2, chunk: int | None = None) -> np.ndarray:
    """Fits k centroids to the rows of x (N, D); trains on at most max_points_per_centroid * k rows."""
    x = check_embeddings(x)
    n = x.shape[0]
    if k < 1 or n < k:
        raise ValueError(f"k-means needs 1 <= k <= number of points, got k={k}, N={n}")
    if iters < 0 or max_points_per_centroid < 1:
        raise ValueError(f"bad iters={iters} or max_points_per_centroid={max_points_per_centroid}")
    rng = salted_rng(seed)
    cap = max_points_per_centroid * k
    if n > cap:
        x = x[np.sort(rng.choice(n, size=cap, replace=False))]
        n = cap
    chunk = min(chunk or default_chunk(k), _round_up(n, 8))
    n_pad = _round_up(n, chunk)
    xp = np.zeros((n_pad, x.shape[1]), np.float32)
    xp[:n] = x
    w = np.zeros((n_pad,), np.float32)
    w[:n] = 1.0
    noise = rng.random((n_pad,), dtype=np.float32)
    draws = rng.random((k,), dtype=np.float32)
    c, _ = fit_padded(jnp.asarray(xp), jnp.asarray(w), jnp.int32(k), noise, draws, k_max=k,
                      iters=iters, chunk=chunk,
                      init_size=_init_size(n, k, init_points_per_centroid))
    return np.asarray(c)


def fit_kmeans_batched(x, w, k_valid, *, k_max: int, iters: int = 20, seed: int = 0,
                       init_points_per_centroid: int = 2):
    """Independent k-means for each of G padded problems: x (G, n, D), w (G, n), k_valid (G,).

    Every problem must have at least k_valid[g] rows with w > 0 and n >= k_max. Returns
    (centroids (G, k_max, D), valid (G, k_max)) as numpy arrays.
    """
    x = np.asarray(x, np.float32)
    g, n, _ = x.shape
    if n < k_max:
        raise ValueError(f"padded problems need n >= k_max, got n={n}, k_max={k_max}")
    rng = salted_rng(seed)
    noise = rng.random((g, n), dtype=np.float32)
    draws = rng.random((g, k_max), dtype=np.float32)
    init_size = _init_size(n, k_max, init_points_per_centroid)
    c, valid = _fit_padded_batched(jnp.asarray(x), jnp.asarray(w, jnp.float32),
                                   jnp.asarray(k_valid, jnp.int32), noise, draws, k_max=k_max,
                                   iters=iters, chunk=n, init_size=init_size)
    return np.asarray(c), np.asarray(valid)


