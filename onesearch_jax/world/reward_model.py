"""A learned reward for RL: CTR and order estimates fitted on the training logs only.

What a company would have, not the simulator's click model (never imported here): for any
(query, item, user), including pairs never logged, features a company can compute — the relevance
tier (ground truth, standing in for the paper's relevance model), query/title word overlap, the
user's favourite brands and audience named in the title, the item's logged click and order
counts, its price (band within the leaf, and relative to the store's median) and the user's price
sensitivity. Two logistic regressions:
  * CTR, position-debiased: logit = w . x + b_position, fitted on every shown slot of the train
    days; predictions are for the top slot (position 0);
  * P(order | click), fitted on the clicked slots.
Both are then Platt-calibrated on one half of the valid day and scored on the other half.
`reward/ctr_auc_valid` is the AUC of the position-free score (what RL uses) over every shown
slot, `reward/ctr_auc_valid_top` on top slots only, `..._with_position` the full model's; the
`reward/true_*` twins score the simulator's own click probabilities on the same rows: the ceiling
(computed by world building, which may read the true model; this module never does).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from onesearch_jax import fileio
from onesearch_jax.world import taxonomy as tx

CTR_FEATURES = ("tier1", "tier2", "tier3", "overlap", "brand_liked", "audience_in_title",
                "log_item_clicks", "band_mid_range", "band_premium", "sensitivity_x_band",
                "log_price", "sensitivity_x_log_price")
ORDER_FEATURES = CTR_FEATURES + ("log_item_orders",)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 30) -> np.ndarray:
    """Weights (F + 1,) of L2-regularised logistic regression (last = bias) by Newton's method."""
    x = np.concatenate([np.asarray(x, np.float64), np.ones((len(x), 1))], 1)
    y = np.asarray(y, np.float64)
    reg = np.full(x.shape[1], float(l2))
    reg[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = sigmoid(x @ w)
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both classes."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-mass bins of |mean(p) - mean(y)| weighted by the bin's share."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    order = np.argsort(p, kind="stable")
    err = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            err += len(chunk) / len(p) * abs(p[chunk].mean() - y[chunk].mean())
    return float(err)


@dataclasses.dataclass
class RewardModel:
    ctr_w: np.ndarray         # (len(CTR_FEATURES) + 1,) weights, last = bias
    position_bias: np.ndarray  # (P,) logit offset per position, 0 at position 0
    ctr_platt: np.ndarray     # (2,) calibration a, b: p = sigmoid(a * logit + b)
    order_w: np.ndarray       # (len(ORDER_FEATURES) + 1,)
    order_platt: np.ndarray   # (2,)
    item_clicks: np.ndarray   # (N,) train-day clicks per item
    item_orders: np.ndarray   # (N,)

    # --- features -------------------------------------------------------------------------------
    def features(self, world, query_ids, items, user_ids, loo_clicks=None, loo_orders=None):
        """(E, P, F) order-model features (the CTR model uses the first len(CTR_FEATURES)).

        loo_*: (E, P) counts to subtract from the item's (its own logged click/order, so a
        training row does not see its label)."""
        query_ids, user_ids = np.asarray(query_ids), np.asarray(user_ids)
        items = np.asarray(items, np.int64)
        valid = items >= 0
        it = np.maximum(items, 0)
        cat, users = world.catalog, world.users
        tiers = np.stack([world.relevance(int(q), row) for q, row in zip(query_ids, items)])
        engine = world.legacy_engine()
        overlap = engine.match_fraction(
            engine.query_matrix([world.queries.texts[int(q)] for q in query_ids]), items)
        brand_liked = (cat.brand[it][:, :, None] == users.brands[user_ids][:, None, :]).any(-1)
        audience = _audience_in_title(world)[it, users.audience_value[user_ids][:, None]]
        clicks = self.item_clicks[it] - (0 if loo_clicks is None else loo_clicks)
        orders = self.item_orders[it] - (0 if loo_orders is None else loo_orders)
        band = cat.price_band[it].astype(np.float64)
        sens = users.price_sensitivity[user_ids].astype(np.float64)[:, None]
        log_price = np.log(cat.price[it] / cat.median_price)
        cols = [tiers == 1, tiers == 2, tiers == 3, overlap, brand_liked, audience,
                np.log1p(np.maximum(clicks, 0)) / 5.0, band == 1, band == 2, sens * (band - 1),
                log_price, sens * log_price, np.log1p(np.maximum(orders, 0)) / 3.0]
        x = np.stack([np.broadcast_to(np.asarray(c, np.float64), items.shape) for c in cols], -1)
        return np.where(valid[..., None], x, 0.0)

    def ctr_logit(self, x, positions=None):
        z = x[..., :len(CTR_FEATURES)] @ self.ctr_w[:-1] + self.ctr_w[-1]
        return z if positions is None else z + self.position_bias[positions]

    def order_logit(self, x):
        return x @ self.order_w[:-1] + self.order_w[-1]

    # --- predictions ----------------------------------------------------------------------------
    def ctr(self, world, query_ids, items, user_ids, positions=None) -> np.ndarray:
        """(E, P) calibrated P(click) of each item, in [0, 1]: were it shown in the top slot, or
        at `positions` ((E, P) slot indices, e.g. np.arange(P) for the page order)."""
        x = self.features(world, query_ids, items, user_ids)
        z = self.ctr_logit(x, None if positions is None else np.broadcast_to(positions, x.shape[:2]))
        p = sigmoid(self.ctr_platt[0] * z + self.ctr_platt[1])
        return np.where(np.asarray(items) >= 0, p, 0.0)

    def order_given_click(self, world, query_ids, items, user_ids) -> np.ndarray:
        """(E, P) calibrated P(order | click), in [0, 1]."""
        z = self.order_logit(self.features(world, query_ids, items, user_ids))
        p = sigmoid(self.order_platt[0] * z + self.order_platt[1])
        return np.where(np.asarray(items) >= 0, p, 0.0)

    # --- persistence ----------------------------------------------------------------------------
    def save(self, path: str) -> None:
        fileio.save_npz(path, dataclasses.asdict(self))

    @staticmethod
    def load(path: str) -> "RewardModel":
        if not fileio.exists(path):
            raise FileNotFoundError(f"{path} is missing; run experiments.build_world on this workdir")
        return RewardModel(**fileio.load_npz(path))


def relevance_reward(world, query_ids, items) -> np.ndarray:
    """float32 [E, P] relevance tier 0-3 of each (query, item); 0 where items < 0. RL's R_rel: the
    world's graded relevance stands in for the paper's relevance model, as in the features
    above (training code reads it only through this module)."""
    items = np.asarray(items, np.int64)
    tiers = np.stack([np.asarray(world.relevance(int(q), np.maximum(row, 0)))
                      for q, row in zip(np.asarray(query_ids), items)]).astype(np.float32)
    return np.where(items >= 0, tiers, 0.0).astype(np.float32)


def _audience_in_title(world) -> np.ndarray:
    """(N, V_audience) bool: the title says 'for <audience value>'."""
    cache = world._cache
    if "audience_in_title" not in cache:
        t = tx.get_taxonomy()
        values = t.attr_values[t.attr_type_index("audience")]
        titles = [title.lower() for title in world.catalog.titles]
        cache["audience_in_title"] = np.array([[f"for {v}" in title for v in values]
                                               for title in titles], bool)
    return cache["audience_in_title"]


def fit_reward_model(world, train_events, valid_events, l2: float = 1.0, true_probs=None):
    """(RewardModel, metrics) from the train days' events, calibrated and scored on the valid day.

    true_probs(events) -> (p_click, attractiveness, p_order), each (E, P): optional, for the
    ceiling metrics (world building passes the simulator's; nothing here imports it)."""
    n = len(world.catalog)
    items, clicks, orders = (np.asarray(train_events[k]) for k in ("items", "clicks", "orders"))
    shown = items >= 0
    item_clicks = np.bincount(items[shown], weights=clicks[shown], minlength=n)
    item_orders = np.bincount(items[shown], weights=orders[shown], minlength=n)
    k = items.shape[1]
    model = RewardModel(np.zeros(len(CTR_FEATURES) + 1), np.zeros(k), np.array([1.0, 0.0]),
                        np.zeros(len(ORDER_FEATURES) + 1), np.array([1.0, 0.0]),
                        item_clicks, item_orders)
    x = model.features(world, train_events["query_id"], items, train_events["user_id"],
                       loo_clicks=clicks, loo_orders=orders)
    pos = np.broadcast_to(np.arange(k), items.shape)
    pos_onehot = (pos[..., None] == np.arange(1, k)).astype(np.float64)
    xc = np.concatenate([x[..., :len(CTR_FEATURES)], pos_onehot], -1)[shown]
    w = fit_logistic(xc, clicks[shown] > 0, l2=l2)
    model.ctr_w = np.concatenate([w[:len(CTR_FEATURES)], w[-1:]])
    model.position_bias = np.concatenate([[0.0], w[len(CTR_FEATURES):-1]])
    clicked = shown & (clicks > 0)
    model.order_w = fit_logistic(x[clicked], orders[clicked] > 0, l2=l2)

    # Calibrate on even valid events, score on odd ones.
    vi, vc, vo = (np.asarray(valid_events[k]) for k in ("items", "clicks", "orders"))
    xv = model.features(world, valid_events["query_id"], vi, valid_events["user_id"])
    zc = model.ctr_logit(xv, np.broadcast_to(np.arange(k), vi.shape))
    zo = model.order_logit(xv)
    half = (np.arange(len(vi)) % 2 == 0)[:, None] & (vi >= 0)
    other = (np.arange(len(vi)) % 2 == 1)[:, None] & (vi >= 0)
    model.ctr_platt = _platt(zc[half], vc[half] > 0)
    vclicked = vc > 0
    model.order_platt = _platt(zo[half & vclicked], vo[half & vclicked] > 0)
    pc = sigmoid(model.ctr_platt[0] * zc + model.ctr_platt[1])
    po = sigmoid(model.order_platt[0] * zo + model.order_platt[1])
    top = other & (np.arange(k) == 0)[None, :]
    z_free = model.ctr_logit(xv)
    metrics = {
        "reward/ctr_auc_valid": auc(z_free[other], vc[other] > 0),
        "reward/ctr_auc_valid_top": auc(z_free[top], vc[top] > 0),
        "reward/ctr_auc_valid_with_position": auc(zc[other], vc[other] > 0),
        "reward/ctr_ece_valid": expected_calibration_error(pc[other], vc[other] > 0),
        "reward/ctr_ece_valid_top": expected_calibration_error(pc[top], vc[top] > 0),
        "reward/ctr_mean_pred_valid": float(pc[other].mean()),
        "reward/ctr_mean_true_valid": float((vc[other] > 0).mean()),
        "reward/order_auc_valid": auc(zo[other & vclicked], vo[other & vclicked] > 0),
        "reward/order_ece_valid": expected_calibration_error(po[other & vclicked],
                                                             vo[other & vclicked] > 0),
        "reward/num_train_rows": float(shown.sum()),
    }
    if true_probs is not None:  # the ceiling: the simulator's own probabilities, same rows
        p_click, attract, p_order = true_probs(valid_events)
        metrics.update({
            "reward/true_ctr_auc_valid": auc(attract[other], vc[other] > 0),
            "reward/true_ctr_auc_valid_top": auc(attract[top], vc[top] > 0),
            "reward/true_ctr_auc_valid_with_position": auc(p_click[other], vc[other] > 0),
            "reward/true_order_auc_valid": auc(p_order[other & vclicked], vo[other & vclicked] > 0)})
    return model, metrics


def _platt(z, y) -> np.ndarray:
    w = fit_logistic(np.asarray(z)[:, None], y, l2=0.0, iters=50)
    return np.array([w[0], w[1]])
