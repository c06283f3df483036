"""The generic training loop: mesh, resume, steps, one-step-late metrics, eval, checkpoints.

Stage-agnostic: a stage passes its jitted step factory `make_step(model, config, setup)` and
(optionally) its batch-contract check; the loop never names a stage or a batch key.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np

from onesearch_jax import sharding as sharding_lib
from onesearch_jax.train.branch import restore_branch
from onesearch_jax.train.checkpoints import Checkpointer, PreemptionGuard
from onesearch_jax.train.metric_writer import MetricWriter, OneStepLate
from onesearch_jax.train.prefetch import prefetch_depth, prefetching
from onesearch_jax.train.train_state import (create_train_state, restart_params_ema,
                                             rollout_key, seed_keys, setup_train_state)

BatchIterFactory = Callable[[int, slice], Iterator[Mapping[str, np.ndarray]]]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


@dataclasses.dataclass
class TrainResult:
    state: Any
    step: int
    metrics: dict  # host metrics of the last step
    preempted: bool  # stopped before train.steps (SIGTERM or train.stop_at), after saving


def token_count(batch: Mapping[str, np.ndarray]) -> int:
    """Tokens a batch feeds the model: the sizes of its integer arrays (inputs, not weights)."""
    return int(sum(v.size for v in batch.values() if np.issubdtype(v.dtype, np.integer)))


def train_loop(
    config,
    workdir: str,
    model,
    batch_iter_factory: BatchIterFactory,
    eval_fn: Callable[[Any, int], Mapping[str, float]] | None = None,
    *,
    mesh: jax.sharding.Mesh | None = None,
    make_step: Callable,
    check_batch: Callable[[Mapping[str, np.ndarray]], None] | None = None,
    stream=None,
    init_params: Callable[[Any], Any] | None = None,
    rollout: Callable[[Any, Mapping[str, np.ndarray], jax.Array], Mapping[str, np.ndarray]]
    | None = None,
) -> TrainResult:
    """Trains to config.train.steps (or stops at train.stop_at), resuming from
    WORKDIR/checkpoints if present.

    batch_iter_factory(position, rows) must yield numpy batches starting at batch number
    `position` (the count already consumed), so a resumed run sees the same data; each holds
    only `rows` (a slice) of the global batch of train.batch_size: this process's rows
    (sharding.process_batch_rows; all of them on one process).
    eval_fn(state, step) -> scalars is called every train.eval_every steps (0 = never).
    init_params(params) -> params edits a fresh run's parameters (e.g. loads a pretrained
    encoder); a resumed run restores its checkpoint instead, and a fresh run with
    train.branch_from='DIR@STEP' starts from that run's state at STEP (train/branch.py).
    rollout(state, batch, rng) -> batch (the RL stages) sees the current state before each
    update and turns this process's prompts into its rows of the step's batch; rng is
    fold_in(rollout_key(seed), step), so a resumed run replays the same rollouts.
    Raises NonFiniteLossError naming the step if the loss is NaN/inf; that state is
    never checkpointed.
    """
    tc = config.train
    total = int(tc.steps)
    stop_at = int(tc.get("stop_at", 0) or 0)
    if not 0 <= stop_at <= total:
        raise ValueError(f"train.stop_at={stop_at} must be in [0, train.steps={total}] "
                         "(0 = train to train.steps)")
    end = stop_at or total  # the step this run stops at; the schedule stays train.steps'
    log_every, eval_every = int(tc.log_every), int(tc.get("eval_every", 0) or 0)
    mesh = sharding_lib.make_mesh(config.mesh.shape) if mesh is None else mesh
    if eval_fn is not None and eval_every and jax.process_count() > 1:
        raise ValueError("periodic evaluation (train.eval_every > 0) runs the retriever on one "
                         "process; on several set --config.train.eval_every=0 and evaluate the "
                         "workdir afterwards (experiments.evaluate)")
    setup = setup_train_state(model, config, mesh)
    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"), save_every=int(tc.checkpoint_every), keep=int(tc.keep)
    )

    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(setup.abstract, config)
        start, data_position = int(meta["step"]), int(meta["data_position"])
    elif tc.get("branch_from", ""):
        state, start, data_position = restore_branch(str(tc.branch_from), model, config, setup)
        print(f"branched from {tc.branch_from}: continuing at step {start}", file=stream,
              flush=True)
    else:
        state, start, data_position = create_train_state(setup, int(tc.seed)), 0, 0
        if init_params is not None:
            params = jax.device_put(init_params(state.params), setup.shardings.params)
            state = state.replace(params=params,
                                  opt_state=restart_params_ema(state.opt_state, params))

    train_step = make_step(model, config, setup)
    rng = seed_keys(int(tc.seed))[1]  # the dropout stream; init used the other key
    sample_key = rollout_key(int(tc.seed))
    writer = MetricWriter(workdir, total_steps=total, start_step=start, stream=stream)
    late = OneStepLate()
    last_metrics: dict = {}

    def handle(entry) -> None:
        """Host side of a finished step: NaN guard, then logging when due."""
        nonlocal last_metrics
        if entry is None:
            return
        s, m = entry
        if not math.isfinite(m["loss"]):
            last = ckpt.latest_step()
            raise NonFiniteLossError(
                f"non-finite loss {m['loss']} at step {s}; stopped without saving it "
                + (f"(last good checkpoint: step {last}); a lower train.lr in a new --workdir "
                   f"(--config.train.branch_from=THIS_WORKDIR@{last} keeps the steps so far)"
                   if last is not None else "(no checkpoint yet); a lower train.lr")
                + " or a look at the data usually helps")
        last_metrics = m
        if s % log_every == 0 or s == total:
            perf = writer.progress(s, {"loss": m["loss"]})
            writer.write(s, {**{f"train/{k}": v for k, v in m.items()}, **perf})

    step = start
    global_batch = int(tc.batch_size)
    rows = sharding_lib.process_batch_rows(mesh, setup.rules, global_batch)
    local_rows = rows.stop - rows.start
    # train.prefetch batches are built on a thread ahead of the step (0 = here); the thread lives
    # inside the guard, so whatever the input does happens under it.
    depth = prefetch_depth(int(tc.get("prefetch", 0) or 0), jax.default_backend())
    try:
        with PreemptionGuard() as guard, \
                prefetching(batch_iter_factory(data_position, rows), depth) as batches:
            while step < end:
                try:
                    batch = next(batches)
                except StopIteration:
                    raise ValueError(f"batch iterator ran out at step {step} of {total}") from None
                if rollout is not None:
                    batch = rollout(state, batch, jax.random.fold_in(sample_key, step))
                if step == start:
                    if check_batch is not None:
                        check_batch(batch)
                    sizes = {k: v.shape[0] for k, v in batch.items()}
                    if set(sizes.values()) != {local_rows}:
                        raise ValueError(
                            f"batch leading sizes {sizes} != the {local_rows} rows this process "
                            f"feeds ({rows.start}:{rows.stop} of train.batch_size {global_batch})")
                state, metrics = train_step(
                    state, sharding_lib.shard_batch(batch, mesh, setup.rules, global_batch), rng
                )
                step += 1
                handle(late.push(step, metrics))  # step-1's numbers; step is already dispatched
                writer.count_tokens(token_count(batch) * global_batch / local_rows)
                stop = guard.reached(step) or step == end

                if ckpt.should_save(step) or step == total or stop:
                    handle(late.flush())  # never save a state whose loss we have not checked
                    ckpt.save(
                        step,
                        state,
                        data_position=data_position + step - start,
                        config=config,
                        force=True,
                    )
                if eval_fn is not None and eval_every and (step % eval_every == 0 or step == total):
                    scores = dict(eval_fn(state, step))
                    writer.write(step, {f"eval/{k}": v for k, v in scores.items()})
                if stop:
                    break
            handle(late.flush())
    finally:
        ckpt.close()
        writer.close()
    if step == stop_at < total:
        print(f"stopped at step {step} of {total} (train.stop_at); a run without it resumes here",
              file=stream, flush=True)
    return TrainResult(state=state, step=step, metrics=last_metrics, preempted=step < total)
