"""The prefetching input thread: same items, same order, errors at their position, clean stop."""
import threading
import time

import pytest

from onesearch_jax.train.prefetch import Prefetch, maybe_prefetch, prefetch_depth


def test_same_items_in_order_and_builds_ahead():
    built = []

    def gen():
        for i in range(6):
            built.append(i)
            yield {"x": i}

    with Prefetch(gen(), depth=2) as it:
        first = next(it)
        deadline = time.time() + 5
        while len(built) < 4 and time.time() < deadline:  # 1 taken + 2 queued + 1 waiting
            time.sleep(0.01)
        assert first == {"x": 0} and len(built) == 4  # ahead, but never more than depth + 1
        assert [b["x"] for b in it] == [1, 2, 3, 4, 5]
        with pytest.raises(StopIteration):
            next(it)


def test_error_is_raised_at_its_position_in_the_consumer():
    def gen():
        yield 1
        yield 2
        raise ValueError("row 17 is malformed")

    it = Prefetch(gen(), depth=4)
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(ValueError, match="row 17 is malformed"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_close_stops_an_endless_producer():
    def endless():
        i = 0
        while True:
            i += 1
            yield i

    it = Prefetch(endless(), depth=2)
    assert next(it) == 1
    it.close()
    it.close()
    assert not any(t.name == "batch-prefetch" and t.is_alive() for t in threading.enumerate()
                   if t is it._thread)
    with pytest.raises(StopIteration):
        next(it)


def test_depth_zero_is_the_plain_iterator_and_bad_depth_is_refused():
    base = iter([1, 2])
    assert maybe_prefetch(base, 0) is base
    with pytest.raises(ValueError, match="train.prefetch must be >= 0"):
        maybe_prefetch(iter([]), -1)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        Prefetch(iter([]), 0)


def test_auto_depth_is_off_on_cpu_and_on_elsewhere():
    assert prefetch_depth(-1, "cpu") == 0 and prefetch_depth(-1, "gpu") == 2
    assert prefetch_depth(-1, "tpu") == 2 and prefetch_depth(3, "cpu") == 3
    with pytest.raises(ValueError, match="-1 \\(auto\\)"):
        prefetch_depth(-2, "tpu")
