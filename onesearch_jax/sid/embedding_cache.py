"""Text embeddings cached on disk by content, so a corpus is embedded once (MiniLM on 2 CPU cores
takes ~30 min for 55k product titles) and shared by SIDs, dense retrieval and experiments."""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Sequence

import numpy as np
from absl import logging

from onesearch_jax import fileio
from onesearch_jax.progress import Progress

PROGRESS_MIN_TEXTS = 2048  # embedding this many texts prints a progress line (MiniLM: minutes)


def embeddings_path(texts: Sequence[str], embedder_name: str, cache_dir: str) -> str:
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir, f"title_embeddings.{embedder_name}.{digest}.npy")


def embed_cached(texts: Sequence[str], embedder_name: str, cache_dir: str,
                 embed: Callable[..., np.ndarray],
                 chunk: int | None = 4096) -> np.ndarray:
    """Embeddings of `texts` (in order), read from `cache_dir` when the same texts were embedded
    with the same embedder before; otherwise embedded in chunks and saved, with one progress
    line over all the chunks for a list of PROGRESS_MIN_TEXTS or more (`embed` is a
    TextEmbedder's: it takes `progress=`). chunk=None embeds the list in one call (what an
    embedder that sorts its input by length gives bit for bit)."""
    chunk = chunk or max(len(texts), 1)
    path = embeddings_path(texts, embedder_name, cache_dir)
    if fileio.exists(path):
        cached = fileio.load_npy(path)
        if cached.shape[0] == len(texts):
            logging.info("embeddings from cache %s", path)
            return cached
    parts = []
    bar = (Progress(f"embedding ({embedder_name})", len(texts), unit="texts", every_s=5.0)
           if len(texts) >= PROGRESS_MIN_TEXTS else None)
    for start in range(0, len(texts), chunk):
        parts.append(embed(list(texts[start:start + chunk]), progress=bar))
    vectors = np.concatenate(parts).astype(np.float32)
    fileio.save_npy(path, vectors)
    return vectors


class CachingEmbedder:
    """Wraps an embedder (`embed`, `dim`) so that lists of at least `min_texts` texts are cached."""

    def __init__(self, embedder, embedder_name: str, cache_dir: str, min_texts: int = 1000,
                 chunk: int | None = 4096):
        self.embedder, self.name, self.cache_dir = embedder, embedder_name, cache_dir
        self.min_texts, self.chunk = min_texts, chunk

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, texts: list[str], progress=None) -> np.ndarray:
        if len(texts) < self.min_texts:
            return self.embedder.embed(list(texts), progress=progress)
        return embed_cached(texts, self.name, self.cache_dir, self.embedder.embed, self.chunk)
