"""The RL objectives as pure functions of log-prob arrays: the (TPMA-)GRPO policy loss with its
k3 KL, and the list-wise (softmax) DPO loss of the reference's listwisedpo.py."""
from __future__ import annotations

import jax
import jax.numpy as jnp

AGGREGATIONS = ("token_mean", "sequence_sum")


def k3_kl(logp, ref_logp):
    """Per-token k3 estimator of KL(pi || pi_ref) at samples of pi: e^(r-c) - (r-c) - 1 >= 0,
    r = ref, c = current log-prob. 0 with zero gradient when they agree."""
    d = ref_logp - logp
    return jnp.exp(d) - d - 1.0


def policy_loss(logp, old_logp, advantages, gates, *, mask=None, epsilon: float = 0.0,
                ref_logp=None, beta: float = 0.0, aggregation: str = "token_mean"):
    """-mean(g * surrogate) (+ beta * k3 KL) over [B, G, L] tokens; returns (loss, metrics).

    surrogate = ratio * A with ratio = exp(logp - old_logp); epsilon > 0 takes PPO's
    min(ratio * A, clip(ratio, 1-eps, 1+eps) * A). `mask` [B, G, L] drops tokens (default all).
    aggregation: `token_mean` divides by the number of tokens (the reference's 1/(G L));
    `sequence_sum` sums over positions and averages over sequences."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {aggregation!r}; valid: {AGGREGATIONS}")
    mask = jnp.ones_like(logp) if mask is None else mask.astype(jnp.float32)
    ratio = jnp.exp(logp - jax.lax.stop_gradient(old_logp))
    surrogate = ratio * advantages
    if epsilon > 0:
        clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon) * advantages
        surrogate = jnp.minimum(surrogate, clipped)
    per_token = -gates * surrogate
    kl = jnp.zeros_like(logp) if ref_logp is None else k3_kl(logp, jax.lax.stop_gradient(ref_logp))
    if beta > 0:
        per_token = per_token + beta * kl
    if aggregation == "token_mean":
        denom = jnp.maximum(jnp.sum(mask), 1.0)
        reduce = lambda v: jnp.sum(v * mask) / denom
    else:
        seqs = jnp.maximum(jnp.sum(jnp.any(mask > 0, axis=-1)), 1.0)
        reduce = lambda v: jnp.sum(v * mask) / seqs
    token_mean = lambda v: jnp.sum(v * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    metrics = {
        "policy_loss": reduce(per_token),
        "kl": token_mean(kl),
        "ratio_mean": token_mean(ratio),
        "ratio_max_abs_dev": jnp.max(jnp.abs(ratio - 1.0) * mask),
        "clip_fraction": token_mean((jnp.abs(ratio - 1.0) > epsilon).astype(jnp.float32))
        if epsilon > 0 else jnp.zeros(()),
    }
    return reduce(per_token), metrics


def reward_gap_weights(chosen_reward, rejected_reward, power: float = 1.5,
                       min_gap: float = 1e-3):
    """rw_diff = (max(r_w, 1) - r_l)^(-power) + 1 (the reference): pairs with a small reward gap
    weigh more. The gap is floored at `min_gap`, which bounds the weight by min_gap^-power + 1
    (a continuous reward such as a CTR makes near-ties, whose weights would otherwise explode)."""
    gap = jnp.maximum(jnp.maximum(chosen_reward, 1.0)[..., None] - rejected_reward, min_gap)
    return gap ** (-power) + 1.0


def listwise_dpo_loss(policy_logp, ref_logp, rewards, *, beta: float, valid=None,
                      min_gap: float = 1e-3):
    """List-wise DPO over K candidates per query: the highest-reward one is chosen, every
    candidate whose reward is at least `min_gap` lower is rejected (closer ones are ties).

    loss = -log sigmoid(-log sum_k exp(rw_diff_k * beta * (D_k - D_w))), D = log pi - log pi_ref
    of a whole SID ([B, K] sequence log-probs). Rows with no rejected candidate (all rewards
    equal) are left out of the mean. Returns (loss, metrics)."""
    rewards = jnp.asarray(rewards, jnp.float32)
    valid = jnp.ones(rewards.shape, bool) if valid is None else valid
    masked = jnp.where(valid, rewards, -jnp.inf)
    chosen = jnp.argmax(masked, axis=1)
    r_w = jnp.take_along_axis(rewards, chosen[:, None], axis=1)[:, 0]
    delta = policy_logp - jax.lax.stop_gradient(ref_logp)
    d_w = jnp.take_along_axis(delta, chosen[:, None], axis=1)
    rejected = valid & (rewards <= r_w[:, None] - min_gap)
    weights = reward_gap_weights(r_w, rewards, min_gap=min_gap)
    logits = jnp.where(rejected, weights * beta * (delta - d_w), -jnp.inf)
    lse = jax.nn.logsumexp(logits, axis=1)
    has = jnp.any(rejected, axis=1)
    per_row = jnp.where(has, -jax.nn.log_sigmoid(-jnp.where(has, lse, 0.0)), 0.0)
    rows = jnp.maximum(jnp.sum(has), 1)
    loss = jnp.sum(per_row) / rows
    margin = jnp.where(rejected, d_w - delta, 0.0)
    metrics = {
        "dpo_loss": loss,
        "dpo_rows": jnp.sum(has).astype(jnp.float32),
        "dpo_margin": jnp.sum(margin) / jnp.maximum(jnp.sum(rejected), 1),
        "chosen_reward": jnp.sum(jnp.where(has, r_w, 0.0)) / rows,
    }
    return loss, metrics
