"""The simulated world: catalog + queries + users + the config that made them.

`build_world(config)` is deterministic (same config -> identical arrays). `World.save(dir)` writes
npz arrays, product ids/titles and queries as JSONL, and the config as JSON; `World.load(dir,
config)` refuses a directory built from a different config. Derived things (legacy engine,
its per-query candidates and their relevance tiers) are computed lazily and cached.
"""
import dataclasses
import json
import os

import ml_collections
import numpy as np

from onesearch_jax import fileio
from onesearch_jax.world import catalog as catalog_lib
from onesearch_jax.world import keyword_llm
from onesearch_jax.world import queries as queries_lib
from onesearch_jax.world import users as users_lib
from onesearch_jax.world.legacy_engine import LegacyEngine
from onesearch_jax.world.relevance import relevance_tiers
from onesearch_jax.world.taxonomy import get_taxonomy

USER_FIELDS = [f.name for f in dataclasses.fields(users_lib.Users)]


@dataclasses.dataclass
class World:
    config: ml_collections.ConfigDict
    catalog: catalog_lib.Catalog
    queries: queries_lib.Queries
    users: users_lib.Users
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    # --- ground truth -------------------------------------------------------------------------
    def relevance(self, query_id: int, item_ids=None) -> np.ndarray:
        return relevance_tiers(self.catalog, self.queries.intents[int(query_id)], item_ids)

    def oracle_ranking(self, query_id: int, k: int) -> list:
        """The k items of highest true relevance tier, most popular first within a tier.

        One O(N) partition on tier + popularity / (max popularity + eps), not a full sort: this
        runs once per query over catalogs of a million items."""
        pop = self.catalog.popularity.astype(np.float64)
        key = self.relevance(query_id) + pop / (pop.max() * (1 + 1e-9))
        k = min(int(k), len(key))
        top = np.argpartition(-key, k - 1)[:k]
        return top[np.argsort(-key[top], kind="stable")].tolist()

    def stats(self) -> dict:
        t = get_taxonomy()
        q = self.queries
        out = dict(num_items=len(self.catalog), num_leaf_categories=len(np.unique(self.catalog.leaf)),
                   num_taxonomy_leaves=len(t.leaf_names), num_brands=len(t.brand_names),
                   num_queries=len(q), num_users=len(self.users), num_days=int(self.config.num_days),
                   num_events=int(self.config.num_days) * int(self.config.events_per_day),
                   num_typo_queries=int(q.is_typo.sum()))
        out["num_exposure_rows"] = out["num_events"] * int(self.config.exposure_k)
        for s in queries_lib.SLICES:
            out[f"num_queries/{s}"] = int((q.slice == s).sum())
            out[f"traffic/{s}"] = float(q.freq[q.slice == s].sum())
        for k in queries_lib.QUERY_TYPES:
            out[f"num_queries/{k}"] = int((q.qtype == k).sum())
        return out

    def product_index(self) -> dict:
        """product id -> item index."""
        if "pid" not in self._cache:
            self._cache["pid"] = self.catalog.index_of()
        return self._cache["pid"]

    # --- legacy engine and traffic helpers ----------------------------------------------------
    def legacy_engine(self) -> LegacyEngine:
        if "engine" not in self._cache:
            self._cache["engine"] = LegacyEngine.build(
                self.catalog.titles, self.catalog.popularity, int(self.config.max_posting),
                float(self.config.legacy_pop_weight))
        return self._cache["engine"]

    def popular_items(self, n: int) -> np.ndarray:
        return np.argsort(-self.catalog.popularity, kind="stable")[:n]

    def legacy_candidates(self):
        """(items, scores, shallow match, tiers), each (num_queries, candidate_k), per query."""
        if "cands" not in self._cache:
            k = int(self.config.candidate_k)
            items, scores, match = self.legacy_engine().candidates(
                self.queries.texts, k, fill_items=self.popular_items(2 * k))
            tiers = np.stack([self.relevance(q, items[q]) for q in range(len(self.queries))])
            self._cache["cands"] = (items, scores, match, tiers)
        return self._cache["cands"]

    def popularity_percentile(self) -> np.ndarray:
        if "pop_pct" not in self._cache:
            self._cache["pop_pct"] = catalog_lib.popularity_percentile(self.catalog.popularity)
        return self._cache["pop_pct"]

    def users_by_top(self) -> dict:
        """top id -> (user ids favouring it, cumulative activity) for sampling."""
        if "users_by_top" not in self._cache:
            out = {}
            for k in range(len(get_taxonomy().top_names)):
                members = np.flatnonzero((self.users.tops == k).any(1))
                out[k] = (members, np.cumsum(self.users.activity[members]))
            self._cache["users_by_top"] = out
        return self._cache["users_by_top"]

    # --- persistence --------------------------------------------------------------------------
    def save(self, directory: str) -> None:
        """config.json, catalog.npz, items.jsonl, queries.jsonl, users.npz (a local dir or a URI)."""
        fileio.write_text(os.path.join(directory, "config.json"),
                          self.config.to_json(indent=1, sort_keys=True))
        c = self.catalog
        fileio.save_npz(os.path.join(directory, "catalog.npz"),
                        {k: getattr(c, k) for k in catalog_lib.ARRAY_FIELDS})
        fileio.write_text(os.path.join(directory, "items.jsonl"), "".join(
            json.dumps({"product_id": pid, "title": title}) + "\n"
            for pid, title in zip(c.product_ids, c.titles)))
        q = self.queries
        fileio.write_text(os.path.join(directory, "queries.jsonl"), "".join(
            json.dumps({
                "query_id": i, "text": q.texts[i], "qtype": str(q.qtype[i]),
                "is_typo": bool(q.is_typo[i]), "typo_of": int(q.typo_of[i]),
                "slice": str(q.slice[i]), "freq": float(q.freq[i]), "top": int(q.top[i]),
                "is_new": bool(q.is_new[i]),
                "intent": dataclasses.asdict(q.intents[i])}) + "\n" for i in range(len(q))))
        fileio.save_npz(os.path.join(directory, "users.npz"),
                        {k: getattr(self.users, k) for k in USER_FIELDS})

    @staticmethod
    def load(directory: str, config=None) -> "World":
        saved = ml_collections.ConfigDict(fileio.read_json(os.path.join(directory, "config.json")))
        if config is not None:
            check_same_config(saved, config, directory)
        arrays = fileio.load_npz(os.path.join(directory, "catalog.npz"))
        rows = [json.loads(line)
                for line in fileio.read_lines(os.path.join(directory, "items.jsonl"))]
        cat = catalog_lib.Catalog(product_ids=[r["product_id"] for r in rows],
                                  titles=[r["title"] for r in rows],
                                  **{k: arrays[k] for k in catalog_lib.ARRAY_FIELDS})
        qrows = [json.loads(line)
                 for line in fileio.read_lines(os.path.join(directory, "queries.jsonl"))]
        q = queries_lib.Queries(
            texts=[r["text"] for r in qrows], qtype=np.array([r["qtype"] for r in qrows]),
            is_typo=np.array([r["is_typo"] for r in qrows], bool),
            typo_of=np.array([r["typo_of"] for r in qrows], np.int32),
            slice=np.array([r["slice"] for r in qrows]),
            freq=np.array([r["freq"] for r in qrows], np.float64),
            top=np.array([r["top"] for r in qrows], np.int32),
            intents=[queries_lib.Intent.from_dict(r["intent"]) for r in qrows],
            is_new=np.array([r.get("is_new", False) for r in qrows], bool))
        uarr = fileio.load_npz(os.path.join(directory, "users.npz"))
        users = users_lib.Users(**{k: uarr[k] for k in USER_FIELDS})
        return World(saved, cat, q, users)


