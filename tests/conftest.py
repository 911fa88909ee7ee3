"""Tests run on the CPU with 8 fake devices (before any JAX backend is created).

Compiled programs go to a persistent compilation cache for the session (shared with the subprocesses
that tests start, through JAX_COMPILATION_CACHE_DIR): the suite builds the same small models many
times, and XLA:CPU compiles dominate its time. The cache is keyed by the program, so it never changes
a result.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="streamdit-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)


def pytest_collection_modifyitems(config, items):
    on_gpu = jax.default_backend() == "gpu"
    for item in items:
        if "gpu" in item.keywords and not on_gpu:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))
