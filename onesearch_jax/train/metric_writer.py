"""Metrics out of the loop: TensorBoard events, a JSONL log, a progress line.

TensorBoard files come from tensorboardX (no TensorFlow). Device metrics are
read one step late (`OneStepLate`): the loop dispatches step s+1 before asking
for step s's numbers, so the host never waits on the device to log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Mapping, TextIO

import jax
import numpy as np
from tensorboardX import SummaryWriter

from onesearch_jax import fileio
from onesearch_jax.progress import format_eta


def to_host_scalars(metrics: Mapping) -> dict[str, float]:
    """Device scalars -> python floats (blocks until they are computed)."""
    host = jax.device_get(dict(metrics))
    return {k: float(np.asarray(v)) for k, v in host.items()}


class OneStepLate:
    """Keeps the newest step's device metrics and hands back the previous step's.

    push(step, m) returns (prev_step, host floats) of the step pushed before, or None.
    """

    def __init__(self):
        self._pending: tuple[int, Mapping] | None = None

    def push(self, step: int, device_metrics: Mapping):
        previous, self._pending = self._pending, (step, device_metrics)
        return None if previous is None else (previous[0], to_host_scalars(previous[1]))

    def flush(self):
        """The held step's metrics now (blocks), or None."""
        previous, self._pending = self._pending, None
        return None if previous is None else (previous[0], to_host_scalars(previous[1]))


class MetricWriter:
    """Writes WORKDIR/tensorboard/ events and WORKDIR/metrics.jsonl; prints progress."""

    def __init__(
        self,
        workdir: str,
        *,
        total_steps: int,
        start_step: int = 0,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.total_steps = int(total_steps)
        self.stream = sys.stderr if stream is None else stream
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        self._jsonl = None
        if self.enabled:
            self._jsonl = fileio.LineAppender(self.jsonl_path)
            self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard"))
        self._last_time = time.perf_counter()
        self._last_step = int(start_step)
        self._tokens = 0.0

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """One JSONL line and one TensorBoard scalar per metric."""
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        for k, v in scalars.items():
            self._tb.add_scalar(k, float(v), int(step))
        self._tb.flush()

    def count_tokens(self, n: float) -> None:
        """Tokens processed since the last progress line (host-side count, no device sync)."""
        self._tokens += float(n)

    def progress(self, step: int, extra: Mapping[str, float] | None = None) -> dict[str, float]:
        """Prints 'step s/N | x steps/s | y tokens/s | ETA' and returns the rates."""
        now = time.perf_counter()
        dt = max(now - self._last_time, 1e-9)
        steps_per_s = (step - self._last_step) / dt
        tokens_per_s = self._tokens / dt
        eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
        self._last_time, self._last_step, self._tokens = now, int(step), 0.0
        if self.enabled:
            parts = [
                f"step {step}/{self.total_steps}",
                f"{steps_per_s:.2f} steps/s",
                f"{tokens_per_s:,.0f} tokens/s",
                f"ETA {format_eta(eta)}",
            ]
            parts += [f"{k} {v:.4g}" for k, v in (extra or {}).items()]
            print(" | ".join(parts), file=self.stream, flush=True)
        return {"perf/steps_per_sec": steps_per_s, "perf/tokens_per_sec": tokens_per_s}

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
