"""The stage registry: a training stage is a config string (`config.stage`), not an if/else.

Each entry is one `Stage`: its spec (train/stage_spec.py: step factory, batch contract, config
sections) and the runner that trains it on a workdir, `stage(config, workdir, stream=None) ->
summary`; calling a stage refuses a config that lacks a section the stage reads, or whose
optimizer cannot be built.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from onesearch_jax.pipeline import real_run, rl_run, sft_run
from onesearch_jax.train import train_state
from onesearch_jax.train.stage_spec import SPECS, StageSpec


@dataclasses.dataclass(frozen=True)
class Stage:
    spec: StageSpec
    run: Callable  # (config, workdir, stream=None) -> summary
    extra_sections: tuple[str, ...] = ()  # config sections the runner reads beyond the spec's

    def __call__(self, config, workdir: str, stream=None) -> dict[str, float]:
        self.spec.check_config(config)
        missing = [s for s in self.extra_sections if s not in config]
        if missing:
            raise ValueError(f"this stage reads config sections {missing}, which this config "
                             "lacks")
        # A bad optimizer setting (train.grad_norm, the schedule, ...) is refused before the run
        # records its config in the workdir, so a corrected rerun is not refused as a change.
        train_state.make_optimizer(config.train)
        return self.run(config, workdir, stream=stream)


STAGES: dict[str, Stage] = {
    "sft": Stage(SPECS["sft"], sft_run.run_sft),                # V1 (and + keyword CoT tasks)
    "distill": Stage(SPECS["distill"], sft_run.run_distill),    # V2 self-distillation
    "sft_real": Stage(SPECS["sft"], real_run.run_real_sft,      # SFT on a real catalog
                      ("sids", "data_dir", "tokenizer")),
    "dpo": Stage(SPECS["dpo"], rl_run.run_dpo),                 # list-wise DPO from a trained run
    "grpo": Stage(SPECS["grpo"], rl_run.run_grpo),              # GRPO / TPMA-GRPO from a run
}


def get_stage(name: str) -> Stage:
    """Stage `name`; an unknown name is refused listing the valid ones."""
    if name not in STAGES:
        raise ValueError(f"unknown training stage {name!r}; valid: {sorted(STAGES)}")
    return STAGES[name]
