"""Trains the OneSearch V1 baseline (the SFT stages) on a workdir's world and SIDs, or on a real
catalog with judgments.

    python -m experiments.build_world --config=configs/world.py:tiny --workdir=W
    python -m experiments.build_sids --config=configs/sids.py:tiny --workdir=W
    python -m experiments.train --config=configs/sft.py:tiny --workdir=W

    python -m experiments.train --config=configs/distill.py:tiny:sd --workdir=W   # V2 self-distill

    python -m experiments.train --config=configs/homedepot.py --config.data_dir=DIR --workdir=W

`config.stage` picks the stage from the registry (onesearch_jax/pipeline/stages.py).

On several hosts (a Cloud TPU slice, a GPU cluster) run the same command on every host: JAX's
runtime starts by itself under a detected launcher (multi-host TPU VM, SLURM, Open MPI), or from
--coordinator_address/--num_processes/--process_id (or $JAX_COORDINATOR_ADDRESS, ...). Each
process feeds its rows of every batch; process 0 writes the metrics and configs.

Resumes from W/checkpoints; writes TensorBoard events under W/tensorboard, W/metrics.jsonl and a
progress line; evaluates on a sample of valid-day events every `train.eval_every` steps.
"""
from absl import app, flags
from ml_collections import config_flags

from onesearch_jax import cli, distributed, quiet
from onesearch_jax.pipeline import stages

_CONFIG = config_flags.DEFINE_config_file("config", "configs/sft.py:tiny", "Training config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir with a built world and SIDs.", required=True)
_MULTIHOST = flags.DEFINE_enum("multihost", "auto", list(distributed.MODES),
                               "Join a multi-process run: auto (when a launcher is detected or the "
                               "flags below are given), on, off.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (multi-process runs).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")


def main(argv):
    del argv
    quiet.quiet_libraries()
    try:
        distributed.initialize(_MULTIHOST.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                               _PROCESS_ID.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config = _CONFIG.value
    try:
        run = stages.get_stage(config.get("stage", "sft"))
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    summary = run(config, _WORKDIR.value)
    if distributed.is_writer():
        print("trained: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary.items())))


if __name__ == "__main__":
    cli.run(main)
