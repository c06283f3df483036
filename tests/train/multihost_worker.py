"""One process of a multi-process training run on this machine (CPU devices, gloo collectives).

    python tests/train/multihost_worker.py --process_id=I --num_processes=N --port=P --root=DIR

Runs, in DIR (shared by the processes, as a pod's filesystem is): the distill step on an
(8, 1, 1) mesh straight through, then the SFT step on (2, 2, 2), first preempted (process N-1
gets SIGTERM while batch 1 is drawn; every process must save the same step and stop), then
resumed to the end. test_multihost.py runs the same
`run_*` functions in one process with 8 devices and compares the metrics.jsonl losses.
With --num_processes=1 --sigkill_at=K it trains the same SFT run alone and SIGKILLs itself at
batch K; rerun without --sigkill_at it resumes from the last checkpoint. Imported by the test
for its configs and batches (nothing runs on import).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import time

import numpy as np

STEPS = 4
SFT_STEPS = 20  # long enough that the preemption sync step (a few steps after SIGTERM) is inside
VOCAB = 38                      # text 0..19, SID levels 20..27, 28..33, 34..37
OFFSETS, SIZES = (20, 28, 34), (8, 6, 4)


def sft_config():
    from configs.sft import get_config
    c = get_config("tiny")
    c.model.update(vocab_size=VOCAB, d_model=16, num_heads=2, mlp_dim=32, enc_layers=1,
                   dec_layers=1, dropout_rate=0.1)
    c.train.update(steps=SFT_STEPS, warmup=1, lr=1e-2, batch_size=8, log_every=1, eval_every=0,
                   checkpoint_every=10, keep=3)
    c.mesh.shape = (2, 2, 2)
    return c


def distill_config():
    from configs import distill as distill_configs
    c = distill_configs.get_config("tiny:sd")
    c.model.update(vocab_size=VOCAB, d_model=16, num_heads=2, mlp_dim=32, enc_layers=1,
                   dec_layers=1, dropout_rate=0.1)
    c.train.update(steps=STEPS, warmup=1, lr=1e-2, batch_size=8, log_every=1, eval_every=0,
                   checkpoint_every=2, keep=3)
    c.train.checkpoint_every = STEPS
    c.distill.update(alpha_kl=1.0)
    c.mesh.shape = (8, 1, 1)
    return c


def make_batch(i: int) -> dict[str, np.ndarray]:
    """Global batch i (8 rows): SID targets, a student input and a teacher input."""
    rng = np.random.default_rng(i)
    n = 8
    sid = np.stack([rng.integers(o, o + s, n) for o, s in zip(OFFSETS, SIZES)], 1)
    tgt = np.zeros((n, 5), np.int32)
    tgt[:, :3] = sid
    enc = rng.integers(3, 20, (n, 7)).astype(np.int32)
    teacher = np.concatenate([enc, rng.integers(3, 20, (n, 3)).astype(np.int32)], 1)
    return dict(enc_tokens=np.pad(enc, ((0, 0), (0, 3))),
                dec_inputs=np.concatenate([np.ones((n, 1), np.int32), tgt[:, :-1]], 1),
                dec_targets=tgt, dec_weights=(tgt > 0).astype(np.float32),
                teacher_enc_tokens=teacher, teacher_mask=np.ones(n, np.float32))


def batches(sigterm_at: int | None = None, keys=None, sigkill_at: int | None = None):
    """The loop's factory: this process's rows of make_batch(i); SIGTERM when `sigterm_at` is
    drawn; SIGKILL (no goodbye) when `sigkill_at` is, a second after (the last checkpoint's
    asynchronous write has finished: the kill lands between checkpoints)."""
    def factory(position, rows):
        i = position
        while True:
            if i == sigterm_at:
                os.kill(os.getpid(), signal.SIGTERM)
            if i == sigkill_at:
                time.sleep(1.0)
                os.kill(os.getpid(), signal.SIGKILL)
            yield {k: v[rows] for k, v in make_batch(i).items() if keys is None or k in keys}
            i += 1
    return factory


SFT_KEYS = ("enc_tokens", "dec_inputs", "dec_targets", "dec_weights")


def run_sft(workdir: str, sigterm_at: int | None = None, sigkill_at: int | None = None):
    from onesearch_jax.model.transformer import build_model
    from onesearch_jax.train import sft_step
    from onesearch_jax.train.loop import train_loop
    c = sft_config()
    return train_loop(c, workdir, build_model(c.model),
                      batches(sigterm_at, SFT_KEYS, sigkill_at=sigkill_at),
                      stream=io.StringIO(), make_step=sft_step.make_train_step,
                      check_batch=sft_step.check_batch)


def run_distill(workdir: str):
    from onesearch_jax.model.transformer import build_model
    from onesearch_jax.sid.vocab import SidVocab
    from onesearch_jax.train import distill
    from onesearch_jax.train.loop import train_loop
    c = distill_config()
    return train_loop(c, workdir, build_model(c.model), batches(), stream=io.StringIO(),
                      make_step=distill.make_distill_step(SidVocab(OFFSETS[0], SIZES)),
                      check_batch=distill.check_distill_batch)


def losses(workdir: str) -> dict[int, float]:
    """step -> train/loss from a run's metrics.jsonl (the last line of a step wins)."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "train/loss" in row:
                out[row["step"]] = row["train/loss"]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--process_id", type=int, required=True)
    p.add_argument("--num_processes", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--sigkill_at", type=int, default=None,
                   help="One process: train the SFT run in ROOT/sft and SIGKILL it at this batch.")
    a = p.parse_args()
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=8", "")
        + f" --xla_force_host_platform_device_count={8 // a.num_processes}")
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    if a.num_processes == 1:  # the SIGKILL scenario: killed, then (rerun) resumed
        result = run_sft(os.path.join(a.root, "sft"), sigkill_at=a.sigkill_at)
        with open(os.path.join(a.root, "resumed.json"), "w") as f:
            json.dump({"steps": result.step}, f)
        return
    from onesearch_jax import distributed
    distributed.initialize("on", coordinator_address=f"localhost:{a.port}",
                           num_processes=a.num_processes, process_id=a.process_id)
    import jax
    assert jax.device_count() == 8, jax.devices()
    sft_dir = os.path.join(a.root, "sft")  # shared by the processes, as on a pod's filesystem
    # Distill first: once a preemption sync step has been reached, JAX reports it again to any
    # later loop that passes the same step number (a preempted process is expected to exit).
    distilled = run_distill(os.path.join(a.root, "distill"))
    first = run_sft(sft_dir, sigterm_at=1 if a.process_id == a.num_processes - 1 else None)
    second = run_sft(sft_dir)
    with open(os.path.join(a.root, f"process{a.process_id}.json"), "w") as f:
        json.dump({"preempted_at": first.step, "preempted": first.preempted,
                   "resumed_to": second.step, "distill_steps": distilled.step}, f)


if __name__ == "__main__":
    main()
