"""Text queries in, product ids out, best first: the serving entry point.

    from onesearch_jax.serving import Searcher
    searcher = Searcher.from_workdir("W")
    searcher.search(["vitamin b without sugar"], k=10)  # -> [["p0001234", ...]]

The workdir holds everything needed (the simulated world's or a real catalog's products,
tokenizer, SIDs, train config, checkpoint).
"""
from __future__ import annotations

from onesearch_jax.serving.bundle import ModelBundle


class Searcher:
    """Text queries -> product ids via constrained beam search over SIDs."""

    def __init__(self, bundle: ModelBundle, beam_size: int | None = None):
        self.bundle = bundle
        self._retriever = bundle.retriever(beam_size=beam_size, batch_size=8)

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
        """Item indices per query; an empty (or blank) query gets an empty list."""
        keep = [i for i, q in enumerate(queries) if q and q.strip()]
        out: list[list[int]] = [[] for _ in queries]
        if not keep:
            return out
        items, _, _ = self.bundle.rank_items(self._retriever, [queries[i] for i in keep], k)
        for i, row in zip(keep, items):
            out[i] = row
        return out

    def search(self, queries: list[str], k: int = 10) -> list[list[str]]:
        ids = self.bundle.product_ids
        return [[ids[i] for i in items] for items in self.search_items(queries, k)]
