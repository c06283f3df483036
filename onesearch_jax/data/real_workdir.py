"""Reads a workdir prepared for a real catalog (pipeline/real_build.py writes it): products,
train judgments, keyword dictionary, tokenizer and SIDs. Serving and evaluation read it here
without the build's embedders and SID fitters."""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from onesearch_jax import fileio
from onesearch_jax import workdir as wd
from onesearch_jax.data import text_tokenizer
from onesearch_jax.data.catalog_keywords import CatalogKeywords
from onesearch_jax.data.real_catalog import (Judgments, Products, judged_pairs, load_judgments,
                                             load_products)
from onesearch_jax.sid.codebooks import KHQE
from onesearch_jax.sid.vocab import SidVocab

PRODUCTS_FILE, TRAIN_JUDGMENTS_FILE = "products.tsv", "judgments_train.tsv"
STAGE = "catalog"
DONE_FILE = "CATALOG_DONE"


def catalog_dir(workdir: str) -> str:
    return os.path.join(workdir, "catalog")


def is_real_workdir(workdir: str) -> bool:
    return fileio.exists(os.path.join(catalog_dir(workdir), DONE_FILE))


@dataclasses.dataclass
class RealCatalog:
    """What a prepared real workdir holds."""
    products: Products
    train: Judgments
    keywords: CatalogKeywords
    tokenizer: object
    khqe: KHQE
    item_codes: np.ndarray

    def sid_vocab(self) -> SidVocab:
        """The token layout: the tokenizer's ids, then the SID levels'."""
        return SidVocab(self.tokenizer.get_vocab_size(), self.khqe.level_sizes)

    def popularity(self, min_relevance: float = 2.33) -> np.ndarray:
        """Per product, how many train queries judge it at least min_relevance (tie-breaks
        colliding SIDs)."""
        index = {uid: i for i, uid in enumerate(self.products.product_ids)}
        counts = np.zeros(len(index), np.float32)
        for _, uid, _ in judged_pairs(self.train, min_relevance):
            if uid in index:
                counts[index[uid]] += 1
        return counts


def load_real_catalog(workdir: str) -> RealCatalog:
    if not is_real_workdir(workdir):
        raise FileNotFoundError(f"{catalog_dir(workdir)} is not a prepared catalog; run "
                                "experiments.train with a real-data config on this workdir first")
    out = catalog_dir(workdir)
    products = load_products(os.path.join(out, PRODUCTS_FILE))
    train = load_judgments(os.path.join(out, TRAIN_JUDGMENTS_FILE), products)
    keywords = CatalogKeywords(fileio.read_json(os.path.join(out, "keywords.json")))
    tok = text_tokenizer.load_text_tokenizer(wd.tokenizer_path(workdir))
    khqe = KHQE.load(os.path.join(wd.sid_dir(workdir), wd.KHQE_FILE))
    codes = fileio.load_npy(os.path.join(wd.sid_dir(workdir), wd.ITEM_CODES_FILE))
    if len(codes) != len(products.product_ids):
        raise ValueError(f"{len(codes)} SIDs for {len(products.product_ids)} products in {out}")
    return RealCatalog(products, train, keywords, tok, khqe, codes)
