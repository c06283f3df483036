"""Why a generative retriever misses on a real catalog: seen vs unseen targets, where in the SID
the gold item falls out of the beams. Pure functions over rankings, codes and id sets."""
from __future__ import annotations

from typing import Collection, Hashable, Sequence

import numpy as np


def split_recall(ranked: Sequence[Sequence[Hashable]], targets: Sequence[Collection[Hashable]],
                 seen: Collection[Hashable], k: int = 10) -> dict[str, float]:
    """recall@k over the targets that had training pairs (`seen`) and over those that had none,
    each averaged over the queries with at least one such target, with those query counts."""
    out = {}
    for name, keep in (("seen", True), ("unseen", False)):
        values = []
        for row, gold in zip(ranked, targets):
            part = {t for t in gold if (t in seen) == keep}
            if part:
                values.append(len(part & set(row[:k])) / len(part))
        out[f"recall@{k}/{name}_targets"] = float(np.mean(values)) if values else float("nan")
        out[f"num_queries/{name}_targets"] = float(len(values))
    return out


def prefix_survival(beam_codes: np.ndarray, valid: np.ndarray,
                    target_codes: Sequence[np.ndarray]) -> np.ndarray:
    """float [L]: over all (query, gold item) pairs, how often the gold SID's first l+1 codes are
    the prefix of some valid returned beam (beam_codes int[B, K, L], valid bool[B, K],
    target_codes[b] int[n_b, L]). Non-increasing in l; where it drops is where the search loses
    the gold item."""
    depth = beam_codes.shape[2]
    hits, pairs = np.zeros(depth), 0
    for codes, ok, gold in zip(beam_codes, valid, target_codes):
        codes = codes[ok]
        for sid in np.asarray(gold).reshape(-1, depth):
            pairs += 1
            alive = np.ones(len(codes), bool)
            for level in range(depth):
                alive &= codes[:, level] == sid[level]
                if not alive.any():
                    break
                hits[level] += 1
    return hits / max(pairs, 1)
