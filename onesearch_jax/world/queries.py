"""Distinct search queries, each with a latent intent (the ground truth of what the user wants).

Types: category, category_attr, brand, need, negation, scenario, substitute, plus typo'd copies
(is_typo, same intent). Composed queries (more constraints) get lower traffic, so the tail is made
of rare compositions such as multi-attribute + negation. Attribute and negation queries are built
from a real item's properties, so every such query has at least one fully relevant item.

Need queries wrap a need's core phrase in a template, optionally with a price word and an audience
("something for trouble falling asleep for seniors"); negation queries exclude a named component
("energy drinks without caffeine"), imply it ("dark chocolate for diabetics": sugar-free) or exclude
a category ("better sleep, no supplements"). Some queries are new: never logged, issued only on
the test day (`is_new`), among them every query phrased with a held-out need template. Each new
query is rare (they take the lowest traffic ranks); together they take `new_query_traffic` of the
test day's searches (logs.day_query_freq).
"""
import dataclasses

import numpy as np

from onesearch_jax.world import taxonomy as tx

QUERY_TYPES = ("category", "category_attr", "brand", "need", "negation", "scenario", "substitute")
SLICES = ("head", "torso", "tail")
TYPE_TRAFFIC_BONUS = dict(category=2.0, category_attr=0.0, brand=1.5, need=2.5, negation=2.0,
                          scenario=0.5, substitute=-0.5)

NEGATION_TEMPLATES = ("{leaf} without {comp}", "{comp}-free {leaf}", "{comp} free {leaf}",
                      "no {comp} {leaf}", "{leaf} with no {comp}", "{leaf} that has no {comp}")
SUBSTITUTE_TEMPLATES = ("alternative to {brand} {leaf}", "{brand} {leaf} dupe",
                        "something like {brand} {leaf}", "{leaf} similar to {brand}")


@dataclasses.dataclass(frozen=True)
class Intent:
    """What the query really asks for. Empty `leaves` = any category; -1 = no constraint."""
    qtype: str
    leaves: tuple = ()        # acceptable leaf ids
    attrs: tuple = ()         # ((attr_type, value), ...) required attribute values
    brand: int = -1           # required brand
    not_brand: int = -1       # substitute: any brand but this one
    function: int = -1        # required need the item must serve
    exclude: tuple = ()       # components the item must not contain
    exclude_group: int = -1   # index into taxonomy.CATEGORY_EXCLUSIONS: leaves it must not be in
    price_band: int = -1
    scenario: int = -1

    @staticmethod
    def from_dict(d):
        d = dict(d)
        d["leaves"] = tuple(d["leaves"])
        d["attrs"] = tuple(tuple(p) for p in d["attrs"])
        ex = d.get("exclude", ())
        d["exclude"] = (ex,) if isinstance(ex, int) and ex >= 0 else () if isinstance(ex, int) else tuple(ex)
        return Intent(**d)


@dataclasses.dataclass
class Queries:
    texts: list            # str
    qtype: np.ndarray      # (Q,) str, one of QUERY_TYPES
    is_typo: np.ndarray    # (Q,) bool
    typo_of: np.ndarray    # (Q,) int32, query this typo copies, -1 if none
    slice: np.ndarray      # (Q,) str, head / torso / tail
    freq: np.ndarray       # (Q,) float64 probability a search event issues this query
    top: np.ndarray        # (Q,) int32 main top category (-1 if mixed), used to pick users
    intents: list          # Intent per query
    is_new: np.ndarray = None  # (Q,) bool: never logged, issued only on the test day

    def __post_init__(self):
        if self.is_new is None:
            self.is_new = np.zeros(len(self.texts), bool)

    def __len__(self):
        return len(self.texts)

    @property
    def intent(self):
        """Alias of `intents` (one Intent per query)."""
        return self.intents


