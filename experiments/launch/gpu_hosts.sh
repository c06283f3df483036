#!/usr/bin/env bash
# One training over several GPU hosts: run this on every host with its own index.
#
#   experiments/launch/gpu_hosts.sh HOST0:PORT NUM_HOSTS HOST_INDEX WORKDIR [train flags...]
#   experiments/launch/gpu_hosts.sh 10.0.0.2:1234 2 0 /mnt/shared/w --config=configs/sft.py:base
#   experiments/launch/gpu_hosts.sh 10.0.0.2:1234 2 1 /mnt/shared/w --config=configs/sft.py:base
#
# Each process drives all GPUs of its host (jax.local_devices()); the mesh spans every GPU of
# every host. Under SLURM or Open MPI no address is needed: `srun .venv/bin/python -m
# experiments.train --workdir=W ...` (one task per host) starts the runtime by itself.
# WORKDIR must be one place every host sees (gs://BUCKET/DIR with .[gcs] installed, or NFS). Periodic evaluation is off (it serves on one
# process); run experiments.evaluate on the workdir afterwards.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,14p' "$0"; exit 2
fi
COORD=$1 N=$2 I=$3 WORKDIR=$4; shift 4
exec .venv/bin/python -m experiments.train --workdir="$WORKDIR" \
  --coordinator_address="$COORD" --num_processes="$N" --process_id="$I" --config.train.eval_every=0 "$@"
