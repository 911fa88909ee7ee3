"""A pytest plugin that says where the suite's time goes: for each test (setup included), the seconds
JAX spent tracing, lowering and compiling (XLA backend compiles; persistent-cache hits counted apart),
from ``jax.monitoring`` events, and the seconds Python's cyclic garbage collector ran (``gc.callbacks``).
``pytest --time-report`` prints the table at the end; subprocesses a test starts are not seen (their
time is the test's "other").
"""

from __future__ import annotations

import collections
import gc
import time

import pytest
from jax import monitoring

EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_load",
}


class TimeReport:
    def __init__(self):
        self.current: str | None = None
        self.seconds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._gc_start = 0.0
        monitoring.register_event_duration_secs_listener(self._on_event)
        gc.callbacks.append(self._on_gc)

    def _on_event(self, event: str, duration: float, **_) -> None:
        if self.current is not None and event in EVENTS:
            self.seconds[self.current][EVENTS[event]] += duration

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self.current is not None:
            self.seconds[self.current]["gc"] += time.perf_counter() - self._gc_start

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.current, start = item.nodeid, time.perf_counter()
        yield
        self.seconds[item.nodeid]["wall"] += time.perf_counter() - start
        self.current = None

    def pytest_terminal_summary(self, terminalreporter):
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1]["wall"])
        total = sum((c for _, c in rows), collections.Counter())
        columns = ("wall", "compile", "cache_load", "trace", "lower", "gc")
        write = terminalreporter.write_line
        terminalreporter.section("where the time goes (seconds; setup and teardown included; tests over 1 s)")
        write(" ".join(f"{c:>10}" for c in columns) + "  other  test")
        shown = [(n, c) for n, c in rows if c["wall"] >= 1.0]
        for nodeid, c in [("TOTAL", total), *shown]:
            other = c["wall"] - sum(c[k] for k in columns[1:])
            write(" ".join(f"{c[k]:10.1f}" for k in columns) + f" {other:6.1f}  {nodeid}")


def pytest_addoption(parser):
    parser.addoption(
        "--time-report", action="store_true", help="print each test's wall, XLA compile and trace seconds"
    )


def pytest_configure(config):
    if config.getoption("--time-report"):
        config.pluginmanager.register(TimeReport(), "streamdit-time-report")