def slices_from_freq(freq: np.ndarray) -> np.ndarray:
    """head = queries covering the first 50% of traffic, torso the next 30%, tail the last 20%."""
    order = np.argsort(-freq, kind="stable")
    cum = np.cumsum(freq[order]) / freq.sum()
    before = np.concatenate([[0.0], cum[:-1]])  # traffic share of all more frequent queries
    eps = 1e-9
    out = np.empty(len(freq), dtype="<U5")
    out[order] = np.where(before < 0.5 - eps, "head", np.where(before < 0.8 - eps, "torso", "tail"))
    return out


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _attr_phrase(t, attrs, leaf_name, price_band, rng):
    a_aud, a_spec = t.attr_type_index("audience"), t.attr_type_index("specification")
    front = [t.attr_values[a][v] for a, v in attrs if a not in (a_aud, a_spec)]
    words = []
    if price_band >= 0:
        words.append(_pick(rng, tx.PRICE_BAND_QUERY_WORDS[price_band]))
    words += front + [leaf_name]
    words += [t.attr_values[a][v] for a, v in attrs if a == a_spec]
    words += ["for " + t.attr_values[a][v] for a, v in attrs if a == a_aud]
    return " ".join(words)


def _item_attrs(rng, catalog, i, k):
    """k random attribute constraints that item i satisfies."""
    set_types = np.flatnonzero(catalog.attrs[i] >= 0)
    k = min(k, len(set_types))
    chosen = np.sort(set_types[rng.permutation(len(set_types))[:k]]) if k else []
    return tuple((int(a), int(catalog.attrs[i, a])) for a in chosen)


