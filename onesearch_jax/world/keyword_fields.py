"""The paper's four keyword fields (intent, category, attribute, topic) rendered from an intent.

One renderer serves both sides: the ground-truth keywords of a query are `render_keywords(its
latent intent)` (what a perfect LLM would write: used only to score keyword writers), and the
LLM stand-in (keyword_llm.py) renders the intent it *read from the text*, errors included. With a
user, `calibrate` adds the profile's audience, price band and a favourite brand when they fit.
`add_noise` drops keywords and adds wrong ones from the field's vocabulary. Example: "energy
drinks without caffeine" -> intent ['caffeine-free', 'energy drinks'], category ['energy drinks',
'beverages'], attribute ['caffeine-free'], topic ['natural energy', 'food & drinks'].
"""
import functools

import numpy as np

from onesearch_jax.world import taxonomy as tx

FIELDS = ("intent", "category", "attribute", "topic")
MAX_KEYWORDS = 5


def _dedupe(words):
    return list(dict.fromkeys(w for w in words if w))


@functools.lru_cache(maxsize=1)
def field_vocabularies() -> dict:
    """Where wrong keywords are drawn from, per field."""
    t = tx.get_taxonomy()
    attrs = [v for vocab in t.attr_values for v in vocab]
    return {
        "intent": _dedupe(t.function_names + t.leaf_names + [f"{c}-free" for c in t.component_names]),
        "category": _dedupe(t.leaf_names + t.mid_names),
        "attribute": _dedupe(attrs + [f"{c}-free" for c in t.component_names] + tx.PRICE_BANDS),
        "topic": _dedupe([v["topic"] for v in tx.FUNCTIONS.values()] + t.top_names
                         + t.scenario_names),
    }


def render_keywords(intent, leaf_counts=None) -> dict:
    """Noise-free, user-free keywords of an intent (leaf_counts: items per leaf, to order leaves)."""
    t = tx.get_taxonomy()
    leaves = list(intent.leaves)
    if leaf_counts is not None and len(leaves) > 1:  # most stocked leaves first
        leaves = sorted(leaves, key=lambda leaf: -leaf_counts[leaf])
    leaf_names = [t.leaf_names[leaf] for leaf in leaves]
    mids = _dedupe([t.mid_names[t.leaf_mid[leaf]] for leaf in leaves])
    tops = _dedupe([t.top_names[t.leaf_top[leaf]] for leaf in leaves])
    attr_words = [t.attr_values[a][v] for a, v in intent.attrs]
    attribute = list(attr_words)
    if intent.price_band >= 0:
        attribute.append(tx.PRICE_BANDS[intent.price_band])
    frees = [f"{t.component_names[c]}-free" for c in intent.exclude]
    if intent.exclude_group >= 0:
        frees.append(f"no {list(tx.CATEGORY_EXCLUSIONS)[intent.exclude_group]}")
    fn = t.function_names[intent.function] if intent.function >= 0 else ""
    brand = t.brand_names[intent.brand] if intent.brand >= 0 else ""
    topics = [tx.FUNCTIONS[fn]["topic"]] if fn else []
    if len(leaves) <= 2:  # what the few leaves are for: the query's topic
        for leaf in leaves:
            topics += [tx.FUNCTIONS[t.function_names[f]]["topic"]
                       for f in np.flatnonzero(t.leaf_functions[leaf])[:1]]
    scenario = t.scenario_names[intent.scenario] if intent.scenario >= 0 else ""

    qtype = intent.qtype
    if qtype == "need":
        intent_words = [fn] + leaf_names[:2]
    elif qtype == "negation":
        intent_words = frees + [fn] + leaf_names[:1]
    elif qtype == "scenario":
        intent_words = [scenario, "gift" if "gift" in scenario else ""] + leaf_names[:2]
    elif qtype == "substitute":
        intent_words = [f"alternative to {t.brand_names[intent.not_brand]}"] + leaf_names[:1]
        attribute.append("other brands")
    elif qtype == "brand":
        intent_words = [brand] + leaf_names[:1]
    else:
        intent_words = [" ".join(attr_words + leaf_names[:1])] if attr_words else leaf_names[:1]
    attribute += frees
    if brand:
        attribute.insert(0, brand)
    category = leaf_names[:4] + mids[:1] if len(leaves) > 1 else leaf_names + mids[:1]
    return {"intent": _dedupe(intent_words)[:MAX_KEYWORDS],
            "category": _dedupe(category)[:MAX_KEYWORDS],
            "attribute": _dedupe(attribute)[:MAX_KEYWORDS],
            "topic": _dedupe(topics + [scenario] + tops[:2])[:MAX_KEYWORDS]}


def calibrate(keywords: dict, intent, users, user_id: int) -> dict:
    """Preference calibration: add the user's audience, price band and a favourite brand to the
    attribute field when they fit the intent and there is room."""
    t = tx.get_taxonomy()
    out = {k: list(v) for k, v in keywords.items()}
    a_aud = t.attr_type_index("audience")
    leaves = np.asarray(intent.leaves, np.int64)
    extra = []
    if len(leaves) and not any(a == a_aud for a, _ in intent.attrs):
        v = int(users.audience_value[user_id])
        if t.attr_allowed[a_aud][leaves, v].any():
            extra.append(t.attr_values[a_aud][v])
    if intent.price_band < 0:
        sens = float(users.price_sensitivity[user_id])
        extra.append("budget" if sens > 0.7 else "premium" if sens < 0.2 else "")
    if intent.brand < 0 and len(leaves):
        fitting = [b for b in users.brands[user_id]
                   if b != intent.not_brand and np.isin(t.brand_top[b], t.leaf_top[leaves])]
        if fitting:
            extra.append(t.brand_names[fitting[0]])
    out["attribute"] = _dedupe(out["attribute"] + extra)[:MAX_KEYWORDS]
    return out


def add_noise(keywords: dict, rng, noise_rate: float) -> dict:
    """Drop each keyword w.p. noise_rate (keeping one per non-empty field) and add a wrong
    keyword from the field's vocabulary w.p. noise_rate."""
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
    vocab = field_vocabularies()
    out = {}
    for field in FIELDS:
        words = keywords[field]
        kept = [w for w in words if rng.random() >= noise_rate]
        if words and not kept:
            kept = [words[int(rng.integers(len(words)))]]
        if rng.random() < noise_rate:
            kept.append(vocab[field][int(rng.integers(len(vocab[field])))])
        out[field] = _dedupe(kept)[:MAX_KEYWORDS]
    return out
