"""Online A/B simulator: replay held-out traffic against a search function and measure clicks,
orders and GMV with the world's click model.

Both arms of an A/B test see the SAME sampled (user, query) traffic and the SAME uniform random
numbers per (event, position) (common random numbers), so the lift's noise comes only from the
rankings. Confidence intervals are a bootstrap over events.
"""
import numpy as np

from onesearch_jax.data import click_model
from onesearch_jax.data.logs import sample_traffic

METRICS = ("ctr", "orders_per_search", "gmv_per_search")
LIFT_NAMES = {"ctr": "ctr_lift", "orders_per_search": "orders_lift", "gmv_per_search": "gmv_lift"}


def _pages(search_fn, world, texts, user_ids, k):
    """Run the search function and map product ids to item indices (-1 for unknown / missing)."""
    results = search_fn(texts, [int(u) for u in user_ids])
    if len(results) != len(texts):
        raise ValueError(f"search_fn returned {len(results)} result lists for {len(texts)} queries")
    index = world.product_index()
    items = np.full((len(texts), k), -1, np.int64)
    for e, pids in enumerate(results):
        row = [index.get(p, -1) for p in list(pids)[:k]]
        items[e, :len(row)] = row
    return items


def _outcomes(world, user_ids, query_ids, items, u_click, u_order):
    """Per-event clicks, exposures, orders and GMV for result pages items (E, k)."""
    q = world.queries
    tiers = np.stack([world.relevance(qid, row) for qid, row in zip(query_ids, items)])
    engine = world.legacy_engine()
    shallow = engine.match_fraction(engine.query_matrix([q.texts[i] for i in query_ids]), items)
    p_click, p_order = click_model.page_probs(world.catalog, world.users, world.config, user_ids,
                                              q.qtype[query_ids], items, tiers, shallow,
                                              world.popularity_percentile())
    clicks, orders = click_model.sample_clicks_orders(p_click, p_order, u_click, u_order)
    price = world.catalog.price[np.maximum(items, 0)]
    return dict(clicks=clicks.sum(1).astype(np.float64),
                exposures=(items >= 0).sum(1).astype(np.float64),
                orders=orders.sum(1).astype(np.float64),
                gmv=(orders * price).sum(1).astype(np.float64))


def _metrics(o, rows=None):
    if rows is not None:
        o = {k: v[rows] for k, v in o.items()}
    return dict(ctr=o["clicks"].sum() / max(o["exposures"].sum(), 1.0),
                orders_per_search=o["orders"].mean() if len(o["orders"]) else 0.0,
                gmv_per_search=o["gmv"].mean() if len(o["gmv"]) else 0.0)


def _bootstrap_lifts(new, base, rows, rng, num_bootstrap):
    """(B, 3) relative lifts of the 3 metrics over bootstrap resamples of `rows`."""
    def sums(o, idx):
        return np.stack([o["clicks"][idx].sum(1), o["exposures"][idx].sum(1),
                         o["orders"][idx].sum(1), o["gmv"][idx].sum(1)], 1)
    idx = rows[rng.integers(0, len(rows), (num_bootstrap, len(rows)))]
    a, b = sums(new, idx), sums(base, idx)
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr = (a[:, 0] / a[:, 1]) / (b[:, 0] / b[:, 1]) - 1
        orders = a[:, 2] / b[:, 2] - 1
        gmv = a[:, 3] / b[:, 3] - 1
    return np.stack([ctr, orders, gmv], 1)


def simulate_traffic(search_fn, world, *, num_events: int, seed: int, day=None, baseline_fn=None,
                     num_bootstrap: int = 1000) -> dict:
    """Flat dict of metrics ('ctr', 'orders_per_search', 'gmv_per_search', same with '/tail',
    and with a baseline: 'baseline/...', lifts 'ctr_lift', 'orders_lift', 'gmv_lift' with
    '_ci_low' / '_ci_high' 95% bootstrap bounds, also per '/tail')."""
    if num_events <= 0:
        raise ValueError(f"num_events must be positive, got {num_events}")
    num_days = int(world.config.num_days)
    day = num_days - 1 if day is None else int(day)
    if not 0 <= day < num_days:
        raise ValueError(f"day {day} outside [0, {num_days})")
    k = int(world.config.exposure_k)
    rng = np.random.default_rng([int(seed), 606, day])
    user_ids, query_ids = sample_traffic(world, rng, num_events)
    u_click, u_order = rng.random((num_events, k)), rng.random((num_events, k))
    texts = [world.queries.texts[i] for i in query_ids]
    tail = np.flatnonzero(world.queries.slice[query_ids] == "tail")
    slices = {"": np.arange(num_events), "/tail": tail}

    new = _outcomes(world, user_ids, query_ids, _pages(search_fn, world, texts, user_ids, k),
                    u_click, u_order)
    out = {"num_events": num_events, "num_events/tail": len(tail)}
    for suffix, rows in slices.items():
        for name, v in _metrics(new, rows).items():
            out[name + suffix] = float(v)
    if baseline_fn is None:
        return out
    base = _outcomes(world, user_ids, query_ids, _pages(baseline_fn, world, texts, user_ids, k),
                     u_click, u_order)
    boot_rng = np.random.default_rng([int(seed), 607])
    for suffix, rows in slices.items():
        mb = _metrics(base, rows)
        for name, v in mb.items():
            out[f"baseline/{name}{suffix}"] = float(v)
        lifts = (_bootstrap_lifts(new, base, rows, boot_rng, num_bootstrap) if len(rows)
                 else np.full((1, 3), np.nan))
        for j, name in enumerate(METRICS):
            point = out[name + suffix] / mb[name] - 1 if mb[name] > 0 else float("nan")
            lift = LIFT_NAMES[name]
            out[f"{lift}{suffix}"] = float(point)
            out[f"{lift}_ci_low{suffix}"] = float(np.nanpercentile(lifts[:, j], 2.5))
            out[f"{lift}_ci_high{suffix}"] = float(np.nanpercentile(lifts[:, j], 97.5))
    return out


def legacy_search_fn(world):
    """The legacy engine as a search function (a baseline arm for A/B tests)."""
    from onesearch_jax.data.legacy_engine import personalised_top
    engine = world.legacy_engine()
    k = int(world.config.exposure_k)
    fill = world.popular_items(2 * int(world.config.candidate_k))

    def search(texts, user_ids):
        items, scores, _ = engine.candidates(texts, int(world.config.candidate_k), fill_items=fill)
        order = personalised_top(scores, world.catalog.brand[np.maximum(items, 0)],
                                 world.users.brands[np.asarray(user_ids)], items >= 0, k,
                                 float(world.config.legacy_brand_bonus))
        top = np.take_along_axis(items, order, 1)
        return [[world.catalog.product_ids[i] for i in row if i >= 0] for row in top]
    return search


def oracle_search_fn(world):
    """Ranks by true relevance tier then popularity: an upper-bound arm for A/B tests."""
    text_to_query = {t: i for i, t in enumerate(world.queries.texts)}
    k = int(world.config.exposure_k)

    def search(texts, user_ids):
        out = []
        for text in texts:
            tiers = world.relevance(text_to_query[text])
            order = np.lexsort((-world.catalog.popularity, -tiers))[:k]
            out.append([world.catalog.product_ids[i] for i in order])
        return out
    return search
