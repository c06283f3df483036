"""SID cells: every item under a prefix of the generated SIDs (GDR's retrieve-then-rank).

A beam names one SID; its first `level` codes name a cell of the catalog (all items sharing that
prefix). Expanding each returned beam to its cell turns a narrow generative answer into a
candidate set that an in-cell ranker (dense cosine, BM25, a hybrid) orders: the model chooses
where to look, the ranker what comes first. Level L (the whole SID) is the items of the beams'
own SIDs. Built once per catalog on the host; lookups are a sorted-key search per beam.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class CellIndex:
    """Items grouped by SID prefix, for every prefix length 1..L."""

    def __init__(self, item_codes, level_sizes: Sequence[int]):
        codes = np.asarray(item_codes, np.int64)
        if codes.ndim != 2 or codes.shape[1] != len(level_sizes):
            raise ValueError(f"item_codes must be [N, {len(level_sizes)}], got {codes.shape}")
        self.level_sizes = tuple(int(s) for s in level_sizes)
        self._keys, self._order = [], []
        for level in range(1, codes.shape[1] + 1):
            keys = self.prefix_keys(codes[:, :level])
            order = np.argsort(keys, kind="stable")  # items of a cell stay in index order
            self._keys.append(keys[order])
            self._order.append(order)

    def prefix_keys(self, prefixes: np.ndarray) -> np.ndarray:
        """int64 key of each prefix row (mixed radix over the level sizes; 5 x 2^12 fits)."""
        prefixes = np.asarray(prefixes, np.int64)
        key = np.zeros(prefixes.shape[:-1], np.int64)
        for level in range(prefixes.shape[-1]):
            key = key * self.level_sizes[level] + prefixes[..., level]
        return key

    def items(self, prefix: Sequence[int]) -> np.ndarray:
        """Item indices whose SID starts with `prefix` (ascending)."""
        level = len(prefix)
        if not 1 <= level <= len(self.level_sizes):
            raise ValueError(f"a cell prefix has 1..{len(self.level_sizes)} codes, got {level}")
        key = self.prefix_keys(np.asarray(prefix)[None])[0]
        keys = self._keys[level - 1]
        lo, hi = np.searchsorted(keys, key, "left"), np.searchsorted(keys, key, "right")
        return self._order[level - 1][lo:hi]

    def beam_cells(self, codes: np.ndarray, valid: np.ndarray, level: int) -> list[np.ndarray]:
        """Per query, the items of the cells its valid beams fall in at `level`, each cell once,
        cells in beam order. codes int[B, K, L], valid bool[B, K]."""
        if not 1 <= level <= len(self.level_sizes):
            raise ValueError(f"cell level must be in 1..{len(self.level_sizes)}, got {level}")
        keys, order = self._keys[level - 1], self._order[level - 1]
        beam_keys = self.prefix_keys(np.asarray(codes)[..., :level])
        lo = np.searchsorted(keys, beam_keys, "left")
        hi = np.searchsorted(keys, beam_keys, "right")
        out = []
        for row_keys, row_lo, row_hi, row_valid in zip(beam_keys, lo, hi, np.asarray(valid)):
            _, first = np.unique(np.where(row_valid, row_keys, -1), return_index=True)
            beams = np.sort(first)
            beams = beams[row_valid[beams]]
            parts = [order[row_lo[b]:row_hi[b]] for b in beams]
            out.append(np.concatenate(parts) if parts else order[:0])
        return out
