"""The stage registry: a training stage is a config string (`config.stage`), not an if/else.

Each entry runs one stage on a workdir, `run(config, workdir, stream=None) -> summary`.
"""
from __future__ import annotations

from typing import Callable

from onesearch_jax.pipeline import real_run, rl_run, sft_run

STAGES: dict[str, Callable] = {
    "sft": sft_run.run_sft,            # V1 SFT stages (and + keyword CoT tasks)
    "distill": sft_run.run_distill,    # V2 self-distillation
    "sft_real": real_run.run_real_sft,  # SFT on a real catalog with judgments
    "dpo": rl_run.run_dpo,             # list-wise DPO from a trained run
    "grpo": rl_run.run_grpo,           # GRPO / TPMA-GRPO from a trained run
}


def get_stage(name: str) -> Callable:
    """The runner of stage `name`; an unknown name is refused listing the valid ones."""
    if name not in STAGES:
        raise ValueError(f"unknown training stage {name!r}; valid: {sorted(STAGES)}")
    return STAGES[name]
