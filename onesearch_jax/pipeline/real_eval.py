"""Scores retrieval over a real catalog against human judgments (the generic TSV format).

Every system retrieves from the whole catalog; a query's targets are the products judged at least
`min_relevance`; queries without any target are left out (counted). Metric names as in
experiments/real_baselines.py: `recall@10`, `recall@100`, `ndcg@10` (binary gains), `mrr@10`,
`hr@10`, with `/has_digit`, `/long`, `/short`, `/oov` slices (eval/query_slices.py).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Sequence

import numpy as np

from onesearch_jax import fileio
from onesearch_jax.data.real_workdir import is_real_workdir
from onesearch_jax.data.real_catalog import (Judgments, LoadReport, Products, judged_pairs,
                                             load_judgments, targets)
from onesearch_jax.eval.retrieval_diagnostics import prefix_survival, split_recall
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
        return cls.from_judgments(load_judgments(path, products), min_relevance, max_queries,
                                  seed)

    @classmethod
    def from_judgments(cls, judgments: Judgments, min_relevance: float,
                       max_queries: int | None = None, seed: int = 0) -> "JudgedQueries":
        path = judgments.report.path
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


def seen_products(train: Judgments, min_relevance: float) -> set[str]:
    """Products with at least one training pair (judged >= min_relevance on a train query)."""
    return {uid for _, uid, _ in judged_pairs(train, min_relevance)}


def score_rankings(ranked: Sequence[Sequence[str]], judged: JudgedQueries,
                   titles: Sequence[str], prefix: str = "") -> dict[str, float]:
    """REPORTED metrics overall and recall@10 per query slice, names prefixed."""
    slices = real_query_slices(judged.queries, title_vocabulary(titles))
    summary = aggregate(per_query_metrics(ranked, judged.targets, ks=KS), slices)
    out = {f"{prefix}{m}": summary[m] for m in REPORTED}
    for name in slices:
        out[f"{prefix}recall@10/{name}"] = summary[f"recall@10/{name}"]
    return out


def generative_rankings(bundle, retriever, queries: Sequence[str], depth: int = 100,
                        rerank: str | None = None, with_codes: bool = False,
                        cell_level: int | None = None):
    """(product-id lists best first, valid-SID rate[, beam codes, valid]) from beam search over
    the catalog's SIDs."""
    items, codes, valid = bundle.rank_items(retriever, queries, depth, rerank, cell_level)
    ids = bundle.product_ids
    ranked = [[ids[i] for i in row] for row in items]
    if with_codes:
        return ranked, valid_sid_rate(valid), codes, valid
    return ranked, valid_sid_rate(valid)


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


def id_lists(indices: np.ndarray, product_ids: Sequence[str]) -> list[list[str]]:
    """Index rows -> product-id lists, dropping the -1 padding of short result lists."""
    return [[product_ids[i] for i in row if i >= 0] for row in indices]


SearchFn = Callable[[Sequence[str]], list]  # queries -> product-id lists, best first
BASELINES = ("bm25", "dense", "rrf_bm25_dense")


def baseline_systems(product_ids: Sequence[str], titles: Sequence[str], names: Sequence[str], *,
                     embedder_name: str = "minilm", cache_dir: str | None = None,
                     depth: int = 100, rrf_k: float = 60.0) -> dict[str, SearchFn]:
    """Search functions of the non-generative systems: BM25 over titles, exact-cosine dense
    retrieval over title embeddings (cached in `cache_dir`; query embedding counted in its
    latency), and their reciprocal-rank fusion. Built only when asked for."""
    from onesearch_jax.eval.bm25 import BM25Index
    from onesearch_jax.eval.dense import DenseIndex
    from onesearch_jax.eval.rank_fusion import rrf
    from onesearch_jax.sid.embedder import make_embedder
    from onesearch_jax.sid.embedding_cache import embed_cached

    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown systems {unknown}; valid: {list(BASELINES)}")
    out: dict[str, SearchFn] = {}
    if {"bm25", "rrf_bm25_dense"} & set(names):
        bm25 = BM25Index(titles)
        out["bm25"] = lambda queries: id_lists(bm25.search(list(queries), depth)[0], product_ids)
    if {"dense", "rrf_bm25_dense"} & set(names):
        if not cache_dir:
            raise ValueError("dense retrieval needs a cache_dir for the title embeddings")
        embedder = make_embedder(embedder_name)
        dense = DenseIndex(embed_cached(list(titles), embedder_name, cache_dir, embedder.embed))
        out["dense"] = lambda queries: id_lists(
            dense.search(embedder.embed(list(queries)), depth)[0], product_ids)
    if "rrf_bm25_dense" in names:
        lexical, semantic = out["bm25"], out["dense"]
        out["rrf_bm25_dense"] = lambda queries: rrf([lexical(queries), semantic(queries)],
                                                    k=rrf_k, top=depth)
    return {name: out[name] for name in names}


