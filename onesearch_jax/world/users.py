"""Shoppers: an audience group, price sensitivity, a few favourite brands and categories, and an
initial history of clicked items (drawn from their favourite categories by popularity)."""
import dataclasses

import numpy as np

from onesearch_jax.world import taxonomy as tx


@dataclasses.dataclass
class Users:
    group: np.ndarray              # (U,) int32 index into taxonomy.AUDIENCE_GROUPS
    audience_value: np.ndarray     # (U,) int32 value id of the 'audience' attribute they shop for
    price_sensitivity: np.ndarray  # (U,) float32 in [0, 1]; 1 = buys the cheapest
    brands: np.ndarray             # (U, B) int32 favourite brand ids
    tops: np.ndarray               # (U, 2) int32 favourite top categories
    activity: np.ndarray           # (U,) float64 probability a search comes from this user
    history: np.ndarray            # (U, H) int32 initial clicked items, most recent first, -1 pad

    def __len__(self):
        return len(self.group)

    def profile(self, u: int) -> dict:
        t = tx.get_taxonomy()
        return dict(group=tx.AUDIENCE_GROUPS[int(self.group[u])],
                    price_sensitivity=float(self.price_sensitivity[u]),
                    brands=[t.brand_names[b] for b in self.brands[u]],
                    tops=[t.top_names[k] for k in self.tops[u]])


# Categories each audience group tends to shop (biases favourite tops).
GROUP_TOPS = {
    "women 18-24": ["beauty", "apparel", "food & drinks"],
    "women 25-34": ["beauty", "health supplements", "home & kitchen"],
    "women 35-54": ["health supplements", "home & kitchen", "massage & wellness"],
    "men 18-24": ["electronics", "sports & outdoors", "food & drinks"],
    "men 25-44": ["electronics", "sports & outdoors", "personal care"],
    "parents": ["toys", "mother & baby", "food & drinks"],
    "new parents": ["mother & baby", "toys", "health supplements"],
    "seniors": ["health supplements", "massage & wellness", "home & kitchen"],
    "pet owners": ["pets", "home & kitchen", "food & drinks"],
    "teens": ["apparel", "electronics", "toys"],
}


def sample_items_in_tops(rng, catalog, tops: np.ndarray) -> np.ndarray:
    """One item per entry of `tops`, drawn by popularity within that top category."""
    out = np.empty(tops.shape, np.int64)
    item_top = catalog.top
    for k in np.unique(tops):
        members = np.flatnonzero(item_top == k)
        cum = np.cumsum(catalog.popularity[members].astype(np.float64))
        where = tops == k
        draws = rng.random(int(where.sum())) * cum[-1]
        out[where] = members[np.minimum(np.searchsorted(cum, draws), len(members) - 1)]
    return out


def build_users(config, catalog) -> Users:
    t = tx.get_taxonomy()
    rng = np.random.default_rng([int(config.seed), 303])
    n = int(config.num_users)
    group = rng.integers(0, len(tx.AUDIENCE_GROUPS), n).astype(np.int32)
    aud_vocab = t.attr_values[t.attr_type_index("audience")]
    audience_value = np.array([aud_vocab.index(tx.GROUP_AUDIENCE_VALUE[g])
                               for g in tx.AUDIENCE_GROUPS], np.int32)[group]

    group_tops = np.array([[t.top_names.index(x) for x in GROUP_TOPS[g]] for g in tx.AUDIENCE_GROUPS])
    first = group_tops[group, rng.integers(0, 3, n)]
    second = np.where(rng.random(n) < 0.5, group_tops[group, rng.integers(0, 3, n)],
                      rng.integers(0, len(t.top_names), n))
    second = np.where(second == first, (first + 1 + rng.integers(0, len(t.top_names) - 1, n))
                      % len(t.top_names), second)
    tops = np.stack([first, second], 1).astype(np.int32)

    nb = int(config.brands_per_user)
    brand_tops = np.take_along_axis(tops, rng.integers(0, 2, (n, nb)), axis=1)
    per_top = np.array([np.flatnonzero(t.brand_top == k) for k in range(len(t.top_names))])
    brands = per_top[brand_tops, rng.integers(0, per_top.shape[1], (n, nb))].astype(np.int32)

    price_sensitivity = rng.beta(2.0, 2.0, n).astype(np.float32)
    activity = rng.permutation(n) + 1.0
    activity = activity ** -float(config.user_zipf)
    activity /= activity.sum()

    h = int(config.history_len)
    hist_tops = np.take_along_axis(tops, rng.integers(0, 2, (n, h)), axis=1)
    history = sample_items_in_tops(rng, catalog, hist_tops).astype(np.int32)
    num_known = rng.integers(0, h + 1, n)  # some users are new: shorter history
    history = np.where(np.arange(h)[None, :] < num_known[:, None], history, -1).astype(np.int32)
    return Users(group, audience_value, price_sensitivity, brands, tops, activity, history)
