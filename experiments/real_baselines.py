r"""Retrieval baselines on real human-judged search queries: BM25, dense, and their RRF fusion.

Every system retrieves from the whole product corpus (not just the judged products), and is scored
by the project's metrics code against the products judged at least --min_relevance. Queries with
no such product are left out (their count is reported). NDCG@10 uses binary gains (target or
not); latency is the median of single-query searches (query embedding included for dense). The
numbers are the bar a generative retriever has to clear on the same data.

    python experiments/real_baselines.py \
        --products=../shared/data/homedepot/products.tsv \
        --judgments=../shared/data/homedepot/judgments_dev.tsv \
        --out=/tmp/homedepot_baselines/metrics.json --embedder=minilm

Measured on Home Depot dev (1,441 of its 1,722 queries have a product judged >= 2.67):
recall@10 BM25 0.404, MiniLM dense 0.343, RRF 0.415; recall@100 0.701 / 0.701 / 0.779.
Embedding the 54,667 titles with MiniLM took 29 min on 2 busy CPU cores. Title embeddings are cached next to --out, keyed by a hash of the
titles and the embedder, so only the first run pays for embedding the corpus.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
from absl import app, flags

from onesearch_jax.data.real_catalog import load_judgments, load_products, targets
from onesearch_jax.eval.bm25 import BM25Index
from onesearch_jax.eval.dense import DenseIndex
from onesearch_jax.eval.metrics import aggregate, per_query_metrics
from onesearch_jax.eval.query_slices import real_query_slices, title_vocabulary
from onesearch_jax.eval.rank_fusion import rrf
from onesearch_jax.eval.real_eval import median_latency_ms
from onesearch_jax.sid.embedder import make_embedder
from onesearch_jax.sid.embedding_cache import embed_cached

SYSTEMS = ("bm25", "dense", "rrf")
REPORTED = ("recall@10", "recall@100", "ndcg@10", "mrr@10", "hr@10")
KS = (10, 100)

FLAGS = flags.FLAGS
flags.DEFINE_string("products", None, "products.tsv (product_uid, title).")
flags.DEFINE_string("judgments", None, "judgments.tsv (query, product_uid, relevance): the dev set.")
flags.DEFINE_string("out", None, "Where to write the flat metrics JSON.")
flags.DEFINE_enum("embedder", "minilm", ["minilm", "hash"], "Text embedder for dense retrieval.")
flags.DEFINE_float("min_relevance", 2.67, "Judged products at or above this are the targets.")
flags.DEFINE_list("systems", list(SYSTEMS), f"Systems to run, from {list(SYSTEMS)}.")
flags.DEFINE_integer("depth", 100, "Results retrieved per query and system.")
flags.DEFINE_float("rrf_k", 60.0, "Reciprocal-rank-fusion offset k.")
flags.DEFINE_integer("latency_queries", 200,
                     "Queries timed one at a time (after a warm-up) for the latency numbers.")


def ids_of(indices: np.ndarray, product_ids: Sequence[str]) -> list[list[str]]:
    """Index rows -> product-id lists, dropping the -1 padding of short result lists."""
    return [[product_ids[i] for i in row if i >= 0] for row in indices]


def run_baselines(product_ids: Sequence[str], titles: Sequence[str], queries: Sequence[str],
                  query_targets: Sequence[set], systems: Sequence[str], embedder_name: str,
                  cache_dir: str, depth: int = 100, rrf_k: float = 60.0,
                  latency_queries: int = 200) -> dict[str, float]:
    """Flat metrics 'system/metric' (and '/slice' suffixes) for queries with a target."""
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise ValueError(f"systems must be a non-empty subset of {list(SYSTEMS)}, got {systems}")
    needs_bm25 = "bm25" in systems or "rrf" in systems
    needs_dense = "dense" in systems or "rrf" in systems
    bm25 = BM25Index(titles) if needs_bm25 else None
    if needs_dense:
        embedder = make_embedder(embedder_name)
        dense = DenseIndex(embed_cached(titles, embedder_name, cache_dir, embedder.embed))

    def bm25_search(batch):
        return ids_of(bm25.search(list(batch), depth)[0], product_ids)

    def dense_search(batch):
        return ids_of(dense.search(embedder.embed(list(batch)), depth)[0], product_ids)

    def rrf_search(batch):
        return rrf([bm25_search(batch), dense_search(batch)], k=rrf_k, top=depth)

    search = {"bm25": bm25_search, "dense": dense_search, "rrf": rrf_search}
    slices = real_query_slices(queries, title_vocabulary(titles))
    metrics: dict[str, float] = {"num_queries": float(len(queries))}
    for name, mask in slices.items():
        metrics[f"num_queries/{name}"] = float(mask.sum())
    timed = list(queries[:latency_queries])
    for system in SYSTEMS:
        if system not in systems:
            continue
        ranked = search[system](queries)
        per_query = per_query_metrics(ranked, query_targets, ks=KS)
        summary = aggregate(per_query, slices)
        for metric in REPORTED:
            metrics[f"{system}/{metric}"] = summary[metric]
        for name in slices:
            metrics[f"{system}/recall@10/{name}"] = summary[f"recall@10/{name}"]
        for key, value in median_latency_ms(lambda q: search[system]([q]), timed).items():
            metrics[f"{system}/{key}"] = value
    return metrics


def format_table(metrics: dict[str, float], systems: Sequence[str]) -> str:
    """A plain-text table: one row per system, one column per metric and slice."""
    slice_cols = sorted({k.split("/")[2] for k in metrics if k.count("/") == 2})
    cols = list(REPORTED) + [f"recall@10/{s}" for s in slice_cols] + ["latency_ms"]
    lines = ["system  " + "  ".join(f"{c:>{max(len(c), 8)}}" for c in cols)]
    for system in SYSTEMS:
        if system in systems:
            lines.append(f"{system:<8}" + "  ".join(
                f"{metrics.get(f'{system}/{c}', float('nan')):>{max(len(c), 8)}.4f}"
                for c in cols))
    counts = ", ".join(f"{s}={int(metrics[f'num_queries/{s}'])}" for s in slice_cols)
    lines.append(f"queries: {int(metrics['num_queries'])} ({counts})")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in ("products", "judgments", "out"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    products = load_products(FLAGS.products)
    judgments = load_judgments(FLAGS.judgments, products)
    for report in (products.report, judgments.report):
        print(report.summary())
    all_targets = targets(judgments, FLAGS.min_relevance)
    keep = [i for i, t in enumerate(all_targets) if t]
    excluded = len(all_targets) - len(keep)
    print(f"{excluded} of {len(all_targets)} queries have no product judged >= "
          f"{FLAGS.min_relevance} and are excluded")
    queries = [judgments.queries[i] for i in keep]
    metrics = run_baselines(
        products.product_ids, products.titles, queries, [all_targets[i] for i in keep],
        FLAGS.systems, FLAGS.embedder, os.path.dirname(os.path.abspath(FLAGS.out)),
        depth=FLAGS.depth, rrf_k=FLAGS.rrf_k, latency_queries=FLAGS.latency_queries)
    metrics["num_queries_excluded"] = float(excluded)
    print(format_table(metrics, FLAGS.systems))
    config = {name: FLAGS[name].value for name in (
        "products", "judgments", "embedder", "min_relevance", "systems", "depth", "rrf_k",
        "latency_queries")}
    result = {k: (v if np.isfinite(v) else None) for k, v in metrics.items()}
    result.update(stage="real_baselines", config=config)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    tmp = FLAGS.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(tmp, FLAGS.out)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
