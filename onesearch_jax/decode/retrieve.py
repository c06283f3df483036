"""From encoder inputs to ranked items: jitted beam search over SIDs, then SID -> items.

Batches are padded to a fixed size so one compiled program serves every call. Colliding SIDs
expand to all their items (most popular first), in beam order, until k items are listed. Given a
mesh, the parameters are sharded by their logical axes as in training and each batch of queries
is split along the mesh's batch axes (a model too big for one device, or several devices' worth
of queries per call); the answers are the same.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax import sharding as sharding_lib
from onesearch_jax.checkpoint_params import abstract_params
from onesearch_jax.data.text_tokenizer import BOS_ID
from onesearch_jax.decode.beam_search import BeamResult, beam_search
from onesearch_jax.decode.cot_search import cached_cot_beam_search
from onesearch_jax.decode.score_prior import tables_only, with_prior
from onesearch_jax.model.transformer import EncoderDecoder, make_cached_logits_fn
from onesearch_jax.sid import adc
from onesearch_jax.sid.trie import LeafItems, SidTrie
from onesearch_jax.sid.vocab import SidVocab


class SidRetriever:
    """`retrieve(enc_tokens[, query_vectors])` -> (codes [B,K,L], scores [B,K], valid [B,K]) as
    numpy; `search(...)` -> the numpy BeamResult with each beam's trie leaf id too, which
    `ranked_items` turns into items through a host table copied once (`leaf_items`).

    With `khqe` and `prior_weight` > 0, each level's logits gain prior_weight * the ADC score of
    its codes for the query's embedding (`query_vectors`, sid/adc.py); with `model=None` the ADC
    scores alone rank the SIDs (summed, unnormalised: retrieval by q . x_hat with no training).
    """

    def __init__(
        self,
        model: EncoderDecoder | None,
        params,
        vocab: SidVocab,
        trie: SidTrie,
        *,
        beam_size: int,
        constrained: bool = True,
        batch_size: int = 32,
        cot_keyword_len: int = 0,
        khqe=None,
        prior_weight: float = 0.0,
        mesh: jax.sharding.Mesh | None = None,
        rules=None,
        memory=None,
    ):
        """`cot_keyword_len` > 0: a direct-CoT model, which writes that many keyword tokens
        before the SID (decode/cot_search.py; on the KV cache, as every search here).
        `mesh` (with the training config's logical axis `rules`): serve sharded on it.
        `memory` (a data/encoder_memory.EncoderMemory): a frozen_minilm model's encoder rows
        become memory tokens + MiniLM states on the host, batch by batch."""
        self.model, self.params, self.vocab, self.trie = model, params, vocab, trie
        self.memory = memory
        if model is not None and (memory is None) == (model.cfg.encoder == "frozen_minilm"):
            raise ValueError("a frozen_minilm model is served with its EncoderMemory (and only "
                             "such a model)")
        self.beam_size, self.constrained, self.batch_size = beam_size, constrained, batch_size
        self.cot_keyword_len = int(cot_keyword_len)
        self.khqe, self.prior_weight = khqe, float(prior_weight)
        if model is None and khqe is None:
            raise ValueError("a retriever needs a model, or the KHQE codebooks to score with")
        if self.cot_keyword_len and model is None:
            raise ValueError("direct-CoT decoding needs the model (the ADC prior may be added)")
        self._search = jax.jit(self._cot_search_impl if self.cot_keyword_len else self._search_impl)
        self._leaf_items: LeafItems | None = None
        self.mesh, self.rules = mesh, sharding_lib.normalize_rules(
            rules or sharding_lib.DEFAULT_RULES)
        self._device_trie = trie
        if mesh is not None:
            self._place_on_mesh()

    def _place_on_mesh(self) -> None:
        """Parameters onto their shardings (a no-op if restored there), the trie replicated."""
        if jax.process_count() > 1:
            raise ValueError("sharded serving runs on one process (its mesh over that host's "
                             "devices); evaluate a multi-host run's workdir from one host")
        shards = sharding_lib.batch_shards(self.mesh, self.rules)
        # Each compiled batch splits evenly over the batch shards: round up (a batch of one
        # query, as latency is timed, runs as `shards` rows, the extra ones padding).
        self.batch_size = -(-self.batch_size // shards) * shards
        if self.model is not None:
            target = abstract_params(self.model, mesh=self.mesh, rules=self.rules)
            self.params = jax.device_put(self.params, jax.tree.map(lambda a: a.sharding, target))
        self._device_trie = jax.device_put(self.trie, sharding_lib.replicated(self.mesh))
        self._batch_sharding = sharding_lib.batch_sharding(self.mesh, self.rules)

    def _run(self, *args):
        """The compiled search on one padded batch: on the mesh (with the model's activation
        sharding constraints) when there is one."""
        if self.mesh is None:
            return self._search(self.params, self._device_trie, *args)
        args = jax.device_put(args, self._batch_sharding)
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            return self._search(self.params, self._device_trie, *args)

    @property
    def leaf_items(self) -> LeafItems:
        """The trie's leaf -> items table on the host (copied on first use, then reused)."""
        if self._leaf_items is None:
            self._leaf_items = LeafItems.from_trie(self.trie)
        return self._leaf_items

    def ranked_items(self, result: BeamResult, k: int) -> list[list[int]]:
        """Per query, up to k items of its beams (best first), from `search`'s result."""
        return items_from_beams(self.leaf_items, result.leaves, k)

    @property
    def uses_tables(self) -> bool:
        """Whether retrieve() needs the queries' embeddings (the ADC prior or ADC alone)."""
        return self.khqe is not None and (self.model is None or self.prior_weight != 0.0)

    def _cot_search_impl(self, params, trie, enc_tokens, enc_states=None, tables=None):
        result, _ = cached_cot_beam_search(
            self.model, params, enc_tokens, enc_states=enc_states, keyword_len=self.cot_keyword_len,
            vocab=self.vocab, trie=trie, beam_size=self.beam_size, constrained=self.constrained,
            tables=tables, prior_weight=self.prior_weight)
        return result

    def _search_impl(self, params, trie, enc_tokens, enc_states=None, tables=None):
        batch, offsets = enc_tokens.shape[0], self.vocab.level_offsets
        if self.model is None:
            logits_fn, cache = tables_only(tables, offsets, batch), jnp.zeros((batch,))
        else:
            enc_out, enc_mask = self.model.apply(
                {"params": params}, enc_tokens, enc_states=enc_states,
                method=EncoderDecoder.encode
            )
            logits_fn, cache = make_cached_logits_fn(
                self.model,
                params,
                enc_out,
                enc_mask,
                zip(self.vocab.level_offsets, self.vocab.level_sizes),
            )
            if tables is not None:
                logits_fn = with_prior(logits_fn, tables, self.prior_weight, offsets, batch)
        return beam_search(
            logits_fn,
            cache,
            batch_size=batch,
            beam_size=self.beam_size,
            bos_id=BOS_ID,
            level_offsets=self.vocab.level_offsets,
            level_sizes=self.vocab.level_sizes,
            trie=trie,
            constrained=self.constrained,
            score_over="raw" if self.model is None else "level",
            level_logits=True,
        )

    def retrieve(self, enc_tokens: np.ndarray, query_vectors: np.ndarray | None = None):
        """(codes [B,K,L], scores [B,K], valid [B,K]) as numpy."""
        out = self.search(enc_tokens, query_vectors)
        return out.codes, out.scores, out.valid

    def search(self, enc_tokens: np.ndarray, query_vectors: np.ndarray | None = None,
               on_batch: Callable[[int], None] | None = None) -> BeamResult:
        """The beam search over all queries, in padded batches, as a numpy BeamResult;
        `on_batch(n)` after each batch of n queries (a progress line)."""
        enc_tokens = np.asarray(enc_tokens, np.int32)
        n = len(enc_tokens)
        if self.uses_tables:
            if query_vectors is None or len(query_vectors) != n:
                raise ValueError(f"this retriever scores SIDs with the queries' embeddings: pass "
                                 f"query_vectors for all {n} queries")
            query_vectors = np.asarray(query_vectors, np.float32)
        parts = []
        for lo in range(0, n, self.batch_size):
            chunk = enc_tokens[lo : lo + self.batch_size]
            pad = self.batch_size - len(chunk)
            padded = np.pad(chunk, ((0, pad), (0, 0))) if pad else chunk
            padded[len(chunk) :, 0] = BOS_ID  # keep padded rows non-empty (no all-masked attention)
            args = (padded, None) if self.memory is None else self.memory.memory(padded)
            if self.uses_tables:
                vectors = query_vectors[lo : lo + self.batch_size]
                vectors = np.pad(vectors, ((0, pad), (0, 0))) if pad else vectors
                args += (adc.level_score_tables(self.khqe, vectors),)
            out = jax.device_get(self._run(*args))
            parts.append(BeamResult(*(x[: len(chunk)] for x in out)))
            if on_batch is not None:
                on_batch(len(chunk))
        if not parts:
            k, depth = self.beam_size, self.vocab.num_levels
            return BeamResult(codes=np.zeros((0, k, depth), np.int32),
                              scores=np.zeros((0, k), np.float32), valid=np.zeros((0, k), bool),
                              leaves=np.zeros((0, k), np.int32))
        return BeamResult(*(np.concatenate(field) for field in zip(*parts)))


def rerank_by_vectors(candidates: list[list[int]], query_vectors: np.ndarray,
                      item_vectors: np.ndarray, k: int, fuse_k: float | None = None
                      ) -> list[list[int]]:
    """Per query, its candidate items (in beam order) re-ordered by q . x, highest first, the top
    k kept: the generated SIDs choose the cells, the embeddings rank inside them (GDR's ranking
    step). With `fuse_k`, the order is instead the reciprocal-rank fusion of the beam order and
    the q . x order (1 / (fuse_k + rank) summed), so what the model learned still counts."""
    out = []
    for items, q in zip(candidates, np.asarray(query_vectors, np.float32)):
        if not items:
            out.append([])
            continue
        scores = item_vectors[np.asarray(items)] @ q
        order = np.argsort(-scores, kind="stable")
        if fuse_k is not None:
            dense_rank = np.empty(len(items))
            dense_rank[order] = np.arange(len(items))
            fused = 1.0 / (fuse_k + np.arange(len(items))) + 1.0 / (fuse_k + dense_rank)
            order = np.argsort(-fused, kind="stable")
        out.append([items[i] for i in order[:k]])
    return out


def rerank_beams_by_vectors(leaf_items: LeafItems, result: BeamResult, query_vectors: np.ndarray,
                            item_vectors: np.ndarray, weights: np.ndarray, k: int
                            ) -> list[list[int]]:
    """Per query, the items of all its beams ordered by beam score + weight * q . x (each item
    scored with its own beam's score), the top k kept. weight 0 keeps beam order (ties between a
    colliding SID's items stay most popular first): the model decides among the SIDs it
    generated, the exact embeddings correct what the SIDs' quantisation lost, as much as each
    query's `weights` entry allows (serving weighs them by the query's log traffic)."""
    out = []
    query_vectors = np.asarray(query_vectors, np.float32)
    for row, scores, q, w in zip(np.asarray(result.leaves), np.asarray(result.scores),
                                 query_vectors, np.asarray(weights, np.float32)):
        items, beam_scores = [], []
        for leaf, score in zip(row.tolist(), scores.tolist()):
            if leaf >= 0:
                members = leaf_items.items(leaf).tolist()
                items += members
                beam_scores += [score] * len(members)
        if not items:
            out.append([])
            continue
        items = np.asarray(items, np.int64)
        total = np.asarray(beam_scores, np.float32)
        if w:
            total = total + w * (item_vectors[items] @ q)
        ranked = list(dict.fromkeys(items[np.argsort(-total, kind="stable")].tolist()))
        out.append(ranked[:k])
    return out


def items_from_beams(leaf_items: LeafItems, leaves: np.ndarray, k: int) -> list[list[int]]:
    """Per query, up to k item indices: each real beam's items (leaf id >= 0) in beam order, no
    repeats (colliding SIDs list all their items, most popular first)."""
    out = []
    for row in np.asarray(leaves):
        items, seen = [], set()
        for leaf in row[row >= 0].tolist():
            for i in leaf_items.items(leaf).tolist():
                if i not in seen:
                    seen.add(i)
                    items.append(i)
            if len(items) >= k:
                break
        out.append(items[:k])
    return out
