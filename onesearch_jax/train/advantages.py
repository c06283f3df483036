"""Advantage estimators over (batch, group, position) arrays, chosen by config string.

`ADVANTAGES[name](rollout, settings) -> (advantages float32[B, G, L], gates float32[B, G, L])`,
where `rollout` holds `codes` int[B, G, L] (the sampled SIDs), `targets` int[B, T, L] with
`target_mask` float[B, T] (the event's clicked and ordered SIDs), `item_reward` float[B, G] and
`valid` bool[B, G]. Everything is vectorised: no loop over samples.

  grpo  the sequence reward R_item, z-scored within each query's group, at every position, gate 1.
  tpma  TPMA (the paper's eqs 12-18, reference tpma.py): position weights w (default [2,2,1,1,0]);
        prefix reward R_{i,l} = max_t sum_{k<=l} w_k [o_{i,k} = t_k]; marginal
        dR_{i,l} = R_{i,l} - R_{i,l-1}; advantage = per-position z-score of dR within the group
        (+ w_item * z(R_item)); gate g_{i,1} = 1, g_{i,l} = clamp(U_{i,l-1} / (l-1), 0, 1) with U
        the unweighted cumulative match count (max over targets).
Z-scores use the sample standard deviation (ddof=1, torch's `std` as the reference and TRL use)
plus 1e-8; a group whose values are all equal gets advantage exactly 0, never NaN.
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax.numpy as jnp

EPS = 1e-8
WEIGHT_SCHEMES = ("paper", "flat")


def position_weights(num_levels: int, scheme: str = "paper", last_zero: bool = True):
    """float32[L]: `paper` = 2 on the first two (coarse) positions, 1 after; `flat` = all 1.
    `last_zero` (the reference's weights as written) gives the last position 0."""
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"unknown position weight scheme {scheme!r}; valid: {WEIGHT_SCHEMES}")
    w = [2.0 if (scheme == "paper" and l < 2) else 1.0 for l in range(num_levels)]
    if last_zero:
        w[-1] = 0.0
    return jnp.asarray(w, jnp.float32)


def group_zscore(x, axis: int = 1):
    """(x - mean) / (std + 1e-8) over `axis` (the group), sample std; 0 for groups of one."""
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[axis]
    centred = x - jnp.mean(x, axis=axis, keepdims=True)
    if n < 2:
        return jnp.zeros_like(x)
    std = jnp.sqrt(jnp.sum(centred ** 2, axis=axis, keepdims=True) / (n - 1))
    return centred / (std + EPS)


def prefix_matches(codes, targets, target_mask, weights):
    """(R [B,G,L] weighted, U [B,G,L] unweighted) cumulative matches, each maxed over targets.

    A target row with mask 0 never counts (its matches are -inf before the max, then 0 if the
    query has no target at all)."""
    hit = (codes[:, :, None, :] == targets[:, None, :, :]).astype(jnp.float32)  # [B,G,T,L]
    present = target_mask[:, None, :, None] > 0
    weighted = jnp.cumsum(hit * weights, axis=-1)
    unweighted = jnp.cumsum(hit, axis=-1)
    best = lambda v: jnp.maximum(jnp.max(jnp.where(present, v, -jnp.inf), axis=2), 0.0)
    return best(weighted), best(unweighted)


def tpma_gates(unweighted):
    """g[..., 0] = 1; g[..., l] = clamp(U[..., l-1] / l, 0, 1) for l >= 1 (0-indexed)."""
    num_levels = unweighted.shape[-1]
    before = jnp.arange(1, num_levels, dtype=jnp.float32)
    rest = jnp.clip(unweighted[..., :-1] / before, 0.0, 1.0)
    return jnp.concatenate([jnp.ones_like(unweighted[..., :1]), rest], axis=-1)


def tpma_advantages(rollout: Mapping, settings: Mapping):
    codes, targets = rollout["codes"], rollout["targets"]
    num_levels = codes.shape[-1]
    weights = position_weights(num_levels, settings.get("position_weights", "paper"),
                               bool(settings.get("last_zero", True)))
    prefix, unweighted = prefix_matches(codes, targets, rollout["target_mask"], weights)
    marginal = jnp.diff(prefix, axis=-1, prepend=0.0)
    adv = group_zscore(marginal, axis=1)
    w_item = float(settings.get("w_item", 0.0))
    if w_item:
        adv = adv + w_item * group_zscore(rollout["item_reward"], axis=1)[..., None]
    gates = tpma_gates(unweighted) if settings.get("gate", True) else jnp.ones_like(adv)
    return adv, gates


def grpo_advantages(rollout: Mapping, settings: Mapping):
    del settings
    adv = group_zscore(rollout["item_reward"], axis=1)[..., None]
    adv = jnp.broadcast_to(adv, rollout["codes"].shape).astype(jnp.float32)
    return adv, jnp.ones_like(adv)


ADVANTAGES: dict[str, Callable] = {"grpo": grpo_advantages, "tpma": tpma_advantages}


def get_advantage(name: str) -> Callable:
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage estimator {name!r}; valid: {sorted(ADVANTAGES)}")
    return ADVANTAGES[name]
