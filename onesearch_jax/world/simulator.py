"""Online A/B simulator: replay test-day traffic against a search function and measure clicks,
orders and GMV with the world's true click model.

Both arms of an A/B test see the SAME sampled (user, query) traffic and the SAME uniform random
numbers per (event, position) (common random numbers), so the lift's noise comes only from the
rankings. Confidence intervals are a bootstrap over events.

What a page is, so that no ranking trick pays: the first k *distinct known* product ids an arm
returns (duplicates and unknown ids are dropped; longer lists fill the page from the arm's own next
results); a page with fewer than k items still counts k slots as shown. Metrics: `ctr` = clicks per
item slot shown, `page_ctr` = share of page views with a click, orders and GMV per search. The
test day includes never-logged queries (slice `/new`), and `perturb_seed` draws the click model's
parameters afresh (`click_model.perturbed_config`) so nothing is tuned to one simulator.
"""
import numpy as np

from onesearch_jax.world import click_model
from onesearch_jax.world.logs import sample_traffic

METRICS = ("ctr", "page_ctr", "orders_per_search", "gmv_per_search")
LIFT_NAMES = {"ctr": "ctr_lift", "page_ctr": "page_ctr_lift", "orders_per_search": "orders_lift",
              "gmv_per_search": "gmv_lift"}


def result_pages(results, index, k: int) -> np.ndarray:
    """(E, k) item indices: each arm's first k distinct known product ids, -1 for empty slots."""
    items = np.full((len(results), k), -1, np.int64)
    for e, pids in enumerate(results):
        row = list(dict.fromkeys(i for i in (index.get(p, -1) for p in pids) if i >= 0))[:k]
        items[e, :len(row)] = row
    return items


def _pages(search_fn, world, texts, user_ids, k):
    results = search_fn(texts, [int(u) for u in user_ids])
    if len(results) != len(texts):
        raise ValueError(f"search_fn returned {len(results)} result lists for {len(texts)} queries")
    return result_pages(results, world.product_index(), k)


def true_page_probs(world, config, user_ids, query_ids, items):
    """(p_click, p_order | click), each (E, P), of pages under the world's true click model."""
    q = world.queries
    tiers = np.stack([world.relevance(qid, row) for qid, row in zip(query_ids, items)])
    engine = world.legacy_engine()
    shallow = engine.match_fraction(engine.query_matrix([q.texts[i] for i in query_ids]), items)
    return click_model.page_probs(world.catalog, world.users, config, user_ids,
                                  q.qtype[query_ids], items, tiers, shallow,
                                  world.popularity_percentile())


def _outcomes(world, config, user_ids, query_ids, items, u_click, u_order):
    """Per-event clicks, slots shown (always k), clicked pages, orders and GMV."""
    p_click, p_order = true_page_probs(world, config, user_ids, query_ids, items)
    clicks, orders = click_model.sample_clicks_orders(p_click, p_order, u_click, u_order)
    price = world.catalog.price[np.maximum(items, 0)]
    return dict(clicks=clicks.sum(1).astype(np.float64),
                slots=np.full(len(items), items.shape[1], np.float64),
                clicked_pages=(clicks.sum(1) > 0).astype(np.float64),
                orders=orders.sum(1).astype(np.float64),
                gmv=(orders * price).sum(1).astype(np.float64))


def _ratios(sums):
    """Metric values from summed outcomes [..., (clicks, slots, clicked_pages, orders, gmv, n)]."""
    n = np.maximum(sums[..., 5], 1.0)
    return np.stack([sums[..., 0] / np.maximum(sums[..., 1], 1.0), sums[..., 2] / n,
                     sums[..., 3] / n, sums[..., 4] / n], -1)


def _sums(o, idx):
    cols = [o["clicks"], o["slots"], o["clicked_pages"], o["orders"], o["gmv"], np.ones_like(o["gmv"])]
    return np.stack([c[idx].sum(-1) for c in cols], -1)


def per_search_lifts(new: dict, base: dict) -> dict[str, np.ndarray]:
    """Each search's share of the lifts: v_i = x_i / mean(baseline x) - 1, so mean(v) is the
    lift and, across arms run on the same traffic (common random numbers), the per-search
    difference of two arms' v is their difference in lift (paired comparisons). Pure."""
    out = {}
    per_search = {"ctr": new["clicks"] / new["slots"], "page_ctr": new["clicked_pages"],
                  "orders_per_search": new["orders"], "gmv_per_search": new["gmv"]}
    base_mean = dict(zip(METRICS, _ratios(_sums(base, np.arange(len(base["gmv"]))))))
    for name, x in per_search.items():
        out[LIFT_NAMES[name]] = (x / base_mean[name] - 1.0 if base_mean[name] > 0
                                 else np.full(len(x), np.nan))
    return out


