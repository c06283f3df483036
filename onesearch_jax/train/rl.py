"""The RL stages' losses: (TPMA-)GRPO and list-wise DPO, over rollouts the loop's hook attaches.

GRPO-family loss (config.rl.advantage picks the estimator from `advantages.ADVANTAGES`):
  -mean(g * ratio * A) [PPO clip optional] + beta * k3 KL to the frozen reference
  + sft_weight * CE(ground-truth SID)     (the reference trainer's 0.1 x SFT term)
DPO loss: list-wise softmax preference of the best-reward candidate over every lower-reward one
(`rl_losses.listwise_dpo_loss`) + sft_weight * CE.
Both recompute the policy's log-probs of the rolled-out SIDs with `rollout.group_sid_log_probs`
(deterministic, the function the rollout's `old_logp` came from) of the distribution
`rl.policy_logp` names (default: the one sampled, tempered and inside the trie), so one pure
`train_step` serves SFT, distillation and RL alike.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp
import numpy as np

from onesearch_jax.sid.vocab import SidVocab
from onesearch_jax.model.sid_levels import level_ranges
from onesearch_jax.model.transformer import EncoderDecoder
from onesearch_jax.train import advantages as adv_lib
from onesearch_jax.train import rl_losses, rollout as rollout_lib
from onesearch_jax.train import step as step_lib
from onesearch_jax.train.losses import weighted_cross_entropy

RL_DEFAULTS = dict(
    advantage="tpma", group_size=4, temperature=1.0, sampler="constrained",
    epsilon=0.0, beta=0.0, sft_weight=0.1, aggregation="token_mean",
    position_weights="paper", last_zero=True, gate=True, w_item=0.0,
    reward_weights=(1.0, 1.0, 1.0),
    dpo_beta=0.1, dpo_min_gap=0.5, candidates="reference", policy_logp="sampled",
)
CANDIDATE_SOURCES = ("reference", "policy")
PROMPT_KEYS = ("enc_tokens", "targets", "target_mask", "query_id", "user_id",
               "sft_dec_inputs", "sft_dec_targets", "sft_dec_weights")
ROLLOUT_KEYS = ("codes", "items", "valid", "old_logp", "item_reward", "reward_rel",
                "reward_ctr", "reward_co")


def rl_settings(config, stage: str) -> dict:
    """config.rl over the defaults; unknown keys and bad choices are refused by name."""
    given = dict(config.get("rl", {}) or {})
    unknown = sorted(set(given) - set(RL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown rl keys {unknown}; valid: {sorted(RL_DEFAULTS)}")
    s = {**RL_DEFAULTS, **given}
    adv_lib.get_advantage(s["advantage"])
    for key, valid in (("sampler", rollout_lib.SAMPLERS),
                       ("aggregation", rl_losses.AGGREGATIONS),
                       ("position_weights", adv_lib.WEIGHT_SCHEMES),
                       ("candidates", CANDIDATE_SOURCES),
                       ("policy_logp", rollout_lib.POLICY_LOGPS)):
        if s[key] not in valid:
            raise ValueError(f"rl.{key}={s[key]!r}; valid: {valid}")
    if int(s["group_size"]) < 2:
        raise ValueError(f"rl.group_size must be >= 2 (a group z-score needs two samples), "
                         f"got {s['group_size']}")
    for key in ("epsilon", "beta", "sft_weight", "temperature", "dpo_beta", "dpo_min_gap",
                "w_item"):
        if float(s[key]) < 0:
            raise ValueError(f"rl.{key} must be >= 0, got {s[key]}")
    if len(tuple(s["reward_weights"])) != 3:
        raise ValueError(f"rl.reward_weights must be (w_rel, w_ctr, w_co), got "
                         f"{s['reward_weights']}")
    s["stage"] = stage
    return s


def needs_reference(settings: dict) -> bool:
    """DPO always compares with the reference; GRPO only for its KL term (beta > 0)."""
    return settings["stage"] == "dpo" or float(settings["beta"]) > 0


def policy_distribution(settings: dict) -> tuple[bool, float]:
    """(masked by the trie?, temperature) of the distribution the losses' log-probs are of."""
    return rollout_lib.sampling_distribution(settings["sampler"], float(settings["temperature"]),
                                             settings["policy_logp"])


def _policy_logp(params, batch, model, ranges, settings):
    _, temperature = policy_distribution(settings)
    return rollout_lib.group_sid_log_probs(model, params, batch["enc_tokens"], batch["codes"],
                                           ranges, batch.get("enc_states"), batch.get("allowed"),
                                           temperature)


def check_rl_batch(batch) -> None:
    """The prompt contract plus the rollout arrays, with consistent [B, G, L] shapes."""
    missing = [k for k in PROMPT_KEYS + ROLLOUT_KEYS if k not in batch]
    if missing:
        raise ValueError(f"RL batch is missing keys {missing}; a rollout hook adds "
                         f"{list(ROLLOUT_KEYS)} to the prompts' {list(PROMPT_KEYS)}")
    b, g, depth = batch["codes"].shape
    for k in ("old_logp",) + (("ref_logp",) if "ref_logp" in batch else ()):
        if batch[k].shape != (b, g, depth):
            raise ValueError(f"batch[{k!r}] has shape {batch[k].shape}, codes {(b, g, depth)}")
    if "allowed" in batch and batch["allowed"].shape[:3] != (b, g, depth):
        raise ValueError(f"batch['allowed'] has shape {batch['allowed'].shape}, codes "
                         f"{(b, g, depth)}")
    for k in ("items", "valid", "item_reward"):
        if batch[k].shape != (b, g):
            raise ValueError(f"batch[{k!r}] has shape {batch[k].shape}, expected {(b, g)}")
    if batch["targets"].shape[2:] != (depth,) or batch["targets"].shape[0] != b:
        raise ValueError(f"batch['targets'] has shape {batch['targets'].shape}; expected "
                         f"({b}, T, {depth})")


