"""`make demo`: the whole pipeline on the tiny world, then a results table.

    python -m experiments.demo --workdir=workdirs/demo

Steps (each a normal experiment, rerunnable and resumable on the same workdir): build_world ->
build_sids -> train (V1 SFT stages) -> evaluate. Prints BM25, log memorisation and OneSearch V1
on click_hr@10 and rel_hr@10 overall / tail / negation.
"""
from __future__ import annotations

import subprocess
import sys
import time

from absl import app, flags

from onesearch_jax import workdir as wd

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Where everything is written.")
_WORLD = flags.DEFINE_string("world", "configs/world.py:tiny", "World config.")
_SIDS = flags.DEFINE_string("sids", "configs/sids.py:tiny", "SID config.")
_SFT = flags.DEFINE_string("sft", "configs/sft.py:tiny", "Training config.")


def run(module: str, *args: str) -> None:
    cmd = [sys.executable, "-m", module, *args]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"({module} took {time.perf_counter() - start:.0f} s)", flush=True)


def main(argv):
    del argv
    w = f"--workdir={_WORKDIR.value}"
    start = time.perf_counter()
    run("experiments.build_world", f"--config={_WORLD.value}", w)
    run("experiments.build_sids", f"--config={_SIDS.value}", w)
    run("experiments.train", f"--config={_SFT.value}", w)
    run("experiments.evaluate", w)
    m = wd.read_metrics(_WORKDIR.value)
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s. World: {m['num_items']:.0f} items, "
          f"{m['num_queries']:.0f} queries, {m['num_log_rows']:.0f} log rows; SID ICR {m['icr']:.4f}.")
    print(f"Everything is in {_WORKDIR.value} (metrics.json, tensorboard/, checkpoints/). Try:\n"
          f"  python -m experiments.search {w} --query \"sugar-free dark chocolate\"")


if __name__ == "__main__":
    app.run(main)
