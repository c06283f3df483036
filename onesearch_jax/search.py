"""Serving: load a trained workdir and answer text queries with product ids, best first.

    from onesearch_jax.search import Searcher
    searcher = Searcher.from_workdir("W")
    searcher.search(["vitamin b without sugar"], k=10)  # -> [["p0001234", ...]]

The workdir holds everything needed (the simulated world's or a real catalog's products,
tokenizer, SIDs, train config, checkpoint).
"""
from __future__ import annotations

import dataclasses
import json
import os

import ml_collections
import numpy as np

from onesearch_jax import artifacts, checkpoint_params
from onesearch_jax import workdir as wd
from onesearch_jax.data.real_build import is_real_workdir, load_real_catalog
from onesearch_jax.data.real_tasks import real_builder
from onesearch_jax.data.sft_tasks import TaskBuilder
from onesearch_jax.decode.retrieve import SidRetriever, items_from_beams
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab


def load_train_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "train_config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing; run experiments.train on this workdir first")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def restore_params(model, config, workdir: str, step: int | None = None):
    """The trained parameters on one device (serving reads no optimizer state)."""
    return checkpoint_params.restore_params(wd.checkpoint_dir(workdir), config.model,
                                            checkpoint_params.abstract_params(model), step)


@dataclasses.dataclass
class ModelBundle:
    """Everything a trained workdir holds, loaded once for search and evaluation: a simulated
    world's (`world` set) or a real catalog's (`world` None)."""
    config: ml_collections.ConfigDict
    world: object
    vocab: SidVocab
    item_codes: np.ndarray
    trie: SidTrie
    builder: object  # TaskBuilder or RealTaskBuilder: `query_inputs(texts)` is the serving input
    model: object
    params: object
    product_ids: list
    titles: list

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> "ModelBundle":
        config = load_train_config(workdir)
        if is_real_workdir(workdir):
            catalog = load_real_catalog(workdir)
            vocab, builder = real_builder(config, catalog)
            _check_vocab(vocab, config)
            model = build_model(TransformerConfig(**config.model.to_dict()))
            params = restore_params(model, config, workdir, step)
            return cls.for_real(config, catalog, vocab, builder, model, params)
        world = artifacts.load_world(workdir)
        tokenizer = artifacts.load_tokenizer(workdir)
        khqe, item_codes, query_codes = artifacts.load_sids(workdir)
        vocab = SidVocab(tokenizer.get_vocab_size(), khqe.level_sizes)
        _check_vocab(vocab, config)
        builder = TaskBuilder(world, tokenizer, vocab, item_codes, query_codes,
                              enc_len=int(config.data.enc_len), dec_len=int(config.data.dec_len))
        model = build_model(TransformerConfig(**config.model.to_dict()))
        params = restore_params(model, config, workdir, step)
        trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=world.catalog.popularity)
        return cls(config, world, vocab, item_codes, trie, builder, model, params,
                   list(world.catalog.product_ids), list(world.catalog.titles))

    @classmethod
    def for_real(cls, config, catalog, vocab, builder, model, params) -> "ModelBundle":
        trie = SidTrie.build(catalog.item_codes, vocab.level_sizes,
                             popularity=catalog.popularity(float(config.data.min_relevance)))
        return cls(config, None, vocab, catalog.item_codes, trie, builder, model, params,
                   list(catalog.products.product_ids), list(catalog.products.titles))

    def retriever(self, *, beam_size: int | None = None, constrained: bool = True,
                  batch_size: int = 32) -> SidRetriever:
        beam = int(beam_size or self.config.eval.beam_size)
        return SidRetriever(self.model, self.params, self.vocab, self.trie, beam_size=beam,
                            constrained=constrained, batch_size=batch_size,
                            cot_keyword_len=int(self.config.eval.get("cot_keyword_len", 0)))


def _check_vocab(vocab: SidVocab, config) -> None:
    if vocab.vocab_size != int(config.model.vocab_size):
        raise ValueError(f"workdir vocabulary ({vocab.vocab_size}) does not match the trained "
                         f"model's ({config.model.vocab_size}); were the SIDs rebuilt?")


class Searcher:
    """Text queries -> product ids via constrained beam search over SIDs."""

    def __init__(self, bundle: ModelBundle, beam_size: int | None = None):
        self.bundle = bundle
        self._retriever = bundle.retriever(beam_size=beam_size, batch_size=8)

    @classmethod
    def from_workdir(cls, workdir: str, beam_size: int | None = None) -> "Searcher":
        return cls(ModelBundle.from_workdir(workdir), beam_size)

    def search_items(self, queries: list[str], k: int) -> list[list[int]]:
        """Item indices per query; an empty (or blank) query gets an empty list."""
        keep = [i for i, q in enumerate(queries) if q and q.strip()]
        out: list[list[int]] = [[] for _ in queries]
        if not keep:
            return out
        enc = self.bundle.builder.query_inputs([queries[i] for i in keep])
        codes, _, valid = self._retriever.retrieve(enc)
        for i, items in zip(keep, items_from_beams(self.bundle.trie, codes, valid, k)):
            out[i] = items
        return out

    def search(self, queries: list[str], k: int = 10) -> list[list[str]]:
        ids = self.bundle.product_ids
        return [[ids[i] for i in items] for items in self.search_items(queries, k)]
