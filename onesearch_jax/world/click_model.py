"""Position-based click model and order model: how simulated users react to a result page.

P(click) = P(examine position) * attractiveness, where attractiveness grows with the true relevance
tier, the user's brand/audience affinity, popularity and the "shallow" lexical overlap between
query and title. Irrelevant (tier 0) items are clicked at a configurable rate, more often for
negation and need queries: a title that repeats the query's words (even the negated one) looks
right at a glance. P(order | click) grows with tier and quality and falls with price for
price-sensitive users. All functions are pure numpy over (events, positions) arrays.
"""
import numpy as np

from onesearch_jax.world.taxonomy import get_taxonomy


def examine_probs(num_positions: int, eta: float) -> np.ndarray:
    """(P,) probability a user looks at position p (0-based): (1 / (p + 1)) ** eta."""
    return (1.0 / np.arange(1, num_positions + 1)) ** float(eta)


def attractiveness(tiers, shallow, brand_liked, audience_match, pop_pct, tier0_boost, config):
    """(E, P) chance that an examined item is clicked.

    tiers int (E,P); shallow float in [0,1] (share of query tokens in the title); brand_liked,
    audience_match bool (E,P); pop_pct float in [0,1] (popularity percentile); tier0_boost (E,)
    multiplier on tier-0 attractiveness (query type dependent)."""
    base = np.asarray(config.attract_by_tier, np.float64)[tiers]
    a = base + float(config.shallow_bonus) * shallow
    a = np.where(tiers == 0, a * np.asarray(tier0_boost, np.float64)[:, None], a)
    a = a + float(config.brand_affinity_boost) * brand_liked
    a = a + float(config.audience_boost) * audience_match
    a = a + float(config.popularity_boost) * pop_pct
    return np.clip(a, 0.0, 0.95)


def click_probs(attract: np.ndarray, eta: float) -> np.ndarray:
    return attract * examine_probs(attract.shape[1], eta)[None, :]


def order_probs(tiers, quality, price_band, price_sensitivity, config, price_ratio=None) -> np.ndarray:
    """(E, P) P(order | click): tier and quality raise it; premium prices deter sensitive users,
    within a leaf (price band) and across leaves: orders scale with (price / median price) **
    (-price_elasticity * sensitivity), so showing pricier items pays in GMV only for users who
    do not mind the price."""
    base = np.asarray(config.order_by_tier, np.float64)[tiers]
    sens = price_sensitivity[:, None].astype(np.float64)
    price_factor = np.exp(-float(config.price_aversion) * sens * (price_band.astype(np.float64) - 1.0))
    if price_ratio is not None:
        price_factor = price_factor * np.asarray(price_ratio, np.float64) ** (
            -float(config.get("price_elasticity", 0.0)) * sens)
    return np.clip(base * (0.5 + quality) * price_factor, 0.0, 1.0)


def tier0_boosts(qtypes, config) -> np.ndarray:
    """(E,) tier-0 attractiveness multiplier per event from its query type."""
    boosts = dict(config.qtype_tier0_boost)
    return np.array([boosts.get(str(q), 1.0) for q in qtypes], np.float64)


def page_probs(catalog, users, config, user_ids, qtypes, items, tiers, shallow, pop_pct):
    """(p_click, p_order) for result pages items (E, P) shown to users; -1 items are never clicked.

    pop_pct: (N,) popularity percentile of every item (see popularity_percentile)."""
    valid = items >= 0
    it = np.maximum(items, 0)
    brand_liked = (catalog.brand[it][:, :, None] == users.brands[user_ids][:, None, :]).any(-1)
    a_aud = get_taxonomy().attr_type_index("audience")
    audience_match = catalog.attrs[it, a_aud] == users.audience_value[user_ids][:, None]
    attract = attractiveness(tiers, shallow, brand_liked, audience_match, pop_pct[it],
                             tier0_boosts(qtypes, config), config)
    p_click = np.where(valid, click_probs(attract, config.examine_eta), 0.0)
    p_order = order_probs(tiers, catalog.quality[it], catalog.price_band[it],
                          users.price_sensitivity[user_ids], config,
                          catalog.price[it] / catalog.median_price)
    return p_click, np.where(valid, p_order, 0.0)


def perturbed_config(config, seed: int, scale: float = 0.25):
    """A copy of the world config with the click and order model's parameters redrawn: each
    multiplied by lognormal(0, scale) noise (tier attractiveness kept increasing), so an A/B
    result can be checked on users who behave somewhat differently from the logged ones."""
    rng = np.random.default_rng([int(seed), 808])
    c = config.copy_and_resolve_references()

    def jitter(x):
        return float(x) * float(np.exp(scale * rng.standard_normal()))
    c.attract_by_tier = tuple(np.maximum.accumulate([jitter(x) for x in config.attract_by_tier]))
    c.order_by_tier = tuple(np.maximum.accumulate([jitter(x) for x in config.order_by_tier]))
    for key in ("examine_eta", "shallow_bonus", "brand_affinity_boost", "audience_boost",
                "popularity_boost", "price_aversion", "price_elasticity"):
        c[key] = jitter(config.get(key, 0.0))
    for key in config.qtype_tier0_boost:
        c.qtype_tier0_boost[key] = jitter(config.qtype_tier0_boost[key])
    return c


def sample_clicks_orders(p_click, p_order, u_click, u_order):
    """Clicks and orders from uniforms (passing the same uniforms = common random numbers)."""
    clicks = u_click < p_click
    orders = clicks & (u_order < p_order)
    return clicks.astype(np.int8), orders.astype(np.int8)
