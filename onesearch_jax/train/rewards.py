"""The item reward RL optimises: R_item = w_rel R_rel + w_ctr R_ctr + w_co R_c&o (1:1:1).

What the paper's reward.py adds up:
  * R_rel: the relevance tier 0-3 of (query, item) (world ground truth here; judged relevance on
    real data);
  * R_ctr: the calibrated CTR of the learned reward model (world/reward_model.py, fitted on the
    training logs), clipped to [0, 1];
  * R_c&o: order 4, click 3 where the (query, item) pair was logged with one in the training
    days, else 0 (the code's values; the paper's text has them swapped).
Training code never calls the simulator's click model: `LoggedRewards` reads only the reward
model's module (its relevance tier, standing in for a relevance model, and its CTR) and the
training events.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from onesearch_jax.world.reward_model import relevance_reward

ORDER_VALUE, CLICK_VALUE = 4.0, 3.0
DEFAULT_WEIGHTS = (1.0, 1.0, 1.0)  # (w_rel, w_ctr, w_co)


def behaviour_reward(clicked, ordered, click_value: float = CLICK_VALUE,
                     order_value: float = ORDER_VALUE) -> np.ndarray:
    """R_c&o: order_value where ordered, else click_value where clicked, else 0."""
    clicked, ordered = np.asarray(clicked, bool), np.asarray(ordered, bool)
    return np.where(ordered, order_value, np.where(clicked, click_value, 0.0)).astype(np.float32)


def item_reward(rel, ctr, co, weights: Sequence[float] = DEFAULT_WEIGHTS) -> np.ndarray:
    """w_rel * tier + w_ctr * clip(ctr, 0, 1) + w_co * R_c&o, elementwise."""
    w_rel, w_ctr, w_co = (float(w) for w in weights)
    ctr = np.clip(np.asarray(ctr, np.float64), 0.0, 1.0)
    return (w_rel * np.asarray(rel, np.float64) + w_ctr * ctr
            + w_co * np.asarray(co, np.float64)).astype(np.float32)


class LoggedPairs:
    """Which (query, item) pairs the training days logged a click or an order for."""

    def __init__(self, events: Mapping[str, np.ndarray], num_items: int):
        items = np.asarray(events["items"], np.int64)
        q = np.broadcast_to(np.asarray(events["query_id"], np.int64)[:, None], items.shape)
        shown = items >= 0
        self.num_items = int(num_items)
        keys = q[shown] * self.num_items + items[shown]
        self.clicked = np.unique(keys[np.asarray(events["clicks"])[shown] > 0])
        self.ordered = np.unique(keys[np.asarray(events["orders"])[shown] > 0])

    def lookup(self, query_ids, items) -> tuple[np.ndarray, np.ndarray]:
        """(clicked, ordered) bool arrays shaped like items ([B, G]); items < 0 are neither."""
        items = np.asarray(items, np.int64)
        q = np.broadcast_to(np.asarray(query_ids, np.int64).reshape(-1, *([1] * (items.ndim - 1))),
                            items.shape)
        keys = q * self.num_items + np.maximum(items, 0)
        valid = items >= 0
        return (valid & _member(keys, self.clicked)), (valid & _member(keys, self.ordered))


def _member(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0:
        return np.zeros(keys.shape, bool)
    i = np.minimum(np.searchsorted(sorted_set, keys), len(sorted_set) - 1)
    return sorted_set[i] == keys


class LoggedRewards:
    """R_item of sampled items on a world: `__call__(query_ids[B], user_ids[B], items[B, G])`
    -> dict of float32[B, G] arrays `rel`, `ctr`, `co`, `item` (all 0 where items < 0: a
    sample that is no real item earns nothing)."""

    def __init__(self, world, reward_model, train_events: Mapping[str, np.ndarray],
                 weights: Sequence[float] = DEFAULT_WEIGHTS):
        self.world, self.reward_model = world, reward_model
        self.weights = tuple(float(w) for w in weights)
        if len(self.weights) != 3:
            raise ValueError(f"reward weights must be (w_rel, w_ctr, w_co), got {weights}")
        self.pairs = LoggedPairs(train_events, len(world.catalog))

    def __call__(self, query_ids, user_ids, items) -> dict[str, np.ndarray]:
        items = np.asarray(items, np.int64)
        valid = items >= 0
        rel = relevance_reward(self.world, query_ids, items)
        ctr = self.reward_model.ctr(self.world, query_ids, np.where(valid, items, -1), user_ids)
        clicked, ordered = self.pairs.lookup(query_ids, items)
        co = behaviour_reward(clicked, ordered)
        ctr = np.where(valid, ctr, 0.0).astype(np.float32)
        return {"rel": rel, "ctr": ctr, "co": co,
                "item": item_reward(rel, ctr, co, self.weights)}
