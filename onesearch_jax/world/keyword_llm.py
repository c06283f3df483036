"""An LLM stand-in that writes the keyword CoT of a query from its *text*, with LLM-like mistakes.

It knows the store the way a large LLM knows the world: category, brand, attribute, component and
need vocabularies, how needs are phrased, implicit exclusions ("safe in pregnancy" = caffeine- and
alcohol-free), category-exclusion words ("no supplements"), and it fixes one-letter typos. It reads
an intent from the text (never the query's latent intent), then errs systematically, each at a
rate from `config.keywords`, and twice as often where an LLM finds it harder:
  bias_rate            names the most-clicked leaf for the query's words instead of the one asked
                       (doubled when the text names no category: needs, scenarios, brands);
  drop_exclusion_rate  forgets the exclusion ("without caffeine" written as plain energy drinks;
                       doubled for implied and category exclusions);
  overgeneralise_rate  writes the parent category and drops the attributes (doubled for two or
                       more attributes);
  noise_rate           drops keywords and adds random wrong ones (keyword_fields.add_noise);
  coverage             share of query texts that get keywords at all.
"Most-clicked" comes from the training logs' clicks per leaf when given (as a company would
prompt its LLM), else from item popularity. Keywords are rendered by
keyword_fields.render_keywords, the same renderer as the ground truth, so precision against the
truth is measured string for string (a real LLM's JSONL is scored the same way, so its wording
counts: "caffeine-free", not "no caffeine"). Where a phrase is in two vocabularies ("pain relief"
is a need and a category) the first listed in `world_vocabulary` wins. Deterministic per (seed,
text, user).
"""
from __future__ import annotations

import dataclasses
import zlib

import ml_collections
import numpy as np

from onesearch_jax.data.keyword_extractor import DictionaryExtractor
from onesearch_jax.world import keyword_fields
from onesearch_jax.world import taxonomy as tx
from onesearch_jax.world.queries import NEGATION_TEMPLATES, SUBSTITUTE_TEMPLATES, Intent

KNOBS = dict(coverage=0.95, bias_rate=0.15, drop_exclusion_rate=0.15, overgeneralise_rate=0.1,
             noise_rate=0.05)
SOURCE_KEYS = dict(jsonl="")  # a keywords JSONL written by any LLM replaces the stand-in
SUBSTITUTE_CUES = ("alternative to", "dupe", "something like", "similar to")
NEGATION_BEFORE = ("without", "no", "with no", "has no", "not", "but no", "free of")
STOP = frozenset("best what with without for help need something products top rated looking "
                 "ideas should must haves remedy solutions".split())


def default_keyword_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({**KNOBS, **SOURCE_KEYS})


