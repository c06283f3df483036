"""Cost of one RL step (rollout + update) for a trained run's model, and the share of each.

  python -m benchmarks.rl_bench --init_workdir=W_sd [--config=configs/tpma.py:small] \
      [--steps=20] [--out=rl_bench.json]

Builds the stage exactly as experiments.train would (a scratch workdir linked to W_sd), then
times `--steps` steps after two warm-up (compiling) ones, each phase to completion: the rollout
(jitted G-sample draw + teacher-forced old/reference log-probs + host-side reward) and the
update (the jitted step, blocked on its result). Reports medians, the rollout's share, and the
valid-SID rate of the sampled rollouts (1.0 by construction when constrained).
"""
from __future__ import annotations

import json
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from onesearch_jax import cli, quiet
from onesearch_jax import sharding
from onesearch_jax.pipeline import rl_run
from onesearch_jax.train import rl
from onesearch_jax.train.train_state import create_train_state, rollout_key, setup_train_state

_CONFIG = config_flags.DEFINE_config_file("config", "configs/tpma.py:small", "RL stage config.")
_INIT = flags.DEFINE_string("init_workdir", None, "Trained workdir the RL stage starts from.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after 2 warm-up steps).")
_OUT = flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
    del argv
    quiet.quiet_libraries()
    if not _INIT.value:
        raise app.UsageError("--init_workdir is required")
    config = _CONFIG.value
    config.init_workdir = _INIT.value
    b = rl_run.build_rl(config, tempfile.mkdtemp(prefix="rl_bench_"), config.stage)
    setup = setup_train_state(b.model, config, b.mesh)
    state = create_train_state(setup, int(config.train.seed))
    state = state.replace(params=jax.tree.map(lambda x: x.copy(), b.init_params))
    step = b.make_step(b.model, config, setup)
    key = rollout_key(int(config.train.seed))
    rollout_s, update_s, valid = [], [], []
    for i in range(_STEPS.value + 2):
        t0 = time.perf_counter()
        batch = b.hook(state, next(b.prompts(i)), jax.random.fold_in(key, i))
        t1 = time.perf_counter()
        state, metrics = step(state, sharding.shard_batch(batch, setup.mesh, setup.rules),
                              jax.random.key(0))
        jax.block_until_ready((state, metrics))
        t2 = time.perf_counter()
        if i >= 2:
            rollout_s.append(t1 - t0)
            update_s.append(t2 - t1)
            valid.append(float(np.mean(batch["valid"])))
    r, u = float(np.median(rollout_s)), float(np.median(update_s))
    settings = rl.rl_settings(config, config.stage)
    out = {"config": f"{config.stage}/{config.rung}", "batch_size": int(config.train.batch_size),
           "group_size": int(settings["group_size"]), "sampler": settings["sampler"],
           "rollout_seconds": r, "update_seconds": u, "step_seconds": r + u,
           "rollout_share": r / (r + u), "valid_sid_rate": float(np.mean(valid)),
           "steps": _STEPS.value, "devices": len(jax.devices())}
    print(f"{out['config']}: batch {out['batch_size']} x group {out['group_size']} "
          f"({out['sampler']}): step {1e3 * (r + u):.0f} ms = rollout {1e3 * r:.0f} ms "
          f"({out['rollout_share']:.0%}) + update {1e3 * u:.0f} ms; valid-SID rate of the "
          f"rollouts {out['valid_sid_rate']:.4f}")
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    cli.run(main)
