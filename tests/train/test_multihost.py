"""Two processes x 4 CPU devices (JAX's multi-controller runtime, gloo collectives) train like
one process x 8 devices: the same per-step losses for the SFT and distill steps, each process
feeding only its rows; a SIGTERM on one host stops every host at the same saved step; process 0
alone writes the run's files; a run SIGKILLed between checkpoints resumes from the last one and
ends bit for bit where the uninterrupted run does."""
import importlib.util
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from onesearch_jax import distributed
from onesearch_jax import sharding

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "multihost_worker.py")
spec = importlib.util.spec_from_file_location("multihost_worker", WORKER)
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one_and_stop_together_on_sigterm(tmp_path):
    root = tmp_path / "two"
    root.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    procs = [subprocess.Popen(
        [sys.executable, WORKER, f"--process_id={i}", "--num_processes=2", f"--port={port}",
         f"--root={root}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=480)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multi-process run hung (a barrier some process never reached?)")
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    reports = [json.loads((root / f"process{i}.json").read_text()) for i in range(2)]
    assert reports[0] == reports[1], reports  # both hosts saved and stopped at the same step
    assert reports[0]["preempted"] and reports[0]["preempted_at"] < worker.SFT_STEPS
    assert reports[0]["resumed_to"] == worker.SFT_STEPS
    assert reports[0]["distill_steps"] == worker.STEPS

    # One process, the 8 devices of this test session: the same losses step by step.
    one = tmp_path / "one"
    worker.run_sft(str(one / "sft"))
    worker.run_distill(str(one / "distill"))
    rows = []
    for stage, steps in (("sft", worker.SFT_STEPS), ("distill", worker.STEPS)):
        a, b = worker.losses(str(root / stage)), worker.losses(str(one / stage))
        assert sorted(a) == sorted(b) == list(range(1, steps + 1)), (stage, sorted(a))
        np.testing.assert_allclose([a[s] for s in sorted(a)], [b[s] for s in sorted(b)],
                                   rtol=2e-5, atol=2e-6, err_msg=stage)
        rows += [f"{stage:8s} step {s:2d}  2x4 {a[s]:.6f}  1x8 {b[s]:.6f}" for s in sorted(a)]
    print("\n".join(rows))
    # SIGKILL between checkpoints (after step 10's, drawing batch 15: steps 1-14 logged): the
    # rerun resumes from step 10 and ends where the uninterrupted run does. One process x 8
    # devices, so both runs find the step compiled above in this session's compilation cache.
    killed = tmp_path / "killed"
    killed.mkdir()
    run = lambda *extra: subprocess.run(
        [sys.executable, WORKER, "--process_id=0", "--num_processes=1", "--port=0",
         f"--root={killed}", *extra], capture_output=True, text=True, timeout=300)
    out = run("--sigkill_at=15")
    assert out.returncode == -9, out.stdout[-2000:] + out.stderr[-2000:]
    out = run()
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert json.loads((killed / "resumed.json").read_text())["steps"] == worker.SFT_STEPS
    steps = [json.loads(line)["step"] for line in
             (killed / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 15)) + list(range(11, worker.SFT_STEPS + 1)), steps
    c = worker.losses(str(killed / "sft"))  # the resumed run's lines are the last per step
    b = worker.losses(str(one / "sft"))
    np.testing.assert_array_equal([c[s] for s in sorted(b)], [b[s] for s in sorted(b)])

    # Process 0 wrote the run's files once; the checkpoint holds the final step.
    assert (root / "sft" / "checkpoints" / str(worker.SFT_STEPS)).is_dir()
    lines = (root / "sft" / "metrics.jsonl").read_text().splitlines()
    assert len([line for line in lines if '"train/loss"' in line]) == worker.SFT_STEPS


def test_one_process_feeds_every_row_and_a_short_batch_is_named():
    mesh = sharding.make_mesh((2, 2, 2))
    rules = sharding.DEFAULT_RULES
    assert sharding.process_batch_rows(mesh, rules, 8) == slice(0, 8)
    x = sharding.shard_batch({"a": np.arange(16).reshape(8, 2)}, mesh, rules, 8)["a"]
    assert x.shape == (8, 2)
    np.testing.assert_array_equal(sharding.process_local_rows(x), np.arange(16).reshape(8, 2))
    with pytest.raises(ValueError, match="has 4 rows, but this process feeds rows 0:8"):
        sharding.shard_batch({"a": np.zeros((4, 2))}, mesh, rules, 8)
    with pytest.raises(ValueError, match="global batch 10 is not divisible by the 4 batch"):
        sharding.process_batch_rows(mesh, rules, 10)


def test_launch_settings_are_checked_and_nothing_starts_without_a_cluster(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
                 "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.initialize("auto") and not distributed.initialize("off")
    assert not distributed.cluster_detected()
    with pytest.raises(ValueError, match="missing: num_processes, process_id"):
        distributed.initialize("auto", coordinator_address="h:1")
    with pytest.raises(ValueError, match="process_id 2 is outside 0..1"):
        distributed.initialize("auto", coordinator_address="h:1", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="multihost mode 'maybe'"):
        distributed.initialize("maybe")
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t0")  # a single-host TPU VM: one process
    assert not distributed.cluster_detected()
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "t0,t1,t2,t3")
    assert distributed.cluster_detected()
    assert distributed.is_writer()
    # Under a launcher, the address alone is enough: JAX reads the count and index from it.
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h0:1234")
    assert distributed.initialize("auto")
    assert calls == [dict(coordinator_address="h0:1234", num_processes=None, process_id=None)]
    with pytest.raises(ValueError, match="process_id 3 is outside 0..1"):
        distributed.initialize("auto", num_processes=2, process_id=3)

    def boom():
        raise RuntimeError("no catalog")
    with pytest.raises(RuntimeError, match="no catalog"):  # re-raised after the barrier
        distributed.on_writer_then_all("prepare", boom)
    assert distributed.on_writer_then_all("prepare", lambda: 7) == 7
