"""Keyword enhancement of text embeddings before semantic-ID quantisation.

OneSearch (keyword_enhance.py) fuses a text's embedding with the mean embedding of its keywords:
    e = L2norm(0.5 * e_text + 0.5 * mean_k(e_keyword_k)).
This pulls items that share intent/category/attribute keywords together, so residual k-means
spends its codes on what matters for search. ``enabled=False`` is the ablation (text only).
"""
from __future__ import annotations

import numpy as np


def _check_rows(name: str, x: np.ndarray) -> None:
    """Raises ValueError naming the first row with a NaN/inf or an all-zero vector."""
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name} row {int(np.argmin(finite))} contains NaN or inf")
    zero = ~np.any(x != 0, axis=1)
    if zero.any():
        raise ValueError(f"{name} row {int(np.argmax(zero))} is all zeros")


def l2_normalize(x: np.ndarray, name: str = "embedding") -> np.ndarray:
    """Row-wise unit vectors; raises ValueError for a zero row (it has no direction)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} row {int(np.argmax(norms[:, 0] == 0))} has zero norm")
    return x / norms


def fuse_keywords(text_emb: np.ndarray, keyword_emb: np.ndarray, owner: np.ndarray,
                  enabled: bool = True) -> np.ndarray:
    """L2norm(0.5 * text + 0.5 * mean of the row's keywords); rows without keywords keep
    L2norm(text).

    Args:
      text_emb: (N, D) text embeddings.
      keyword_emb: (M, D) keyword embeddings.
      owner: (M,) int, the text row each keyword belongs to.
      enabled: False returns L2norm(text_emb) (the no-keyword ablation).
    Returns:
      (N, D) float32 unit vectors.
    """
    text_emb = np.asarray(text_emb, np.float64)
    if text_emb.ndim != 2:
        raise ValueError(f"text_emb must be 2-D (N, D), got shape {text_emb.shape}")
    _check_rows("text_emb", text_emb)
    if not enabled:
        return l2_normalize(text_emb, "text_emb").astype(np.float32)

    keyword_emb = np.asarray(keyword_emb, np.float64)
    owner = np.asarray(owner)
    if keyword_emb.ndim != 2:
        raise ValueError(f"keyword_emb must be 2-D (M, D), got shape {keyword_emb.shape}")
    if keyword_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"dim mismatch: text_emb has D={text_emb.shape[1]}, "
                         f"keyword_emb has D={keyword_emb.shape[1]}")
    if owner.shape != (keyword_emb.shape[0],):
        raise ValueError(f"owner must have shape ({keyword_emb.shape[0]},), got {owner.shape}")
    if owner.size and not np.issubdtype(owner.dtype, np.integer):
        raise ValueError(f"owner must hold integer row indices, got dtype {owner.dtype}")
    owner = owner.astype(np.int64)
    n = text_emb.shape[0]
    bad = (owner < 0) | (owner >= n)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"owner[{k}] = {int(owner[k])} is not a text row in [0, {n})")
    _check_rows("keyword_emb", keyword_emb)

    counts = np.bincount(owner, minlength=n).astype(np.float64)
    sums = np.zeros_like(text_emb)
    np.add.at(sums, owner, keyword_emb)
    has_keywords = counts > 0
    fused = text_emb.copy()
    fused[has_keywords] = (0.5 * text_emb[has_keywords]
                           + 0.5 * sums[has_keywords] / counts[has_keywords, None])
    return l2_normalize(fused, "fused embedding").astype(np.float32)


def embed_with_keywords(embedder, texts: list[str], keywords: list[list[str]],
                        enabled: bool = True) -> np.ndarray:
    """Embeds texts and their keywords (each distinct keyword once) and fuses them.

    ``keywords[i]`` lists the keywords of ``texts[i]`` (may be empty). Returns (N, dim) float32.
    """
    if len(keywords) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(keywords)} keyword lists")
    text_emb = embedder.embed(list(texts))
    if not enabled:
        return fuse_keywords(text_emb, None, None, enabled=False)

    vocabulary: dict[str, int] = {}
    keyword_ids, owner = [], []
    for row, words in enumerate(keywords):
        if isinstance(words, str):
            raise ValueError(f"keywords[{row}] is a str; expected a list of strings")
        for word in words:
            if not isinstance(word, str) or not word.strip():
                raise ValueError(f"keywords[{row}] holds an empty or non-string keyword {word!r}")
            keyword_ids.append(vocabulary.setdefault(word, len(vocabulary)))
            owner.append(row)
    if vocabulary:
        distinct = embedder.embed(list(vocabulary))
        keyword_emb = distinct[np.asarray(keyword_ids, np.int64)]
    else:
        keyword_emb = np.zeros((0, text_emb.shape[1]), np.float32)
    return fuse_keywords(text_emb, keyword_emb, np.asarray(owner, np.int64), enabled=True)


def fuse_queries(item_emb: np.ndarray, query_emb: np.ndarray, item_of_pair: np.ndarray,
                 query_of_pair: np.ndarray, weight: float) -> np.ndarray:
    """Relevance-aware item vectors: L2norm((1 - w) * item + w * mean of the embeddings of the
    queries it was judged relevant to); items without such a pair keep L2norm(item).

    Quantising these puts products where their searchers' queries are, so the SIDs of items that
    share queries share prefixes (the SID space is still the items': a product's code is its own).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"query fusion weight must be in [0, 1], got {weight}")
    item_emb = np.asarray(item_emb, np.float64)
    query_emb = np.asarray(query_emb, np.float64)
    item_of_pair, query_of_pair = np.asarray(item_of_pair), np.asarray(query_of_pair)
    if item_of_pair.shape != query_of_pair.shape:
        raise ValueError(f"{item_of_pair.shape} item indices but {query_of_pair.shape} query "
                         "indices")
    n = item_emb.shape[0]
    sums = np.zeros_like(item_emb)
    np.add.at(sums, item_of_pair, query_emb[query_of_pair])
    counts = np.bincount(item_of_pair, minlength=n).astype(np.float64)
    out = item_emb.copy()
    has = counts > 0
    out[has] = (1.0 - weight) * item_emb[has] + weight * sums[has] / counts[has, None]
    return l2_normalize(out, "query-fused embedding").astype(np.float32)