def _make_one(rng, qtype, t, catalog, cache):
    """(text, intent, complexity, held-out phrasing) of one random query of a type, or None."""
    u = rng.random()
    n_attr = 1 if u < 0.6 else 2 if u < 0.9 else 3
    if qtype == "category":
        if rng.random() < 0.15:
            m = int(rng.integers(len(t.mid_names)))
            return t.mid_names[m], Intent(qtype, tuple(np.flatnonzero(t.leaf_mid == m).tolist())), 0, False
        leaf = int(rng.integers(len(t.leaf_names)))
        return t.leaf_names[leaf], Intent(qtype, (leaf,)), 0, False
    if qtype == "category_attr":
        i = int(rng.integers(len(catalog)))
        leaf = int(catalog.leaf[i])
        attrs = _item_attrs(rng, catalog, i, n_attr)
        band = int(catalog.price_band[i]) if rng.random() < 0.15 else -1
        if not attrs and band < 0:
            band = int(catalog.price_band[i])
        text = _attr_phrase(t, attrs, t.leaf_names[leaf], band, rng)
        return text, Intent(qtype, (leaf,), attrs, price_band=band), len(attrs) + (band >= 0), False
    if qtype == "brand":
        b = int(rng.integers(len(t.brand_names)))
        top_leaves = np.flatnonzero(t.leaf_top == t.brand_top[b])
        if rng.random() < 0.5:
            return t.brand_names[b].lower(), Intent(qtype, tuple(top_leaves.tolist()), brand=b), 0, False
        i = int(rng.integers(len(catalog)))  # a brand + leaf pair that exists
        b, leaf = int(catalog.brand[i]), int(catalog.leaf[i])
        return f"{t.brand_names[b].lower()} {t.leaf_names[leaf]}", Intent(qtype, (leaf,), brand=b), 1, False
    if qtype == "need":
        f = int(rng.integers(len(t.function_names)))
        leaves = tuple(np.flatnonzero(t.leaf_functions[:, f]).tolist())
        heldout = rng.random() < 0.25
        template = _pick(rng, tx.HELDOUT_NEED_TEMPLATES if heldout else tx.NEED_TEMPLATES)
        text = template.format(p=_pick(rng, tx.FUNCTIONS[t.function_names[f]]["phrases"]))
        attrs, band, complexity = (), -1, 1 + (template != "{p}")
        a_aud = t.attr_type_index("audience")
        fits = np.flatnonzero(t.attr_allowed[a_aud][list(leaves)].any(0))
        if rng.random() < 0.2 and len(fits):
            v = int(_pick(rng, fits))
            text, attrs, complexity = f"{text} for {t.attr_values[a_aud][v]}", ((a_aud, v),), complexity + 1
        if rng.random() < 0.2:
            band = int(rng.integers(3))
            text, complexity = f"{_pick(rng, tx.PRICE_BAND_QUERY_WORDS[band])} {text}", complexity + 1
        return text, Intent(qtype, leaves, attrs, function=f, price_band=band), complexity, heldout
    if qtype == "negation":
        u = rng.random()
        if u < 0.15:  # category exclusion: a need, minus the categories a word names
            groups = tx.category_exclusion_leaves()
            g = int(rng.integers(len(groups)))
            word, banned = list(groups)[g], groups[list(groups)[g]]
            f = int(rng.integers(len(t.function_names)))
            serving = np.flatnonzero(t.leaf_functions[:, f])
            kept = tuple(int(x) for x in serving if x not in banned)
            if len(kept) == len(serving) or not kept:
                return None
            phrase = _pick(rng, tx.FUNCTIONS[t.function_names[f]]["phrases"])
            text = _pick(rng, tx.CATEGORY_EXCLUSION_TEMPLATES).format(p=phrase, g=word)
            return text, Intent(qtype, kept, function=f, exclude_group=g), 2, False
        if u < 0.4:  # implicit exclusion: the cue names no component
            cue = _pick(rng, list(tx.IMPLICIT_EXCLUSIONS))
            comps = tuple(sorted(t.component_names.index(c) for c in tx.IMPLICIT_EXCLUSIONS[cue]))
            mask = sum(1 << c for c in comps)
            key = ("implicit", cue)
            if key not in cache:  # items free of all the cue's components, in leaves that can have one
                can = (t.leaf_component_prob[catalog.leaf][:, list(comps)] > 0).any(1)
                cache[key] = np.flatnonzero(can & ((catalog.components & mask) == 0))
            if len(cache[key]) == 0:
                return None
            i = int(_pick(rng, cache[key]))
            leaf = t.leaf_names[int(catalog.leaf[i])]
            text = f"{cue} {leaf}" if cue.endswith(("friendly", "safe")) else f"{leaf} {cue}"
            return text, Intent(qtype, (int(catalog.leaf[i]),), exclude=comps), 2, False
        c = int(rng.integers(len(t.component_names)))
        comp = t.component_names[c]
        if ("fns", c) not in cache:  # needs served by leaves that can contain c
            cache["fns", c] = np.flatnonzero(
                (t.leaf_functions & (t.leaf_component_prob[:, c:c + 1] > 0)).any(0))
        fns = cache["fns", c]
        if rng.random() < 0.2 and len(fns):
            f = int(_pick(rng, fns))
            leaves = tuple(np.flatnonzero(t.leaf_functions[:, f]).tolist())
            phrase = _pick(rng, tx.FUNCTIONS[t.function_names[f]]["phrases"])
            return f"{phrase} without {comp}", Intent(qtype, leaves, function=f, exclude=(c,)), 2, False
        if ("neg", c) not in cache:  # items a "without c" query can be built from
            cache["neg", c] = np.flatnonzero((t.leaf_component_prob[catalog.leaf, c] > 0)
                                             & ~catalog.contains(c))
        cand = cache["neg", c]
        if len(cand) == 0:
            return None
        i = int(_pick(rng, cand))
        leaf = int(catalog.leaf[i])
        attrs = _item_attrs(rng, catalog, i, n_attr - 1) if rng.random() < 0.35 else ()
        leaf_text = _attr_phrase(t, attrs, t.leaf_names[leaf], -1, rng)
        text = _pick(rng, NEGATION_TEMPLATES).format(leaf=leaf_text, comp=comp)
        return text, Intent(qtype, (leaf,), attrs, exclude=(c,)), 1 + len(attrs), False
    if qtype == "scenario":
        s = int(rng.integers(len(t.scenario_names)))
        text = _pick(rng, tx.SCENARIOS[t.scenario_names[s]]["phrases"])
        if rng.random() < 0.2:
            band = _pick(rng, [0, 2])
            text = f"{_pick(rng, tx.PRICE_BAND_QUERY_WORDS[band])} {text}"
            return text, Intent(qtype, t.scenario_leaves[s], price_band=band, scenario=s), 2, False
        return text, Intent(qtype, t.scenario_leaves[s], scenario=s), 1, False
    if qtype == "substitute":
        i = int(rng.integers(len(catalog)))
        leaf, b = int(catalog.leaf[i]), int(catalog.brand[i])
        text = _pick(rng, SUBSTITUTE_TEMPLATES).format(
            brand=t.brand_names[b].lower(), leaf=t.leaf_names[leaf])
        return text, Intent(qtype, (leaf,), not_brand=b), 1, False
    raise ValueError(f"unknown query type {qtype!r}; valid: {QUERY_TYPES}")


