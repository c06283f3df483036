#!/usr/bin/env bash
# One training on every worker of a Cloud TPU VM slice (JAX's multi-controller runtime: each
# worker runs the same command; jax.distributed starts by itself from the TPU metadata).
#
#   experiments/launch/tpu_vm.sh TPU_NAME ZONE WORKDIR [experiments.train flags...]
#   experiments/launch/tpu_vm.sh my-v5e-16 us-west4-a gs://my-bucket/w_base \
#       --config=configs/sft.py:base --config.mesh.shape='(-1,1,1)'
#
# WORKDIR must be one place every worker sees: gs://BUCKET/DIR (or a Filestore/NFS mount); it
# must already hold the built world and SIDs (experiments.build_world / build_sids, run once
# where there is a local disk, then `gsutil -m cp -r W gs://BUCKET/W`).
# The checkout lives at ~/onesearch-jax on each worker (REPO_DIR to change it). Periodic
# evaluation is off (it serves on one process); run experiments.evaluate afterwards.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,13p' "$0"; exit 2
fi
TPU=$1 ZONE=$2 WORKDIR=$3; shift 3
REPO_DIR=${REPO_DIR:-onesearch-jax}
ARGS=$(printf '%q ' "--workdir=$WORKDIR" "$@")  # quoted once more for the remote shell
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="
  set -e; cd ~/$REPO_DIR
  [ -f .venv/.installed ] || make install
  .venv/bin/pip install -q -e '.[tpu]'
  .venv/bin/python -m experiments.train --multihost=on --config.train.eval_every=0 $ARGS"
