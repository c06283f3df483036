"""Wall time and peak memory of building a world preset end to end (world, tfds logs, tokenizer).

    python -m benchmarks.build_world_bench --preset=base --workdir=/tmp/base_bench

Aim for `base` (~1M items, ~6M exposure rows) on a 2-core machine: under 10 minutes, under 8 GiB.
Baselines are not scored here (that is build_world's job); this times the build alone.
"""
from __future__ import annotations

import json
import resource
import shutil
import time

from absl import app, flags

from configs import world as world_configs
from onesearch_jax import workdir as wd
from onesearch_jax.data.world_build import build_world_workdir

_PRESET = flags.DEFINE_string("preset", "base", "World preset (with optional ,key=value overrides).")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/world_bench", "Scratch directory (emptied first).")


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv):
    del argv
    shutil.rmtree(_WORKDIR.value, ignore_errors=True)
    config = world_configs.get_config(_PRESET.value)
    start = time.perf_counter()
    build_world_workdir(config, _WORKDIR.value)
    seconds = time.perf_counter() - start
    m = wd.read_metrics(_WORKDIR.value)
    result = {"preset": _PRESET.value, "seconds": round(seconds, 1),
              "peak_rss_gib": round(peak_rss_gib(), 2), "num_items": m["num_items"],
              "num_queries": m["num_queries"], "num_log_rows": m["num_log_rows"],
              "events_per_split": {k.split("/")[1]: m[k] for k in m if k.startswith("num_events/")}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)
