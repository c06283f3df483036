"""Quality numbers for semantic IDs: codebook utilisation, uniqueness, collisions, distortion.

Definitions (codes is an (N, L) integer array, one SID per row):
  * CUR of a global level l: distinct codes used at l / level_sizes[l].
  * CUR of a per-parent level l (codes local to the code at l-1): distinct (parent, code) pairs /
    (distinct parents seen * level_sizes[l]); i.e. how full the codebooks that exist are.
  * prefix CUR (OneSearch `test_cur_icr.py`): distinct length-l prefixes / prod(level_sizes[:l]).
  * ICR: share of items whose full SID no other item has.
  * collision rate: 1 - distinct SIDs / items (0 when every SID is unique; it counts how many items
    would have to move to make SIDs unique, as a share of items).
  * reconstruction error: mean over rows of the squared L2 norm of x - x_hat.
"""
from __future__ import annotations

import numpy as np


def _check_codes(codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be a non-empty (N, L) array, got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    return codes


def _unique_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverse index per row, count per distinct row)."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def codebook_utilization(codes, level_sizes, per_parent_levels=()) -> np.ndarray:
    """(L,) CUR per level; levels in per_parent_levels use the per-parent definition."""
    codes = _check_codes(codes)
    level_sizes = tuple(int(s) for s in level_sizes)
    if len(level_sizes) != codes.shape[1]:
        raise ValueError(f"{len(level_sizes)} level sizes for codes with {codes.shape[1]} levels")
    out = np.zeros((len(level_sizes),), np.float64)
    for level, size in enumerate(level_sizes):
        if level in per_parent_levels:
            if level == 0:
                raise ValueError("level 0 has no parent and cannot be per_parent")
            pairs = np.unique(codes[:, level - 1:level + 1], axis=0)
            parents = np.unique(codes[:, level - 1])
            out[level] = len(pairs) / (len(parents) * size)
        else:
            out[level] = len(np.unique(codes[:, level])) / size
    return out


def prefix_utilization(codes, level_sizes) -> np.ndarray:
    """(L,) distinct length-(l+1) prefixes / product of the first l+1 level sizes."""
    codes = _check_codes(codes)
    out = np.zeros((codes.shape[1],), np.float64)
    space = 1.0
    for level, size in enumerate(level_sizes):
        space *= int(size)
        out[level] = len(np.unique(codes[:, :level + 1], axis=0)) / space
    return out


def icr(codes) -> float:
    """Item-to-code ratio as OneSearch uses it: share of items with a SID of their own."""
    codes = _check_codes(codes)
    inverse, counts = _unique_rows(codes)
    return float(np.mean(counts[inverse] == 1))


def collision_rate(codes) -> float:
    """1 - distinct SIDs / items."""
    codes = _check_codes(codes)
    _, counts = _unique_rows(codes)
    return float(1.0 - len(counts) / codes.shape[0])


def reconstruction_error(x, x_hat) -> float:
    """Mean over rows of ||x - x_hat||^2."""
    x = np.asarray(x, np.float64)
    x_hat = np.asarray(x_hat, np.float64)
    if x.shape != x_hat.shape or x.ndim != 2:
        raise ValueError(f"x {x.shape} and x_hat {x_hat.shape} must be equal (N, D) shapes")
    return float(np.mean(np.sum((x - x_hat) ** 2, axis=1)))


def collision_table(codes) -> dict[tuple[int, ...], list[int]]:
    """SID -> row indices (ascending), for every SID that more than one row shares."""
    codes = _check_codes(codes)
    inverse, counts = _unique_rows(codes)
    shared = np.flatnonzero(counts[inverse] > 1)
    table: dict[tuple[int, ...], list[int]] = {}
    for row in shared:
        table.setdefault(tuple(int(c) for c in codes[row]), []).append(int(row))
    return table
