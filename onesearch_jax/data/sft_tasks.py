"""OneSearch's SFT task mixture as fixed-shape token arrays, and a resumable batch sampler.

Tasks (V1, PARS stages):
  1. semantic alignment: `item_to_sid` (title -> item SID), `query_to_category` (query -> its
     category keywords, text);
  2. co-occurrence: `query_to_item` (query -> clicked/ordered item SID), `qsid_to_item` and
     `item_to_qsid` (query SID <-> item SID);
  3. personalisation: `personalized` (query + user profile + SIDs of recent clicks -> item SID).
V2's keyword CoT (only queries of the training logs have keywords; data/keyword_cot.py):
  `query_to_keywords` (query -> <=5 keywords as text), `qsid_to_keyword_sid` (query SID -> the
  keywords' SID), `personal_keywords` (query + user -> 1-5 personalised keywords),
  `personal_keyword_sid` (query SID + user -> their SID); and the keyword-input ("RAG", teacher)
  copies `query_kw_to_item`, `personalized_kw`, whose input carries a `[KW] kw1, kw2, ..` span,
  so a model trained on them can use keywords given at inference (Base (T)).
`query_to_item` and `personalized` rows also carry their teacher input (`teacher_enc`, the same
input plus the keyword span; equal to the student input where the query has no keywords, with
`teacher_mask` 0) for self-distillation.
Every example is (enc int32[S], dec int32[T] targets, weight float32[T]); the decoder input is
BOS + targets shifted right. A batch is drawn from a stage's task mixture with an RNG keyed by
(seed, batch number), so a resumed run sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from onesearch_jax.data import keyword_cot, text_tokenizer
from onesearch_jax.data.text_tokenizer import BOS_ID, EOS_ID, QUERY_LEN, column, compact
from onesearch_jax.sid.vocab import SidVocab

TASKS = ("item_to_sid", "query_to_category", "query_to_keywords", "query_to_item", "qsid_to_item", "item_to_qsid",
         "personalized", "qsid_to_keyword_sid", "personal_keywords", "personal_keyword_sid",
         "query_kw_to_item", "personalized_kw", "query_to_item_cot", "personalized_cot")
TASK_NEEDS = {  # what TaskBuilder.available_tasks requires of the builder, per task
    "query_to_category": ("keywords",), "query_to_keywords": ("keywords",),
    "qsid_to_keyword_sid": ("keywords", "keyword_sids"),
    "personal_keywords": ("keywords", "item_words"),
    "personal_keyword_sid": ("keywords", "keyword_sids", "item_words"),
    "query_kw_to_item": ("keywords",), "personalized_kw": ("keywords",),
    "query_to_item_cot": ("keywords", "long_dec"), "personalized_cot": ("keywords", "long_dec"),
}
KEYWORD_SID_TASKS = tuple(t for t, needs in TASK_NEEDS.items() if "keyword_sids" in needs)
ITEM_WORD_TASKS = tuple(t for t, needs in TASK_NEEDS.items() if "item_words" in needs)


@dataclasses.dataclass
class TaskArrays:
    enc: np.ndarray     # int32 [n, S]
    dec: np.ndarray     # int32 [n, T] targets (0 = pad)
    weight: np.ndarray  # float32 [n, T]
    teacher_enc: np.ndarray | None = None   # int32 [n, S]: enc + keyword span (distillation)
    teacher_mask: np.ndarray | None = None  # float32 [n]: 1 where teacher_enc has keywords

    def __len__(self):
        return len(self.enc)

    def select(self, keep: np.ndarray) -> "TaskArrays":
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return TaskArrays(self.enc[keep], self.dec[keep], self.weight[keep],
                          pick(self.teacher_enc), pick(self.teacher_mask))


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
    return TaskArrays(enc, dec, weight).select(lengths > 0)


def cot_targets(kw: np.ndarray, sid_tokens: np.ndarray, dec_len: int,
                weight=None) -> tuple[np.ndarray, np.ndarray]:
    """Direct CoT: keyword tokens [n, K] padded to exactly K with EOS fillers, then the SID.

    A fixed K puts the SID at the same positions in every row, so inference can write K keyword
    tokens greedily and then beam-search the SID (decode/cot_search.py)."""
    n, k = kw.shape
    if dec_len < k + sid_tokens.shape[1]:
        raise ValueError(f"dec_len {dec_len} < {k} keyword + {sid_tokens.shape[1]} SID tokens")
    dec = np.zeros((n, dec_len), np.int32)
    dec[:, :k] = np.where(kw > 0, kw, EOS_ID)
    dec[:, k:k + sid_tokens.shape[1]] = sid_tokens
    w = np.zeros((n, dec_len), np.float32)
    w[:, :k + sid_tokens.shape[1]] = 1.0 if weight is None else np.asarray(weight, np.float32)[:, None]
    return dec, w


def decoder_inputs(dec: np.ndarray) -> np.ndarray:
    """BOS followed by the targets shifted right (teacher forcing)."""
    return np.concatenate([column(BOS_ID, len(dec)), dec[:, :-1]], axis=1)


def clicked_slots(events: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event index, slot, weight) of every clicked or ordered item of the events, in the order
    the personalized tasks write their rows (orders weigh double: clicks + orders)."""
    weight = events["clicks"].astype(np.float32) + events["orders"].astype(np.float32)
    e, p = np.nonzero(weight > 0)
    return e, p, weight[e, p]


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
                 query_codes: np.ndarray, *, enc_len: int, dec_len: int, query_len: int = QUERY_LEN,
                 title_len: int = 40, profile_len: int = 12, keyword_len: int = 16,
                 query_keywords: Mapping[str, Mapping] | None = None,
                 keyword_sids: Callable[[list[str]], np.ndarray] | None = None,
                 item_words: Sequence[Sequence[str]] | None = None):
        self.world, self.tok, self.vocab = world, tokenizer, vocab
        self.query_keywords = query_keywords  # text -> keyword fields (training-log queries only)
        self.keyword_sids = keyword_sids  # keyword texts -> SID codes [n, L] (query codebooks)
        self.item_words = item_words  # per item, its keyword sheet (personal keyword calibration)
        self.keyword_len = keyword_len
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
        self._keyword_span = None

    def with_keywords(self, query_keywords: Mapping[str, Mapping] | None) -> "TaskBuilder":
        """The same builder reading another keyword source (e.g. keywords written for test
        queries at inference: the Base (T) / SD (T) evaluations)."""
        other = copy.copy(self)
        other.query_keywords, other._keyword_span = query_keywords, None
        return other

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

    def query_keyword_list(self, query_id: int) -> list[str]:
        fields = (self.query_keywords or {}).get(self.world.queries.texts[int(query_id)])
        return keyword_cot.ordered_keywords(fields) if fields else []

    def keyword_span_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Per query: ([KW] kw1, kw2, .. tokens int32[Q, 1+keyword_len], has-keywords bool[Q])."""
        if self._keyword_span is None:
            lists = [self.query_keyword_list(q) for q in range(len(self.world.queries))]
            toks = self.text([keyword_cot.keyword_text(k) for k in lists], self.keyword_len)
            has = np.array([bool(k) for k in lists]) & (toks > 0).any(1)
            span = np.concatenate([column(self.special["[KW]"], len(toks)), toks], 1)
            span[~has] = 0
            self._keyword_span = (span, has)
        return self._keyword_span

    def personalized_inputs(self, query_ids, user_ids, history,
                            keywords: bool = False) -> np.ndarray:
        """The V1 serving input: [Q] query [USR] profile [HIST] SIDs of recent clicks; with
        `keywords`, the teacher input: [KW] + the query's keywords after the query (unchanged
        where the query has none)."""
        n = len(query_ids)
        parts = [column(self.special["[Q]"], n), self.query_text_tokens()[query_ids]]
        if keywords:
            parts.append(self.keyword_span_tokens()[0][query_ids])
        parts += [column(self.special["[USR]"], n), self.profile_tokens()[user_ids],
                  column(self.special["[HIST]"], n), history_tokens(history, self.item_tokens)]
        return compact(np.concatenate(parts, axis=1), self.enc_len)

    def has_keywords(self, query_ids) -> np.ndarray:
        return self.keyword_span_tokens()[1][np.asarray(query_ids)]

    def query_inputs(self, texts: Sequence[str]) -> np.ndarray:
        """Query-only input ([Q] query) for arbitrary text (what serving writes)."""
        return text_tokenizer.query_rows(self.tok, texts, self.enc_len, self.query_len)

    # --- tasks -----------------------------------------------------------------------------
    def item_to_sid(self) -> TaskArrays:
        titles = self.text(self.world.catalog.titles, self.title_len)
        enc = compact(np.concatenate([column(self.special["[TASK_ITEM]"], len(titles)), titles], 1),
                      self.enc_len)
        return TaskArrays(enc, *sid_targets(self.item_tokens, self.dec_len))

    def query_to_category(self) -> TaskArrays:
        """V1's alignment task: query -> its category keywords (training-log queries only)."""
        qids = self._keyword_queries()
        q = self.query_text_tokens()[qids]
        enc = compact(np.concatenate([column(self.special["[TASK_KW]"], len(q)), q], 1), self.enc_len)
        kw_texts = [", ".join(self.query_keywords[self.world.queries.texts[i]].get("category", []))
                    for i in qids]
        return keyword_targets(enc, self.text(kw_texts, self.dec_len - 1), self.dec_len)

    def query_to_keywords(self) -> TaskArrays:
        """CoT task 1: query -> its <=5 keywords as a comma list (training-log queries only);
        the input is marked [TASK_KW] [KW] to tell it from query_to_category."""
        qids = self._keyword_queries()
        q = self.query_text_tokens()[qids]
        enc = compact(np.concatenate([column(self.special["[TASK_KW]"], len(q)),
                                      column(self.special["[KW]"], len(q)), q], 1), self.enc_len)
        kw_texts = [keyword_cot.keyword_text(self.query_keyword_list(i)) for i in qids]
        return keyword_targets(enc, self.text(kw_texts, self.dec_len - 1), self.dec_len)

    def _keyword_queries(self) -> np.ndarray:
        if self.query_keywords is None:
            raise ValueError("keyword CoT tasks need query_keywords (artifacts.load_query_keywords)")
        return np.flatnonzero(self.keyword_span_tokens()[1])

    def _keyword_sid_tokens(self, texts: list[str]) -> np.ndarray:
        if self.keyword_sids is None:
            raise ValueError("keyword-SID tasks need keyword_sids (sid.keyword_sids.for_workdir)")
        return self.vocab.to_tokens(self.keyword_sids(texts))

    def qsid_to_keyword_sid(self) -> TaskArrays:
        """CoT task 2: query SID -> the SID of its keywords (encoded like a query)."""
        qids = self._keyword_queries()
        enc = compact(np.concatenate([column(self.special["[TASK_KW]"], len(qids)),
                                      self.query_tokens_sid[qids]], 1), self.enc_len)
        texts = [keyword_cot.keyword_text(self.query_keyword_list(i)) for i in qids]
        return TaskArrays(enc, *sid_targets(self._keyword_sid_tokens(texts), self.dec_len))

    def _personal_rows(self, events) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Distinct (query, user) pairs of clicked train events whose query has keywords, and
        their 1-5 calibrated keywords (the clicked item injected, as in the paper)."""
        if self.item_words is None:
            raise ValueError("personal keyword tasks need item_words (the items' keyword sheets)")
        self._keyword_queries()
        e, p = np.nonzero(events["clicks"] > 0)
        q, u, item = events["query_id"][e], events["user_id"][e], events["items"][e, p]
        keep = self.has_keywords(q)
        _, first = np.unique(np.stack([q[keep], u[keep]], 1), axis=0, return_index=True)
        q, u, item = q[keep][first], u[keep][first], item[keep][first]
        users = self.world.users
        texts = [keyword_cot.keyword_text(keyword_cot.personal_keywords(
            self.query_keywords[self.world.queries.texts[int(qi)]], self.item_words[int(it)],
            users.profile(int(ui))["brands"])) for qi, ui, it in zip(q, u, item)]
        return q, u, texts

    def _personal_task_inputs(self, query_part: np.ndarray, user_ids) -> np.ndarray:
        """[TASK_KW] <query text or query SID> [USR] profile: the personal keyword tasks' input."""
        n = len(user_ids)
        return compact(np.concatenate([column(self.special["[TASK_KW]"], n), query_part,
                                       column(self.special["[USR]"], n),
                                       self.profile_tokens()[user_ids]], 1), self.enc_len)

    def personal_keywords(self, events, rows=None) -> TaskArrays:
        """CoT task 3: query + user profile -> 1-5 personalised keywords (text). `rows`: the
        `_personal_rows(events)` already computed for task 4, if any."""
        q, u, texts = rows or self._personal_rows(events)
        enc = self._personal_task_inputs(self.query_text_tokens()[q], u)
        return keyword_targets(enc, self.text(texts, self.dec_len - 1), self.dec_len)

    def personal_keyword_sid(self, events, rows=None) -> TaskArrays:
        """CoT task 4: query SID + user profile -> the SID of the personalised keywords."""
        q, u, texts = rows or self._personal_rows(events)
        enc = self._personal_task_inputs(self.query_tokens_sid[q], u)
        return TaskArrays(enc, *sid_targets(self._keyword_sid_tokens(texts), self.dec_len))

    def query_only_inputs(self, query_ids, keywords: bool = False) -> np.ndarray:
        """[Q] query (and, with `keywords`, [KW] its keywords) for known query ids."""
        parts = [column(self.special["[Q]"], len(query_ids)), self.query_text_tokens()[query_ids]]
        if keywords:
            parts.append(self.keyword_span_tokens()[0][query_ids])
        return compact(np.concatenate(parts, 1), self.enc_len)

    def _with_teacher(self, arrays: TaskArrays, query_ids, teacher_enc) -> TaskArrays:
        if self.query_keywords is None:
            return arrays
        arrays.teacher_enc = teacher_enc
        arrays.teacher_mask = self.has_keywords(query_ids).astype(np.float32)
        return arrays

    def query_to_item(self, clicks: Mapping[str, np.ndarray]) -> TaskArrays:
        q = clicks["query_id"]
        arrays = TaskArrays(self.query_only_inputs(q), *sid_targets(
            self.item_tokens[clicks["item"]], self.dec_len, clicks["weight"]))
        return self._with_teacher(arrays, q, self.query_only_inputs(q, keywords=True)
                                  if self.query_keywords is not None else None)

    def keyword_copy(self, t: TaskArrays) -> TaskArrays:
        """The keyword-input ("RAG") copy of a task with teacher inputs: its keyword rows, with
        the teacher input as the input."""
        self._keyword_queries()
        return TaskArrays(t.teacher_enc, t.dec, t.weight).select(t.teacher_mask > 0)

    def query_kw_to_item(self, clicks: Mapping[str, np.ndarray]) -> TaskArrays:
        """The keyword-input copy of query_to_item (rows whose query has keywords)."""
        return self.keyword_copy(self.query_to_item(clicks))

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
        e, p, weight = clicked_slots(events)
        q, u, h = events["query_id"][e], events["user_id"][e], events["history"][e]
        items = events["items"][e, p]
        arrays = TaskArrays(self.personalized_inputs(q, u, h),
                            *sid_targets(self.item_tokens[items], self.dec_len, weight))
        return self._with_teacher(arrays, q, self.personalized_inputs(q, u, h, keywords=True)
                                  if self.query_keywords is not None else None)

    def keyword_output_tokens(self, query_ids) -> np.ndarray:
        """The keyword text a direct-CoT model writes first, int32[n, keyword_len] (0-padded)."""
        span, _ = self.keyword_span_tokens()
        return span[np.asarray(query_ids), 1:]

    def query_to_item_cot(self, clicks) -> TaskArrays:
        """Direct CoT: query -> its keywords, then the clicked item's SID."""
        q = clicks["query_id"]
        self._keyword_queries()
        return TaskArrays(self.query_only_inputs(q), *cot_targets(
            self.keyword_output_tokens(q), self.item_tokens[clicks["item"]], self.dec_len,
            clicks["weight"]))

    def personalized_cot(self, events) -> TaskArrays:
        """Direct CoT: the personalised input -> the query's keywords, then the item's SID."""
        e, p, weight = clicked_slots(events)
        q = events["query_id"][e]
        self._keyword_queries()
        enc = self.personalized_inputs(q, events["user_id"][e], events["history"][e])
        return TaskArrays(enc, *cot_targets(self.keyword_output_tokens(q),
                                            self.item_tokens[events["items"][e, p]],
                                            self.dec_len, weight))

    def personalized_kw(self, events) -> TaskArrays:
        """The keyword-input copy of personalized (rows whose query has keywords)."""
        return self.keyword_copy(self.personalized(events))

    def available_tasks(self) -> tuple[str, ...]:
        """The tasks this builder has inputs for (keyword tasks need keywords, keyword-SID tasks
        `keyword_sids`, personal keyword tasks `item_words`, direct CoT a long enough dec_len)."""
        have = {"keywords": self.query_keywords is not None,
                "keyword_sids": self.keyword_sids is not None,
                "item_words": self.item_words is not None,
                # direct CoT writes keyword_len keyword tokens before the SID
                "long_dec": self.dec_len >= self.keyword_len + self.vocab.num_levels}
        return tuple(t for t in TASKS if all(have[r] for r in TASK_NEEDS.get(t, ())))

    def build(self, clicks, events, names: Sequence[str] | None = None) -> dict[str, TaskArrays]:
        """The named tasks (default: `available_tasks()`); unknown names are refused listing the
        valid ones."""
        names = self.available_tasks() if names is None else tuple(names)
        bad = sorted(set(names) - set(TASKS))
        if bad:
            raise ValueError(f"unknown tasks {bad}; valid: {TASKS}")
        built: dict[str, TaskArrays] = {}
        rows: list = []

        def get(name: str) -> TaskArrays:  # each task built once, its keyword copy reuses it
            if name not in built:
                built[name] = makers[name]()
            return built[name]

        def personal_rows():  # shared by the two personal keyword tasks
            if not rows:
                rows.append(self._personal_rows(events))
            return rows[0]

        makers = {"item_to_sid": self.item_to_sid, "query_to_category": self.query_to_category,
                  "query_to_keywords": self.query_to_keywords,
                  "qsid_to_keyword_sid": self.qsid_to_keyword_sid,
                  "query_to_item": lambda: self.query_to_item(clicks),
                  "query_kw_to_item": lambda: self.keyword_copy(get("query_to_item")),
                  "qsid_to_item": lambda: self.qsid_to_item(clicks),
                  "item_to_qsid": lambda: self.item_to_qsid(clicks),
                  "personalized": lambda: self.personalized(events),
                  "personalized_kw": lambda: self.keyword_copy(get("personalized")),
                  "personal_keywords": lambda: self.personal_keywords(events, personal_rows()),
                  "personal_keyword_sid": lambda: self.personal_keyword_sid(events,
                                                                            personal_rows()),
                  "query_to_item_cot": lambda: self.query_to_item_cot(clicks),
                  "personalized_cot": lambda: self.personalized_cot(events)}
        return {name: get(name) for name in TASKS if name in names}

    def keyword_coverage(self, events) -> dict[str, float]:
        """How many training queries/examples have keywords: the rest fall back to the student
        input as their teacher input (reported, never silently dropped)."""
        _, has = self.keyword_span_tokens()
        q = events["query_id"]
        logged = np.unique(q)
        return {"keywords/queries_with": float(has[logged].sum()),
                "keywords/queries_without": float(len(logged) - has[logged].sum()),
                "keywords/event_share_with": float(has[q].mean()) if len(q) else 0.0}


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
    """`batches(position, rows)` yields batch number position, position+1, ... (the loop's
    contract), each only its `rows` (default all).

    With `with_teacher`, batches also carry `teacher_enc_tokens` (the teacher input; the student
    input on rows of tasks without one) and `teacher_mask` float32[B] (1 = keywords present)."""

    def __init__(self, tasks: Mapping[str, TaskArrays], stages: Sequence[Stage], *,
                 total_steps: int, batch_size: int, seed: int, with_teacher: bool = False):
        self.tasks, self.stages = tasks, list(stages)
        self.total_steps, self.batch_size, self.seed = total_steps, batch_size, seed
        self.with_teacher = with_teacher
        for stage in self.stages:
            empty = [t for t, w in stage.mixture.items() if w > 0 and len(tasks.get(t, ())) == 0]
            if empty:
                raise ValueError(f"stage {stage.name!r} samples tasks with no examples: {empty}")
        self.bounds = np.cumsum([s.fraction * total_steps for s in self.stages])

    def stage_at(self, step: int) -> Stage:
        return self.stages[min(int(np.searchsorted(self.bounds, step, side="right")),
                               len(self.stages) - 1)]

    def batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
        """Batch number `step`, or only its `rows` (one process's share of the global batch):
        every process draws the same (task, example) list, then gathers its rows alone."""
        stage = self.stage_at(step)
        names = [t for t, w in stage.mixture.items() if w > 0]
        probs = np.array([stage.mixture[t] for t in names], np.float64)
        rng = np.random.default_rng([self.seed, step])
        which = rng.choice(len(names), size=self.batch_size, p=probs / probs.sum())
        picks = []  # (task, example indices) in row order: tasks in mixture order
        for j, name in enumerate(names):
            n = int((which == j).sum())
            if n:
                picks.append((name, rng.integers(0, len(self.tasks[name]), n)))
        lo, hi = (0, self.batch_size) if rows is None else rows.indices(self.batch_size)[:2]
        parts: dict[str, list] = {"enc": [], "dec": [], "weight": [], "teacher_enc": [],
                                  "teacher_mask": []}
        start = 0  # the global row of each task's first example
        for name, drawn in picks:
            idx = drawn[max(lo - start, 0):max(hi - start, 0)]  # its rows inside lo:hi
            start += len(drawn)
            if len(idx):
                arrays = self.tasks[name]
                parts["enc"].append(arrays.enc[idx])
                parts["dec"].append(arrays.dec[idx])
                parts["weight"].append(arrays.weight[idx])
                if self.with_teacher:
                    has = arrays.teacher_enc is not None
                    parts["teacher_enc"].append((arrays.teacher_enc if has else arrays.enc)[idx])
                    parts["teacher_mask"].append(arrays.teacher_mask[idx] if has
                                                 else np.zeros(len(idx), np.float32))
        dec = np.concatenate(parts["dec"])
        out = {"enc_tokens": np.concatenate(parts["enc"]), "dec_inputs": decoder_inputs(dec),
               "dec_targets": dec, "dec_weights": np.concatenate(parts["weight"])}
        if self.with_teacher:
            out["teacher_enc_tokens"] = np.concatenate(parts["teacher_enc"])
            out["teacher_mask"] = np.concatenate(parts["teacher_mask"]).astype(np.float32)
        return out

    def __call__(self, position: int, rows: slice | None = None
                 ) -> Iterator[dict[str, np.ndarray]]:
        step = int(position)
        while True:
            yield self.batch(step, rows)
            step += 1