def score_systems(systems: dict[str, SearchFn], judged: JudgedQueries, titles: Sequence[str],
                  latency_queries: int, prefixes: dict[str, str] | None = None,
                  ranked: dict[str, list] | None = None) -> dict[str, float]:
    """Each system's metrics under `prefixes[name]` (default 'name/') and its single-query
    latency. `ranked` passes in rankings already computed (they are filled in otherwise)."""
    ranked = {} if ranked is None else ranked
    metrics: dict[str, float] = {}
    timed = list(judged.queries[:latency_queries])
    for name, search in systems.items():
        prefix = (prefixes or {}).get(name, f"{name}/")
        if name not in ranked:
            ranked[name] = search(judged.queries)
        metrics.update(score_rankings(ranked[name], judged, titles, prefix=prefix))
        if timed:
            for key, value in median_latency_ms(lambda q: search([q]), timed).items():
                metrics[prefix + key] = value
    return metrics


REAL_SYSTEMS = ("generative", "model_beam", "adc", "adc_dense", "adc_hybrid", "bm25", "rrf_bm25",
                "dense", "rrf_bm25_dense", "hybrid", "rrf_all")
DEFAULT_SYSTEMS = ("generative", "bm25", "rrf_bm25")
PREFIXES = {"generative": ""}  # the generative model's metrics keep plain names
NEEDS_MODEL = ("generative", "model_beam", "rrf_bm25", "rrf_all")


