"""TPMA-GRPO: per-SID-position advantages, prefix gates and position weights (train/advantages.py).

    python -m experiments.train --config=configs/tpma.py:small --workdir=W_tpma \\
        --config.init_workdir=W_sd

Arg = "<preset>[:<variant>]" (presets as configs/grpo.py). Variants (ABLATIONS):
  tpma           the reference's TPMA: weights [2,2,1,1,0], gates on, w_item 0, no clipping;
  no_gate        every position's gate 1;
  flat           flat position weights [1,1,1,1,0];
  last_weighted  the last position weighted too ([2,2,1,1,1]);
  w_item         + 1.0 x the group z-score of R_item at every position;
  model_logp     not an ablation of the paper: the losses' log-probs of the whole unmasked level
                 at temperature 1 (rl.policy_logp="model", this project's old behaviour) instead
                 of the trie-masked, tempered distribution the rollout samples.
"""
from __future__ import annotations

from configs.grpo import rl_config

ABLATIONS = ("tpma", "no_gate", "flat", "last_weighted", "w_item", "model_logp")


def get_config(arg: str | None = "tiny"):
    preset, _, variant = (arg or "tiny").partition(":")
    variant = variant or "tpma"
    if variant not in ABLATIONS:
        raise ValueError(f"unknown TPMA variant {variant!r}; valid: {ABLATIONS}")
    c = rl_config(preset, "grpo", "tpma")
    c.rung = "tpma" if variant == "tpma" else f"tpma_{variant}"
    if variant == "no_gate":
        c.rl.gate = False
    elif variant == "flat":
        c.rl.position_weights = "flat"
    elif variant == "last_weighted":
        c.rl.last_zero = False
    elif variant == "w_item":
        c.rl.w_item = 1.0
    elif variant == "model_logp":
        c.rl.policy_logp = "model"
    return c
