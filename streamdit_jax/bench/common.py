"""What every benchmark shares: timing statistics, peak memory, the device, models with random weights."""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.bench.flops import peak_flops
from streamdit_jax.config import Config, ConfigError


def spread_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, 10th/90th percentile, min and max of a list of durations, in milliseconds."""
    if len(seconds) == 0:
        raise ValueError("no timed steps: ask for at least one step after the warm-up")
    ms = np.asarray(seconds, np.float64) * 1000.0
    return {
        "median": float(statistics.median(ms)),
        "p10": float(np.percentile(ms, 10)),
        "p90": float(np.percentile(ms, 90)),
        "min": float(ms.min()),
        "max": float(ms.max()),
        "count": len(ms),
    }


def time_calls(
    fn: Callable[[], Any], sync: Callable[[Any], Any], steps: int, warmup: int
) -> tuple[dict, float]:
    """(:func:`spread_ms` of the timed calls, seconds of the first call) of ``fn`` run ``warmup + steps``
    times, each waited for with ``sync`` on its result."""
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return spread_ms(times[warmup:]), times[0]


def matmul_peak(device: jax.Device, size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul on ``device``, measured (median of ``repeats``): the reference
    MFU uses on devices without a tabled peak, such as CPUs."""
    a = jax.device_put(jnp.ones((size, size), jnp.float32), device)
    matmul = jax.jit(lambda x: x @ x)
    step, _ = time_calls(lambda: matmul(a), jax.block_until_ready, repeats, warmup=1)
    return 2 * size**3 / (step["median"] / 1000.0)


def device_info() -> dict:
    """The first device's kind (CPUs: their core count) and platform, the device count, the jax version."""
    device = jax.devices()[0]
    kind = f"CPU ({os.cpu_count()} cores)" if device.platform == "cpu" else device.device_kind
    return {
        "device": kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
    }


def peak_throughput(override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s of one device, where it comes from): ``override_tflops``, the table of dense bf16
    peaks, or (CPUs and untabled chips) a float32 matmul measured now."""
    if override_tflops is not None:
        return override_tflops * 1e12, "given (--peak-tflops)"
    device = jax.devices()[0]
    tabled = peak_flops(device)
    if tabled is not None:
        return tabled, "data sheet, dense bf16"
    return matmul_peak(device), "measured: 1024x1024 float32 matmul"


def peak_memory_gib(devices: Sequence[jax.Device] | None = None) -> tuple[list[float], str]:
    """(peak memory of each device in GiB, what was measured): the allocator's peak where the backend
    reports one (GPU, TPU), else this process's peak resident memory (CPU), once for the host."""
    devices = list(devices or jax.local_devices())
    stats = [d.memory_stats() or {} for d in devices]
    if all("peak_bytes_in_use" in s for s in stats):
        return [s["peak_bytes_in_use"] / 2**30 for s in stats], "device allocator peak"
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return [rss_kib / 2**20], "host process peak RSS (no device allocator statistics)"


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1])


def step_peak_from_rss(
    state: Callable[[], Any], step: Callable[[], Any], devices: int, repeats: int = 2
) -> float | None:
    """Peak GiB per device of ``step`` where devices keep no allocator statistics (CPU), measured: the
    bytes of the resident ``state()`` arrays plus how far the process's resident set rose, at its highest
    over ``repeats`` steps, above its level before them (Linux's VmHWM, reset through
    /proc/self/clear_refs once freed heap pages are returned with malloc_trim), over ``devices``.
    None where /proc or glibc do not allow it."""
    import ctypes
    import gc

    try:
        libc = ctypes.CDLL("libc.so.6")
        gc.collect()
        libc.malloc_trim(0)
        before = _proc_status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
        if _proc_status_kib("VmHWM") > _proc_status_kib("VmRSS") + 1024:
            return None  # the reset was ignored: the peak would still hold the compilation's
    except (OSError, StopIteration):
        return None
    for _ in range(repeats):
        jax.block_until_ready(step())
    rise = max(_proc_status_kib("VmHWM") - before, 0) * 1024
    resident = sum(s.data.nbytes for x in jax.tree.leaves(state()) for s in x.addressable_shards)
    return (resident + rise) / devices / 2**30


def with_resolution(cfg: Config, resolution: str | None) -> Config:
    """``cfg`` at video resolution "HxW" (checked like any config)."""
    if resolution is None:
        return cfg
    try:
        height, width = (int(v) for v in resolution.lower().split("x"))
    except ValueError:
        raise ConfigError(
            f"--resolution {resolution!r}: expected HEIGHTxWIDTH in pixels, e.g. 512x512"
        ) from None
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, resolution=(height, width)))


class RandomText:
    """A stand-in text encoder: token states drawn from the prompt (benchmarks need no text model)."""

    def __init__(self, width: int, max_length: int, tokens: int = 12):
        self.width, self.max_length, self.tokens = width, max_length, min(tokens, max_length)

    def __call__(self, prompts: list[str]) -> tuple[jax.Array, jax.Array]:
        seeds = [sum(map(ord, p)) for p in prompts]
        states = jnp.stack(
            [0.5 * jax.random.normal(jax.random.key(s), (self.max_length, self.width)) for s in seeds]
        )
        mask = jnp.broadcast_to(jnp.arange(self.max_length) < self.tokens, (len(prompts), self.max_length))
        return states, mask


def perturbed(params, scale: float = 0.02, seed: int = 0):
    """``params`` plus small noise, in place (donated): zero-initialised gates and heads become live, so
    the benchmark runs every path with realistic values."""

    def perturb(params):
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(seed), len(leaves))
        noisy = [
            p + (scale * jax.random.normal(k, p.shape)).astype(p.dtype)
            for p, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree.unflatten(treedef, noisy)

    shardings = jax.tree.map(lambda p: p.sharding, params)
    return jax.jit(perturb, out_shardings=shardings, donate_argnums=0)(params)
