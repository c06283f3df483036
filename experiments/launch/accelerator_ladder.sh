#!/usr/bin/env bash
# The ladder on one accelerator (a GPU or a TPU VM) in one command: builds world `small` and its
# MiniLM SIDs, trains the pretrained-encoder rungs over seeds at batch 256 (as many examples as
# the CPU ladder's 5,000 steps of 128 when STEPS=2500), evaluates each on the whole test day,
# archives every run into OUT and writes OUT/ladder.md, .json, .png with the paired deltas.
#
#   experiments/launch/accelerator_ladder.sh OUT [SEEDS] [STEPS] [RUNGS]
#   experiments/launch/accelerator_ladder.sh experiments/results/ladder_pretrained_gpu 3 2500 v1,cot,sd
#
# Environment: PYTHON (default .venv/bin/python), WORK (scratch root, default
# /tmp/onesearch_ladder), WORLD / SIDS / PRESET (default small / small / small; tiny /
# tiny_minilm / tiny_minilm for a CPU smoke run). Rerunning resumes: built stages are reused and
# finished runs skipped.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n '2,13p' "$0"; exit 2
fi
OUT=$1 SEEDS=${2:-3} STEPS=${3:-2500} RUNGS=${4:-v1,cot,sd}
PY=${PYTHON:-.venv/bin/python} WORK=${WORK:-/tmp/onesearch_ladder}
WORLD=${WORLD:-small} SIDS=${SIDS:-small} PRESET=${PRESET:-small}
BASE="$WORK/base"
start=$(date +%s)
"$PY" -m experiments.build_world --config="configs/world.py:$WORLD" --workdir="$BASE" \
  --max_eval_events=8000
"$PY" -m experiments.build_sids --config="configs/sids.py:$SIDS" --workdir="$BASE"
"$PY" -m experiments.ladder --base_workdir="$BASE" --root="$WORK/runs" --rungs="$RUNGS" \
  --seeds="$SEEDS" --preset="$PRESET" --order=seed --max_events=8000 \
  --overrides="train.steps=$STEPS,train.batch_size=256" --archive="$OUT"
"$PY" -m experiments.ladder --base_workdir="$BASE" --root="$OUT" --rungs="$RUNGS" \
  --seeds="$SEEDS" --preset="$PRESET" --max_events=8000 --only_table \
  --overrides="train.steps=$STEPS,train.batch_size=256"
echo "accelerator ladder: $(( $(date +%s) - start )) s in all; tables in $OUT"
