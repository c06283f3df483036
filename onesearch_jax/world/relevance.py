"""Ground-truth relevance tiers (0-3) of items for a query intent, vectorised over items.

Rules, for every query type:
  * "right category" = the item's leaf is in intent.leaves (an empty set means any category).
  * constraints = required attribute values, brand, need (function the item really serves),
    price band, and for substitutes "a different brand than the one named".
  * tier 3: right category and every constraint met.
  * tier 2: right category, some constraint unmet (partial attributes, wrong brand, leaf that
    usually serves the need but this item does not, ...).
  * tier 1: related: same mid category as one of the intent's leaves, or (need queries) the item
    serves the requested need from another category, or (brand queries) the brand in another leaf.
  * tier 0: anything else, and ANY item that contains a component a negation query excludes
    (named, "without caffeine", or implied, "safe in pregnancy") or sits in an excluded category
    ("better sleep, no supplements").
So "energy drinks without caffeine": caffeine-free energy drinks 3, caffeinated ones 0, sparkling
water (same mid) 1; "alternative to VitaPeak multivitamins": other brands' multivitamins 3,
VitaPeak's own 2.
"""
import numpy as np

from onesearch_jax.world import taxonomy as tx


def _catalog_of(world_or_catalog):
    return getattr(world_or_catalog, "catalog", world_or_catalog)


def constraint_masks(catalog, intent, items) -> list:
    """One bool array per constraint of the intent (empty list = no constraint)."""
    masks = [catalog.attrs[items, a] == v for a, v in intent.attrs]
    if intent.brand >= 0:
        masks.append(catalog.brand[items] == intent.brand)
    if intent.not_brand >= 0:
        masks.append(catalog.brand[items] != intent.not_brand)
    if intent.function >= 0:
        masks.append((catalog.functions[items] >> np.int64(intent.function)) & 1 == 1)
    if intent.price_band >= 0:
        masks.append(catalog.price_band[items] == intent.price_band)
    return masks


def exclusion_mask(intent) -> int:
    """Bitmask over components of everything the intent excludes (0 = none)."""
    return int(sum(1 << int(c) for c in intent.exclude))


def excluded(catalog, intent, items) -> np.ndarray:
    """bool per item: contains an excluded component or sits in an excluded category."""
    out = (catalog.components[items] & np.int32(exclusion_mask(intent))) != 0
    if intent.exclude_group >= 0:
        banned = np.zeros(len(tx.get_taxonomy().leaf_names), bool)
        banned[list(list(tx.category_exclusion_leaves().values())[intent.exclude_group])] = True
        out |= banned[catalog.leaf[items]]
    return out


def relevance_tiers(world_or_catalog, intent, item_ids=None) -> np.ndarray:
    """int8 tier per item (all items, or the given item indices; negative ids get 0)."""
    catalog = _catalog_of(world_or_catalog)
    t = tx.get_taxonomy()
    if item_ids is None:
        items = np.arange(len(catalog))
        valid = np.ones(len(items), bool)
    else:
        raw = np.asarray(item_ids, np.int64)
        if raw.size and int(raw.max()) >= len(catalog):
            raise ValueError(f"item id {int(raw.max())} out of range for {len(catalog)} items")
        valid = raw >= 0
        items = np.where(valid, raw, 0)
    leaf = catalog.leaf[items]

    if intent.leaves:
        leaves = np.asarray(intent.leaves, np.int64)
        leaf_ok = np.zeros(len(t.leaf_names), bool)  # lookup tables: faster than np.isin
        leaf_ok[leaves] = True
        mid_ok = np.zeros(len(t.mid_names), bool)
        mid_ok[t.leaf_mid[leaves]] = True
        in_cat = leaf_ok[leaf]
        related = mid_ok[t.leaf_mid[leaf]]
    else:
        in_cat = np.ones(len(items), bool)
        related = np.zeros(len(items), bool)
    if intent.function >= 0:
        related |= (catalog.functions[items] >> np.int64(intent.function)) & 1 == 1
    if intent.brand >= 0:
        related |= catalog.brand[items] == intent.brand

    all_met = np.ones(len(items), bool)
    for m in constraint_masks(catalog, intent, items):
        all_met &= m
    tiers = np.where(in_cat & all_met, 3, np.where(in_cat, 2, np.where(related, 1, 0)))
    tiers = np.where(excluded(catalog, intent, items), 0, tiers)
    return np.where(valid, tiers, 0).astype(np.int8)
