"""Prepares a workdir for a real catalog: the catalog itself, a keyword dictionary, a tokenizer,
and KHQE semantic IDs of every product.

Input (`config.data_dir`, the generic format): `products.tsv` (product_uid, title) and
`judgments_train.tsv` (query, product_uid, relevance). Output, so that a workdir serves on its own:

    W/catalog/products.tsv, W/catalog/judgments_train.tsv   the rows that loaded cleanly
    W/catalog/keywords.json                                 mined dictionary (phrase -> type)
    W/world/tokenizer.json                                  BPE over titles + train queries,
                                                            or MiniLM's WordPiece (tokenizer)
    W/sids/{khqe.npz, item_codes.npy}                       SIDs of the products, file order

Malformed rows are counted and reported (see `real_catalog.LoadReport`), never fatal; a missing
file or an empty catalog is. The stage is guarded like the world build: rerunning with another
`data_dir` or SID config in the same workdir is refused, rerunning with the same one reuses it,
and so is reusing it after the input files changed under the same `data_dir` (their SHA-256
are recorded in W/catalog/sources.json).
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import ml_collections
import numpy as np
from absl import logging

from onesearch_jax import fileio
from onesearch_jax import workdir as wd
from onesearch_jax.data import text_tokenizer
from onesearch_jax.data.catalog_keywords import CatalogKeywords, build_keyword_vocabulary
from onesearch_jax.data.minilm_tokenizer import minilm_text_tokenizer
from onesearch_jax.data.real_workdir import (DONE_FILE, PRODUCTS_FILE, STAGE,
                                              TRAIN_JUDGMENTS_FILE, catalog_dir,
                                              is_real_workdir)
from onesearch_jax.data.real_catalog import (Judgments, Products, judged_pairs, load_judgments,
                                             load_products)
from onesearch_jax.data.text_tokenizer import TASK_TOKENS
from onesearch_jax.pipeline.sid_build import fit_and_save_sids
from onesearch_jax.sid.embedder import make_embedder
from onesearch_jax.sid.embedding_cache import CachingEmbedder
from onesearch_jax.sid.keyword_fusion import embed_with_keywords, fuse_queries


def _write_tsv(path: str, header: tuple[str, ...], rows) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")
    os.replace(tmp, path)


SOURCES_FILE = "sources.json"  # W/catalog/: SHA-256 of the input files it was prepared from
SOURCE_FILES = (PRODUCTS_FILE, TRAIN_JUDGMENTS_FILE)


def source_digests(data_dir: str) -> dict[str, str]:
    digests = {}
    for name in SOURCE_FILES:
        digest = hashlib.sha256()
        with fileio.path(os.path.join(data_dir, name)).open("rb") as f:  # local or gs://
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digests[name] = digest.hexdigest()
    return digests


def check_sources_unchanged(data_dir: str, workdir: str) -> None:
    """Refuses to reuse a prepared catalog whose input files have changed since (a product list
    cut, the train and dev splits swapped: the workdir would go on with the old copy, and a dev
    evaluation would score queries the model trained on). A catalog prepared before the
    digests were recorded is not checked."""
    path = os.path.join(catalog_dir(workdir), SOURCES_FILE)
    if not fileio.exists(path):
        return
    recorded, now = fileio.read_json(path), source_digests(data_dir)
    changed = [name for name in SOURCE_FILES if recorded.get(name) != now[name]]
    if changed:
        raise ValueError(f"{', '.join(os.path.join(data_dir, n) for n in changed)} changed since "
                         f"{workdir}'s catalog was prepared from it; use a new --workdir (or "
                         "restore the file)")


def catalog_config(config) -> ml_collections.ConfigDict:
    """The part of a real-data config that the prepared workdir depends on."""
    sids = config.sids.to_dict()
    sids.pop("embedding_cache", None)  # where embeddings are cached does not change the SIDs
    if not sids.get("query_mix"):  # off: the same record as before the option existed
        sids.pop("query_mix", None)
    else:
        sids["query_mix_min_relevance"] = float(config.data.min_relevance)
    return ml_collections.ConfigDict(dict(
        data_dir=os.path.abspath(config.data_dir), tokenizer=config.tokenizer,
        tokenizer_vocab_size=config.tokenizer_vocab_size,
        keywords=config.keywords.to_dict(), sids=sids))


TOKENIZERS = ("bpe", "minilm")


def make_tokenizer(config, texts: list[str]):
    """The workdir's text tokenizer: BPE learned on `texts`, or MiniLM's WordPiece."""
    if config.tokenizer not in TOKENIZERS:
        raise ValueError(f"config.tokenizer must be one of {TOKENIZERS}, got {config.tokenizer!r}")
    if config.tokenizer == "minilm":
        return minilm_text_tokenizer(TASK_TOKENS)
    return text_tokenizer.train_text_tokenizer(
        texts, vocab_size=int(config.tokenizer_vocab_size), extra_special_tokens=TASK_TOKENS)


def fuse_train_queries(items: np.ndarray, products: Products, train: Judgments, embedder,
                       weight: float, min_relevance: float) -> np.ndarray:
    """Item vectors fused with the mean embedding of the train queries that judged them at least
    `min_relevance` (sid/keyword_fusion.fuse_queries)."""
    index = {uid: i for i, uid in enumerate(products.product_ids)}
    pairs = [(index[uid], q) for q, uid, _ in judged_pairs(train, min_relevance) if uid in index]
    item_of, query_of = zip(*pairs) if pairs else ((), ())
    query_emb = embedder.embed(list(train.queries))
    return fuse_queries(items, query_emb, np.asarray(item_of, np.int64),
                        np.asarray(query_of, np.int64), weight)


def build_real_workdir(config, workdir: str) -> dict[str, float]:
    """Builds (or reuses) W/catalog, the tokenizer and the SIDs; returns their metrics."""
    if not config.data_dir:
        raise ValueError("config.data_dir is empty: set --config.data_dir to a folder with "
                         f"{PRODUCTS_FILE} and {TRAIN_JUDGMENTS_FILE}")
    for name in (PRODUCTS_FILE, TRAIN_JUDGMENTS_FILE):
        path = os.path.join(config.data_dir, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} is missing (config.data_dir must hold {PRODUCTS_FILE} "
                                    f"and {TRAIN_JUDGMENTS_FILE})")
    wd.guard_config(workdir, STAGE, catalog_config(config), produced=is_real_workdir(workdir))
    if is_real_workdir(workdir):
        check_sources_unchanged(config.data_dir, workdir)
        logging.info("reusing the prepared catalog in %s", catalog_dir(workdir))
        return {}
    fileio.require_local(workdir, "preparing a real catalog")
    start = time.perf_counter()
    products = load_products(os.path.join(config.data_dir, PRODUCTS_FILE))
    train = load_judgments(os.path.join(config.data_dir, TRAIN_JUDGMENTS_FILE), products)
    for report in (products.report, train.report):
        print(report.summary(), flush=True)
    if not products.product_ids:
        raise ValueError(f"no product loaded from {products.report.path}")
    if not train.queries:
        raise ValueError(f"no judgment loaded from {train.report.path}")

    out = catalog_dir(workdir)
    os.makedirs(out, exist_ok=True)
    sources = source_digests(config.data_dir)  # of the files as they were read
    _write_tsv(os.path.join(out, PRODUCTS_FILE), ("product_uid", "title"),
               zip(products.product_ids, products.titles))
    _write_tsv(os.path.join(out, TRAIN_JUDGMENTS_FILE), ("query", "product_uid", "relevance"),
               ((q, uid, rel) for q, judged in zip(train.queries, train.relevance)
                for uid, rel in judged.items()))
    kw = config.keywords
    vocabulary = build_keyword_vocabulary(products.titles, kw.min_brand, kw.min_category)
    with open(os.path.join(out, "keywords.json"), "w") as f:
        json.dump(vocabulary, f, indent=0, sort_keys=True)
    keywords = CatalogKeywords(vocabulary)

    tok = make_tokenizer(config, list(products.titles) + list(train.queries))
    os.makedirs(os.path.dirname(wd.tokenizer_path(workdir)), exist_ok=True)
    text_tokenizer.save_text_tokenizer(tok, wd.tokenizer_path(workdir))

    sids = config.sids
    embedder = CachingEmbedder(make_embedder(sids.embedder), sids.embedder,
                               sids.embedding_cache or wd.sid_dir(workdir))
    embed_start = time.perf_counter()
    items = embed_with_keywords(embedder, list(products.titles), keywords.flat(products.titles),
                                enabled=bool(sids.keyword_enhance))
    query_mix = float(sids.get("query_mix", 0.0))
    if query_mix > 0:  # relevance-aware SIDs: items moved toward their judged train queries
        items = fuse_train_queries(items, products, train, embedder, query_mix,
                                   float(config.data.min_relevance))
    metrics = fit_and_save_sids(items, None, sids.khqe, wd.sid_dir(workdir))
    metrics.update(num_products=len(products.product_ids), num_train_queries=len(train.queries),
                   num_keywords=len(vocabulary),
                   embed_seconds=time.perf_counter() - embed_start,
                   seconds=time.perf_counter() - start)
    for report, name in ((products.report, "products"), (train.report, "train_judgments")):
        metrics[f"{name}/rows_skipped"] = report.rows_read - report.rows_kept
    wd.write_metrics(workdir, STAGE, metrics, catalog_config(config))
    fileio.write_json(os.path.join(out, SOURCES_FILE), sources)
    with open(os.path.join(out, DONE_FILE), "w") as f:
        f.write("ok\n")
    return metrics
