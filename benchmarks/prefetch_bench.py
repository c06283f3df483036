"""Training steps/s with and without the prefetching input thread (train.prefetch).

  python -m benchmarks.prefetch_bench --base_workdir=W --config=configs/sft.py:tiny
  python -m benchmarks.prefetch_bench --base_workdir=W --config=configs/distill.py:small:v1

W holds a built world and SIDs (experiments.build_world / build_sids). Each (depth, round) is a
fresh `experiments.train` run of --steps steps in its own workdir beside W's world (no eval, one
checkpoint at the end), rounds alternating between depths so that load from other jobs hits all
alike. Steps/s is the median of the run's logged rates after its first two log intervals (compile
and warm-up excluded). Prints one row per depth and writes --out as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from onesearch_jax.pipeline.variant_workdir import prepare_run_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def steady_rate(jsonl_path: str, skip: int = 2) -> float:
    """Median perf/steps_per_sec of a run's metrics.jsonl rows after the first `skip`."""
    with open(jsonl_path) as f:
        rates = [row["perf/steps_per_sec"] for row in map(json.loads, f)
                 if "perf/steps_per_sec" in row]
    if len(rates) <= skip:
        raise ValueError(f"{jsonl_path}: {len(rates)} logged rates; run more steps")
    return float(statistics.median(rates[skip:]))


def run_once(base: str, config: str, steps: int, depth: int, log_every: int, scratch: str) -> float:
    run = tempfile.mkdtemp(prefix=f"prefetch{depth}_", dir=scratch)
    prepare_run_dir(base, run)
    cmd = [sys.executable, "-m", "experiments.train", f"--config={config}", f"--workdir={run}",
           f"--config.train.steps={steps}", f"--config.train.prefetch={depth}",
           f"--config.train.log_every={log_every}", "--config.train.eval_every=0",
           f"--config.train.checkpoint_every={steps}"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    try:
        return steady_rate(os.path.join(run, "metrics.jsonl"))
    finally:
        shutil.rmtree(run, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_workdir", required=True)
    parser.add_argument("--config", default="configs/sft.py:tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log_every", type=int, default=25)
    parser.add_argument("--depths", default="0,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    scratch = tempfile.mkdtemp(prefix="prefetch_bench_")
    rates = {d: [] for d in depths}
    try:
        for r in range(args.rounds):
            for d in depths:
                rates[d].append(run_once(args.base_workdir, args.config, args.steps, d,
                                         args.log_every, scratch))
                print(json.dumps({"round": r, "prefetch": d, "steps_per_sec": rates[d][-1]}),
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = [{"prefetch": d, "steps_per_sec": statistics.median(v), "runs": v}
            for d, v in rates.items()]
    ref = rows[0]["steps_per_sec"]
    print(f"\n{args.config}, {args.steps} steps per run, median of {args.rounds} runs "
          f"(load average {os.getloadavg()[0]:.1f})")
    print("| train.prefetch | steps/s | vs first |\n|---|---|---|")
    for row in rows:
        print(f"| {row['prefetch']} | {row['steps_per_sec']:.2f} | "
              f"{row['steps_per_sec'] / ref:.2f}x |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": args.config, "steps": args.steps, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
