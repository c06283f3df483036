"""Test session setup: 8 fake CPU devices so sharded code runs on any machine, fast compilation,
and a persistent compilation cache private to this session (each xdist worker its own), so the
many tests that compile the same step again (resume == uninterrupted, sharded == single device)
compile it once.
"""
import os
import signal
import sys
import tempfile

import pytest

# Backend optimisation level 0: XLA:CPU compiles about twice as fast, and nearly every test here
# compiles a tiny model once and runs it a few steps (compilation is most of the suite's time).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                                   "--xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_cache_tests_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Shared test data modules (e.g. real_catalog_data) import by name under --import-mode=importlib.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def preempting_batches():
    """`make(batch_fn, sigterm_at=None)` -> a loop batch factory yielding this process's rows of
    batch_fn(i) from the given position on, that sends this process SIGTERM when batch
    `sigterm_at` is drawn (a preemption notice arriving mid-run)."""
    def make(batch_fn, sigterm_at=None):
        def batches(position, rows=slice(None)):
            i = position
            while True:
                if i == sigterm_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                yield {k: v[rows] for k, v in batch_fn(i).items()}
                i += 1
        return batches
    return make