def make_typo(rng, text: str) -> str:
    """One character-level edit (swap, drop, double, replace) inside a word of >= 4 letters."""
    words = text.split(" ")
    long_words = [k for k, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long_words:
        return text
    k = _pick(rng, long_words)
    w = words[k]
    p = int(rng.integers(1, len(w) - 1))
    op = int(rng.integers(4))
    if op == 0:
        w = w[:p] + w[p + 1] + w[p] + w[p + 2:]
    elif op == 1:
        w = w[:p] + w[p + 1:]
    elif op == 2:
        w = w[:p] + w[p] + w[p:]
    else:
        w = w[:p] + "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(26))] + w[p + 1:]
    words[k] = w
    return " ".join(words)


def build_queries(config, catalog) -> Queries:
    t = tx.get_taxonomy()
    rng = np.random.default_rng([int(config.seed), 202])
    num_total = int(config.num_queries)
    num_typos = int(round(num_total * float(config.typo_rate)))
    num_base = num_total - num_typos
    mix = dict(config.query_type_mix)
    types, probs = list(mix), np.array([mix[k] for k in mix], float)
    probs /= probs.sum()

    texts, intents, complexity, heldout, seen, cache = [], [], [], [], set(), {}
    attempts = 0
    type_draws, misses = [], np.zeros(len(types), np.int64)
    while len(texts) < num_base:
        if not type_draws:
            type_draws = list(rng.choice(len(types), size=4096, p=probs))
        attempts += 1
        if attempts > 50 * num_base + 1000:
            raise ValueError(f"could not make {num_base} distinct queries; lower num_queries")
        k = type_draws.pop()
        made = _make_one(rng, types[k], t, catalog, cache)
        if made is None or made[0] in seen:
            misses[k] += 1
            if misses[k] >= 200 and probs[k] > 0 and (probs > 0).sum() > 1:
                # This type has (almost) no new texts left: stop drawing it.
                probs[k] = 0.0
                probs /= probs.sum()
                type_draws = []
            continue
        misses[k] = 0
        seen.add(made[0])
        texts.append(made[0])
        intents.append(made[1])
        complexity.append(made[2])
        heldout.append(bool(made[3]))

    # Short generic queries (a category, a brand) dominate the head; compositions fill the tail.
    type_bonus = np.array([TYPE_TRAFFIC_BONUS[it.qtype] for it in intents])
    score = (type_bonus - float(config.complexity_penalty) * np.asarray(complexity)
             + rng.gumbel(size=num_base))
    # New queries: every held-out phrasing plus a share of each type, drawn by its own generator so
    # the rest of the world does not move when the share changes. A query nobody ever issued
    # before is a rare one: new queries take the lowest traffic ranks (the long tail).
    new_rng = np.random.default_rng([int(config.seed), 203])
    is_new = np.asarray(heldout, bool) | (new_rng.random(num_base) < float(config.new_query_share))
    rank = np.empty(num_base)
    rank[np.lexsort((-score, is_new))] = np.arange(1, num_base + 1)
    freq = rank ** -float(config.query_zipf)

    typo_of = [-1] * num_base
    typo_freq = []
    logged = np.flatnonzero(~is_new)
    head_half = logged[np.argsort(-freq[logged])][: max(1, len(logged) // 2)]
    tries = 0
    while len(typo_of) < num_total and tries < 50 * num_typos + 100:
        tries += 1
        src = int(_pick(rng, head_half))
        text = make_typo(rng, texts[src])
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        intents.append(intents[src])
        typo_of.append(src)
        typo_freq.append(freq[src] * rng.uniform(0.03, 0.15))
    freq = np.concatenate([freq, np.asarray(typo_freq, float)])
    freq = freq / freq.sum()

    typo_of = np.asarray(typo_of, np.int32)
    is_new = np.concatenate([is_new, np.zeros(len(texts) - num_base, bool)])
    tops = []
    for it in intents:
        leaf_tops = set(t.leaf_top[list(it.leaves)].tolist()) if it.leaves else set()
        tops.append(leaf_tops.pop() if len(leaf_tops) == 1 else -1)
    return Queries(texts=texts, qtype=np.array([it.qtype for it in intents]),
                   is_typo=typo_of >= 0, typo_of=typo_of, slice=slices_from_freq(freq), freq=freq,
                   top=np.asarray(tops, np.int32), intents=intents, is_new=is_new)
