"""Head / torso / tail of the training logs' query traffic, as a company reads it off its logs.

Queries sorted by their number of training-log searches: the most searched ones that make up
the first half of the traffic are the head, the next 30% the torso, the rest the tail; a query
with no training search is unseen. Serving uses it to decide how much the SID geometry (the
ADC prior) should count against what the model learned from the logs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

HEAD, TORSO, TAIL, UNSEEN = range(4)
SLICE_NAMES = ("head", "torso", "tail", "unseen")
HEAD_SHARE, TORSO_SHARE = 0.5, 0.8  # cumulative traffic shares where head and torso end


def traffic_slices(counts) -> np.ndarray:
    """int8 [Q]: HEAD / TORSO / TAIL / UNSEEN of each query from its training search count.

    A query is in the head when the traffic of the queries searched more often (ties: lower
    index first) is below HEAD_SHARE of the total, in the torso below TORSO_SHARE."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"counts must be a 1-D array of non-negative numbers, got {counts!r}")
    out = np.full(len(counts), UNSEEN, np.int8)
    total = counts.sum()
    if total <= 0:
        return out
    order = np.argsort(-counts, kind="stable")
    before = np.empty(len(counts))
    before[order] = (np.cumsum(counts[order]) - counts[order]) / total
    out[:] = np.where(before < HEAD_SHARE, HEAD, np.where(before < TORSO_SHARE, TORSO, TAIL))
    out[counts == 0] = UNSEEN
    return out


def slice_weights(slices: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """float32 per query: weights[slice] (weights = (head, torso, tail, unseen))."""
    weights = np.asarray(weights, np.float32)
    if weights.shape != (4,):
        raise ValueError(f"weights by traffic need 4 values (head, torso, tail, unseen), got "
                         f"{weights.tolist()}")
    return weights[np.asarray(slices, np.int64)]
