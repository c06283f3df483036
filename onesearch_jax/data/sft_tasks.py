"""OneSearch's SFT task mixture as fixed-shape token arrays, and a resumable batch sampler.

Tasks (V1, PARS stages):
  1. semantic alignment: `item_to_sid` (title -> item SID), `query_to_keywords` (query -> its
     category keywords, as text; only queries of the training logs have keywords);
  2. co-occurrence: `query_to_item` (query -> clicked/ordered item SID), `qsid_to_item` and
     `item_to_qsid` (query SID <-> item SID);
  3. personalisation: `personalized` (query + user profile + SIDs of recent clicks -> item SID).
Every example is (enc int32[S], dec int32[T] targets, weight float32[T]); the decoder input is
BOS + targets shifted right. A batch is drawn from a stage's task mixture with an RNG keyed by
(seed, batch number), so a resumed run sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping, Sequence

import numpy as np

from onesearch_jax.data import text_tokenizer
from onesearch_jax.data.text_tokenizer import BOS_ID, EOS_ID
from onesearch_jax.sid.vocab import SidVocab

TASKS = ("item_to_sid", "query_to_keywords", "query_to_item", "qsid_to_item", "item_to_qsid",
         "personalized")


@dataclasses.dataclass
class TaskArrays:
    enc: np.ndarray     # int32 [n, S]
    dec: np.ndarray     # int32 [n, T] targets (0 = pad)
    weight: np.ndarray  # float32 [n, T]

    def __len__(self):
        return len(self.enc)


def compact(tokens: np.ndarray, length: int) -> np.ndarray:
    """Moves each row's non-pad tokens to the front (order kept) and cuts to `length`."""
    order = np.argsort(tokens == 0, axis=1, kind="stable")
    out = np.take_along_axis(tokens, order, axis=1)[:, :length]
    if out.shape[1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
    return out.astype(np.int32)


def column(token_id: int, n: int) -> np.ndarray:
    return np.full((n, 1), token_id, np.int32)


def sid_targets(sid_tokens: np.ndarray, dec_len: int, weight=None) -> tuple[np.ndarray, np.ndarray]:
    """SID tokens [n, L] -> padded targets [n, T] and per-token weights (example weight on SIDs)."""
    n, depth = sid_tokens.shape
    if dec_len < depth:
        raise ValueError(f"dec_len {dec_len} is shorter than the SID length {depth}")
    dec = np.zeros((n, dec_len), np.int32)
    dec[:, :depth] = sid_tokens
    w = np.zeros((n, dec_len), np.float32)
    w[:, :depth] = 1.0 if weight is None else np.asarray(weight, np.float32)[:, None]
    return dec, w


def keyword_targets(enc: np.ndarray, kw: np.ndarray, dec_len: int) -> TaskArrays:
    """Keyword text tokens [n, <= dec_len-1] + EOS as targets; rows without keywords dropped."""
    lengths = (kw > 0).sum(1)
    dec = np.zeros((len(kw), dec_len), np.int32)
    dec[:, :kw.shape[1]] = kw
    dec[np.arange(len(kw)), lengths] = EOS_ID
    weight = (np.arange(dec_len)[None, :] <= lengths[:, None]).astype(np.float32)
    keep = lengths > 0
    return TaskArrays(enc[keep], dec[keep], weight[keep])


def decoder_inputs(dec: np.ndarray) -> np.ndarray:
    """BOS followed by the targets shifted right (teacher forcing)."""
    return np.concatenate([column(BOS_ID, len(dec)), dec[:, :-1]], axis=1)


def history_tokens(history: np.ndarray, item_tokens: np.ndarray) -> np.ndarray:
    """Recent clicks int[n, H] (-1 = none) -> their SID tokens flattened [n, H*L] (0 where none)."""
    toks = item_tokens[np.maximum(history, 0)]
    toks[history < 0] = 0
    return toks.reshape(len(history), -1)


def profile_text(profile: Mapping) -> str:
    price = profile["price_sensitivity"]
    level = "budget" if price > 0.66 else "premium" if price < 0.33 else "midrange"
    return " ".join([profile["group"], level] + list(profile["brands"]))


class TaskBuilder:
    """Turns the world, its SIDs and its train logs into TaskArrays."""

    def __init__(self, world, tokenizer, vocab: SidVocab, item_codes: np.ndarray,
                 query_codes: np.ndarray, *, enc_len: int, dec_len: int, query_len: int = 24,
                 title_len: int = 40, profile_len: int = 12,
                 query_keywords: Mapping[str, Mapping] | None = None):
        self.world, self.tok, self.vocab = world, tokenizer, vocab
        self.query_keywords = query_keywords  # text -> keyword fields (training-log queries only)
        self.enc_len, self.dec_len = enc_len, dec_len
        self.query_len, self.title_len, self.profile_len = query_len, title_len, profile_len
        self.item_tokens = vocab.to_tokens(item_codes)
        self.query_tokens_sid = vocab.to_tokens(query_codes)
        self.special = {t: tokenizer.token_to_id(t) for t in
                        ("[Q]", "[KW]", "[USR]", "[HIST]", "[TASK_ITEM]", "[TASK_KW]",
                         "[TASK_QSID]", "[TASK_ISID]")}
        missing = [t for t, i in self.special.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing}; rebuild the world")
        self._query_text_tokens = None
        self._profile_tokens = None

    # --- encoder pieces --------------------------------------------------------------------
    def text(self, texts: Sequence[str], length: int) -> np.ndarray:
        return text_tokenizer.encode_texts(self.tok, list(texts), length)

    def query_text_tokens(self) -> np.ndarray:
        if self._query_text_tokens is None:
            self._query_text_tokens = self.text(self.world.queries.texts, self.query_len)
        return self._query_text_tokens

    def profile_tokens(self) -> np.ndarray:
        if self._profile_tokens is None:
            users = self.world.users
            texts = [profile_text(users.profile(u)) for u in range(len(users))]
            self._profile_tokens = self.text(texts, self.profile_len)
        return self._profile_tokens

    def personalized_inputs(self, query_ids, user_ids, history) -> np.ndarray:
        """The V1 serving input: [Q] query [USR] profile [HIST] SIDs of recent clicks."""
        n = len(query_ids)
        parts = [column(self.special["[Q]"], n), self.query_text_tokens()[query_ids],
                 column(self.special["[USR]"], n), self.profile_tokens()[user_ids],
                 column(self.special["[HIST]"], n), history_tokens(history, self.item_tokens)]
        return compact(np.concatenate(parts, axis=1), self.enc_len)

    def query_inputs(self, texts: Sequence[str]) -> np.ndarray:
        """Query-only input ([Q] query) for arbitrary text (the Searcher's path)."""
        toks = self.text(texts, self.query_len)
        return compact(np.concatenate([column(self.special["[Q]"], len(toks)), toks], 1), self.enc_len)

    # --- tasks -----------------------------------------------------------------------------
    def item_to_sid(self) -> TaskArrays:
        titles = self.text(self.world.catalog.titles, self.title_len)
        enc = compact(np.concatenate([column(self.special["[TASK_ITEM]"], len(titles)), titles], 1),
                      self.enc_len)
        return TaskArrays(enc, *sid_targets(self.item_tokens, self.dec_len))

    def query_to_keywords(self) -> TaskArrays:
        """Query -> its category keywords, for the queries that have keywords (training logs)."""
        if self.query_keywords is None:
            raise ValueError("query_to_keywords needs query_keywords (artifacts.load_query_keywords)")
        texts = [t for t in self.world.queries.texts if t in self.query_keywords]
        q = self.text(texts, self.query_len)
        enc = compact(np.concatenate([column(self.special["[TASK_KW]"], len(q)), q], 1), self.enc_len)
        kw_texts = [", ".join(self.query_keywords[t].get("category", [])) for t in texts]
        return keyword_targets(enc, self.text(kw_texts, self.dec_len - 1), self.dec_len)

    def query_to_item(self, clicks: Mapping[str, np.ndarray]) -> TaskArrays:
        q = clicks["query_id"]
        enc = compact(np.concatenate([column(self.special["[Q]"], len(q)),
                                      self.query_text_tokens()[q]], 1), self.enc_len)
        return TaskArrays(enc, *sid_targets(self.item_tokens[clicks["item"]], self.dec_len,
                                            clicks["weight"]))

    def qsid_to_item(self, clicks: Mapping[str, np.ndarray]) -> TaskArrays:
        q = clicks["query_id"]
        enc = compact(np.concatenate([column(self.special["[TASK_QSID]"], len(q)),
                                      self.query_tokens_sid[q]], 1), self.enc_len)
        return TaskArrays(enc, *sid_targets(self.item_tokens[clicks["item"]], self.dec_len,
                                            clicks["weight"]))

    def item_to_qsid(self, clicks: Mapping[str, np.ndarray]) -> TaskArrays:
        items = clicks["item"]
        enc = compact(np.concatenate([column(self.special["[TASK_ISID]"], len(items)),
                                      self.item_tokens[items]], 1), self.enc_len)
        return TaskArrays(enc, *sid_targets(self.query_tokens_sid[clicks["query_id"]], self.dec_len))

    def personalized(self, events: Mapping[str, np.ndarray]) -> TaskArrays:
        """One example per clicked item of each train event (orders weigh double)."""
        weight = events["clicks"].astype(np.float32) + events["orders"].astype(np.float32)
        e, p = np.nonzero(weight > 0)
        enc = self.personalized_inputs(events["query_id"][e], events["user_id"][e],
                                       events["history"][e])
        items = events["items"][e, p]
        return TaskArrays(enc, *sid_targets(self.item_tokens[items], self.dec_len, weight[e, p]))

    def build(self, clicks, events) -> dict[str, TaskArrays]:
        return {"item_to_sid": self.item_to_sid(), "query_to_keywords": self.query_to_keywords(),
                "query_to_item": self.query_to_item(clicks), "qsid_to_item": self.qsid_to_item(clicks),
                "item_to_qsid": self.item_to_qsid(clicks), "personalized": self.personalized(events)}


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    fraction: float               # share of the total steps
    mixture: Mapping[str, float]  # task -> sampling weight


def parse_stages(stages_cfg, tasks: Sequence[str] = TASKS) -> list[Stage]:
    """Config entries {name, fraction, mixture} -> Stages; unknown tasks are named."""
    out = []
    for s in stages_cfg:
        bad = sorted(set(s["mixture"]) - set(tasks))
        if bad:
            raise ValueError(f"stage {s['name']!r} names unknown tasks {bad}; valid: {tuple(tasks)}")
        out.append(Stage(s["name"], float(s["fraction"]), dict(s["mixture"])))
    total = sum(s.fraction for s in out)
    if not out or abs(total - 1.0) > 1e-6:
        raise ValueError(f"stage fractions must sum to 1, got {total}")
    return out


class MixtureBatches:
    """`batches(position)` yields batch number position, position+1, ... (the loop's contract)."""

    def __init__(self, tasks: Mapping[str, TaskArrays], stages: Sequence[Stage], *,
                 total_steps: int, batch_size: int, seed: int):
        self.tasks, self.stages = tasks, list(stages)
        self.total_steps, self.batch_size, self.seed = total_steps, batch_size, seed
        for stage in self.stages:
            empty = [t for t, w in stage.mixture.items() if w > 0 and len(tasks.get(t, ())) == 0]
            if empty:
                raise ValueError(f"stage {stage.name!r} samples tasks with no examples: {empty}")
        self.bounds = np.cumsum([s.fraction * total_steps for s in self.stages])

    def stage_at(self, step: int) -> Stage:
        return self.stages[min(int(np.searchsorted(self.bounds, step, side="right")),
                               len(self.stages) - 1)]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        stage = self.stage_at(step)
        names = [t for t, w in stage.mixture.items() if w > 0]
        probs = np.array([stage.mixture[t] for t in names], np.float64)
        rng = np.random.default_rng([self.seed, step])
        which = rng.choice(len(names), size=self.batch_size, p=probs / probs.sum())
        enc, dec, weight = [], [], []
        for j, name in enumerate(names):
            n = int((which == j).sum())
            if n:
                arrays = self.tasks[name]
                idx = rng.integers(0, len(arrays), n)
                enc.append(arrays.enc[idx]), dec.append(arrays.dec[idx]), weight.append(arrays.weight[idx])
        dec = np.concatenate(dec)
        return {"enc_tokens": np.concatenate(enc), "dec_inputs": decoder_inputs(dec),
                "dec_targets": dec, "dec_weights": np.concatenate(weight)}

    def __call__(self, position: int) -> Iterator[dict[str, np.ndarray]]:
        step = int(position)
        while True:
            yield self.batch(step)
            step += 1
