"""Embeds a workdir's items and queries, fits KHQE semantic IDs, and records their quality.

Writes W/sids/{khqe.npz, item_codes.npy, query_codes.npy} and merges `cur/l1`.., `icr`,
`collision_rate`, `recon_error`, `seconds` into W/metrics.json.
"""
from __future__ import annotations

import os
import time

import numpy as np

from onesearch_jax import artifacts
from onesearch_jax import workdir as workdir_lib
from onesearch_jax.data.world import World
from onesearch_jax.sid import sid_metrics
from onesearch_jax.sid.embedder import make_embedder
from onesearch_jax.sid.keyword_fusion import embed_with_keywords
from onesearch_jax.sid.khqe import KHQEConfig, fit_and_encode_khqe


def query_keywords(world: World) -> list[list[str]]:
    """The keyword CoT of each query (all four fields, deduplicated) for keyword enhancement."""
    out = []
    for q in range(len(world.queries)):
        kw = world.keywords(q)
        out.append(list(dict.fromkeys(k for field in ("intent", "category", "attribute", "topic")
                                      for k in kw[field])))
    return out


def build_sids_workdir(config, workdir: str) -> dict[str, float]:
    world = artifacts.load_world(workdir)
    workdir_lib.guard_config(workdir, "sids", config)
    start = time.perf_counter()
    embedder = make_embedder(config.embedder)
    items = embed_with_keywords(
        embedder, list(world.catalog.titles),
        [world.catalog.item_keywords(i) for i in range(len(world.catalog))],
        enabled=bool(config.keyword_enhance))
    queries = embed_with_keywords(embedder, list(world.queries.texts), query_keywords(world),
                                  enabled=bool(config.keyword_enhance))
    embed_seconds = time.perf_counter() - start
    cfg = KHQEConfig.from_dict(config.khqe.to_dict())
    model, item_codes = fit_and_encode_khqe(items, cfg)
    query_codes = model.encode(queries)
    out_dir = workdir_lib.sid_dir(workdir)
    os.makedirs(out_dir, exist_ok=True)
    model.save(os.path.join(out_dir, "khqe.npz"))
    np.save(os.path.join(out_dir, "item_codes.npy"), item_codes)
    np.save(os.path.join(out_dir, "query_codes.npy"), query_codes)
    cur = sid_metrics.codebook_utilization(item_codes, model.level_sizes, model.per_parent_levels)
    metrics = {f"cur/l{i + 1}": float(c) for i, c in enumerate(cur)}
    metrics.update(icr=sid_metrics.icr(item_codes), collision_rate=sid_metrics.collision_rate(item_codes),
                   recon_error=sid_metrics.reconstruction_error(items, model.decode(item_codes)),
                   embed_seconds=embed_seconds, seconds=time.perf_counter() - start)
    workdir_lib.write_metrics(workdir, "sids", metrics, config)
    return metrics
