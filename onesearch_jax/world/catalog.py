"""The product catalog: structured ground truth per item plus a marketplace-style title.

Titles are what lexical engines and text models see; the structured arrays are what relevance is
judged on. An item that contains a component may say so ("with Caffeine") and an item that does not
may say "Caffeine-Free": both titles contain the word, which is why lexical search fails negation.
"""
import dataclasses

import numpy as np

from onesearch_jax.world import taxonomy as tx

ARRAY_FIELDS = ("leaf", "brand", "attrs", "functions", "components", "price", "price_band",
                "popularity", "quality")


@dataclasses.dataclass
class Catalog:
    """Item index i is the row in every array; product_ids[i] is its public id."""
    product_ids: list      # str, e.g. 'p0001234'
    titles: list           # str
    leaf: np.ndarray       # (N,) int32 leaf category id
    brand: np.ndarray      # (N,) int32 brand id
    attrs: np.ndarray      # (N, num_attr_types) int32 value id per type, -1 = not applicable / unset
    functions: np.ndarray  # (N,) int64 bitmask over taxonomy functions the item really serves
    components: np.ndarray  # (N,) int32 bitmask over taxonomy components the item contains
    price: np.ndarray      # (N,) float32
    price_band: np.ndarray  # (N,) int8 0 budget, 1 mid-range, 2 premium (within its leaf)
    popularity: np.ndarray  # (N,) float32, sums to 1 (Zipf)
    quality: np.ndarray    # (N,) float32 in (0, 1)

    def __len__(self):
        return len(self.leaf)

    @property
    def median_price(self) -> float:
        return float(np.median(self.price))

    @property
    def mid(self):
        return tx.get_taxonomy().leaf_mid[self.leaf]

    @property
    def top(self):
        return tx.get_taxonomy().leaf_top[self.leaf]

    def has_function(self, f: int) -> np.ndarray:
        return (self.functions >> np.int64(f)) & 1 == 1

    def contains(self, c: int) -> np.ndarray:
        return (self.components >> np.int32(c)) & 1 == 1

    def index_of(self) -> dict:
        """product id -> item index."""
        return {pid: i for i, pid in enumerate(self.product_ids)}


def popularity_percentile(popularity: np.ndarray) -> np.ndarray:
    """(N,) rank of each item's popularity scaled to [0, 1]."""
    ranks = np.empty(len(popularity), np.int64)
    ranks[np.argsort(popularity, kind="stable")] = np.arange(len(popularity))
    return (ranks / max(len(ranks) - 1, 1)).astype(np.float32)


def _bitmask(bools: np.ndarray, dtype) -> np.ndarray:
    weights = (np.ones((), dtype) << np.arange(bools.shape[1]).astype(dtype))
    return (bools.astype(dtype) * weights).sum(axis=1).astype(dtype)


def _pick_one(rng, mask: np.ndarray) -> np.ndarray:
    """Per row, a uniformly random True column, or -1 where a row has none."""
    scores = np.where(mask, rng.random(mask.shape, dtype=np.float32), -1.0)
    pick = scores.argmax(axis=1)
    return np.where(mask.any(axis=1), pick, -1)


_UPPER_WORDS = {"s", "m", "l", "xl", "tpe", "bpa", "uv"}


def _title_case(text):
    return " ".join(w.upper() if w in _UPPER_WORDS else w if w[:1].isdigit()
                    else w[:1].upper() + w[1:] for w in text.split())


