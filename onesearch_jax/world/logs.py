"""Streaming search logs: who searched what, what the legacy engine showed, what got clicked/ordered.

Events are generated day by day in vectorised chunks and never held in memory as a whole. Users'
click histories evolve as the days go by (each event sees the history as of its chunk's start).
Protocol (the paper's): train on days [0, num_days - 2), valid = day num_days - 2, test = last day.
New queries (`Queries.is_new`) are issued on the test day only: the test day has never-logged texts.
"""
import numpy as np

from onesearch_jax.world import click_model
from onesearch_jax.world.legacy_engine import personalised_top

EVENT_FIELDS = ("event_id", "day", "user_id", "query_id", "items", "clicks", "orders", "history")


def split_of_day(day: int, num_days: int) -> str:
    if not 0 <= day < num_days:
        raise ValueError(f"day {day} outside [0, {num_days})")
    if day < num_days - 2:
        return "train"
    return "valid" if day == num_days - 2 else "test"


def day_query_freq(queries, day: int, num_days: int, new_traffic: float = 0.1) -> np.ndarray:
    """Query frequencies on a day: new queries (never logged) are issued on the test day only,
    where together they take `new_traffic` of the searches (each one stays rare)."""
    logged = np.where(queries.is_new, 0.0, queries.freq)
    if split_of_day(day, num_days) != "test" or not queries.is_new.any():
        return logged
    new = np.where(queries.is_new, queries.freq, 0.0)
    return (1.0 - new_traffic) * logged / logged.sum() + new_traffic * new / new.sum()


def sample_traffic(world, rng, n: int, day: int):
    """(user_ids, query_ids) of n searches on a day: queries by that day's frequency, users by
    activity, biased so a query in a top category is usually issued by a user who favours it."""
    q = world.queries
    freq = day_query_freq(q, int(day), int(world.config.num_days),
                          float(world.config.get("new_query_traffic", 0.1)))
    query_ids = np.searchsorted(np.cumsum(freq), rng.random(n) * freq.sum(), side="right")
    query_ids = query_ids.astype(np.int64)
    query_ids = np.minimum(query_ids, len(q) - 1)
    users = world.users
    cum_all = np.cumsum(users.activity)
    user_ids = np.minimum(np.searchsorted(cum_all, rng.random(n) * cum_all[-1]), len(users) - 1)
    tops = q.top[query_ids]
    affine = (rng.random(n) < float(world.config.user_top_affinity)) & (tops >= 0)
    draws = rng.random(n)
    for k, (members, cum) in world.users_by_top().items():
        rows = np.flatnonzero(affine & (tops == k))
        if len(rows) and len(members):
            pick = np.searchsorted(cum, draws[rows] * cum[-1])
            user_ids[rows] = members[np.minimum(pick, len(members) - 1)]
    return user_ids.astype(np.int32), query_ids.astype(np.int32)


def _push_history(history, user_ids, items, clicks):
    """Most recent first: each clicked item (page order, event order) goes to the front."""
    for e in np.flatnonzero(clicks.any(1)):
        u = user_ids[e]
        for item in items[e][clicks[e] > 0]:
            history[u, 1:] = history[u, :-1]
            history[u, 0] = item


def iter_event_chunks(world, days=None, seed=None):
    """Yield dicts of arrays (one chunk of events each), for the requested days in order.

    Earlier days are always simulated (histories depend on them) but only requested ones are
    yielded. Deterministic given world and seed (default: the world's seed)."""
    cfg = world.config
    num_days = int(cfg.num_days)
    wanted = set(range(num_days) if days is None else (int(d) for d in days))
    for d in wanted:
        split_of_day(d, num_days)
    seed = int(cfg.seed if seed is None else seed)
    k = int(cfg.exposure_k)
    cand_items, cand_scores, cand_match, cand_tiers = world.legacy_candidates()
    history = world.users.history.copy()
    per_day, chunk = int(cfg.events_per_day), int(cfg.event_chunk)
    pop_pct = world.popularity_percentile()
    for day in range(max(wanted) + 1 if wanted else 0):
        for c, lo in enumerate(range(0, per_day, chunk)):
            n = min(chunk, per_day - lo)
            rng = np.random.default_rng([seed, 404, day, c])
            user_ids, query_ids = sample_traffic(world, rng, n, day)
            order = personalised_top(cand_scores[query_ids], world.catalog.brand[
                np.maximum(cand_items[query_ids], 0)], world.users.brands[user_ids],
                valid=cand_items[query_ids] >= 0, k=k, bonus=float(cfg.legacy_brand_bonus))
            items = np.take_along_axis(cand_items[query_ids], order, 1)
            tiers = np.take_along_axis(cand_tiers[query_ids], order, 1)
            shallow = np.take_along_axis(cand_match[query_ids], order, 1)
            p_click, p_order = click_model.page_probs(
                world.catalog, world.users, cfg, user_ids, world.queries.qtype[query_ids], items,
                tiers, shallow, pop_pct)
            clicks, orders = click_model.sample_clicks_orders(
                p_click, p_order, rng.random(p_click.shape), rng.random(p_click.shape))
            out = dict(event_id=(day * per_day + lo + np.arange(n)).astype(np.int64),
                       day=np.full(n, day, np.int32), user_id=user_ids, query_id=query_ids,
                       items=items.astype(np.int32), clicks=clicks, orders=orders,
                       history=history[user_ids].copy())
            _push_history(history, user_ids, items, clicks)
            if day in wanted:
                yield out


def iter_search_events(world, days=None, seed=None):
    """Yield one dict per search event (fields EVENT_FIELDS), streaming."""
    for chunk in iter_event_chunks(world, days, seed):
        for e in range(len(chunk["event_id"])):
            yield {name: (chunk[name][e] if chunk[name].ndim == 1 else chunk[name][e].copy())
                   for name in EVENT_FIELDS}