def evaluate_real_workdir(workdir: str, judgments_path: str, *, min_relevance: float = 2.67,
                          beam_size: int | None = None, rrf_k: float = 60.0,
                          latency_queries: int = 100, max_queries: int | None = None,
                          systems: Sequence[str] = DEFAULT_SYSTEMS,
                          embedding_cache: str | None = None, train_queries: int = 300,
                          prior_weight: float | None = None, rerank: str | None = None,
                          cell_level: int | None = None, bm25_weight: float | None = None,
                          mesh_shape=None) -> dict:
    """The trained generative retriever of `workdir` on a judgments file, next to the baselines
    over the same catalog, each with its single-query latency, in one run.

    Systems (REAL_SYSTEMS): `generative` (metrics under plain names: `recall@10`, ...), `adc`
    (no model: beam search over the SIDs by the query embedding's ADC scores), `adc_dense` (the
    ADC beams' items re-ranked by exact dense cosine), `adc_hybrid` (re-ranked by cosine + BM25,
    serving/hybrid.py), `bm25`, `rrf_bm25` (generative + BM25), `dense` (MiniLM title embeddings,
    read from `embedding_cache`, default the workdir's SID cache), `rrf_bm25_dense`, `hybrid`
    (cosine + BM25 over the whole catalog), `rrf_all` (generative, BM25, dense), each under
    `name/`; `model_beam` (the model's own trie beam search alone: items in beam order, no
    ADC prior, no cells, no re-ranking, no BM25). A prepared catalog that
    was never trained takes the systems without a model. Also counts, `valid_sid_rate`, and
    `examples`: queries the generative model misses in its top 10 while BM25 finds a target.

    Diagnostics: every system's `recall@10/seen_targets` and `/unseen_targets` (targets with and
    without training pairs); per beam system `gold_prefix_in_beams/l1..l5` (share of gold items
    whose first l codes start a returned beam); `train/recall@10` and `@100` of the generative
    model on `train_queries` judged train queries (memorisation). `prior_weight` and `rerank`
    override the trained config's `eval.prior_weight` / `eval.rerank` for the generative system;
    `cell_level` (`eval.cell_level`: candidates are the beams' SID cells at that depth) and
    `bm25_weight` (`eval.bm25_weight`, the hybrid scorer's) apply to every system using them.
    """
    from onesearch_jax import workdir as wd
    from onesearch_jax.eval.rank_fusion import rrf
    from onesearch_jax.serving import ModelBundle

    unknown = sorted(set(systems) - set(REAL_SYSTEMS))
    if unknown or not systems:
        raise ValueError(f"systems must come from {list(REAL_SYSTEMS)}; got {list(systems)}")
    trained = fileio.exists(os.path.join(workdir, "train_config.json"))
    if not trained and not is_real_workdir(workdir):
        raise FileNotFoundError(f"{workdir} holds neither a trained model (train_config.json) "
                                "nor a prepared real catalog; run experiments.train on it first")
    if not trained and set(systems) & set(NEEDS_MODEL):
        raise ValueError(f"{workdir} has no trained model (no train_config.json): systems "
                         f"{sorted(set(systems) & set(NEEDS_MODEL))} need one")
    bundle = (ModelBundle.from_workdir(workdir, mesh_shape=mesh_shape) if trained
              else ModelBundle.for_catalog(workdir))
    if not is_real_workdir(workdir):
        raise ValueError(f"{workdir} is a simulated-world workdir; --judgments needs a workdir "
                         "trained with a real-data config (configs/homedepot.py)")
    if embedding_cache:
        bundle.config.sids.embedding_cache = embedding_cache
    if prior_weight is not None:  # serving options of the generative system, for ablations
        bundle.config.eval.prior_weight = float(prior_weight)
    if rerank is not None:
        bundle.config.eval.rerank = rerank
    if cell_level is not None:
        bundle.config.eval.cell_level = int(cell_level)
    if bm25_weight is not None:
        bundle.config.eval.bm25_weight = float(bm25_weight)
    products = Products(bundle.product_ids, bundle.titles, LoadReport(workdir))
    judged = JudgedQueries.load(judgments_path, products, min_relevance, max_queries=max_queries)
    depth = max(KS)
    search: dict[str, SearchFn] = {}
    ranked: dict[str, list] = {}
    if judged.report.problems:  # malformed rows are left out, and said so
        print(judged.report.summary(), flush=True)
    metrics = {"num_queries": float(len(judged.queries)),
               "num_queries_excluded": float(judged.num_excluded),
               "judgment_rows_read": float(judged.report.rows_read),
               "judgment_rows_kept": float(judged.report.rows_kept)}

    seen = seen_products(bundle.train, float(bundle.config.data.min_relevance))
    code_of = dict(zip(bundle.product_ids, bundle.item_codes))
    gold = [np.stack([code_of[t] for t in sorted(ts)]) for ts in judged.targets]
    # Fusions are scored from their parts' rankings; timing re-runs the parts per query.
    needed = set(systems).union(*(FUSIONS[n] for n in systems if n in FUSIONS))

    def add_beam_system(name, rerank, adc_only, model_only=False):
        options = dict(beam_size=beam_size, adc_only=adc_only)
        if model_only:  # the model's logits alone: no ADC prior, no cells
            options["prior_weight"] = 0.0
        cells = 0 if model_only else None
        batch = bundle.retriever(**options)
        single = bundle.retriever(batch_size=1, **options)

        def run(queries):  # serving: one query at a time through the batch-1 compiled search
            chosen = single if len(queries) == 1 else batch
            return generative_rankings(bundle, chosen, queries, depth, rerank,
                                       cell_level=cells)[0]
        search[name] = run
        ranked[name], rate, codes, valid = generative_rankings(
            bundle, batch, judged.queries, depth, rerank, with_codes=True, cell_level=cells)
        prefix = "" if name == "generative" else name + "/"
        metrics[prefix + "valid_sid_rate"] = rate
        metrics["beam_size"] = float(batch.beam_size)
        for level, share in enumerate(prefix_survival(codes, valid, gold)):
            metrics[f"{prefix}gold_prefix_in_beams/l{level + 1}"] = float(share)
        if name == "generative":  # memorisation: the same search on judged train queries
            train = JudgedQueries.from_judgments(bundle.train, min_relevance,
                                                 max_queries=train_queries)
            train_ranked = generative_rankings(bundle, batch, train.queries, depth, rerank)[0]
            scores = score_rankings(train_ranked, train, bundle.titles)
            metrics.update({f"train/{m}": scores[m] for m in ("recall@10", "recall@100")})

    if "generative" in needed:
        add_beam_system("generative", None, adc_only=False)
    if "model_beam" in systems:
        add_beam_system("model_beam", "none", adc_only=False, model_only=True)
    if "adc" in systems:
        add_beam_system("adc", "none", adc_only=True)
    if "adc_dense" in systems:
        add_beam_system("adc_dense", "dense", adc_only=True)
    if "adc_hybrid" in systems:
        add_beam_system("adc_hybrid", "hybrid", adc_only=True)
    if "hybrid" in systems:  # the same scorer over the whole catalog: what the cells cost or add
        hybrid = bundle.hybrid_ranker()
        search["hybrid"] = lambda queries: [
            [bundle.product_ids[i] for i in row]
            for row in hybrid.search(list(queries), bundle.query_vectors(queries), depth)]
        ranked["hybrid"] = search["hybrid"](judged.queries)
    cache = bundle.config.sids.get("embedding_cache") or wd.sid_dir(workdir)
    base = baseline_systems(
        bundle.product_ids, bundle.titles, [n for n in ("bm25", "dense") if n in needed],
        embedder_name=bundle.config.sids.embedder, cache_dir=cache, depth=depth, rrf_k=rrf_k)
    search.update(base)
    ranked.update({name: fn(judged.queries) for name, fn in base.items()})
    for name, parts in FUSIONS.items():
        if name in systems:
            search[name] = lambda q, parts=parts: rrf([search[p](q) for p in parts], k=rrf_k,
                                                      top=depth)
            ranked[name] = rrf([ranked[p] for p in parts], k=rrf_k, top=depth)
    metrics.update(score_systems({n: search[n] for n in systems}, judged, bundle.titles,
                                 latency_queries, PREFIXES, ranked))
    for name in systems:  # targets with training pairs vs without (reachable only by indexing)
        split = split_recall(ranked[name], judged.targets, seen, k=10)
        metrics.update({PREFIXES.get(name, name + "/") + k: v for k, v in split.items()})
    if "bm25" in ranked and "generative" in ranked:
        titles_of = dict(zip(bundle.product_ids, bundle.titles))
        metrics["examples"] = failure_examples(ranked["generative"], ranked["bm25"], judged,
                                               titles_of)
    return metrics


FUSIONS = {"rrf_bm25": ("generative", "bm25"), "rrf_bm25_dense": ("bm25", "dense"),
           "rrf_all": ("generative", "bm25", "dense")}
