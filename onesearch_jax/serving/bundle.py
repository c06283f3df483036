"""What serving loads from a trained workdir, once: model, SIDs and trie, the catalog's ids and
titles, the query encoder's tokenizer, the serving options; and how it ranks items for text
queries (beam search, the ADC prior, re-ranking). Reads the workdir's files only: no simulator,
no SID fitting, no training code.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections
import numpy as np

from onesearch_jax import artifacts, checkpoint_params, fileio
from onesearch_jax import sharding as sharding_lib
from onesearch_jax import workdir as wd
from onesearch_jax.data import encoder_memory, query_traffic
from onesearch_jax.data.real_workdir import is_real_workdir, load_real_catalog
from onesearch_jax.data.text_tokenizer import query_rows
from onesearch_jax.decode.cells import CellIndex
from onesearch_jax.decode.retrieve import (SidRetriever, rerank_beams_by_vectors,
                                           rerank_by_vectors)
from onesearch_jax.model.presets import TransformerConfig
from onesearch_jax.model.transformer import build_model
from onesearch_jax.sid.trie import SidTrie
from onesearch_jax.sid.vocab import SidVocab


def load_train_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "train_config.json")
    if not fileio.isdir(workdir):
        raise FileNotFoundError(f"no workdir {workdir} (no such directory)")
    if not fileio.exists(path):
        raise FileNotFoundError(f"{path} is missing; run experiments.train on this workdir first")
    return ml_collections.ConfigDict(fileio.read_json(path))


def restore_params(model, config, workdir: str, step: int | None = None, mesh=None):
    """The trained parameters (serving reads no optimizer state): on one device, or sharded on
    `mesh` by the training config's logical axis rules."""
    abstract = checkpoint_params.abstract_params(model, mesh=mesh, rules=mesh_rules(config))
    return checkpoint_params.restore_params(wd.checkpoint_dir(workdir), config.model, abstract,
                                            step)


def mesh_rules(config):
    """The training config's logical axis rules (None: the defaults)."""
    mesh_config = config.get("mesh")
    return mesh_config.get("logical_axis_rules") if mesh_config is not None else None


def serving_mesh(mesh_shape) -> "jax.sharding.Mesh | None":
    """A ('data','fsdp','tensor') mesh over this host's devices from a shape like (1, 1, -1), or
    None for a falsy shape (serve on one device)."""
    if not mesh_shape:
        return None
    return sharding_lib.make_mesh(tuple(int(x) for x in mesh_shape), jax.local_devices())


