"""Text queries in, product ids out, best first: the serving entry point.

    from onesearch_jax.serving import Searcher
    searcher = Searcher.from_workdir("W")
    searcher.warmup()  # optional: compile every query shape before the first user waits
    searcher.search(["vitamin b without sugar"], k=10)  # -> [["p0001234", ...]]

The workdir holds everything needed (the simulated world's or a real catalog's products,
tokenizer, SIDs, train config, checkpoint).
"""
from __future__ import annotations

import time
import unicodedata
from typing import Sequence

from onesearch_jax.model.minilm import bucket_length
from onesearch_jax.serving.bundle import ModelBundle

# Word pieces (with [CLS] and [SEP]) the warmup reaches: the query embedder's default cap.
WARMUP_PIECES = 128


class Searcher:
    """Text queries -> product ids via constrained beam search over SIDs."""

    def __init__(self, bundle: ModelBundle, beam_size: int | None = None):
        self.bundle = bundle
        self._retriever = bundle.retriever(beam_size=beam_size, batch_size=8)
        self._warmup_count = 0

    @classmethod
    def from_workdir(cls, workdir: str, beam_size: int | None = None, mesh_shape=None,
                     prior_weight: float | None = None, prior_by_traffic=None,
                     rerank_by_traffic=None) -> "Searcher":
        """`prior_weight` / `prior_by_traffic` / `rerank_by_traffic` override the trained
        serving options (ModelBundle.set_prior)."""
        bundle = ModelBundle.from_workdir(workdir, mesh_shape=mesh_shape)
        bundle.set_prior(prior_weight, prior_by_traffic, rerank_by_traffic)
        return cls(bundle, beam_size)

    def search_items(self, queries: list[str], k: int) -> list[list[int]]:
        """Item indices per query; a query with nothing to search (None, empty, or no letter or
        digit in any script once NFKC-normalised as the tokenizers do: blank, punctuation,
        emoji) gets an empty list, not the arbitrary products a model decodes from an input
        that says nothing ("㎜" or "℃" normalise to letters and are searched)."""
        if isinstance(queries, str) or not all(q is None or isinstance(q, str)
                                               for q in queries):
            raise TypeError(f"queries must be a list of strings, got {queries!r:.80}"
                            + (" (one query is [query])" if isinstance(queries, str) else ""))
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        keep = [i for i, q in enumerate(queries) if q and any(
            ch.isalnum() for ch in unicodedata.normalize("NFKC", q))]
        out: list[list[int]] = [[] for _ in queries]
        if not keep:
            return out
        items, _, _ = self.bundle.rank_items(self._retriever, [queries[i] for i in keep], k)
        for i, row in zip(keep, items):
            out[i] = row
        return out

    def warmup(self, batch_sizes: Sequence[int] = (1,), max_pieces: int = WARMUP_PIECES) -> float:
        """Searches synthetic queries of every MiniLM length bucket up to `max_pieces` word
        pieces, in batches of each of `batch_sizes` queries, so that every program a query of
        those sizes needs is compiled before a user waits for it (a cold first query of a new
        length costs ~1 s; a warm one tens of ms). Returns the seconds spent."""
        start = time.perf_counter()
        lengths = sorted({bucket_length(n, max_pieces) for n in range(1, max_pieces + 1)})
        for batch in sorted({int(b) for b in batch_sizes}):
            if batch < 1:
                raise ValueError(f"warmup batch sizes must be >= 1, got {batch}")
            for pieces in lengths:
                self.search_items([self._warmup_text(pieces) for _ in range(batch)], k=1)
        return time.perf_counter() - start

    def _warmup_text(self, pieces: int) -> str:
        """A text of `pieces` MiniLM word pieces ([CLS] + one-letter words + [SEP]) never used
        before: new to the bundle's state table, so MiniLM runs on it as on a new query."""
        self._warmup_count += 1
        n, letters = self._warmup_count, []
        for _ in range(3):  # 17,576 distinct prefixes
            n, r = divmod(n, 26)
            letters.append(chr(ord("a") + r))
        return " ".join(letters + ["a"] * max(pieces - 5, 0))

    def search(self, queries: list[str], k: int = 10) -> list[list[str]]:
        ids = self.bundle.product_ids
        return [[ids[i] for i in items] for items in self.search_items(queries, k)]
