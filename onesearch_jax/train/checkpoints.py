"""Orbax checkpoints of the train state plus JSON metadata, and SIGTERM handling.

Layout: WORKDIR/checkpoints/<step>/{state, meta}. `meta` holds the data-iterator
position and the full config; a checkpoint whose model config differs from the
current one (in any field that shapes the parameters) is refused by name before
any array is read. Restores go straight onto the current mesh: the target is the
abstract state (ShapeDtypeStructs with shardings) from `setup_train_state`.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp

from onesearch_jax import fileio
from onesearch_jax.checkpoint_params import config_to_json, model_config_mismatches


class Checkpointer:
    """Save every `save_every` steps, keep the last `keep`; restore onto the current mesh."""

    def __init__(self, directory, *, save_every: int, keep: int, async_save: bool = True):
        if save_every <= 0 or keep <= 0:
            raise ValueError(
                f"checkpoint save_every and keep must be positive, got {save_every}, {keep}"
            )
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=int(save_every),
            max_to_keep=int(keep),
            create=True,
            enable_async_checkpointing=async_save,
        )
        # orbax's tensorstore backend refuses relative paths ("workdirs/demo" from `make demo`);
        # a gs:// URI goes to orbax as it is.
        self.manager = ocp.CheckpointManager(fileio.absolute(directory), options=options)
        self.save_every = int(save_every)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def should_save(self, step: int) -> bool:
        """Every `save_every` steps (orbax's own policy would also save the first step)."""
        return step > 0 and step % self.save_every == 0

    def save(self, step: int, state, *, data_position: int, config, force: bool = True) -> bool:
        """Saves (state, meta) at `step`; with force=False only when should_save(step)."""
        if not (force or self.should_save(step)):
            return False
        meta = {
            "step": int(step),
            "data_position": int(data_position),
            "config": config_to_json(config),
        }
        return self.manager.save(
            int(step),
            force=True,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )

    def restore_meta(self, step: int | None = None) -> dict:
        step = self.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint found under {self.manager.directory}")
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def restore(self, abstract_state, config, step: int | None = None) -> tuple[Any, dict]:
        """(state, meta) of `step` (default latest), checked against config.model first."""
        step = self.latest_step() if step is None else step
        meta = self.restore_meta(step)
        bad = model_config_mismatches(meta["config"].get("model", {}), config_to_json(config.model))
        if bad:
            raise ValueError(
                f"checkpoint at step {step} was made with a different model config; "
                f"mismatched keys: {bad}"
            )
        out = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        )
        return out["state"], meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


class PreemptionGuard:
    """Context manager: a SIGTERM (a preemption notice) stops the loop at a step every process
    agrees on, after a checkpoint, instead of killing the process.

    One process: a Python handler sets `.requested`. Several: hosts get SIGTERM at different
    steps, so a per-process flag would send one host into orbax's save barrier while the others
    step on (a hang). There JAX's coordination service (jax.distributed.initialize) catches
    SIGTERM on any host and names one sync step; `reached(step)`, called by every process at
    every step, turns true at that same step everywhere. Outside the main thread (where signals
    cannot be handled) a single process installs nothing.
    """

    def __init__(self, signals=(signal.SIGTERM,), multi_process: bool | None = None):
        self.signals = tuple(signals)
        self.multi_process = jax.process_count() > 1 if multi_process is None else multi_process
        self.requested = False
        self._previous: dict = {}

    def _handler(self, signum, frame):
        del frame
        self.requested = True

    def reached(self, step: int) -> bool:
        """Whether to save and stop after `step` (call once per step, on every process)."""
        if self.multi_process and not self.requested:
            from jax.experimental import multihost_utils
            self.requested = bool(multihost_utils.reached_preemption_sync_point(int(step)))
        return self.requested

    def __enter__(self) -> "PreemptionGuard":
        if not self.multi_process and threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
