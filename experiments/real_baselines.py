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

import os
from typing import Sequence

import numpy as np
from absl import app, flags

from onesearch_jax import cli, fileio, quiet
from onesearch_jax.data.real_catalog import load_products
from onesearch_jax.eval.query_slices import real_query_slices, title_vocabulary
from onesearch_jax.pipeline.real_eval import (BASELINES, REPORTED, JudgedQueries, baseline_systems,
                                          score_systems)

SYSTEMS = BASELINES

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


def run_baselines(product_ids: Sequence[str], titles: Sequence[str], judged: JudgedQueries,
                  systems: Sequence[str], embedder_name: str, cache_dir: str, depth: int = 100,
                  rrf_k: float = 60.0, latency_queries: int = 200) -> dict[str, float]:
    """Flat metrics 'system/metric' (and '/slice' suffixes) for queries with a target."""
    if not systems:
        raise ValueError(f"systems must be a non-empty subset of {list(SYSTEMS)}")
    search = baseline_systems(product_ids, titles, systems, embedder_name=embedder_name,
                              cache_dir=cache_dir, depth=depth, rrf_k=rrf_k)
    metrics: dict[str, float] = {"num_queries": float(len(judged.queries))}
    for name, mask in real_query_slices(judged.queries, title_vocabulary(titles)).items():
        metrics[f"num_queries/{name}"] = float(mask.sum())
    metrics.update(score_systems(search, judged, titles, latency_queries))
    return metrics


def format_table(metrics: dict[str, float], systems: Sequence[str]) -> str:
    """A plain-text table: one row per system, one column per metric and slice."""
    slice_cols = sorted({k.split("/")[2] for k in metrics if k.count("/") == 2})
    cols = list(REPORTED) + [f"recall@10/{s}" for s in slice_cols] + ["latency_ms"]
    shown = [system for system in SYSTEMS if system in systems]
    width = max([len("system")] + [len(system) for system in shown]) + 2
    lines = [f"{'system':<{width}}" + "  ".join(f"{c:>{max(len(c), 8)}}" for c in cols)]
    for system in shown:
        lines.append(f"{system:<{width}}" + "  ".join(
            f"{metrics.get(f'{system}/{c}', float('nan')):>{max(len(c), 8)}.4f}"
            for c in cols))
    counts = ", ".join(f"{s}={int(metrics[f'num_queries/{s}'])}" for s in slice_cols)
    lines.append(f"queries: {int(metrics['num_queries'])} ({counts})")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    quiet.quiet_libraries()
    del argv  # cli.run refuses leftover arguments
    for name in ("products", "judgments", "out"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required")
    fileio.check_output_file(FLAGS.out)
    products = load_products(FLAGS.products)
    judged = JudgedQueries.load(FLAGS.judgments, products, FLAGS.min_relevance)
    for report in (products.report, judged.report):
        print(report.summary())
    print(f"{judged.num_excluded} of {judged.num_excluded + len(judged.queries)} queries have no "
          f"product judged >= {FLAGS.min_relevance} and are excluded")
    metrics = run_baselines(
        products.product_ids, products.titles, judged, FLAGS.systems, FLAGS.embedder,
        os.path.dirname(os.path.abspath(FLAGS.out)), depth=FLAGS.depth, rrf_k=FLAGS.rrf_k,
        latency_queries=FLAGS.latency_queries)
    metrics["num_queries_excluded"] = float(judged.num_excluded)
    print(format_table(metrics, FLAGS.systems))
    config = {name: FLAGS[name].value for name in (
        "products", "judgments", "embedder", "min_relevance", "systems", "depth", "rrf_k",
        "latency_queries")}
    result = {k: (v if np.isfinite(v) else None) for k, v in metrics.items()}
    result.update(stage="real_baselines", config=config)
    fileio.write_json(FLAGS.out, result)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
