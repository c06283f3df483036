"""The RL stages' configs: vanilla GRPO (this file), TPMA-GRPO (configs/tpma.py) and list-wise
DPO (configs/dpo.py), each starting from the trained workdir `--config.init_workdir` names.

    python -m experiments.train --config=configs/grpo.py:small --workdir=W_grpo \\
        --config.init_workdir=W_sd
    python -m experiments.evaluate --workdir=W_grpo

Presets: configs/distill.py's (`tiny` for tests, `tiny_minilm` the demo's model, `small` the RL
ladder on world v2 small, `small_scratch` the from-scratch ladder's). The model
and data sections are the starting run's (pipeline/rl_run.py copies them); `config.rl` is
train/rl.py's RL_DEFAULTS (group 4, temperature 1, constrained sampling, no clipping, beta 0,
0.1 x SFT CE: the reference's example command), `config.train` the RL optimiser.
"""
from __future__ import annotations

import ml_collections

from configs import sft
from onesearch_jax.train import rl

PRESETS = ("tiny", "tiny_minilm", "small", "small_scratch")  # configs/distill.py's presets
# The RL rungs of experiments/ladder.py: rung -> (config arg with {preset}, the rung whose run of
# the same seed it starts from). The paper's order: SD -> + list-wise DPO -> + GRPO / + TPMA.
RL_RUNGS = {
    "dpo": ("configs/dpo.py:{preset}", "sd"),
    "grpo": ("configs/grpo.py:{preset}", "dpo"),
    "tpma": ("configs/tpma.py:{preset}", "dpo"),
    "tpma_no_gate": ("configs/tpma.py:{preset}:no_gate", "dpo"),
    "tpma_flat": ("configs/tpma.py:{preset}:flat", "dpo"),
    "tpma_last_weighted": ("configs/tpma.py:{preset}:last_weighted", "dpo"),
    "tpma_w_item": ("configs/tpma.py:{preset}:w_item", "dpo"),
    "tpma_model_logp": ("configs/tpma.py:{preset}:model_logp", "dpo"),
}
# What the ladder's paired tables compare an RL rung with when it is not the run it starts from:
# TPMA replaces GRPO's advantages (the paper's "+ TPMA" over "+ GRPO"), each variant changes TPMA.
COMPARED_WITH = {"tpma": "grpo", **{r: "tpma" for r in RL_RUNGS
                                    if r.startswith("tpma_")}}
_TRAIN = {
    "tiny": dict(steps=60, batch_size=16, lr=1e-4, warmup=5, checkpoint_every=30, log_every=10),
    "small": dict(steps=300, batch_size=32, lr=5e-5, warmup=20, checkpoint_every=100,
                  log_every=25),
}
_TRAIN["tiny_minilm"], _TRAIN["small_scratch"] = _TRAIN["tiny"], _TRAIN["small"]


def rl_config(preset: str, stage: str, advantage: str = "grpo") -> ml_collections.ConfigDict:
    """The shared RL config of `stage` ("grpo" or "dpo") at `preset`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown RL preset {preset!r}; valid: {PRESETS}")
    c = sft.get_config("tiny")
    c.preset, c.stage, c.rung = preset, stage, advantage if stage == "grpo" else "dpo"
    c.init_workdir = ""
    c.train.update(_TRAIN[preset])
    c.train.update(eval_every=0, min_lr_ratio=1.0, weight_decay=0.0, ema_decay=0.0,
                   fgm_epsilon=0.0)
    # The starting run's data section is adopted (rl_run); a non-empty state_cache here points
    # its frozen MiniLM states elsewhere (default: where the starting run kept them).
    c.data.state_cache = ""
    c.eval.max_events = 2000
    c.eval.cot_keyword_len = 0  # the starting run's, like eval.beam_size (rl_run copies both)
    c.rl = ml_collections.ConfigDict(dict(rl.RL_DEFAULTS, advantage=advantage))
    return c


def get_config(arg: str | None = "tiny") -> ml_collections.ConfigDict:
    return rl_config(arg or "tiny", "grpo", "grpo")