def check_same_config(saved, wanted, where="") -> None:
    """ValueError naming the differing keys when a saved world was built from another config."""
    a, b = _flat(saved.to_dict()), _flat(ml_collections.ConfigDict(wanted).to_dict())
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        details = ", ".join(f"{k}: saved={a.get(k)!r} wanted={b.get(k)!r}" for k in diff[:8])
        raise ValueError(f"world at {where or 'directory'} was built from a different config "
                         f"({details}); rebuild it or use a new directory")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def default_config() -> ml_collections.ConfigDict:
    """Every world knob with its tiny-preset value (configs/world.py adds presets)."""
    c = ml_collections.ConfigDict()
    c.preset = "tiny"
    c.seed = 0
    # Sizes.
    c.num_items = 3000
    c.num_queries = 1500
    c.num_users = 1000
    c.num_days = 10
    c.events_per_day = 800
    c.history_len = 5
    c.exposure_k = 10           # items shown per search
    c.candidate_k = 50          # legacy engine candidates per distinct query
    c.max_posting = 4000        # legacy index keeps the most popular items per token
    c.event_chunk = 4096        # events generated per vectorised chunk
    c.tokenizer_vocab_size = 4000  # subword vocabulary trained on titles + queries
    # Catalog.
    c.item_zipf = 1.1           # popularity ~ 1 / rank^item_zipf
    c.attr_fill_rate = 0.8      # chance an applicable attribute is set on an item
    c.function_rate = 0.75      # chance an item of a serving leaf really serves the need
    # Queries: share of each type among distinct queries (typos come on top of these).
    c.query_zipf = 1.05
    c.query_type_mix = ml_collections.ConfigDict(dict(
        category=0.22, category_attr=0.26, brand=0.1, need=0.12, negation=0.14, scenario=0.08,
        substitute=0.08))
    c.typo_rate = 0.08          # share of distinct queries that are typo'd copies of others
    c.complexity_penalty = 1.2  # composed queries (more constraints) are rarer
    # Users.
    c.brands_per_user = 3
    c.user_zipf = 0.8           # activity skew
    c.user_top_affinity = 0.6   # chance a query is issued by a user who prefers its category
    c.new_query_share = 0.1     # share of distinct queries never logged, issued on the test day only
    c.new_query_traffic = 0.1   # share of the test day's searches that issue those new queries
    # The LLM stand-in that writes keyword CoT from query text (world/keyword_llm.py).
    c.keywords = keyword_llm.default_keyword_config()
    c.item_keyword_noise = 0.2  # attribute sheet: share of entries missing, half as many wrong
    # Legacy engine.
    c.legacy_pop_weight = 3.0   # score = bm25 + w * log(popularity)
    c.legacy_brand_bonus = 1.0  # light personalisation by brand affinity
    # Click model (position-based).
    c.examine_eta = 0.9                           # P(examine position p) = (1 / (p + 1)) ** eta
    c.attract_by_tier = (0.08, 0.1, 0.16, 0.3)    # attractiveness of relevance tier 0..3
    c.shallow_bonus = 0.10                        # extra attractiveness from title/query overlap
    c.qtype_tier0_boost = ml_collections.ConfigDict(dict(negation=1.2, need=1.3))
    c.brand_affinity_boost = 0.08
    c.audience_boost = 0.05
    c.popularity_boost = 0.05
    c.order_by_tier = (0.004, 0.015, 0.04, 0.1)    # P(order | click) per tier, before adjustments
    c.price_aversion = 0.6                        # price-sensitive users order less when pricey
    c.price_elasticity = 1.0                      # orders ~ (price / median) ** (-this * sensitivity)
    return c


