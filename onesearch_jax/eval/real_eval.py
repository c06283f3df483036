"""Scores retrieval over a real catalog against human judgments (the generic TSV format).

Every system retrieves from the whole catalog; a query's targets are the products judged at least
`min_relevance`; queries without any target are left out (counted). Metric names as in
experiments/real_baselines.py: `recall@10`, `recall@100`, `ndcg@10` (binary gains), `mrr@10`,
`hr@10`, with `/has_digit`, `/long`, `/short`, `/oov` slices (eval/query_slices.py).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from onesearch_jax.data.real_catalog import LoadReport, Products, load_judgments, targets
from onesearch_jax.decode.retrieve import items_from_beams
from onesearch_jax.eval.metrics import aggregate, per_query_metrics, valid_sid_rate
from onesearch_jax.eval.query_slices import real_query_slices, title_vocabulary

REPORTED = ("recall@10", "recall@100", "ndcg@10", "mrr@10", "hr@10")
KS = (10, 100)


@dataclasses.dataclass
class JudgedQueries:
    """Queries with at least one target, their target product ids, and what was left out."""
    queries: list[str]
    targets: list[set[str]]
    num_excluded: int
    report: LoadReport

    @classmethod
    def load(cls, path: str, products: Products, min_relevance: float,
             max_queries: int | None = None, seed: int = 0) -> "JudgedQueries":
        judgments = load_judgments(path, products)
        all_targets = targets(judgments, min_relevance)
        keep = [i for i, t in enumerate(all_targets) if t]
        excluded = len(all_targets) - len(keep)
        if not keep:
            raise ValueError(f"no query in {path} has a product judged >= {min_relevance} "
                             f"({judgments.report.summary()})")
        if max_queries and len(keep) > max_queries:
            rng = np.random.default_rng(seed)
            keep = sorted(rng.choice(keep, max_queries, replace=False).tolist())
        return cls([judgments.queries[i] for i in keep], [all_targets[i] for i in keep],
                   excluded, judgments.report)


def score_rankings(ranked: Sequence[Sequence[str]], judged: JudgedQueries,
                   titles: Sequence[str], prefix: str = "") -> dict[str, float]:
    """REPORTED metrics overall and recall@10 per query slice, names prefixed."""
    slices = real_query_slices(judged.queries, title_vocabulary(titles))
    summary = aggregate(per_query_metrics(ranked, judged.targets, ks=KS), slices)
    out = {f"{prefix}{m}": summary[m] for m in REPORTED}
    for name in slices:
        out[f"{prefix}recall@10/{name}"] = summary[f"recall@10/{name}"]
    return out


def generative_rankings(bundle, retriever, queries: Sequence[str], depth: int = 100):
    """(product-id lists best first, valid-SID rate) from beam search over the catalog's SIDs."""
    codes, _, valid = retriever.retrieve(bundle.builder.query_inputs(list(queries)))
    items = items_from_beams(bundle.trie, codes, valid, depth)
    ids = bundle.product_ids
    return [[ids[i] for i in row] for row in items], valid_sid_rate(valid)


def evaluate_generative(bundle, retriever, judged: JudgedQueries, depth: int = 100) -> dict:
    ranked, rate = generative_rankings(bundle, retriever, judged.queries, depth)
    metrics = score_rankings(ranked, judged, bundle.titles)
    metrics["valid_sid_rate"] = rate
    return metrics


def median_latency_ms(search_one: Callable[[str], object], queries: Sequence[str]) -> dict:
    """Times `search_one` on each query alone (serving latency, not batch throughput)."""
    for q in queries:  # warm-up: every jit shape bucket is compiled before timing
        search_one(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        search_one(q)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"latency_ms": float(np.median(times)), "latency_ms_p95": float(np.percentile(times, 95))}


def failure_examples(ranked: Sequence[Sequence[str]], other: Sequence[Sequence[str]],
                     judged: JudgedQueries, titles_of: dict[str, str], k: int = 10,
                     limit: int = 20) -> list[dict]:
    """Queries where `ranked` misses every target in its top k but `other` finds one: the
    query, a target's title and what `ranked` returned first (for error analysis)."""
    out = []
    for query, mine, theirs, target in zip(judged.queries, ranked, other, judged.targets):
        if not set(mine[:k]) & target and set(theirs[:k]) & target:
            hit = next(uid for uid in theirs[:k] if uid in target)
            out.append({"query": query, "target": titles_of[hit],
                        "returned": titles_of[mine[0]] if mine else ""})
            if len(out) >= limit:
                break
    return out


def evaluate_real_workdir(workdir: str, judgments_path: str, *, min_relevance: float = 2.67,
                          beam_size: int | None = None, rrf_k: float = 60.0,
                          latency_queries: int = 100, max_queries: int | None = None) -> dict:
    """The trained generative retriever of `workdir` on a judgments file, next to BM25 over the
    same catalog and the RRF fusion of the two, with single-query latency of each.

    Returns flat metrics: the generative system's under plain names (`recall@10`, ...), BM25's
    under `bm25/`, the fusion's under `rrf_bm25/`, plus counts, `valid_sid_rate`, latencies,
    and `examples`: queries the generative model misses in its top 10 while BM25 finds a target.
    """
    from onesearch_jax.eval.bm25 import BM25Index
    from onesearch_jax.eval.rank_fusion import rrf
    from onesearch_jax.search import ModelBundle

    bundle = ModelBundle.from_workdir(workdir)
    if bundle.world is not None:
        raise ValueError(f"{workdir} is a simulated-world workdir; --judgments needs a workdir "
                         "trained with a real-data config (configs/homedepot.py)")
    products = Products(bundle.product_ids, bundle.titles, LoadReport(workdir))
    judged = JudgedQueries.load(judgments_path, products, min_relevance, max_queries=max_queries)
    depth = max(KS)
    retriever = bundle.retriever(beam_size=beam_size)
    gen, rate = generative_rankings(bundle, retriever, judged.queries, depth)
    bm25 = BM25Index(bundle.titles)

    def bm25_search(queries):
        idx = bm25.search(list(queries), depth)[0]
        return [[bundle.product_ids[i] for i in row if i >= 0] for row in idx]

    lexical = bm25_search(judged.queries)
    fused = rrf([gen, lexical], k=rrf_k, top=depth)
    metrics = {"num_queries": float(len(judged.queries)),
               "num_queries_excluded": float(judged.num_excluded),
               "valid_sid_rate": rate, "beam_size": float(retriever.beam_size)}
    metrics.update(score_rankings(gen, judged, bundle.titles))
    metrics.update(score_rankings(lexical, judged, bundle.titles, prefix="bm25/"))
    metrics.update(score_rankings(fused, judged, bundle.titles, prefix="rrf_bm25/"))

    single = bundle.retriever(beam_size=beam_size, batch_size=1)
    timed = judged.queries[:latency_queries]

    def gen_one(q):
        return generative_rankings(bundle, single, [q], depth)

    for prefix, fn in (("", gen_one), ("bm25/", lambda q: bm25_search([q])),
                       ("rrf_bm25/", lambda q: rrf([gen_one(q)[0], bm25_search([q])], k=rrf_k,
                                                   top=depth))):
        for key, value in median_latency_ms(fn, timed).items():
            metrics[prefix + key] = value
    titles_of = dict(zip(bundle.product_ids, bundle.titles))
    metrics["examples"] = failure_examples(gen, lexical, judged, titles_of)
    return metrics
