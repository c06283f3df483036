"""SIDs of keyword texts, for the CoT tasks "query SID -> keyword SID" (paper tasks 2 and 4).

A keyword list is encoded exactly like a query: the workdir's embedder (keyword-enhanced when
the SIDs were), then the query side of the fitted KHQE codebooks. Embedding is the slow part,
so codes are cached under W/sids/ by content (the texts and the SID config).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import numpy as np

from onesearch_jax import artifacts, fileio
from onesearch_jax import workdir as wd
from onesearch_jax.sid.embedder import make_embedder
from onesearch_jax.sid.keyword_fusion import embed_with_keywords


def encode_keyword_texts(texts: list[str], embedder, khqe, keyword_enhance: bool) -> np.ndarray:
    """Keyword comma lists -> SID codes int32[n, L] through the query path."""
    words = [[w.strip() for w in t.split(",") if w.strip()] for t in texts]
    emb = embed_with_keywords(embedder, list(texts), words, enabled=bool(keyword_enhance))
    return np.asarray(khqe.encode(emb), np.int32)


def for_workdir(workdir: str) -> Callable[[list[str]], np.ndarray]:
    """texts -> codes for a workdir with built SIDs; distinct texts are embedded once, cached."""
    config_path = os.path.join(workdir, "sids_config.json")
    if not fileio.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found; run experiments.build_sids first")
    sid_config = fileio.read_json(config_path)
    khqe, _, _ = artifacts.load_sids(workdir)
    state: dict = {}

    def keyword_sids(texts: list[str]) -> np.ndarray:
        distinct = sorted(set(texts))
        key = hashlib.sha256(json.dumps([sid_config, distinct]).encode()).hexdigest()[:16]
        path = os.path.join(wd.sid_dir(workdir), f"keyword_codes-{key}.npz")
        if fileio.exists(path):
            codes = fileio.load_npz(path)["codes"]
        else:
            if "embedder" not in state:
                state["embedder"] = make_embedder(sid_config["embedder"])
            codes = encode_keyword_texts(distinct, state["embedder"], khqe,
                                         sid_config.get("keyword_enhance", True))
            fileio.save_npz(path, {"codes": codes})  # atomic: processes may share the workdir
        index = {t: i for i, t in enumerate(distinct)}
        return codes[[index[t] for t in texts]]

    return keyword_sids
