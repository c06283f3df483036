"""Fits KHQE semantic IDs (the codebooks themselves: `codebooks.py`): residual k-means prefix + OPQ
(or dedup) suffix, 5 tokens per item.

OneSearch's tokenizer: 3 levels of residual k-means over keyword-enhanced embeddings (paper sizes
4096-1024-512, the last level an independent k-means per level-2 code) and 2 OPQ codes of 256 on the
final residual. Items and queries share the codebooks: `KHQE.encode` serves both. The suffix can be
switched to a TIGER-style de-duplication index (`suffix='dedup'`) for ablations.

Sizes come as presets (`khqe_preset('tiny' | 'small' | 'paper')`) or explicit fields; the config is a
frozen dataclass that round-trips through plain dicts (and so ml_collections.ConfigDict).
"""
from __future__ import annotations

import numpy as np

from onesearch_jax.sid.assign import check_embeddings
from onesearch_jax.sid.codebooks import KHQE, as_khqe_config
from onesearch_jax.sid.opq import fit_opq
from onesearch_jax.sid.rq_kmeans import fit_residual_kmeans


def fit_and_encode_khqe(embeddings, cfg) -> tuple[KHQE, np.ndarray]:
    """Fits the tokenizer and returns the training rows' SIDs without a second encode pass."""
    cfg = as_khqe_config(cfg)
    x = check_embeddings(embeddings, "embeddings", allow_zero_rows=False)
    if x.shape[0] < cfg.level_sizes[0]:
        raise ValueError(f"{x.shape[0]} items are fewer than the {cfg.level_sizes[0]} level-1 "
                         f"centroids of khqe.level_sizes={tuple(cfg.level_sizes)}; set smaller "
                         "ones (--config.khqe.level_sizes for build_sids, "
                         "--config.sids.khqe.level_sizes for a real catalog)")
    rq, prefix, residual = fit_residual_kmeans(
        x, cfg.level_sizes, last_level=cfg.last_level, iters=cfg.iters, seed=cfg.seed,
        max_points_per_centroid=cfg.max_points_per_centroid)
    opq = None
    if cfg.suffix == "opq":
        opq = fit_opq(residual, subspaces=cfg.opq_subspaces, codes=cfg.opq_codes,
                      iters=cfg.opq_iters, seed=cfg.seed + 101,
                      max_points_per_centroid=cfg.max_points_per_centroid)
    model = KHQE(config=cfg, rq=rq, opq=opq)
    return model, np.concatenate([prefix, model._suffix(prefix, residual)], axis=1)


def fit_khqe(embeddings, cfg) -> KHQE:
    """Fits prefix codebooks and suffix on item embeddings (N, D) float32, L2-normalised."""
    return fit_and_encode_khqe(embeddings, cfg)[0]
