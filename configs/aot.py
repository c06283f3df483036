"""A train step's config for ahead-of-time compilation (experiments/aot_compile.py): the stage's
own config with a model preset's architecture and batch.

    get_config("sft:base")        # configs/sft.py:base
    get_config("distill:base")    # configs/distill.py:small:sd's distillation, base's model
    get_config("grpo:base:1024")  # configs/tpma.py:small's RL settings, base's model, batch 1024

The batch defaults to the preset's SFT batch (configs/sft.py).
"""
from __future__ import annotations

import ml_collections

from configs import distill, sft, tpma

STAGES = {
    "sft": lambda preset: sft.get_config(preset),
    "distill": lambda preset: distill.get_config("small:sd"),
    "grpo": lambda preset: tpma.get_config("small"),
}


def get_config(arg: str | None = "sft:base") -> ml_collections.ConfigDict:
    stage, _, rest = (arg or "sft:base").partition(":")
    preset, _, batch = (rest or "base").partition(":")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r} to compile; valid: {sorted(STAGES)}")
    model = sft.get_config(preset)  # refuses an unknown preset by name
    c = STAGES[stage](preset)
    c.model = model.model
    c.model.dropout_rate = 0.1
    c.train.batch_size = int(batch or model.train.batch_size)
    return c
