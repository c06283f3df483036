"""Test session setup: 8 fake CPU devices so sharded code runs on any machine, and a persistent
compilation cache private to this session (each xdist worker its own), so the many tests that
compile the same step again (resume == uninterrupted, sharded == single device) compile it once.
"""
import os
import signal
import tempfile

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_cache_tests_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


@pytest.fixture
def preempting_batches():
    """`make(batch_fn, sigterm_at=None)` -> a loop batch factory yielding batch_fn(i) from the
    given position on, that sends this process SIGTERM when batch `sigterm_at` is drawn (a
    preemption notice arriving mid-run)."""
    def make(batch_fn, sigterm_at=None):
        def batches(position):
            i = position
            while True:
                if i == sigterm_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield batch_fn(i)
                i += 1
        return batches
    return make
