"""TIGER-style de-duplication suffix: the alternative to OPQ codes for the last SID tokens.

Instead of quantising the residual, each item gets the index of itself among the items that share
its prefix (in row order), so two items never share a full SID while the index stays below
base ** num_tokens. The index is written in base `base` over `num_tokens` tokens, most significant
first (index 5 with base 4 and 2 tokens -> (1, 1)). It depends on the whole set being encoded: a
catalogue encoded in the same order gets the same suffixes; a lone query gets (0, ..., 0).
"""
from __future__ import annotations

import numpy as np


def dedup_index(prefix_codes) -> np.ndarray:
    """(N,) int64: rank of each row among earlier rows with an identical prefix row."""
    prefix_codes = np.asarray(prefix_codes)
    if prefix_codes.ndim != 2:
        raise ValueError(f"prefix codes must be (N, L), got shape {prefix_codes.shape}")
    n = prefix_codes.shape[0]
    if n == 0:
        return np.zeros((0,), np.int64)
    _, group = np.unique(prefix_codes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")        # rows grouped, row order kept inside a group
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
    first_of_group = np.repeat(starts, np.diff(np.r_[starts, n]))
    index = np.empty((n,), np.int64)
    index[order] = np.arange(n) - first_of_group
    return index


def dedup_suffix(prefix_codes, *, base: int, num_tokens: int = 2) -> np.ndarray:
    """(N, num_tokens) int32 suffix tokens in [0, base); raises ValueError on overflow."""
    if base < 2 or num_tokens < 1:
        raise ValueError(f"need base >= 2 and num_tokens >= 1, got {base}, {num_tokens}")
    index = dedup_index(prefix_codes)
    if index.size and index.max() >= base ** num_tokens:
        raise ValueError(f"{int(index.max()) + 1} items share one prefix; the dedup suffix holds "
                         f"at most {base ** num_tokens} (base {base}, {num_tokens} tokens)")
    digits = [(index // base ** p) % base for p in range(num_tokens - 1, -1, -1)]
    return np.stack(digits, axis=1).astype(np.int32)