def simulate_traffic(search_fn, world, *, num_events: int, seed: int, day=None, baseline_fn=None,
                     num_bootstrap: int = 1000, perturb_seed=None, user_filter=None,
                     train_query_events=None, per_event: dict | None = None) -> dict:
    """Flat dict of metrics (METRICS, overall and per slice '/tail', '/new', '/unseen' when
    train_query_events is given), and with a baseline: 'baseline/...', relative lifts
    ('ctr_lift', 'page_ctr_lift', 'orders_lift', 'gmv_lift') with '_ci_low' / '_ci_high' 95%
    bootstrap bounds. `user_filter(user_ids) -> bool mask` adds a '/users' slice. With a
    baseline, `per_event` (a dict) receives each search's id (user * num_queries + query: equal
    ids mean the same traffic), its share of each lift (`per_search_lifts`) and the slice masks."""
    if num_events <= 0:
        raise ValueError(f"num_events must be positive, got {num_events}")
    num_days = int(world.config.num_days)
    day = num_days - 1 if day is None else int(day)
    if not 0 <= day < num_days:
        raise ValueError(f"day {day} outside [0, {num_days})")
    config = (world.config if perturb_seed is None
              else click_model.perturbed_config(world.config, int(perturb_seed)))
    k = int(world.config.exposure_k)
    rng = np.random.default_rng([int(seed), 606, day])
    user_ids, query_ids = sample_traffic(world, rng, num_events, day)
    u_click, u_order = rng.random((num_events, k)), rng.random((num_events, k))
    texts = [world.queries.texts[i] for i in query_ids]
    slices = {"": np.arange(num_events),
              "/tail": np.flatnonzero(world.queries.slice[query_ids] == "tail"),
              "/new": np.flatnonzero(world.queries.is_new[query_ids])}
    if train_query_events is not None:
        slices["/unseen"] = np.flatnonzero(np.asarray(train_query_events)[query_ids] == 0)
    if user_filter is not None:
        slices["/users"] = np.flatnonzero(np.asarray(user_filter(user_ids), bool))

    def run(fn):
        return _outcomes(world, config, user_ids, query_ids, _pages(fn, world, texts, user_ids, k),
                         u_click, u_order)
    new = run(search_fn)
    out = {"num_events": num_events}
    for suffix, rows in slices.items():
        out["num_events" + suffix] = len(rows)
        for name, v in zip(METRICS, _ratios(_sums(new, rows))):
            out[name + suffix] = float(v)
    if baseline_fn is None:
        return out
    base = run(baseline_fn)
    if per_event is not None:
        masks = {}
        for suffix, rows in slices.items():
            if suffix:
                masks[suffix[1:]] = np.zeros(num_events, bool)
                masks[suffix[1:]][rows] = True
        per_event.update(
            event_id=np.asarray(user_ids, np.int64) * len(world.queries.texts) + query_ids,
            lifts=per_search_lifts(new, base), slices=masks)
    boot_rng = np.random.default_rng([int(seed), 607])
    for suffix, rows in slices.items():
        mb = _ratios(_sums(base, rows))
        for name, v in zip(METRICS, mb):
            out[f"baseline/{name}{suffix}"] = float(v)
        if len(rows):
            idx = rows[boot_rng.integers(0, len(rows), (num_bootstrap, len(rows)))]
            with np.errstate(divide="ignore", invalid="ignore"):
                lifts = _ratios(_sums(new, idx)) / _ratios(_sums(base, idx)) - 1
        else:
            lifts = np.full((1, len(METRICS)), np.nan)
        for j, name in enumerate(METRICS):
            lift = LIFT_NAMES[name]
            out[f"{lift}{suffix}"] = float(out[name + suffix] / mb[j] - 1) if mb[j] > 0 else float("nan")
            finite = lifts[:, j][np.isfinite(lifts[:, j])]
            low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan)
            out[f"{lift}_ci_low{suffix}"], out[f"{lift}_ci_high{suffix}"] = float(low), float(high)
    return out


def legacy_search_fn(world):
    """The legacy engine as a search function (a baseline arm for A/B tests)."""
    from onesearch_jax.world.legacy_engine import personalised_top
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
    """Ranks by true relevance tier then popularity: the headroom arm of A/B tests."""
    text_to_query = {t: i for i, t in enumerate(world.queries.texts)}
    k = int(world.config.exposure_k)
    pids = world.catalog.product_ids

    def search(texts, user_ids):
        return [[pids[i] for i in world.oracle_ranking(text_to_query[t], k)] for t in texts]
    return search