def validate_keyword_config(kc) -> None:
    """Refuse unknown `keywords.*` knobs and rates outside [0, 1], naming the key."""
    known = set(KNOBS) | set(SOURCE_KEYS)
    unknown = sorted(set(kc.keys()) - known)
    if unknown:
        raise ValueError(f"unknown keywords config keys {['keywords.' + k for k in unknown]}; "
                         f"valid: {', '.join('keywords.' + k for k in sorted(known))}")
    for k in KNOBS:
        if k not in kc:
            raise ValueError(f"keywords.{k} is missing; valid keys: {', '.join(sorted(known))}")
        try:
            v = float(kc[k])
        except (TypeError, ValueError):
            raise ValueError(f"keywords.{k} must be a number in [0, 1], got {kc[k]!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"keywords.{k} must be in [0, 1], got {kc[k]}")


def _field_types() -> dict:
    return {"leaf": "category", "mid": "category", "brand": "attribute", "component": "attribute",
            "implicit": "attribute", "group": "attribute", "substitute": "intent",
            **{f"attr:{a}": "attribute" for a in range(len(tx.ATTRIBUTE_TYPES))},
            **{f"need:{f}": "intent" for f in range(len(tx.FUNCTIONS))},
            **{f"scenario:{s}": "topic" for s in range(len(tx.SCENARIOS))},
            **{f"price:{b}": "attribute" for b in range(3)}}


def world_vocabulary() -> dict:
    """phrase -> type: what the stand-in LLM recognises in a query."""
    t = tx.get_taxonomy()
    vocab = {}

    def add(phrase, typ):
        vocab.setdefault(phrase.lower(), typ)
    for f, spec in enumerate(tx.FUNCTIONS.values()):
        for p in spec["phrases"]:
            add(p, f"need:{f}")
    for s, spec in enumerate(tx.SCENARIOS.values()):
        for p in spec["phrases"]:
            add(p, f"scenario:{s}")
    for cue in tx.IMPLICIT_EXCLUSIONS:
        add(cue, "implicit")
    for cue in SUBSTITUTE_CUES:
        add(cue, "substitute")
    for name in t.leaf_names:
        add(name, "leaf")
    for name in t.mid_names:
        add(name, "mid")
    for name in t.brand_names:
        add(name, "brand")
    for c in t.component_names:
        add(c, "component")
    for word in tx.CATEGORY_EXCLUSIONS:
        add(word, "group")
    for band, words in tx.PRICE_BAND_QUERY_WORDS.items():
        for w in words:
            add(w, f"price:{band}")
    for a, values in enumerate(t.attr_values):
        for v in values:
            add(v, f"attr:{a}")
    return vocab


def known_words() -> set:
    """Every word the stand-in knows: vocabulary phrases plus the words of query templates."""
    texts = list(world_vocabulary()) + list(tx.NEED_TEMPLATES + tx.HELDOUT_NEED_TEMPLATES
                                            + tx.CATEGORY_EXCLUSION_TEMPLATES
                                            + NEGATION_TEMPLATES + SUBSTITUTE_TEMPLATES)
    texts += [w for words in tx.PRICE_BAND_QUERY_WORDS.values() for w in words]
    return {w for text in texts for w in text.replace("{", " ").replace("}", " ").split()
            if w.isalpha()} | {"free"}


class TypoFixer:
    """Maps a word one edit (delete, insert, replace, swap) away from a known word onto it."""

    def __init__(self, words):
        self.known = set(words)
        self.words = {w for w in self.known if len(w) >= 4 and w.isalpha()}
        self.by_delete: dict[str, list[str]] = {}
        for w in sorted(self.words):
            for d in self._deletes(w) | {w}:
                self.by_delete.setdefault(d, []).append(w)

    @staticmethod
    def _deletes(w):
        return {w[:i] + w[i + 1:] for i in range(len(w))}

    def fix(self, word: str) -> str:
        if len(word) < 3 or not word.isalpha() or word in self.known:
            return word
        cands = set(self.by_delete.get(word, []))  # word = vocabulary word with one letter more
        for d in self._deletes(word):
            cands.update(self.by_delete.get(d, []))  # one letter less, replaced, or swapped
        cands = sorted(c for c in cands if _one_edit(word, c))
        return cands[0] if cands else word


def _one_edit(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


class KeywordWriter:
    """`write(text, user_id)` -> keyword fields (or None when the text is not covered)."""

    def __init__(self, config, catalog, users=None, leaf_clicks=None):
        kc = config.get("keywords", default_keyword_config())
        validate_keyword_config(kc)
        self.kc, self.seed, self.users = kc, int(config.seed), users
        t = tx.get_taxonomy()
        self.leaf_counts = np.bincount(catalog.leaf, minlength=len(t.leaf_names))
        # What the LLM is told shoppers click: the logs' clicks per leaf (else item popularity).
        self.leaf_popularity = (np.asarray(leaf_clicks, np.float64) if leaf_clicks is not None else
                                np.bincount(catalog.leaf, weights=catalog.popularity,
                                            minlength=len(t.leaf_names)))
        vocab = world_vocabulary()
        self.extractor = DictionaryExtractor(vocab, field_of_type=_field_types())
        self.typos = TypoFixer(known_words())
        self.leaf_words = [set(name.split()) - STOP for name in t.leaf_names]

    # --- reading ----------------------------------------------------------------------------
    def normalise(self, text: str) -> str:
        """Lower case, one-letter typos fixed."""
        return " ".join(self.typos.fix(w) for w in text.lower().split())

    def read(self, text: str) -> Intent:
        """The intent the text states, as an attentive LLM reads it (no deliberate errors)."""
        t = tx.get_taxonomy()
        text = self.normalise(text)
        found = dict(leaf=-1, mid=-1, brand=-1, need=-1, scenario=-1, band=-1, group=-1)
        attrs, exclude, substitute = [], set(), False
        for m in self.extractor.extract(text):
            kind, _, idx = m.type.partition(":")
            before = text[max(0, m.start - 9):m.start].strip()
            negated = any(before.endswith(cue) for cue in NEGATION_BEFORE)
            after = text[m.end:m.end + 5]
            if kind == "mid" and m.phrase in t.component_names and (
                    negated or after.startswith(("-free", " free"))):
                kind = "component"  # "fragrance free": the component, not the category
            if kind == "component":
                if negated or after.startswith(("-free", " free")):
                    exclude.add(t.component_names.index(m.phrase))
            elif kind == "implicit":
                exclude.update(t.component_names.index(c) for c in tx.IMPLICIT_EXCLUSIONS[m.phrase])
            elif kind == "group":
                if negated:
                    found["group"] = list(tx.CATEGORY_EXCLUSIONS).index(m.phrase)
            elif kind == "substitute":
                substitute = True
            elif kind == "attr":
                attrs.append((int(idx), t.attr_values[int(idx)].index(m.phrase)))
            elif kind == "price":
                found["band"] = int(idx)
            elif kind in ("need", "scenario"):
                found[kind] = int(idx)
            elif kind == "leaf":  # the last category named is the head noun ("honey pasta")
                if found["leaf"] >= 0:
                    earlier = t.leaf_names[found["leaf"]]
                    attrs += [(a, vs.index(earlier)) for a, vs in enumerate(t.attr_values)
                              if earlier in vs][:1]
                found["leaf"] = t.leaf_names.index(m.phrase)
            elif kind == "mid" and found["mid"] < 0:
                found["mid"] = t.mid_names.index(m.phrase)
            elif kind == "brand" and found["brand"] < 0:
                found["brand"] = [b.lower() for b in t.brand_names].index(m.phrase)
        return self._intent(found, attrs, tuple(sorted(exclude)), substitute)

    def _intent(self, found, attrs, exclude, substitute) -> Intent:
        t = tx.get_taxonomy()
        group_leaves = (tx.category_exclusion_leaves()[list(tx.CATEGORY_EXCLUSIONS)[found["group"]]]
                        if found["group"] >= 0 else ())
        if found["leaf"] >= 0:
            leaves = (found["leaf"],)
        elif found["mid"] >= 0:
            leaves = tuple(np.flatnonzero(t.leaf_mid == found["mid"]).tolist())
        elif found["need"] >= 0:
            leaves = tuple(int(x) for x in np.flatnonzero(t.leaf_functions[:, found["need"]])
                           if x not in group_leaves)
        elif found["scenario"] >= 0:
            leaves = t.scenario_leaves[found["scenario"]]
        elif found["brand"] >= 0:
            leaves = tuple(np.flatnonzero(t.leaf_top == t.brand_top[found["brand"]]).tolist())
        else:
            leaves = ()
        brand, not_brand = found["brand"], -1
        if substitute and brand >= 0:
            brand, not_brand = -1, brand
        if not_brand >= 0:
            qtype = "substitute"
        elif exclude or found["group"] >= 0:
            qtype = "negation"
        elif found["need"] >= 0:
            qtype = "need"
        elif found["scenario"] >= 0:
            qtype = "scenario"
        elif brand >= 0:
            qtype = "brand"
        elif attrs or found["band"] >= 0:
            qtype = "category_attr"
        else:
            qtype = "category"
        return Intent(qtype, leaves, tuple(sorted(set(attrs))), brand=brand, not_brand=not_brand,
                      function=found["need"], exclude=exclude, price_band=found["band"],
                      scenario=found["scenario"], exclude_group=found["group"])

    # --- the LLM's systematic mistakes -------------------------------------------------------
    def popular_leaf_for(self, text: str, reading: Intent) -> int:
        """The most popular leaf sharing a word with the text, else the most popular sibling
        (same mid category) of the first leaf read; -1 if neither exists."""
        t = tx.get_taxonomy()
        words = set(text.lower().split()) - STOP
        cands = [leaf for leaf, lw in enumerate(self.leaf_words) if lw & words]
        if not cands and reading.leaves:
            cands = np.flatnonzero(t.leaf_mid == t.leaf_mid[reading.leaves[0]]).tolist()
        return int(max(cands, key=lambda leaf: self.leaf_popularity[leaf])) if cands else -1

    def hardness(self, text: str, reading: Intent) -> dict:
        """Per error, 2.0 where the reading is harder for an LLM, else 1.0."""
        kinds = {m.type for m in self.extractor.extract(self.normalise(text))}
        return {"bias_rate": 1.0 + ("leaf" not in kinds and "mid" not in kinds),
                "drop_exclusion_rate": 1.0 + ("implicit" in kinds or reading.exclude_group >= 0),
                "overgeneralise_rate": 1.0 + (len(reading.attrs) >= 2)}

    def write_reading(self, text: str, rng) -> Intent:
        reading = self.read(text)
        hard = self.hardness(text, reading)
        rate = {k: min(1.0, float(self.kc[k]) * hard[k]) for k in hard}
        if rng.random() < rate["bias_rate"]:
            leaf = self.popular_leaf_for(text, reading)
            if leaf >= 0:
                reading = dataclasses.replace(reading, leaves=(leaf,))
        if rng.random() < rate["overgeneralise_rate"] and len(reading.leaves) == 1:
            t = tx.get_taxonomy()
            mid_leaves = np.flatnonzero(t.leaf_mid == t.leaf_mid[reading.leaves[0]]).tolist()
            reading = dataclasses.replace(reading, leaves=tuple(mid_leaves), attrs=())
        if ((reading.exclude or reading.exclude_group >= 0)
                and rng.random() < rate["drop_exclusion_rate"]):
            qtype = "need" if reading.function >= 0 else "category"
            reading = dataclasses.replace(reading, exclude=(), exclude_group=-1, qtype=qtype)
        return reading

    def covers(self, text: str) -> bool:
        u = np.random.default_rng([self.seed, 514, zlib.crc32(text.encode())]).random()
        return u < float(self.kc.coverage)

    def write(self, text: str, user_id: int | None = None) -> dict | None:
        """Keyword fields for a query text (calibrated to a user when given); None if uncovered."""
        if not self.covers(text):
            return None
        rng = np.random.default_rng([self.seed, 515, zlib.crc32(text.encode()),
                                     0 if user_id is None else int(user_id) + 1])
        reading = self.write_reading(text, rng)
        kws = keyword_fields.render_keywords(reading, self.leaf_counts)
        if user_id is not None:
            if self.users is None:
                raise ValueError("personalised keywords need the world's users")
            kws = keyword_fields.calibrate(kws, reading, self.users, int(user_id))
        noise = float(self.kc.noise_rate)
        return keyword_fields.add_noise(kws, rng, noise) if noise > 0 else kws