def validate_config(config) -> None:
    """Refuse configs with keys this world does not know (typos would silently do nothing)."""
    known = default_config()
    unknown = sorted(set(config.keys()) - set(known.keys()))
    if unknown:
        raise ValueError(f"unknown world config keys {unknown}; valid keys: {', '.join(sorted(known.keys()))}")
    if "keywords" in config:
        keyword_llm.validate_keyword_config(config.keywords)
    for key in ("new_query_share", "new_query_traffic", "item_keyword_noise"):
        if key in config and not 0.0 <= float(config[key]) <= 1.0:
            raise ValueError(f"{key} must be in [0, 1], got {config[key]}")
    for key in ("query_type_mix", "qtype_tier0_boost"):
        bad = sorted(set(config[key].keys()) - set(known[key].keys()))
        if bad:
            raise ValueError(f"unknown {key} entries {bad}; valid: {', '.join(sorted(known[key].keys()))}")
    for key in ("num_items", "num_queries", "num_users", "num_days", "events_per_day"):
        if int(config[key]) <= 0:
            raise ValueError(f"{key} must be positive, got {config[key]}")
    if config.num_days < 3:
        raise ValueError(f"num_days must be >= 3 (train, valid and test days), got {config.num_days}")
    if config.candidate_k < config.exposure_k:
        raise ValueError("candidate_k must be >= exposure_k")


def build_world(config) -> World:
    validate_config(config)
    cat = catalog_lib.build_catalog(config)
    q = queries_lib.build_queries(config, cat)
    users = users_lib.build_users(config, cat)
    return World(config, cat, q, users)
