"""SFT tasks for a real catalog with human judgments (products + query judgments, no logs).

The V1 stages map onto what such data has:
- alignment: `title_to_sid` (indexing: product title -> its SID) and `query_to_keywords`
  (query -> its dictionary keywords, the keyword-CoT task with a dictionary as the "LLM");
- co-occurrence: `query_to_sid` (train-split query -> SID of each product judged at least
  `min_relevance`, weighted by relevance / 3: a 3 counts fully, a 2.33 about 0.78);
- doc-as-query indexing: `span_to_sid` (random 2-5-word spans of each title, and its dictionary
  keywords joined, as `[Q]` queries -> its SID): every product gets query-like inputs, the
  largest single effect reported for generative retrieval at scale (DSI-QG, NCI; Home Depot
  queries average 3.3 words and are often title fragments). Built when spans_per_title > 0.
Inputs use the same task tokens and layout as the world's tasks (`sft_tasks`), so the model,
decoding and serving code are shared; `query_inputs` is the serving input.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from onesearch_jax.data import text_tokenizer
from onesearch_jax.data.real_catalog import Judgments, judged_pairs
from onesearch_jax.data.sft_tasks import TaskArrays, keyword_targets, sid_targets
from onesearch_jax.data.text_tokenizer import column, compact
from onesearch_jax.sid.vocab import SidVocab

REAL_TASKS = ("title_to_sid", "query_to_keywords", "query_to_sid", "span_to_sid")
MAX_RELEVANCE = 3.0


class RealTaskBuilder:
    """Turns products (ids, titles), their SIDs and train judgments into TaskArrays."""

    def __init__(self, product_ids: Sequence[str], titles: Sequence[str], tokenizer,
                 vocab: SidVocab, item_codes: np.ndarray, keywords, *, enc_len: int,
                 dec_len: int, query_len: int = text_tokenizer.QUERY_LEN, title_len: int = 40):
        if len(product_ids) != len(titles) or len(titles) != len(item_codes):
            raise ValueError(f"{len(product_ids)} product ids, {len(titles)} titles and "
                             f"{len(item_codes)} SIDs must match")
        self.product_ids, self.titles = list(product_ids), list(titles)
        self.index = {uid: i for i, uid in enumerate(self.product_ids)}
        self.tok, self.vocab, self.keywords = tokenizer, vocab, keywords
        self.enc_len, self.dec_len = enc_len, dec_len
        self.query_len, self.title_len = query_len, title_len
        self.item_tokens = vocab.to_tokens(item_codes)
        self.special = {t: tokenizer.token_to_id(t) for t in ("[Q]", "[TASK_ITEM]", "[TASK_KW]")}
        missing = [t for t, i in self.special.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing}")

    def text(self, texts: Sequence[str], length: int) -> np.ndarray:
        return text_tokenizer.encode_texts(self.tok, list(texts), length)

    def _prefixed(self, token: str, toks: np.ndarray) -> np.ndarray:
        return compact(np.concatenate([column(self.special[token], len(toks)), toks], 1),
                       self.enc_len)

    def query_inputs(self, texts: Sequence[str]) -> np.ndarray:
        """[Q] query: the serving input for arbitrary text."""
        return text_tokenizer.query_rows(self.tok, texts, self.enc_len, self.query_len)

    def title_to_sid(self) -> TaskArrays:
        enc = self._prefixed("[TASK_ITEM]", self.text(self.titles, self.title_len))
        return TaskArrays(enc, *sid_targets(self.item_tokens, self.dec_len))

    def query_to_keywords(self, queries: Sequence[str]) -> TaskArrays:
        enc = self._prefixed("[TASK_KW]", self.text(queries, self.query_len))
        kw_texts = [", ".join(words) for words in self.keywords.flat(queries)]
        return keyword_targets(enc, self.text(kw_texts, self.dec_len - 1), self.dec_len)

    def query_to_sid(self, judgments: Judgments, min_relevance: float) -> TaskArrays:
        queries, items, weights = [], [], []
        for q, uid, rel in judged_pairs(judgments, min_relevance):
            if uid in self.index:
                queries.append(judgments.queries[q])
                items.append(self.index[uid])
                weights.append(min(rel, MAX_RELEVANCE) / MAX_RELEVANCE)
        if not queries:
            raise ValueError(f"no train judgment reaches min_relevance {min_relevance}")
        enc = self.query_inputs(queries)
        return TaskArrays(enc, *sid_targets(self.item_tokens[np.asarray(items)], self.dec_len,
                                            np.asarray(weights, np.float32)))

    def span_texts(self, spans_per_title: int, seed: int) -> tuple[list[str], np.ndarray]:
        """(query-like texts, their product index): per title `spans_per_title` random spans of
        2-5 consecutive words (the whole title when shorter), plus its first three dictionary
        keywords joined, when it has any."""
        rng = np.random.default_rng(seed)
        texts, items = [], []
        for i, (title, words_kw) in enumerate(zip(self.titles, self.keywords.flat(self.titles))):
            words = title.split()
            for _ in range(spans_per_title):
                n = min(len(words), int(rng.integers(2, 6)))
                start = int(rng.integers(0, len(words) - n + 1))
                texts.append(" ".join(words[start:start + n]))
                items.append(i)
            if words_kw:
                texts.append(" ".join(words_kw[:3]))
                items.append(i)
        return texts, np.asarray(items, np.int64)

    def span_to_sid(self, spans_per_title: int, seed: int = 0) -> TaskArrays:
        texts, items = self.span_texts(spans_per_title, seed)
        return TaskArrays(self.query_inputs(texts),
                          *sid_targets(self.item_tokens[items], self.dec_len))

    def build(self, judgments: Judgments, min_relevance: float, spans_per_title: int = 0,
              seed: int = 0) -> dict[str, TaskArrays]:
        tasks = {"title_to_sid": self.title_to_sid(),
                 "query_to_keywords": self.query_to_keywords(judgments.queries),
                 "query_to_sid": self.query_to_sid(judgments, min_relevance)}
        if spans_per_title > 0:
            tasks["span_to_sid"] = self.span_to_sid(spans_per_title, seed)
        return tasks


def real_builder(config, catalog) -> tuple[SidVocab, RealTaskBuilder]:
    """The SID vocabulary and task builder of a prepared real catalog (training and serving)."""
    vocab = catalog.sid_vocab()
    builder = RealTaskBuilder(
        catalog.products.product_ids, catalog.products.titles, catalog.tokenizer, vocab,
        catalog.item_codes, catalog.keywords, enc_len=int(config.data.enc_len),
        dec_len=int(config.data.dec_len))
    return vocab, builder
