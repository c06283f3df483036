"""List-wise DPO (the paper's RL stage before GRPO): per prompt, G candidate SIDs sampled from
the frozen starting run, the best-reward one preferred over every lower-reward one.

    python -m experiments.train --config=configs/dpo.py:small --workdir=W_dpo \\
        --config.init_workdir=W_sd

Presets as configs/grpo.py; DPO samples 8 candidates (rl.group_size) with beta 0.1; a candidate
is rejected only if its reward is at least rl.dpo_min_gap (0.5) below the chosen one's, which
also bounds the reference's gap weight (max(r_w, 1) - r_l)^-1.5 + 1 by 0.5^-1.5 + 1 = 3.8.
"""
from __future__ import annotations

from configs.grpo import rl_config


def get_config(arg: str | None = "tiny"):
    c = rl_config(arg or "tiny", "dpo")
    c.rl.group_size = 8
    return c