def build_catalog(config) -> Catalog:
    t = tx.get_taxonomy()
    n = int(config.num_items)
    rng = np.random.default_rng([int(config.seed), 101])
    num_leaves = len(t.leaf_names)

    leaf_weight = rng.lognormal(0.0, 0.6, num_leaves)
    leaf = rng.choice(num_leaves, size=n, p=leaf_weight / leaf_weight.sum())
    if n >= num_leaves:  # every leaf has at least one item
        leaf[rng.choice(n, num_leaves, replace=False)] = np.arange(num_leaves)
    leaf = leaf.astype(np.int32)
    top = t.leaf_top[leaf]

    brands_per_top = np.array([np.flatnonzero(t.brand_top == k) for k in range(len(t.top_names))])
    brand_share = np.array([0.3, 0.22, 0.17, 0.13, 0.1, 0.08])
    brand = brands_per_top[top, rng.choice(brands_per_top.shape[1], size=n, p=brand_share)]
    brand = brand.astype(np.int32)

    attrs = np.full((n, len(t.attr_types)), -1, np.int32)
    for a in range(len(t.attr_types)):
        allowed = t.attr_allowed[a][leaf]                    # (n, V_a)
        value = _pick_one(rng, allowed)
        keep = rng.random(n) < config.attr_fill_rate
        attrs[:, a] = np.where(keep, value, -1)

    serves = t.leaf_functions[leaf] & (rng.random((n, len(t.function_names))) < config.function_rate)
    contains = rng.random((n, len(t.component_names)), dtype=np.float32) < t.leaf_component_prob[leaf]

    leaf_price = np.array([tx.TOP_BASE_PRICE[t.top_names[k]] for k in t.leaf_top])
    leaf_price = leaf_price * rng.lognormal(0.0, 0.4, num_leaves)
    z = rng.standard_normal(n)
    price = np.floor(leaf_price[leaf] * np.exp(0.5 * z)) + 0.99
    price_band = np.digitize(z, [-0.43, 0.43]).astype(np.int8)

    quality = rng.beta(5.0, 2.0, n).astype(np.float32)
    rank = rng.permutation(n) + 1
    popularity = rank ** -float(config.item_zipf) * (0.5 + quality)
    popularity = (popularity / popularity.sum()).astype(np.float32)

    titles = _make_titles(rng, t, leaf, brand, attrs, serves, contains)
    return Catalog(product_ids=[f"p{i:07d}" for i in range(n)], titles=titles, leaf=leaf,
                   brand=brand, attrs=attrs, functions=_bitmask(serves, np.int64),
                   components=_bitmask(contains, np.int32), price=price.astype(np.float32),
                   price_band=price_band, popularity=popularity, quality=quality)


def _make_titles(rng, t, leaf, brand, attrs, serves, contains):
    """brand + attributes + leaf + need + component claims + spec + audience + marketing."""
    n = len(leaf)
    a_aud, a_spec = t.attr_type_index("audience"), t.attr_type_index("specification")
    shown = (attrs >= 0) & (rng.random(attrs.shape) < 0.85)
    fn_shown = np.where(rng.random(n) < 0.7, _pick_one(rng, serves), -1)
    possible = t.leaf_component_prob[leaf] > 0
    with_shown = np.where(rng.random(n) < 0.6, _pick_one(rng, contains), -1)
    free_shown = np.where(rng.random(n) < 0.5, _pick_one(rng, possible & ~contains), -1)
    decoy = np.array([tx.DECOY_TITLE_WORDS.get(name, "") for name in t.leaf_names])
    decoy_shown = rng.random(n) < 0.6
    market = np.where(rng.random(n) < 0.4, rng.integers(0, len(tx.MARKETING_WORDS), n), -1)

    value_title = [[_title_case(v) for v in vocab] for vocab in t.attr_values]
    leaf_title = [_title_case(x) for x in t.leaf_names]
    fn_title = [tx.FUNCTIONS[f]["title"] for f in t.function_names]
    comp_title = [_title_case(c) if c != "bpa" else "BPA" for c in t.component_names]
    front_types = [a for a in range(len(t.attr_types)) if a not in (a_aud, a_spec)]

    titles = []
    for i in range(n):
        parts = [t.brand_names[brand[i]]]
        parts += [value_title[a][attrs[i, a]] for a in front_types if shown[i, a]]
        parts.append(leaf_title[leaf[i]])
        if fn_shown[i] >= 0:
            parts.append(fn_title[fn_shown[i]])
        if decoy_shown[i] and decoy[leaf[i]]:
            parts.append(decoy[leaf[i]])
        if free_shown[i] >= 0:
            parts.append(comp_title[free_shown[i]] + "-Free")
        if with_shown[i] >= 0:
            parts.append("with " + comp_title[with_shown[i]])
        if shown[i, a_spec]:
            parts.append(value_title[a_spec][attrs[i, a_spec]])
        if shown[i, a_aud]:
            parts.append("for " + value_title[a_aud][attrs[i, a_aud]])
        if market[i] >= 0:
            parts.append(tx.MARKETING_WORDS[market[i]])
        titles.append(" ".join(parts))
    return _distinguish_duplicates(rng, t, brand, titles)


def _distinguish_duplicates(rng, t, brand, titles):
    """Repeated titles get a model number, as marketplace listings of look-alike products do;
    otherwise no text-derived SID could tell the items apart."""
    seen = set()
    out = []
    for i, title in enumerate(titles):
        while title in seen:
            initials = "".join(w[0] for w in t.brand_names[brand[i]].split()).upper()
            title = f"{titles[i]} Model {initials}-{rng.integers(100, 1000)}"
        seen.add(title)
        out.append(title)
    return out
