"""Embeds a workdir's items and queries, fits KHQE semantic IDs, and records their quality.

Writes W/sids/{khqe.npz, item_codes.npy, query_codes.npy} and merges `cur/l1`.., `icr`,
`collision_rate`, `recon_error`, `seconds` into W/metrics.json.
"""
from __future__ import annotations

import os
import time

import numpy as np

from onesearch_jax import artifacts, fileio
from onesearch_jax import workdir as workdir_lib
from onesearch_jax.world.world import World
from onesearch_jax.sid import sid_metrics
from onesearch_jax.world import text_keywords
from onesearch_jax.sid.embedder import make_embedder
from onesearch_jax.sid.embedding_cache import CachingEmbedder
from onesearch_jax.sid.keyword_fusion import embed_with_keywords
from onesearch_jax.sid.codebooks import KHQEConfig
from onesearch_jax.sid.khqe import fit_and_encode_khqe


def embed_world(world: World, embedder_name: str, keyword_enhance: bool, cache_dir: str):
    """Item and query embeddings (keyword-enhanced or not). Each text list (titles, queries, the
    distinct keywords) goes through the content-addressed embedding cache
    (sid/embedding_cache.py) in one call, so it is embedded once; the keyword fusion is redone
    on the cached vectors (cheap).

    Keywords are text-derived, as a company would have them (world/text_keywords.py): items from
    title + noisy attribute sheet, queries from the dictionary extractor over the query text.
    Embedding is the slow part (MiniLM on a CPU); refitting codebooks should not redo it."""
    item_keywords = text_keywords.item_keywords(world.catalog, int(world.config.seed),
                                                float(world.config.item_keyword_noise))
    query_keywords = text_keywords.text_keywords(world.queries.texts)
    embedder = CachingEmbedder(make_embedder(embedder_name), embedder_name, cache_dir,
                               min_texts=1, chunk=None)
    items = embed_with_keywords(embedder, list(world.catalog.titles), item_keywords,
                                enabled=bool(keyword_enhance))
    queries = embed_with_keywords(embedder, list(world.queries.texts), query_keywords,
                                  enabled=bool(keyword_enhance))
    return items, queries


SID_CONFIG_KEYS = ("embedder", "keyword_enhance", "khqe")  # configs/sids.py; `preset` optional


def check_sids_config(config) -> None:
    """A config of another kind (`--config=configs/sft.py:tiny` given to build_sids) is refused
    by name before anything is read, not by the first missing field deep in the embedding."""
    missing = [k for k in SID_CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"not a SID config: it lacks {missing} (build_sids takes "
                         "--config=configs/sids.py:<preset>)")
    unknown = sorted(set(config) - set(SID_CONFIG_KEYS) - {"preset"})
    if unknown:
        raise ValueError(f"unknown SID config keys {unknown}; valid keys: "
                         f"{', '.join(SID_CONFIG_KEYS)}, preset")


def build_sids_workdir(config, workdir: str, embedding_cache: str | None = None) -> dict[str, float]:
    """Fits KHQE on the world's items; `embedding_cache` defaults to W/sids/."""
    check_sids_config(config)
    fileio.require_local(workdir, "build_sids")
    world = artifacts.load_world(workdir)
    workdir_lib.guard_config(workdir, "sids", config, produced=fileio.exists(
        os.path.join(workdir_lib.sid_dir(workdir), workdir_lib.ITEM_CODES_FILE)))
    start = time.perf_counter()
    items, queries = embed_world(world, config.embedder, config.keyword_enhance,
                                 embedding_cache or workdir_lib.sid_dir(workdir))
    embed_seconds = time.perf_counter() - start
    metrics = fit_and_save_sids(items, queries, config.khqe, workdir_lib.sid_dir(workdir))
    metrics.update(embed_seconds=embed_seconds, seconds=time.perf_counter() - start)
    workdir_lib.write_metrics(workdir, "sids", metrics, config)
    return metrics


def fit_and_save_sids(items: np.ndarray, queries: np.ndarray | None, khqe_config,
                      out_dir: str) -> dict[str, float]:
    """Fits KHQE on item embeddings, encodes items (and queries, if given) with the same
    codebooks, writes out_dir/{khqe.npz, item_codes.npy[, query_codes.npy]}; returns CUR per
    level, ICR, collision rate and reconstruction error."""
    cfg = KHQEConfig.from_dict(khqe_config.to_dict() if hasattr(khqe_config, "to_dict")
                               else dict(khqe_config))
    model, item_codes = fit_and_encode_khqe(items, cfg)
    os.makedirs(out_dir, exist_ok=True)
    model.save(os.path.join(out_dir, workdir_lib.KHQE_FILE))
    np.save(os.path.join(out_dir, workdir_lib.ITEM_CODES_FILE), item_codes)
    if queries is not None:
        np.save(os.path.join(out_dir, workdir_lib.QUERY_CODES_FILE), model.encode(queries))
    cur = sid_metrics.codebook_utilization(item_codes, model.level_sizes, model.per_parent_levels)
    metrics = {f"cur/l{i + 1}": float(c) for i, c in enumerate(cur)}
    metrics.update(icr=sid_metrics.icr(item_codes), collision_rate=sid_metrics.collision_rate(item_codes),
                   recon_error=sid_metrics.reconstruction_error(items, model.decode(item_codes)))
    return metrics
