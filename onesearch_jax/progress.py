"""A progress line (done/total, rate, ETA) for long host-side work such as building the world."""
from __future__ import annotations

import math
import sys
import time
from typing import TextIO



class Progress:
    """Prints `label: done/total (pct) rate unit/s ETA m:ss` at most every `every_s` seconds."""

    def __init__(self, label: str, total: int, unit: str = "items", every_s: float = 2.0,
                 stream: TextIO | None = None):
        self.label, self.total, self.unit, self.every_s = label, int(total), unit, every_s
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.perf_counter()) - self._start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / max(self.total, 1)
        return (f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) "
                f"{rate:,.0f} {self.unit}/s ETA {format_eta(eta)}")


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
