"""List-wise DPO (the paper's RL stage before GRPO): per prompt, G candidate SIDs sampled from
the frozen starting run, the best-reward one preferred over every lower-reward one.

    python -m experiments.train --config=configs/dpo.py:small --workdir=W_dpo \\
        --config.init_workdir=W_sd

Presets as configs/grpo.py; DPO samples 8 candidates (rl.group_size) with beta 0.1.
"""
from __future__ import annotations

from configs.grpo import rl_config


def get_config(arg: str | None = "tiny"):
    c = rl_config(arg or "tiny", "dpo")
    c.rl.group_size = 8
    return c
