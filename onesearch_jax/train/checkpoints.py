"""Orbax checkpoints of the train state plus JSON metadata, and SIGTERM handling.

Layout: WORKDIR/checkpoints/<step>/{state, meta}. `meta` holds the data-iterator
position and the full config; a checkpoint whose model config differs from the
current one (in any field that shapes the parameters) is refused by name before
any array is read. Restores go straight onto the current mesh: the target is the
abstract state (ShapeDtypeStructs with shardings) from `setup_train_state`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

import orbax.checkpoint as ocp

# Model fields that change compute but not parameters: free to differ on resume.
RUNTIME_MODEL_KEYS = frozenset({"dropout_rate", "dtype", "attention_impl"})


def config_to_json(config) -> dict:
    """ConfigDict / dict -> plain JSON-able dict (tuples become lists)."""
    if hasattr(config, "to_json_best_effort"):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config, default=str))


def model_config_mismatches(saved: dict, current: dict) -> list[str]:
    """Sorted names of parameter-shaping model keys whose values differ."""
    saved, current = config_to_json(saved), config_to_json(current)
    keys = (set(saved) | set(current)) - RUNTIME_MODEL_KEYS
    return sorted(k for k in keys if saved.get(k, "<missing>") != current.get(k, "<missing>"))


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
        # orbax's tensorstore backend refuses relative paths ("workdirs/demo" from `make demo`).
        self.manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)
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
    """Context manager: SIGTERM sets `.requested` instead of killing the process.

    The loop polls the flag, saves a checkpoint and returns cleanly. Outside the
    main thread (where signals cannot be handled) it installs nothing.
    """

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = tuple(signals)
        self.requested = False
        self._previous: dict = {}

    def _handler(self, signum, frame):
        del frame
        self.requested = True

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
