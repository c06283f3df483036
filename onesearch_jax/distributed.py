"""Starting JAX's multi-controller runtime, and the few things only one process may do.

A run over several hosts (a Cloud TPU pod slice, a GPU cluster, or several processes on one
machine) is one program per process, joined by `jax.distributed.initialize`: JAX's own runtime,
which also gives orbax its barriers and the preemption sync point the training loop stops at.
Every process builds only its rows of each global batch (sharding.process_batch_rows);
checkpoints are written by all processes through orbax; JSON, TensorBoard and catalog files by
process 0 alone (`is_writer`).
"""
from __future__ import annotations

import os
from typing import Callable, TypeVar

import jax
from absl import logging

T = TypeVar("T")

MODES = ("auto", "on", "off")


def _env_int(name: str) -> int:
    try:
        return int(os.environ.get(name, "") or 0)
    except ValueError:
        return 0


def cluster_detected() -> bool:
    """True under a launcher that starts one process per host and tells JAX how to meet:
    a multi-host Cloud TPU VM slice, SLURM with several tasks, or Open MPI with several ranks."""
    tpu_hosts = [h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
    return (len(tpu_hosts) > 1 or _env_int("SLURM_NTASKS") > 1
            or _env_int("OMPI_COMM_WORLD_SIZE") > 1)


def initialize(mode: str = "auto", coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> bool:
    """Joins the processes of one run; returns whether a multi-process runtime was started.

    Explicit settings (arguments, else $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES,
    $JAX_PROCESS_ID) start it with those values; under a detected cluster launcher some may be
    left out (e.g. only the coordinator's address under SLURM) and JAX reads the rest from the
    launcher. Otherwise mode "auto" starts it only where a cluster launcher is detected (JAX then
    reads the topology itself: Cloud TPU metadata, SLURM, Open MPI), "on" always does, "off"
    never does (one process, all local devices)."""
    if mode not in MODES:
        raise ValueError(f"multihost mode {mode!r}; valid: {MODES}")
    if mode == "off":
        return False
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    count = num_processes if num_processes is not None else (
        _env_int("JAX_NUM_PROCESSES") or None)
    pid = process_id if process_id is not None else (
        int(os.environ["JAX_PROCESS_ID"]) if os.environ.get("JAX_PROCESS_ID") else None)
    explicit = address is not None or count is not None or pid is not None
    if explicit:
        missing = [n for n, v in (("coordinator_address", address), ("num_processes", count),
                                  ("process_id", pid)) if v is None]
        if missing and not cluster_detected():
            raise ValueError(f"multi-process launch needs coordinator_address, num_processes and "
                             f"process_id (or a cluster launcher: a TPU VM slice, SLURM, Open MPI, "
                             f"to read the rest from); missing: {', '.join(missing)}")
        if count is not None and pid is not None and not 0 <= pid < count:
            raise ValueError(f"process_id {pid} is outside 0..{count - 1}")
        jax.distributed.initialize(coordinator_address=address, num_processes=count,
                                   process_id=pid)
    elif mode == "on" or cluster_detected():
        jax.distributed.initialize()
    else:
        return False
    logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def is_writer() -> bool:
    """Only process 0 writes the run's JSON, TensorBoard and catalog files (a shared filesystem
    would otherwise see N racing writers)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (a no-op on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def on_writer_then_all(name: str, fn: Callable[[], T]) -> T | None:
    """Runs fn on process 0 while the others wait (e.g. preparing a workdir every process then
    reads); returns fn's result on process 0, None elsewhere. Process 0 reaches the barrier
    even when fn raises (then re-raises), so the others are never left waiting for it."""
    out, error = None, None
    if is_writer():
        try:
            out = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised after the barrier
            error = e
    barrier(name)
    if error is not None:
        raise error
    return out
