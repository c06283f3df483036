"""Wall time and peak memory of building a world preset end to end, stage by stage: world, tfds
logs, tokenizer and keyword CoT (`build`), the baselines on the test day (`baselines`), the
learned reward model (`reward`) and the oracle's A/B headroom (`ab`) -- what
`experiments.build_world` does.

    python -m benchmarks.build_world_bench --preset=base --workdir=/tmp/base_bench

Aims on a 2-core machine: `small` under 5 minutes, `base` (~1M items, ~6M exposure rows) under
15 minutes, both under 8 GiB.
"""
from __future__ import annotations

import json
import resource
import shutil
import time

from absl import flags

from configs import world as world_configs
from onesearch_jax import cli, workdir as wd
from onesearch_jax.pipeline.world_build import (build_reward_model, build_world_workdir, evaluate_baselines,
                                       oracle_headroom)

_PRESET = flags.DEFINE_string("preset", "base", "World preset (with optional ,key=value overrides).")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/world_bench", "Scratch directory (emptied first).")
_EVAL_EVENTS = flags.DEFINE_integer("max_eval_events", 8000, "Test events scored by the baselines.")
_AB_EVENTS = flags.DEFINE_integer("ab_events", 4000, "Simulated searches for the A/B headroom.")


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv):
    del argv
    shutil.rmtree(_WORKDIR.value, ignore_errors=True)
    config = world_configs.get_config(_PRESET.value)
    start = time.perf_counter()
    stages = {}
    world = build_world_workdir(config, _WORKDIR.value)
    stages["build"] = time.perf_counter() - start
    for name, fn in (("baselines", lambda: evaluate_baselines(world, _WORKDIR.value, _EVAL_EVENTS.value)),
                     ("reward", lambda: build_reward_model(world, _WORKDIR.value)),
                     ("ab", lambda: oracle_headroom(world, _WORKDIR.value, _AB_EVENTS.value))):
        t = time.perf_counter()
        fn()
        stages[name] = round(time.perf_counter() - t, 1)
    seconds = time.perf_counter() - start
    m = wd.read_metrics(_WORKDIR.value)
    result = {"preset": _PRESET.value, "seconds": round(seconds, 1),
              "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
              "peak_rss_gib": round(peak_rss_gib(), 2), "num_items": m["num_items"],
              "num_queries": m["num_queries"], "num_log_rows": m["num_log_rows"],
              "events_per_split": {k.split("/")[1]: m[k] for k in m if k.startswith("num_events/")}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    cli.run(main)