def _sft_term(params, batch, model, weight: float):
    if weight <= 0:
        return jnp.zeros(()), {}
    logits = model.apply({"params": params}, batch["enc_tokens"], batch["sft_dec_inputs"],
                         enc_states=batch.get("enc_states"), f32_logits=False)
    ce, m = weighted_cross_entropy(logits, batch["sft_dec_targets"], batch["sft_dec_weights"])
    return weight * ce, {"sft_ce": ce, "sft_accuracy": m["accuracy"]}


def _reward_metrics(batch, adv_inputs, settings) -> dict:
    depth = batch["codes"].shape[-1]
    weights = adv_lib.position_weights(depth, settings["position_weights"], settings["last_zero"])
    _, unweighted = adv_lib.prefix_matches(batch["codes"], batch["targets"],
                                           batch["target_mask"], weights)
    valid = batch["valid"].astype(jnp.float32)
    return {"reward/item": jnp.mean(adv_inputs["item_reward"]),
            "reward/rel": jnp.mean(batch["reward_rel"]),
            "reward/ctr": jnp.mean(batch["reward_ctr"]),
            "reward/co": jnp.mean(batch["reward_co"]),
            "rollout/valid_sid_rate": jnp.mean(valid),
            "rollout/target_hit_rate": jnp.mean((unweighted[..., -1] == depth).astype(jnp.float32)),
            "rollout/prefix_match": jnp.mean(unweighted[..., -1]) / depth}


def grpo_loss(params, batch, rng, *, model: EncoderDecoder, ranges: tuple, settings: dict):
    """(loss, metrics) of one GRPO / TPMA-GRPO update on a rollout batch (pure)."""
    del rng  # RL updates are deterministic (no dropout): the ratio compares one policy
    s = settings
    logp = _policy_logp(params, batch, model, ranges, s)
    inputs = {k: batch[k] for k in ("codes", "targets", "target_mask", "valid")}
    inputs["item_reward"] = batch["item_reward"].astype(jnp.float32)
    advantages, gates = adv_lib.get_advantage(s["advantage"])(inputs, s)
    loss, metrics = rl_losses.policy_loss(
        logp, batch["old_logp"], advantages, gates, epsilon=float(s["epsilon"]),
        ref_logp=batch.get("ref_logp"), beta=float(s["beta"]), aggregation=s["aggregation"])
    sft, sft_metrics = _sft_term(params, batch, model, float(s["sft_weight"]))
    loss = loss + sft
    metrics.update(sft_metrics)
    metrics.update(_reward_metrics(batch, inputs, s))
    metrics.update(loss=loss, advantage_abs_mean=jnp.mean(jnp.abs(advantages)),
                   gate_mean=jnp.mean(gates))
    return loss, metrics


def dpo_loss(params, batch, rng, *, model: EncoderDecoder, ranges: tuple, settings: dict):
    """(loss, metrics) of one list-wise DPO update over G candidates per query (pure)."""
    del rng
    s = settings
    logp = _policy_logp(params, batch, model, ranges, s)
    loss, metrics = rl_losses.listwise_dpo_loss(
        jnp.sum(logp, -1), jnp.sum(batch["ref_logp"], -1), batch["item_reward"],
        beta=float(s["dpo_beta"]), valid=batch["valid"], min_gap=float(s["dpo_min_gap"]))
    sft, sft_metrics = _sft_term(params, batch, model, float(s["sft_weight"]))
    loss = loss + sft
    metrics.update(sft_metrics)
    inputs = {"item_reward": batch["item_reward"].astype(jnp.float32)}
    metrics.update(_reward_metrics(batch, inputs, s))
    metrics["loss"] = loss
    return loss, metrics


LOSSES: dict[str, Callable] = {"grpo": grpo_loss, "dpo": dpo_loss}


def make_rl_step(vocab: SidVocab, stage: str) -> Callable:
    """A `make_step(model, config, setup)` factory for the loop (stage `grpo` or `dpo`)."""
    ranges = level_ranges(vocab.level_offsets, vocab.level_sizes)

    def make_step(model, config, setup) -> Callable:
        settings = rl_settings(config, stage)
        loss_fn = functools.partial(LOSSES[stage], model=model, ranges=ranges, settings=settings)
        return step_lib.make_train_step(config, setup, loss_fn)

    return make_step


def attach_rewards(batch: dict, rollout: dict, rewards: dict) -> dict:
    """The prompt batch plus host copies of the rollout and its rewards (the step's input)."""
    out = dict(batch)
    out.update({k: np.asarray(v) for k, v in rollout.items()})
    out.update(item_reward=rewards["item"], reward_rel=rewards["rel"], reward_ctr=rewards["ctr"],
               reward_co=rewards["co"])
    return out
