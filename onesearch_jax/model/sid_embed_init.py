"""Initialising the SID token embeddings from the KHQE codebooks (RIPOR's change_embed_layer).

Our SIDs quantise text embeddings, so each code already has a vector: the centroid a residual
level adds, the per-parent centroids averaged over parents for the per-parent level, and an OPQ
sub-code's vector placed in its block and rotated back. Projected to d_model by a fixed random
orthonormal map and scaled to the fresh table's per-coordinate scale, these rows start the
decoder where the geometry is (the output projection is tied: logits ~ h . code vector), instead
of at random. Only SID rows change; text rows and every other weight keep their fresh init.
"""
from __future__ import annotations

import numpy as np
from jax.experimental import multihost_utils


def code_vectors(khqe) -> list[np.ndarray]:
    """Per SID position, float32 [k_l, D]: the vector each code adds to a reconstruction."""
    rq = khqe.rq
    out = [np.asarray(c, np.float32) for c in rq.global_centroids]
    if rq.last_level == "per_parent":
        valid = np.asarray(rq.parent_valid, np.float32)[:, :, None]       # [P, k, 1]
        total = (np.asarray(rq.parent_centroids, np.float32) * valid).sum(0)
        out.append(total / np.maximum(valid.sum(0), 1.0))
    sizes = khqe.level_sizes[len(out):]
    if khqe.opq is None:  # the dedup suffix has no vectors: keep those rows random
        return out + [None] * len(sizes)
    books = np.asarray(khqe.opq.codebooks, np.float32)                    # [M, K, D / M]
    m, k, d_sub = books.shape
    rotation_t = np.asarray(khqe.opq.rotation, np.float32).T
    for i in range(m):
        placed = np.zeros((k, m * d_sub), np.float32)
        placed[:, i * d_sub:(i + 1) * d_sub] = books[i]
        out.append(placed @ rotation_t)
    return out


def centroid_rows(khqe, d_model: int, seed: int = 0) -> list[np.ndarray | None]:
    """Per SID position, [k_l, d_model] rows with unit per-coordinate RMS (None: keep random)."""
    rng = np.random.default_rng(seed)
    dim = khqe.dim
    basis, _ = np.linalg.qr(rng.normal(size=(max(dim, d_model), max(dim, d_model))))
    projection = basis[:dim, :d_model].astype(np.float32) * np.sqrt(max(dim, d_model) / d_model)
    rows = []
    for vectors in code_vectors(khqe):
        if vectors is None:
            rows.append(None)
            continue
        projected = vectors @ projection
        rms = float(np.sqrt(np.mean(projected ** 2)))
        rows.append(projected / max(rms, 1e-12))
    return rows


def init_sid_embeddings(params: dict, khqe, level_offsets, seed: int = 0) -> dict:
    """`params` of an EncoderDecoder -> the same tree with the SID rows of the shared embedding
    table set from the codebooks."""
    # The fresh table may be sharded across hosts (FSDP/tensor): every process gathers it whole.
    table = np.array(multihost_utils.process_allgather(params["embed"]["embedding"], tiled=True))
    rows = centroid_rows(khqe, table.shape[1], seed)
    if len(rows) != len(level_offsets):
        raise ValueError(f"{len(rows)} SID levels in the codebooks, {len(level_offsets)} in the "
                         "vocabulary")
    for offset, level_rows in zip(level_offsets, rows):
        if level_rows is None:
            continue
        if offset + len(level_rows) > len(table):
            raise ValueError(f"SID rows [{offset}, {offset + len(level_rows)}) exceed the "
                             f"embedding table's {len(table)} rows")
        table[offset:offset + len(level_rows)] = level_rows.astype(table.dtype)
    return {**params, "embed": {**params["embed"], "embedding": table}}
