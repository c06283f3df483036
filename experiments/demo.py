"""`make demo`: the whole pipeline on the tiny world, then a results table.

    python -m experiments.demo --workdir=workdirs/demo

Steps (each a normal experiment, rerunnable and resumable on the same workdir): build_world ->
build_sids (MiniLM embeddings) -> train V1 (SFT stages; frozen MiniLM states, cached once in
W/minilm_states, read by a trainable decoder) -> evaluate -> train the V2 self-distilled student in W/sd
(keyword CoT tasks + shared-weight self-distillation, same world and SIDs) -> evaluate it with the
query only, as it is served. Prints BM25, log memorisation, OneSearch V1 and the V2 SD student on
click_hr@10, rel_hr@10 overall / tail / negation and negation_violation@10.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from absl import flags

from onesearch_jax import cli, workdir as wd
from onesearch_jax.eval.world_eval import results_table
from onesearch_jax.pipeline.variant_workdir import prepare_run_dir

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Where everything is written.")
_WORLD = flags.DEFINE_string("world", "configs/world.py:tiny", "World config.")
_SIDS = flags.DEFINE_string("sids", "configs/sids.py:tiny_minilm", "SID config.")
_SFT = flags.DEFINE_string("sft", "configs/distill.py:tiny_minilm:v1", "V1 training config.")
_SD = flags.DEFINE_string("sd", "configs/distill.py:tiny_minilm:sd",
                          "V2 self-distillation config.")
# 2,500 + 2,000 steps keep the whole demo within 10 minutes on a fresh 2-core machine (README).
_V1_STEPS = flags.DEFINE_integer("v1_steps", 2500, "Steps of V1 (the demo's budget).")
_SD_STEPS = flags.DEFINE_integer("sd_steps", 2000, "Steps of the SD student (the demo's budget).")


def python_command() -> str:
    """The interpreter as a user can retype it: relative to here when it is below (make's
    `.venv/bin/python`, which has the package and MiniLM; a bare `python` may not)."""
    relative = os.path.relpath(sys.executable)
    if relative.startswith(".."):
        return shlex.quote(sys.executable)
    return shlex.quote(relative if os.sep in relative else os.path.join(".", relative))


def run(module: str, *args: str) -> None:
    cmd = [sys.executable, "-m", module, *args]
    print(f"\n$ {python_command()} {' '.join(cmd[1:])}", flush=True)  # a line a user can rerun
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"({module} took {time.perf_counter() - start:.0f} s)", flush=True)


def main(argv):
    del argv
    w = f"--workdir={_WORKDIR.value}"
    start = time.perf_counter()
    run("experiments.build_world", f"--config={_WORLD.value}", w)
    run("experiments.build_sids", f"--config={_SIDS.value}", w)
    # One MiniLM state cache for both trainings (the SD student's texts add the keyword spans).
    states = os.path.abspath(os.path.join(_WORKDIR.value, "minilm_states"))
    cache = f"--config.data.state_cache={states}"
    run("experiments.train", f"--config={_SFT.value}", f"--config.train.steps={_V1_STEPS.value}",
        cache, w)
    run("experiments.evaluate", w)
    sd_dir = os.path.join(_WORKDIR.value, "sd")
    prepare_run_dir(_WORKDIR.value, sd_dir)
    run("experiments.train", f"--config={_SD.value}", f"--config.train.steps={_SD_STEPS.value}",
        cache, f"--workdir={sd_dir}")
    run("experiments.evaluate", f"--workdir={sd_dir}")
    m = wd.read_metrics(_WORKDIR.value)
    sd = wd.read_metrics(sd_dir)
    table = dict(m, **{f"sd/{k}": v for k, v in sd.items() if isinstance(v, (int, float))})
    print("\nTest day (query + user input; the SD student is served exactly like V1):")
    print(results_table(table, systems=(("BM25", "bm25/"), ("log memorisation", "memorization/"),
                                        ("OneSearch V1", ""), ("V2 SD student", "sd/"))))
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s. World: {m['num_items']:.0f} items, "
          f"{m['num_queries']:.0f} queries, {m['num_log_rows']:.0f} log rows; SID ICR {m['icr']:.4f}.")
    print(f"Everything is in {_WORKDIR.value} (metrics.json, tensorboard/, checkpoints/). Try:\n"
          f"  {python_command()} -m experiments.search {w} --query \"sugar-free dark chocolate\"")


if __name__ == "__main__":
    cli.run(main)
