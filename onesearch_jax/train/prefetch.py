"""A prefetching input thread: the next batches are built while the device runs this step.

Without it the loop builds batch s+1 in Python only after dispatching step s and reading step
s-1's metrics, so on a host whose input pipeline is slow the device waits for the host. The
thread only changes *when* a batch is built, never which: `Prefetch(it)` yields exactly the items
of `it`, in order, and an exception raised while building one is raised by `next()` at that
position (so a malformed row still names itself, at the step it would have without the thread).
"""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = "item", "end", "error"
_POLL_S = 0.05


class Prefetch(Iterator[T]):
    """Iterates `iterator` on a daemon thread, holding at most `depth` finished items ahead.

    close() (or leaving a `with` block) stops the thread without consuming the rest; it is safe
    to call twice and after the iterator ran out.
    """

    def __init__(self, iterator: Iterator[T], depth: int = 2):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._fill, args=(iterator,), daemon=True,
                                        name="batch-prefetch")
        self._thread.start()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, iterator: Iterator[T]) -> None:
        try:
            for item in iterator:
                if not self._put((_ITEM, item)):
                    return
        except BaseException as e:  # re-raised in the consumer's thread, at this position
            self._put((_ERROR, e))
            return
        self._put((_END, None))

    def __iter__(self) -> "Prefetch[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value
        self._done = True
        self._thread.join()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        self._done = True
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "Prefetch[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


AUTO = -1
AUTO_DEPTH = 2


def prefetch_depth(configured: int, backend: str) -> int:
    """train.prefetch, with -1 (auto) = 2 on an accelerator and 0 on the CPU backend: there the
    host and the "device" share the same cores, and the thread measured no faster (0.94x on the
    tiny preset, 1.00x on small, 2 cores; benchmarks/prefetch_bench.py)."""
    if configured == AUTO:
        return 0 if backend == "cpu" else AUTO_DEPTH
    if configured < 0:
        raise ValueError(f"train.prefetch must be >= 0 or -1 (auto), got {configured}")
    return configured


def maybe_prefetch(iterator: Iterator[T], depth: int) -> Iterator[T]:
    """`Prefetch(iterator, depth)`, or the iterator itself when depth is 0 (no thread)."""
    if depth < 0:
        raise ValueError(f"train.prefetch must be >= 0, got {depth}")
    return Prefetch(iterator, depth) if depth else iterator


@contextlib.contextmanager
def prefetching(iterator: Iterator[T], depth: int):
    """maybe_prefetch as a context: on exit the thread (or a generator) is closed."""
    it = maybe_prefetch(iterator, depth)
    try:
        yield it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