@dataclasses.dataclass
class ModelBundle:
    """Everything a trained workdir holds, loaded once for search and evaluation: a simulated
    world's or a real catalog's. A real catalog prepared but not trained loads with `model` None
    (`for_catalog`): its SIDs still serve through ADC."""
    config: ml_collections.ConfigDict
    vocab: SidVocab
    item_codes: np.ndarray
    trie: SidTrie
    tokenizer: object  # the workdir's text tokenizer: queries become `[Q] query` rows
    model: object
    params: object
    product_ids: list
    titles: list
    khqe: object = None
    workdir: str | None = None
    train: object = None  # a real catalog's train Judgments (diagnostics: seen products)
    mesh: object = None  # serve sharded on this mesh (None: one device)
    memory: object = None  # a frozen_minilm model's EncoderMemory (data/encoder_memory.py)
    traffic: object = None  # query text -> its training-log traffic slice (data/query_traffic.py)
    _embedder: object = dataclasses.field(default=None, repr=False)
    _item_vectors: object = dataclasses.field(default=None, repr=False)
    _cells: object = dataclasses.field(default=None, repr=False)
    _hybrid: object = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None,
                     mesh_shape=None) -> "ModelBundle":
        """`mesh_shape` (e.g. (1, 1, 8)): parameters restored sharded onto a mesh of this host's
        devices and every search run there (`serving_mesh`)."""
        config = load_train_config(workdir)
        mesh = serving_mesh(mesh_shape)
        if is_real_workdir(workdir):
            catalog = load_real_catalog(workdir)
            vocab = catalog.sid_vocab()
            _check_vocab(vocab, config)
            model = build_model(TransformerConfig(**config.model.to_dict()))
            params = restore_params(model, config, workdir, step, mesh)
            bundle = cls.for_real(config, catalog, model, params, workdir)
            bundle.mesh = mesh
            return bundle
        tokenizer = artifacts.load_tokenizer(workdir)
        khqe, item_codes, _ = artifacts.load_sids(workdir)
        vocab = SidVocab(tokenizer.get_vocab_size(), khqe.level_sizes)
        _check_vocab(vocab, config)
        model = build_model(TransformerConfig(**config.model.to_dict()))
        params = restore_params(model, config, workdir, step, mesh)
        product_ids, titles, popularity = artifacts.load_world_items(workdir)
        trie = SidTrie.build(item_codes, vocab.level_sizes, popularity=popularity)
        slices = query_traffic.traffic_slices(artifacts.load_query_event_counts(workdir)["train"])
        traffic = dict(zip(artifacts.load_query_texts(workdir), slices.tolist()))
        return cls(config, vocab, item_codes, trie, tokenizer, model, params, product_ids, titles,
                   khqe=khqe, workdir=workdir, mesh=mesh,
                   memory=encoder_memory.for_config(config, tokenizer, workdir),
                   traffic=traffic)

    @classmethod
    def for_real(cls, config, catalog, model, params, workdir: str | None = None,
                 memory=None) -> "ModelBundle":
        """A prepared real catalog (data/real_workdir.py) with `model` and its `params`.
        `memory`: a frozen_minilm model's EncoderMemory when the caller holds one already
        (training's periodic evaluation), else built from the config."""
        vocab = catalog.sid_vocab()
        trie = SidTrie.build(catalog.item_codes, vocab.level_sizes,
                             popularity=catalog.popularity(float(config.data.min_relevance)))
        if memory is None and model is not None:
            memory = encoder_memory.for_config(config, catalog.tokenizer, workdir or "")
        return cls(config, vocab, catalog.item_codes, trie, catalog.tokenizer, model, params,
                   list(catalog.products.product_ids), list(catalog.products.titles),
                   khqe=catalog.khqe, workdir=workdir, train=catalog.train, memory=memory)

    @classmethod
    def for_catalog(cls, workdir: str) -> "ModelBundle":
        """A prepared real catalog with no trained model (ADC search over its SIDs only)."""
        path = os.path.join(workdir, "catalog_config.json")
        if not is_real_workdir(workdir) or not fileio.exists(path):
            raise FileNotFoundError(f"{workdir} holds no prepared real catalog ({path})")
        config = ml_collections.ConfigDict(fileio.read_json(path))
        config.data = ml_collections.ConfigDict(dict(enc_len=48, dec_len=8, min_relevance=2.33))
        config.eval = ml_collections.ConfigDict(dict(beam_size=128))
        config.sids.embedding_cache = ""
        return cls.for_real(config, load_real_catalog(workdir), None, None, workdir)

    def retriever(self, *, beam_size: int | None = None, constrained: bool = True,
                  batch_size: int = 32, adc_only: bool = False,
                  prior_weight: float | None = None) -> SidRetriever:
        """The model's beam search (with the ADC prior when `prior_weight`, default
        `config.eval.prior_weight`, is > 0), or, with `adc_only` (or no model), ranking by the
        query embedding's ADC scores alone."""
        beam = int(beam_size or self.config.eval.beam_size)
        model = None if adc_only else self.model
        if prior_weight is None:  # by traffic: the weights scale the query vectors (prior_vectors)
            prior_weight = 1.0 if self.prior_by_traffic() else float(
                self.config.eval.get("prior_weight", 0.0))
        return SidRetriever(model, self.params, self.vocab, self.trie, beam_size=beam,
                            constrained=constrained, batch_size=batch_size,
                            cot_keyword_len=int(self.config.eval.get("cot_keyword_len", 0)),
                            khqe=self.khqe,
                            prior_weight=float(prior_weight),
                            mesh=self.mesh, rules=mesh_rules(self.config),
                            memory=None if model is None else self.memory)

    def query_inputs(self, texts) -> np.ndarray:
        """The model's encoder rows for text queries (`[Q] query`, as training writes them)."""
        return query_rows(self.tokenizer, list(texts), int(self.config.data.enc_len))

    def embedder(self):
        """The catalog's text embedder (MiniLM), built on first use: serving embeds queries for
        the ADC prior and the in-cell re-ranking."""
        if self._embedder is None:
            from onesearch_jax.sid.embedder import make_embedder
            self._embedder = make_embedder(self.embedder_name())
        return self._embedder

    def embedder_name(self) -> str:
        """The embedder the SIDs were built with: a real catalog's config, or a world
        workdir's sids_config.json."""
        sids = self.config.get("sids")
        if sids is not None:
            return sids.embedder
        path = os.path.join(self.workdir or "", "sids_config.json")
        return fileio.read_json(path).get("embedder", "minilm") if fileio.exists(path) else "minilm"

    def query_vectors(self, texts) -> np.ndarray:
        return self.embedder().embed(list(texts))

    def set_prior(self, weight: float | None = None, by_traffic=None,
                  rerank_by_traffic=None) -> None:
        """Serving-option overrides (ablations): one ADC prior `weight` for every query (0: the
        model alone), or weights `by_traffic` (head, torso, tail, unseen); the item re-ranking's
        weights `rerank_by_traffic` (all zero: beam order)."""
        if weight is not None:
            self.config.eval.prior_weight = float(weight)
            self.config.eval.prior_by_traffic = ()
        if by_traffic:
            self.config.eval.prior_by_traffic = _four_weights(by_traffic, "prior_by_traffic")
            self.prior_by_traffic()  # refuse it early where there are no logs
        if rerank_by_traffic:
            weights = _four_weights(rerank_by_traffic, "rerank_by_traffic")
            self.config.eval.rerank_by_traffic = weights if any(weights) else ()
            self.rerank_by_traffic()

    def prior_by_traffic(self) -> tuple:
        """`eval.prior_by_traffic`: the ADC prior's weight for head, torso, tail and unseen
        queries of the training logs (empty: one weight, `eval.prior_weight`, for all)."""
        weights = tuple(self.config.eval.get("prior_by_traffic", ()) or ())
        if weights and self.traffic is None:
            raise ValueError("eval.prior_by_traffic needs a world workdir's query logs")
        return weights

    def prior_vectors(self, texts, vectors: np.ndarray | None = None) -> np.ndarray:
        """What the ADC prior scores with: the query embeddings, each scaled by its traffic
        slice's weight under `eval.prior_by_traffic` (a query the logs never saw is unseen)."""
        vectors = self.query_vectors(texts) if vectors is None else vectors
        weights = self.prior_by_traffic()
        if not weights:
            return vectors
        slices = [self.traffic.get(t, query_traffic.UNSEEN) for t in texts]
        return vectors * query_traffic.slice_weights(slices, weights)[:, None]

    def rerank_by_traffic(self) -> tuple:
        """`eval.rerank_by_traffic`: how much the query's exact cosine with each beam item's
        title embedding counts beside the beam score, for head, torso, tail and unseen queries
        (empty: beam order)."""
        weights = tuple(self.config.eval.get("rerank_by_traffic", ()) or ())
        if weights and self.traffic is None:
            raise ValueError("eval.rerank_by_traffic needs a world workdir's query logs")
        return weights

    def beam_ranker(self, retriever: SidRetriever, texts, vectors: np.ndarray | None = None):
        """`result -> item lists` for these queries' beams (top 10 per query, as the world
        metrics read them): beam order, or under `eval.rerank_by_traffic` beam score + the
        query's traffic weight * q . x over all the beams' items
        (decode/retrieve.rerank_beams_by_vectors)."""
        weights = self.rerank_by_traffic()
        if not weights:
            return lambda result, k=10: retriever.ranked_items(result, k)
        texts = list(texts)
        vectors = self.query_vectors(texts) if vectors is None else vectors
        slices = [self.traffic.get(t, query_traffic.UNSEEN) for t in texts]
        per_query = query_traffic.slice_weights(slices, weights)
        item_vectors = self.item_vectors()
        return lambda result, k=10: rerank_beams_by_vectors(
            retriever.leaf_items, result, vectors, item_vectors, per_query, k)

    def rank_items(self, retriever: SidRetriever, texts, k: int, rerank: str | None = None,
                   cell_level: int | None = None):
        """(item-index lists best first, beam codes [B, K, L], valid [B, K]) for text queries.

        cell_level c > 0 (default `config.eval.cell_level`, else 0): the candidates are every item
        whose first c SID codes match a returned beam's, cells in beam order (decode/cells.py),
        instead of the items of the beams' own SIDs. rerank (default `config.eval.rerank`):
        'none' keeps beam order; 'dense' orders the candidates by the query's cosine with their
        title embeddings; 'rrf' by the reciprocal-rank fusion (k = 60) of beam order and cosine
        order; 'hybrid' by cosine + `config.eval.bm25_weight` * BM25 / the query's best BM25 over
        the catalog (serving/hybrid.py)."""
        rerank = rerank or self.config.eval.get("rerank", "none")
        if rerank not in RERANKS:
            raise ValueError(f"rerank must be one of {RERANKS}, got {rerank!r}")
        if cell_level is None:
            cell_level = int(self.config.eval.get("cell_level", 0))
        if not 0 <= cell_level <= self.vocab.num_levels:
            raise ValueError(f"cell_level must be in 0..{self.vocab.num_levels}, got {cell_level}")
        texts = list(texts)
        by_traffic = rerank == "none" and not cell_level and self.rerank_by_traffic()
        vectors = (self.query_vectors(texts)
                   if retriever.uses_tables or rerank != "none" or by_traffic else None)
        prior = self.prior_vectors(texts, vectors) if retriever.uses_tables else None
        result = retriever.search(self.query_inputs(texts), prior)
        codes, valid = result.codes, result.valid
        if rerank == "none" and not cell_level:
            return self.beam_ranker(retriever, texts, vectors)(result, k), codes, valid
        if cell_level:
            every = [c.tolist() for c in self.cells().beam_cells(codes, valid, cell_level)]
        else:
            every = retriever.ranked_items(result, self.trie.num_items)
        if rerank == "none":
            return [items[:k] for items in every], codes, valid
        if rerank == "hybrid":
            return self.hybrid_ranker().rerank(texts, vectors, every, k), codes, valid
        fuse_k = 60.0 if rerank == "rrf" else None
        return rerank_by_vectors(every, vectors, self.item_vectors(), k, fuse_k), codes, valid

    def cells(self) -> CellIndex:
        """The catalog's items by SID prefix (built on first use)."""
        if self._cells is None:
            self._cells = CellIndex(self.item_codes, self.vocab.level_sizes)
        return self._cells

    def hybrid_ranker(self):
        """Cosine + BM25 over the catalog's titles (serving/hybrid.py), built on first use."""
        if self._hybrid is None:
            from onesearch_jax.serving.hybrid import HybridRanker
            self._hybrid = HybridRanker(self.titles, self.item_vectors(),
                                        float(self.config.eval.get("bm25_weight", 0.5)))
        return self._hybrid

    def item_vectors(self) -> np.ndarray:
        """Plain title embeddings of the catalog (cached by content, like the dense baseline),
        read once per bundle."""
        if self._item_vectors is None:
            from onesearch_jax.sid.embedding_cache import embed_cached
            sids = self.config.get("sids")  # a real catalog's; a world's SIDs live in the workdir
            cache = (sids.get("embedding_cache") if sids is not None else "") or wd.sid_dir(
                self.workdir)
            self._item_vectors = embed_cached(self.titles, self.embedder_name(), cache,
                                              self.embedder().embed)
        return self._item_vectors


RERANKS = ("none", "dense", "rrf", "hybrid")


def _four_weights(values, name: str) -> tuple:
    """head, torso, tail, unseen weights from a flag's list."""
    weights = tuple(float(w) for w in values)
    if len(weights) != len(query_traffic.SLICE_NAMES):
        raise ValueError(f"{name} takes {len(query_traffic.SLICE_NAMES)} weights "
                         f"({', '.join(query_traffic.SLICE_NAMES)}), got {list(values)}")
    return weights


def _check_vocab(vocab: SidVocab, config) -> None:
    if vocab.vocab_size != int(config.model.vocab_size):
        raise ValueError(f"workdir vocabulary ({vocab.vocab_size}) does not match the trained "
                         f"model's ({config.model.vocab_size}); were the SIDs rebuilt?")
