"""The log-memorisation baseline: for a query seen in training logs, return what users clicked.

A strong, embarrassingly simple baseline for head queries (and a floor a generative retriever must
beat there): items ranked by total logged weight (clicks, or clicks + orders) for that exact query
key, then the globally most popular items not yet listed. Unseen queries get popularity only.
Ties in weight go to the more popular item, then to the lower item id.
"""
from __future__ import annotations

import numpy as np


class LogMemorizer:
    """Exact-query lookup of the most engaged items; call `fit` then `search`."""

    def __init__(self):
        self.keys = None          # (U,) sorted unique query keys
        self.offsets = None       # (U + 1,) start of each key's items in `items`
        self.items = None         # (P,) items per key, best first
        self.item_weights = None  # (P,) their summed weights
        self.popular = None       # (num_items,) all item ids, most popular first

    def fit(self, query_keys, item_ids, weights, popularity) -> "LogMemorizer":
        """Sums weights per (query key, item) and orders each key's items.

        Args:
          query_keys: (N,) one key per logged (query, item) event; ints or strings.
          item_ids: (N,) item ids in [0, num_items).
          weights: (N,) non-negative engagement weights; pairs whose sum is 0 are dropped.
          popularity: (num_items,) the fallback score of every item.
        """
        query_keys = np.asarray(query_keys)
        item_ids = np.asarray(item_ids)
        weights = np.asarray(weights, dtype=np.float64)
        popularity = np.asarray(popularity, dtype=np.float64)
        if query_keys.ndim != 1 or item_ids.shape != query_keys.shape or \
                weights.shape != query_keys.shape:
            raise ValueError(f"query_keys, item_ids and weights must be 1-D of one length, got "
                             f"{query_keys.shape}, {item_ids.shape}, {weights.shape}")
        if popularity.ndim != 1 or popularity.size == 0:
            raise ValueError(f"popularity must be a non-empty 1-D array, got {popularity.shape}")
        if item_ids.size and not np.issubdtype(item_ids.dtype, np.integer):
            raise ValueError(f"item_ids must be integers, got dtype {item_ids.dtype}")
        num_items = popularity.size
        if item_ids.size and (item_ids.min() < 0 or item_ids.max() >= num_items):
            raise ValueError(f"item_ids must lie in [0, {num_items}), got range "
                             f"[{item_ids.min()}, {item_ids.max()}]")
        if np.any(~np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and non-negative")

        self.popular = np.lexsort((np.arange(num_items), -popularity))
        keys, key_index = np.unique(query_keys, return_inverse=True)
        key_index = key_index.reshape(-1)
        # Group events by (key, item) and sum their weights.
        order = np.lexsort((item_ids, key_index))
        k_sorted, i_sorted, w_sorted = key_index[order], item_ids[order], weights[order]
        starts = np.flatnonzero(np.r_[True, (np.diff(k_sorted) != 0) | (np.diff(i_sorted) != 0)]) \
            if order.size else np.zeros(0, dtype=np.int64)
        pair_key, pair_item = k_sorted[starts], i_sorted[starts].astype(np.int64)
        pair_weight = np.add.reduceat(w_sorted, starts) if starts.size else np.zeros(0)
        positive = pair_weight > 0
        pair_key, pair_item = pair_key[positive], pair_item[positive]
        pair_weight = pair_weight[positive]
        # Within each key: weight desc, popularity desc, item id asc.
        rank = np.lexsort((pair_item, -popularity[pair_item], -pair_weight, pair_key))
        self.items, self.item_weights = pair_item[rank], pair_weight[rank]
        counts = np.bincount(pair_key[rank], minlength=keys.size)
        self.keys = keys
        self.offsets = np.r_[0, np.cumsum(counts)]
        return self

    def memorized(self, query_key) -> np.ndarray:
        """The items logged for one key, best first (empty for an unseen key)."""
        if self.keys is None:
            raise ValueError("LogMemorizer.search/memorized called before fit")
        pos = np.searchsorted(self.keys, query_key)
        if pos < self.keys.size and self.keys[pos] == query_key:
            return self.items[self.offsets[pos]:self.offsets[pos + 1]]
        return self.items[:0]

    def search(self, query_keys, k: int) -> np.ndarray:
        """(Q, k) int64 item ids: memorised items, then popular ones; -1 pads past num_items."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        query_keys = np.asarray(query_keys)
        if query_keys.ndim != 1:
            raise ValueError(f"query_keys must be 1-D, got shape {query_keys.shape}")
        out = np.full((query_keys.size, k), -1, dtype=np.int64)
        for q, key in enumerate(query_keys):
            mem = self.memorized(key)[:k]
            # Only the first k + len(mem) popular items can be needed to fill the row.
            fallback = self.popular[:k + mem.size]
            fallback = fallback[~np.isin(fallback, mem)][:k - mem.size]
            row = np.concatenate([mem, fallback])
            out[q, :row.size] = row
        return out
